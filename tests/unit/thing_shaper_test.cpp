#include "daemon/thing/shaper.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using thingmux::thing::session_id;
using thingmux::thing::publish_shaper;
using thingmux::thing::token_bucket;
using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;
using duration = clock_type::duration;

// Move-only, like the daemon's pending publishes: the shaper must never copy an item.
using item = std::unique_ptr<std::uint64_t>;
using shaper = publish_shaper<item>;

constexpr session_id a{1};
constexpr session_id b{2};
constexpr session_id c{3};

constexpr std::size_t kib = 1024;
constexpr time_point t0 = time_point{} + 1000h;  // simulated; far from the epoch so going back is possible

item make(std::uint64_t seq) {
    return std::make_unique<std::uint64_t>(seq);
}

struct sent {
    session_id client;
    std::uint64_t seq = 0;
    std::size_t bytes = 0;
    time_point at;
};

// Drives a shaper the way the daemon does: at each wakeup, pop everything ready; then sleep until
// next_ready() or until `arrivals` has something to push, whichever comes first. `arrivals(now)`
// pushes what arrives up to `now` and returns when it next has something (nullopt: nothing more).
std::vector<sent> drive(shaper& s, time_point start, time_point end,
                        const std::function<std::optional<time_point>(time_point)>& arrivals = {}) {
    std::vector<sent> out;
    time_point now = start;
    bool promised = false;  // next_ready() said pop() succeeds at this `now`
    while (now <= end) {
        const std::optional<time_point> next_arrival = arrivals ? arrivals(now) : std::nullopt;
        const std::size_t before = out.size();
        while (auto r = s.pop(now)) out.push_back({r->client, *r->item, r->bytes, now});
        EXPECT_TRUE(!promised || out.size() > before) << "pop() failed at now + next_ready()";
        std::optional<time_point> wake = next_arrival;
        promised = false;
        if (const auto ready = s.next_ready(now)) {
            EXPECT_GT(*ready, duration::zero()) << "pop() refused while next_ready() said now";
            promised = !wake || now + *ready <= *wake;
            wake = promised ? now + *ready : *wake;
        }
        if (!wake) break;
        now = *wake;
    }
    return out;
}

// Keeps `client` backlogged with `count` items of `bytes` each, numbered from 0.
void backlog(shaper& s, session_id client, std::size_t count, std::size_t bytes) {
    for (std::size_t i = 0; i < count; ++i) s.push(client, make(i), bytes);
}

struct totals {
    std::size_t messages = 0;
    std::size_t bytes = 0;
};

std::map<session_id, totals> per_client(const std::vector<sent>& log) {
    std::map<session_id, totals> out;
    for (const sent& x : log) {
        ++out[x.client].messages;
        out[x.client].bytes += x.bytes;
    }
    return out;
}

// Largest message count and byte sum released in any window [t, t + width) starting at a release.
totals busiest_window(const std::vector<sent>& log, duration width) {
    totals most;
    std::size_t end = 0;
    std::size_t bytes = 0;
    for (std::size_t begin = 0; begin < log.size(); ++begin) {
        while (end < log.size() && log[end].at < log[begin].at + width) bytes += log[end++].bytes;
        most.messages = std::max(most.messages, end - begin);
        most.bytes = std::max(most.bytes, bytes);
        bytes -= log[begin].bytes;
    }
    return most;
}

double seconds(duration d) {
    return std::chrono::duration<double>(d).count();
}

// --- token_bucket -----------------------------------------------------------------------------

TEST(TokenBucketTest, StartsFullAndEarnsAtItsRateUpToItsCapacity) {
    token_bucket bucket(100.0, 10.0, t0);
    EXPECT_DOUBLE_EQ(bucket.tokens(), 10.0);
    for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(bucket.allows(1.0));
        bucket.take(1.0);
    }
    EXPECT_FALSE(bucket.allows(1.0));
    bucket.refill(t0 + 50ms);
    EXPECT_NEAR(bucket.tokens(), 5.0, 1e-9);
    bucket.refill(t0 + 10s);
    EXPECT_DOUBLE_EQ(bucket.tokens(), 10.0);
}

