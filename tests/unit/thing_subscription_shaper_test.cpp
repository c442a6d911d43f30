#include "daemon/thing/subscription_shaper.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using thingmux::thing::session_id;
using thingmux::thing::subscription_shaper;
using kind = subscription_shaper::kind;
using time_point = subscription_shaper::clock::time_point;

constexpr session_id a{1};
constexpr session_id b{2};
constexpr time_point t0 = time_point{} + 1000h;

std::string describe(const subscription_shaper::operation& op) {
    return (op.what == kind::subscribe ? "+" : "-") + op.filter;
}

// Everything the budget releases from `start` to `end`, waking when next_ready() says.
std::vector<std::string> drain(subscription_shaper& s, time_point start, time_point end) {
    std::vector<std::string> out;
    for (time_point now = start; now <= end;) {
        while (auto op = s.pop(now)) out.push_back(describe(*op));
        const auto wait = s.next_ready(now);
        if (!wait) break;
        now += *wait;
    }
    return out;
}

TEST(SubscriptionShaperTest, ReleasesAtMostTheBurstAtOnceThenTheRate) {
    subscription_shaper s(10, t0);  // 10 filters/s, burst 1
    for (int i = 0; i < 100; ++i) s.subscribe(a, "f/" + std::to_string(i));
    EXPECT_EQ(s.queued(a), 100U);
    std::size_t at_once = 0;
    while (s.pop(t0)) ++at_once;
    EXPECT_EQ(at_once, 1U);
    // Then 10 per second: in the next 2 s, 20 (and not 21).
    std::size_t later = 0;
    for (time_point now = t0; now <= t0 + 2050ms;) {
        while (s.pop(now)) ++later;
        now += *s.next_ready(now);
    }
    EXPECT_EQ(later, 20U);
    EXPECT_EQ(s.queued_total(), 79U);
}

TEST(SubscriptionShaperTest, UnlimitedReleasesEverythingAtOnce) {
    subscription_shaper s(std::nullopt, t0);
    for (int i = 0; i < 1000; ++i) s.subscribe(a, "f/" + std::to_string(i));
    std::size_t n = 0;
    while (s.pop(t0)) ++n;
    EXPECT_EQ(n, 1000U);
    EXPECT_FALSE(s.next_ready(t0).has_value());
}

TEST(SubscriptionShaperTest, AppsTakeTurnsOneFilterEach) {
    subscription_shaper s(10, t0);
    for (int i = 0; i < 5; ++i) s.subscribe(a, "a/" + std::to_string(i));
    s.subscribe(b, "b/0");
    s.subscribe(b, "b/1");
    const auto order = drain(s, t0, t0 + 10s);
    EXPECT_EQ(order, (std::vector<std::string>{"+a/0", "+b/0", "+a/1", "+b/1", "+a/2", "+a/3", "+a/4"}));
}

TEST(SubscriptionShaperTest, UnsubscribeWithdrawsASubscribeThatHasNotGoneOut) {
    subscription_shaper s(10, t0);
    s.subscribe(a, "x");  // takes the only token when popped
    ASSERT_EQ(describe(*s.pop(t0)), "+x");
    s.subscribe(a, "y");
    EXPECT_EQ(s.waiting("y"), kind::subscribe);
    EXPECT_FALSE(s.unsubscribe(a, "y")) << "the broker never had it: nothing to send";
    EXPECT_EQ(s.waiting("y"), std::nullopt);
    EXPECT_EQ(s.queued(a), 0U);
    EXPECT_TRUE(s.unsubscribe(a, "x")) << "x went out: its UNSUBSCRIBE must follow";
    EXPECT_EQ(s.queued_unsubscribes(), 1U);
    EXPECT_EQ(drain(s, t0, t0 + 1s), std::vector<std::string>{"-x"});
    EXPECT_EQ(s.queued_unsubscribes(), 0U);
}