TEST(TokenBucketTest, ItemCostlierThanTheCapacityPassesWhenFullAndLeavesADebt) {
    token_bucket bucket(1000.0, 100.0, t0);
    bucket.take(60.0);
    EXPECT_FALSE(bucket.allows(500.0)) << "a large item waits for a full bucket";
    EXPECT_EQ(bucket.until_allows(500.0, t0), 60ms);
    bucket.refill(t0 + 60ms);
    ASSERT_TRUE(bucket.allows(500.0));
    bucket.take(500.0);
    EXPECT_NEAR(bucket.tokens(), -400.0, 1e-9);
    // The debt is paid back before even a small item passes.
    EXPECT_EQ(bucket.until_allows(1.0, t0 + 60ms), 401ms);
}

TEST(TokenBucketTest, ClockGoingBackwardsEarnsAndLosesNothing) {
    token_bucket bucket(100.0, 10.0, t0);
    bucket.take(10.0);
    bucket.refill(t0 + 20ms);
    EXPECT_NEAR(bucket.tokens(), 2.0, 1e-9);
    bucket.refill(t0 - 1h);
    EXPECT_NEAR(bucket.tokens(), 2.0, 1e-9);
    bucket.refill(t0 + 20ms);
    EXPECT_NEAR(bucket.tokens(), 2.0, 1e-9) << "the same instant twice earns once";
    bucket.take(2.0);
    // Asked from before the last refill, the wait counts from that refill.
    EXPECT_EQ(bucket.until_allows(1.0, t0), 30ms);
}

TEST(TokenBucketTest, UnlimitedAllowsAnything) {
    token_bucket bucket(std::nullopt, 1.0, t0);
    for (int i = 0; i < 1000; ++i) bucket.take(1e9);
    EXPECT_TRUE(bucket.allows(1e12));
    EXPECT_EQ(bucket.until_allows(1e12, t0), duration::zero());
}

TEST(TokenBucketTest, ReconfigureKeepsTheDebtAndClampsToTheNewCapacity) {
    token_bucket bucket(100.0, 10.0, t0);
    bucket.take(15.0);  // -5
    bucket.reconfigure(10.0, 1.0, t0);
    EXPECT_NEAR(bucket.tokens(), -5.0, 1e-9);
    EXPECT_EQ(bucket.until_allows(1.0, t0), 600ms);
    bucket.refill(t0 + 10s);
    EXPECT_DOUBLE_EQ(bucket.tokens(), 1.0);
    bucket.reconfigure(std::nullopt, 1.0, t0 + 10s);
    bucket.reconfigure(100.0, 10.0, t0 + 10s);
    EXPECT_DOUBLE_EQ(bucket.tokens(), 10.0) << "leaving unlimited starts full";
}

// --- publish_shaper: limits -------------------------------------------------------------------

TEST(ShaperTest, NeverExceedsTheMessageRateInAnyOneSecondWindow) {
    shaper s({.messages_per_second = 100, .bytes_per_second = std::nullopt}, t0);
    backlog(s, a, 3000, 100);
    backlog(s, b, 3000, 100);
    const auto log = drive(s, t0, t0 + 20s);
    // Bucket: 10 messages (100 ms worth); a window of length T sees at most rate * T + 10.
    EXPECT_LE(busiest_window(log, 1s).messages, 110U);
    EXPECT_LE(busiest_window(log, 100ms).messages, 20U);
    EXPECT_LE(log.size(), 100U * 20 + 10 + 1);  // [t0, t0 + 20 s] inclusive
    // Backlogged, it runs at the limit: at least 95 % of it.
    EXPECT_GE(log.size(), 1900U);
}