TEST(SubscriptionShaperTest, SubscribeReplacesAWaitingUnsubscribeQueuedByAnotherApp) {
    subscription_shaper s(10, t0);
    s.subscribe(b, "busy");
    ASSERT_TRUE(s.pop(t0));  // the bucket is empty now
    for (int i = 0; i < 3; ++i) s.subscribe(a, "a/" + std::to_string(i));
    EXPECT_TRUE(s.unsubscribe(b, "shared"));  // b was its last holder
    EXPECT_EQ(s.waiting("shared"), kind::unsubscribe);
    s.subscribe(a, "shared");  // a new holder before the UNSUBSCRIBE went out
    EXPECT_EQ(s.waiting("shared"), kind::subscribe);
    EXPECT_EQ(s.queued_unsubscribes(), 0U);
    EXPECT_EQ(s.queued(b), 0U);
    const auto order = drain(s, t0, t0 + 10s);
    // Never "-shared" after "+shared": the last word upstream is the SUBSCRIBE.
    EXPECT_EQ(order, (std::vector<std::string>{"+a/0", "+a/1", "+a/2", "+shared"}));
}

TEST(SubscriptionShaperTest, UnsubscribeAfterAReplacedUnsubscribeStillGoesOut) {
    subscription_shaper s(10, t0);
    s.subscribe(a, "f");
    ASSERT_EQ(describe(*s.pop(t0)), "+f");  // the broker has f; the bucket is empty
    EXPECT_TRUE(s.unsubscribe(a, "f"));
    s.subscribe(b, "f");                     // replaces the waiting UNSUBSCRIBE
    EXPECT_TRUE(s.unsubscribe(b, "f")) << "the broker still has f: its UNSUBSCRIBE must go out";
    EXPECT_EQ(drain(s, t0, t0 + 1s), std::vector<std::string>{"-f"});
}

TEST(SubscriptionShaperTest, ChurnOfOneFilterNeverReordersItsOperations) {
    subscription_shaper s(5, t0);  // a token every 200 ms
    std::vector<std::string> out;
    time_point now = t0;
    auto tick = [&] {
        now += 70ms;
        while (auto op = s.pop(now)) out.push_back(describe(*op));
    };
    // Holders come and go on two apps while a third keeps its own turn busy; the hub calls
    // unsubscribe() only for a filter it subscribed.
    for (int i = 0; i < 200; ++i) {
        s.subscribe(i % 2 ? a : b, "f");
        s.subscribe(session_id{3}, "other/" + std::to_string(i));
        tick();
        EXPECT_LE(s.queued(a) + s.queued(b), 1U) << "one operation per filter";
        s.unsubscribe(i % 3 ? b : a, "f");
        tick();
    }
    const auto rest = drain(s, now, now + 120s);
    out.insert(out.end(), rest.begin(), rest.end());
    // A SUBSCRIBE may follow a SUBSCRIBE (one that replaced a withdrawn UNSUBSCRIBE), but an
    // UNSUBSCRIBE always follows a SUBSCRIBE: nothing overtook anything.
    char last = '-';
    std::size_t f_ops = 0;
    for (const auto& op : out) {
        if (op.substr(1) != "f") continue;
        ++f_ops;
        if (op[0] == '-') {
            EXPECT_EQ(last, '+') << "an UNSUBSCRIBE without a SUBSCRIBE before it";
        }
        last = op[0];
    }
    EXPECT_EQ(last, '-') << "the filter ends unsubscribed upstream";
    EXPECT_GT(f_ops, 0U);
    EXPECT_LT(f_ops, 400U) << "withdrawn operations never went out";
}

TEST(SubscriptionShaperTest, SetRateKeepsWhatWaits) {
    subscription_shaper s(1, t0);
    for (int i = 0; i < 10; ++i) s.subscribe(a, "f/" + std::to_string(i));
    ASSERT_TRUE(s.pop(t0));
    s.set_rate(std::nullopt, t0 + 1ms);
    EXPECT_EQ(drain(s, t0 + 1ms, t0 + 1ms).size(), 9U);
}

}  // namespace