TEST(ShaperTest, NeverExceedsTheByteRateWithMixedSizes) {
    constexpr double rate = 512 * kib;
    shaper s({.messages_per_second = std::nullopt, .bytes_per_second = 512 * kib}, t0);
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<std::size_t> size(0, 128 * kib);
    std::size_t largest = 0;
    for (std::uint64_t i = 0; i < 3000; ++i) {
        const std::size_t bytes = size(rng);
        largest = std::max(largest, bytes);
        s.push(session_id{1 + i % 4}, make(i), bytes);
    }
    const auto log = drive(s, t0, t0 + 60s);
    // Bucket: 51.2 KiB. An item costlier than that passes on a full bucket and leaves a debt, so
    // a window of length T carries at most rate * T + max(capacity, largest item).
    const double excess = std::max(rate / 10, static_cast<double>(largest));
    EXPECT_LE(static_cast<double>(busiest_window(log, 1s).bytes), rate + excess);
    std::size_t total = 0;
    for (const sent& x : log) total += x.bytes;
    EXPECT_LE(static_cast<double>(total), rate * 60 + excess);
    EXPECT_GE(static_cast<double>(total), 0.95 * rate * 60) << "backlogged, it runs at the limit";
}

TEST(ShaperTest, BothLimitsHoldTogether) {
    shaper s({}, t0);              // AWS IoT Core: 100 publishes/s, 512 KiB/s
    backlog(s, a, 5000, 200);      // message-bound alone
    backlog(s, b, 500, 40 * kib);  // byte-bound alone
    const auto log = drive(s, t0, t0 + 30s);
    const totals window = busiest_window(log, 1s);
    EXPECT_LE(window.messages, 110U);
    EXPECT_LE(window.bytes, 512 * kib + 512 * kib / 10 + 1);
}

// --- publish_shaper: fairness -----------------------------------------------------------------

TEST(ShaperTest, QuietAppIsServedWithinTwoMessageIntervalsWhileAnotherFloods) {
    shaper s({}, t0);
    backlog(s, a, 10'000, 200);
    // The quiet app publishes once per second, off the bucket's rhythm.
    std::vector<time_point> pushed;
    time_point next_quiet = t0 + 500ms + 3ms + 7us;
    const time_point end = t0 + 90s;
    const auto arrivals = [&](time_point now) -> std::optional<time_point> {
        while (next_quiet <= now && next_quiet < end) {
            s.push(b, make(pushed.size()), 300);
            pushed.push_back(next_quiet);
            next_quiet += 1s;
        }
        return next_quiet < end ? std::optional{next_quiet} : std::nullopt;
    };
    const auto log = drive(s, t0, end, arrivals);

    std::size_t quiet = 0;
    duration worst{};
    for (const sent& x : log) {
        if (x.client != b) continue;
        ASSERT_EQ(x.seq, quiet);
        worst = std::max(worst, x.at - pushed[quiet]);
        ++quiet;
    }
    EXPECT_EQ(quiet, pushed.size());
    EXPECT_EQ(quiet, 90U);
    // The flooder's item already chosen goes first, then the quiet one: two intervals of 10 ms,
    // plus the nanosecond each wait is rounded up by.
    EXPECT_LE(worst, 20ms + 2ns);
    // The flooder gets the rest of the rate.
    const std::size_t flood = log.size() - quiet;
    EXPECT_GE(flood, static_cast<std::size_t>(0.95 * (100 * 90 - 90)));
}

TEST(ShaperTest, AppsWithSmallMessagesShareTheMessageRateEqually) {
    shaper s({}, t0);
    backlog(s, a, 5000, 100);
    backlog(s, b, 5000, 300);
    backlog(s, c, 5000, 2 * kib);
    const auto log = drive(s, t0, t0 + 30s);
    const auto share = per_client(log);
    const std::size_t fair = log.size() / 3;
    for (const session_id id : {a, b, c}) {
        EXPECT_GE(share.at(id).messages, fair - 1);
        EXPECT_LE(share.at(id).messages, fair + 1);
    }
}

TEST(ShaperTest, AppsLimitedByBytesShareTheByteRateEquallyWhateverTheirMessageSizes) {
    shaper s({}, t0);
    backlog(s, a, 1000, 100 * kib);
    backlog(s, b, 5000, 8 * kib);  // 100/s of these would be 800 KiB/s: bytes limit b too
    const auto log = drive(s, t0, t0 + 60s);
    const auto share = per_client(log);
    const double ratio = static_cast<double>(share.at(a).bytes) / static_cast<double>(share.at(b).bytes);
    EXPECT_GT(ratio, 0.9);
    EXPECT_LT(ratio, 1.1);
}

TEST(ShaperTest, LargeMessagesDoNotTakeTheByteBudgetFromSmallOnes) {
    // 100 KiB messages are limited by bytes, 1 KiB ones by the message rate (100/s of them is
    // only 100 KiB/s). Equal bytes would leave most of the byte budget unused; what each app is
    // owed is at least half of the resource it is limited by.
    shaper s({}, t0);
    backlog(s, a, 1000, 100 * kib);
    backlog(s, b, 10'000, 1 * kib);
    const std::size_t length = 60;
    const auto log = drive(s, t0, t0 + std::chrono::seconds(length));
    const auto share = per_client(log);
    EXPECT_GE(share.at(b).messages, 100 * length / 2) << "at least half of the publish rate";
    EXPECT_GE(share.at(a).bytes, 512 * kib * length / 2) << "at least half of the byte rate";
}

TEST(ShaperTest, AppJoiningTheRoundWaitsForTheOthersButNoLonger) {
    shaper s({.messages_per_second = std::nullopt, .bytes_per_second = std::nullopt}, t0);
    backlog(s, a, 3, 10);
    backlog(s, b, 3, 10);
    ASSERT_EQ(s.pop(t0)->client, a);
    s.push(c, make(0), 10);  // joins after b
    std::vector<session_id> order;
    while (auto r = s.pop(t0)) order.push_back(r->client);
    EXPECT_EQ(order, (std::vector<session_id>{b, a, c, b, a, b}));
}

TEST(ShaperTest, CreditLeftOverBySmallMessagesIsNotBankedForLargeOnes) {
    // While a sends 100-byte messages, one per visit, most of each 4 KiB quantum goes unused. Were
    // it kept, a could then send its 8 KiB messages on every visit, twice b's share.
    shaper s({.messages_per_second = std::nullopt, .bytes_per_second = std::nullopt}, t0);
    backlog(s, a, 200, 100);
    for (std::uint64_t i = 200; i < 220; ++i) s.push(a, make(i), 8 * kib);
    backlog(s, b, 1000, 8 * kib);
    std::size_t b_during = 0;  // b's items popped from a's first large one to its last
    bool a_large = false;
    while (s.queued(a) > 0) {
        const auto r = s.pop(t0);
        ASSERT_TRUE(r);
        if (r->client == a && *r->item >= 200) a_large = true;
        if (r->client == b && a_large) ++b_during;
    }
    EXPECT_GE(b_during, 19U);
}

// --- publish_shaper: order and bookkeeping ----------------------------------------------------

TEST(ShaperTest, KeepsEachAppsMessagesInOrder) {
    shaper s({.messages_per_second = 50, .bytes_per_second = 64 * kib}, t0);
    std::mt19937_64 rng(11);
    std::uniform_int_distribution<std::uint64_t> who(1, 5);
    std::uniform_int_distribution<std::size_t> size(0, 20 * kib);
    std::map<session_id, std::uint64_t> pushed;
    time_point next = t0;
    std::size_t arrivals_left = 2000;
    const auto arrivals = [&](time_point now) -> std::optional<time_point> {
        while (arrivals_left > 0 && next <= now) {
            const session_id id{who(rng)};
            s.push(id, make(pushed[id]++), size(rng));
            --arrivals_left;
            next += std::chrono::microseconds(rng() % 40'000);
        }
        return arrivals_left > 0 ? std::optional{next} : std::nullopt;
    };
    const auto log = drive(s, t0, t0 + 1h, arrivals);

    std::map<session_id, std::uint64_t> popped;
    for (const sent& x : log) EXPECT_EQ(x.seq, popped[x.client]++) << "client " << x.client.value;
    EXPECT_EQ(popped, pushed);
    EXPECT_EQ(s.queued_total(), 0U);
}

TEST(ShaperTest, CountsQueuedItemsAndBytesPerApp) {
    shaper s({.messages_per_second = std::nullopt, .bytes_per_second = std::nullopt}, t0);
    EXPECT_EQ(s.queued(a), 0U);
    s.push(a, make(0), 100);
    s.push(a, make(1), 250);
    s.push(b, make(0), 7);
    EXPECT_EQ(s.queued(a), 2U);
    EXPECT_EQ(s.queued_bytes(a), 350U);
    EXPECT_EQ(s.queued(b), 1U);
    EXPECT_EQ(s.queued_bytes(b), 7U);
    EXPECT_EQ(s.queued_total(), 3U);
    const auto r = s.pop(t0);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->client, a);
    EXPECT_EQ(r->bytes, 100U);
    EXPECT_EQ(s.queued_bytes(a), 250U);
    EXPECT_EQ(s.queued_total(), 2U);
}

TEST(ShaperTest, MovesWithItsQueuesAndTurn) {
    shaper s({.messages_per_second = std::nullopt, .bytes_per_second = std::nullopt}, t0);
    backlog(s, a, 2, 10);
    backlog(s, b, 2, 10);
    ASSERT_EQ(s.pop(t0)->client, a);
    shaper moved = std::move(s);
    shaper assigned({}, t0);
    assigned = std::move(moved);
    std::vector<session_id> order;
    while (auto r = assigned.pop(t0)) order.push_back(r->client);
    EXPECT_EQ(order, (std::vector<session_id>{b, a, b}));
}

TEST(ShaperTest, RemoveClientReturnsExactlyItsQueuedItemsInOrder) {
    shaper s({.messages_per_second = 10, .bytes_per_second = std::nullopt}, t0);
    backlog(s, a, 5, 10);
    backlog(s, b, 4, 20);
    backlog(s, c, 3, 30);
    ASSERT_EQ(s.pop(t0)->client, a);  // the bucket (1 message) is now empty; b's turn is next

    const std::vector<item> removed = s.remove_client(b);  // the client whose turn it is
    ASSERT_EQ(removed.size(), 4U);
    for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(*removed[i], i);
    EXPECT_EQ(s.queued(b), 0U);
    EXPECT_EQ(s.queued_bytes(b), 0U);
    EXPECT_EQ(s.queued_total(), 7U);
    EXPECT_TRUE(s.remove_client(b).empty());
    EXPECT_TRUE(s.remove_client(session_id{99}).empty());

    const auto log = drive(s, t0, t0 + 10s);
    ASSERT_EQ(log.size(), 7U);
    EXPECT_EQ(log[0].client, c) << "the turn passes to the next client";
    for (const sent& x : log) EXPECT_NE(x.client, b);
}

TEST(ShaperTest, RemoveIfDropsOnlyTheMatchingItemsAndKeepsTheTurn) {
    shaper s({.messages_per_second = 10, .bytes_per_second = std::nullopt}, t0);
    backlog(s, a, 5, 10);
    backlog(s, b, 4, 20);
    backlog(s, c, 3, 30);
    ASSERT_EQ(s.pop(t0)->client, a);  // b's turn is next

    // Items 0 and 2 of the client whose turn it is: it keeps its turn with item 1 first.
    EXPECT_EQ(s.remove_if(b, [](const item& i) { return *i % 2 == 0; }), 2U);
    EXPECT_EQ(s.queued(b), 2U);
    EXPECT_EQ(s.queued_bytes(b), 40U);
    EXPECT_EQ(s.queued_total(), 9U);
    EXPECT_EQ(s.remove_if(b, [](const item&) { return false; }), 0U);
    EXPECT_EQ(s.remove_if(session_id{99}, [](const item&) { return true; }), 0U);
    // All of c's: c leaves the round.
    EXPECT_EQ(s.remove_if(c, [](const item&) { return true; }), 3U);
    EXPECT_EQ(s.queued(c), 0U);

    const auto log = drive(s, t0, t0 + 10s);
    ASSERT_EQ(log.size(), 6U);
    std::vector<std::pair<session_id, std::uint64_t>> order;
    for (const sent& x : log) order.emplace_back(x.client, x.seq);
    EXPECT_EQ(order, (std::vector<std::pair<session_id, std::uint64_t>>{{b, 1}, {a, 1}, {b, 3}, {a, 2}, {a, 3}, {a, 4}}));
    EXPECT_EQ(s.queued_total(), 0U);
}

TEST(ShaperTest, RemoveIfEmptyingTheCurrentClientPassesTheTurnOn) {
    shaper s({.messages_per_second = 10, .bytes_per_second = std::nullopt}, t0);
    backlog(s, a, 2, 10);
    backlog(s, b, 1, 10);
    backlog(s, c, 1, 10);
    ASSERT_EQ(s.pop(t0)->client, a);  // b's turn is next
    EXPECT_EQ(s.remove_if(b, [](const item&) { return true; }), 1U);
    const auto log = drive(s, t0, t0 + 10s);
    ASSERT_EQ(log.size(), 2U);
    EXPECT_EQ(log[0].client, c);
    EXPECT_EQ(log[1].client, a);
}

TEST(ShaperTest, SetLimitsTakesEffectAndKeepsQueuedItems) {
    shaper s({}, t0);
    backlog(s, a, 5000, 100);
    auto log = drive(s, t0, t0 + 10s);
    EXPECT_NEAR(static_cast<double>(log.size()), 1010.0, 11.0);
    const std::size_t left = s.queued_total();

    const time_point t1 = t0 + 10s + 1ns;
    s.set_limits({.messages_per_second = 10, .bytes_per_second = std::nullopt}, t1);
    EXPECT_EQ(s.queued_total(), left);
    log = drive(s, t1, t1 + 10s);
    // 10/s with a 1-message bucket, and no burst carried over from the old 10-message bucket.
    EXPECT_GE(log.size(), 99U);
    EXPECT_LE(log.size(), 101U);

    const time_point t2 = t1 + 10s + 1ns;
    const std::size_t still = s.queued_total();
    s.set_limits({.messages_per_second = std::nullopt, .bytes_per_second = std::nullopt}, t2);
    log = drive(s, t2, t2);
    EXPECT_EQ(log.size(), still) << "unlimited: everything left goes at once";
    EXPECT_EQ(s.queued_total(), 0U);
}

TEST(ShaperTest, PassSpendsTheBudgetLikePushThenPopAndNeverOvertakesTheQueue) {
    shaper s({.messages_per_second = 100, .bytes_per_second = std::nullopt}, t0);
    // The bucket holds 10 messages (100 ms worth): ten pass at once, the eleventh does not.
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(s.pass(100, t0)) << i;
    EXPECT_FALSE(s.pass(100, t0));
    EXPECT_EQ(s.queued_total(), 0U);  // a refusal queues nothing: the caller pushes
    // 10 ms later one message's worth has come back.
    EXPECT_TRUE(s.pass(100, t0 + 10ms));
    EXPECT_FALSE(s.pass(100, t0 + 10ms));
    // Whatever waits in the queue goes first, even when the budget would allow more.
    s.push(a, make(1), 100);
    EXPECT_FALSE(s.pass(100, t0 + 1s));
    ASSERT_TRUE(s.pop(t0 + 1s).has_value());
    EXPECT_TRUE(s.pass(100, t0 + 1s));
}

TEST(ShaperTest, UnlimitedReleasesEverythingAtOnceInTurn) {
    shaper s({.messages_per_second = std::nullopt, .bytes_per_second = std::nullopt}, t0);
    EXPECT_EQ(s.next_ready(t0), std::nullopt);
    backlog(s, a, 3, 1 * kib);
    backlog(s, b, 3, 1 * kib);
    EXPECT_EQ(s.next_ready(t0), duration::zero());
    std::vector<session_id> order;
    while (auto r = s.pop(t0)) order.push_back(r->client);
    EXPECT_EQ(order, (std::vector<session_id>{a, b, a, b, a, b}));
    EXPECT_EQ(s.next_ready(t0), std::nullopt);
}

TEST(ShaperTest, NextReadyIsNothingNowOrTheWaitAfterWhichPopSucceeds) {
    shaper s({.messages_per_second = 100, .bytes_per_second = 10 * kib}, t0);  // buckets: 10, 1 KiB
    EXPECT_EQ(s.next_ready(t0), std::nullopt);
    EXPECT_FALSE(s.pop(t0));

    backlog(s, a, 20, 10);
    EXPECT_EQ(s.next_ready(t0), duration::zero());
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(s.pop(t0)) << i;
    // The message bucket is empty: one token takes 10 ms.
    auto wait = s.next_ready(t0);
    ASSERT_TRUE(wait);
    EXPECT_GE(*wait, 10ms);
    EXPECT_LE(*wait, 10ms + 1ns);
    EXPECT_FALSE(s.pop(t0 + *wait - 1us));
    EXPECT_TRUE(s.pop(t0 + *wait));

    // The byte bucket binds: 24 bytes left of 1 KiB, so 976 bytes to earn at 10 KiB/s.
    shaper by_bytes({.messages_per_second = std::nullopt, .bytes_per_second = 10 * kib}, t0);
    by_bytes.push(a, make(0), 1000);
    by_bytes.push(a, make(1), 1000);
    ASSERT_TRUE(by_bytes.pop(t0));
    wait = by_bytes.next_ready(t0);
    ASSERT_TRUE(wait);
    EXPECT_GE(*wait, 95'312'500ns);
    EXPECT_LE(*wait, 95'312'501ns);
    EXPECT_FALSE(by_bytes.pop(t0 + *wait - 1us));
    EXPECT_TRUE(by_bytes.pop(t0 + *wait));
    EXPECT_EQ(by_bytes.next_ready(t0 + *wait), std::nullopt);
}

TEST(ShaperTest, ItemLargerThanTheByteBucketPassesOnceTheBucketIsFull) {
    shaper s({.messages_per_second = std::nullopt, .bytes_per_second = 10 * kib}, t0);  // bucket: 1 KiB
    s.push(a, make(0), 512);
    s.push(a, make(1), 5 * kib);
    s.push(a, make(2), 1);
    ASSERT_TRUE(s.pop(t0));
    // 512 bytes short of a full bucket: 50 ms at 10 KiB/s.
    EXPECT_EQ(s.next_ready(t0), 50ms);
    EXPECT_FALSE(s.pop(t0 + 49ms));
    ASSERT_TRUE(s.pop(t0 + 50ms));
    // It left a 4 KiB debt: the next byte waits 4 KiB + 1 byte's worth.
    const auto wait = s.next_ready(t0 + 50ms);
    ASSERT_TRUE(wait);
    EXPECT_NEAR(seconds(*wait), (4.0 * kib + 1) / (10.0 * kib), 1e-9);
    EXPECT_TRUE(s.pop(t0 + 50ms + *wait));
}

TEST(ShaperTest, AHugeItemNextToSmallOnesCostsItsBytesNotOneVisitPerQuantum) {
    // 1 GiB at 4 KiB per visit would be 262,144 visits; skipping idle rounds makes it immediate,
    // and the small app is still served once per round while the huge item earns its credit.
    shaper s({.messages_per_second = std::nullopt, .bytes_per_second = std::nullopt}, t0);
    s.push(a, make(0), std::size_t{1} << 30U);
    backlog(s, b, 3, 100);
    std::vector<session_id> order;
    while (auto r = s.pop(t0)) order.push_back(r->client);
    EXPECT_EQ(order, (std::vector<session_id>{a, b, b, b}));  // a was alone when it was pushed

    s.push(b, make(3), 100);
    s.push(a, make(1), std::size_t{1} << 30U);
    s.push(b, make(4), 100);
    order.clear();
    while (auto r = s.pop(t0)) order.push_back(r->client);
    EXPECT_EQ(order, (std::vector<session_id>{b, b, a}));
}

// The round robin with skipped rounds must release exactly what visiting every client one by one
// would: a plain deficit round robin, written as directly as possible.
class reference_drr {
public:
    explicit reference_drr(std::size_t quantum) : quantum_(quantum) {}

    void push(session_id id, std::uint64_t seq, std::size_t bytes) {
        auto& f = flows_[id];
        f.items.push_back({seq, bytes});
        if (f.items.size() == 1) {
            round_.push_back(id);
            if (round_.size() == 1) advance();
        }
    }

    std::optional<std::pair<session_id, std::uint64_t>> pop() {
        if (round_.empty()) return std::nullopt;
        const session_id id = round_.front();
        auto& f = flows_[id];
        const auto [seq, bytes] = f.items.front();
        f.items.pop_front();
        f.deficit = std::min(f.deficit - bytes, quantum_);
        f.granted = false;
        round_.pop_front();
        if (f.items.empty()) {
            flows_.erase(id);
        } else {
            round_.push_back(id);
        }
        advance();
        return std::pair{id, seq};
    }

private:
    void advance() {
        while (!round_.empty()) {
            auto& f = flows_[round_.front()];
            if (!f.granted) f.deficit += quantum_;
            f.granted = true;
            if (f.deficit >= f.items.front().second) return;
            f.granted = false;
            round_.push_back(round_.front());
            round_.pop_front();
        }
    }

    struct flow {
        std::deque<std::pair<std::uint64_t, std::size_t>> items;
        std::size_t deficit = 0;
        bool granted = false;
    };
    std::size_t quantum_;
    std::map<session_id, flow> flows_;
    std::deque<session_id> round_;
};

TEST(ShaperTest, SkippingIdleRoundsReleasesInTheSameOrderAsVisitingEveryClient) {
    std::mt19937_64 rng(3);
    for (int trial = 0; trial < 50; ++trial) {
        constexpr std::size_t quantum = 64;
        shaper s({.messages_per_second = std::nullopt, .bytes_per_second = std::nullopt}, t0, quantum);
        reference_drr ref(quantum);
        std::uniform_int_distribution<std::uint64_t> who(1, 6);
        std::uniform_int_distribution<std::size_t> size(0, 2000);
        std::map<session_id, std::uint64_t> seq;
        for (int step = 0; step < 400; ++step) {
            if (rng() % 3 != 0) {
                const session_id id{who(rng)};
                const std::size_t bytes = rng() % 4 == 0 ? size(rng) : size(rng) / 40;
                s.push(id, make(seq[id]), bytes);
                ref.push(id, seq[id]++, bytes);
            } else {
                const auto got = s.pop(t0);
                const auto want = ref.pop();
                ASSERT_EQ(got.has_value(), want.has_value()) << "trial " << trial << " step " << step;
                if (got) {
                    ASSERT_EQ(got->client, want->first) << "trial " << trial << " step " << step;
                    ASSERT_EQ(*got->item, want->second);
                }
            }
        }
    }
}

}  // namespace
