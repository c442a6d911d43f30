// The local retained-message cache (daemon/thing/retained_cache.hpp), the record of which
// sessions await the broker's retained messages (retained_recipients.hpp) and the No Local echo
// table (echo_table.hpp): pure parts, driven directly.
#include "daemon/thing/echo_table.hpp"
#include "daemon/thing/retained_cache.hpp"
#include "daemon/thing/retained_recipients.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace thingmux::thing {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const retained_cache::time_point t0{std::chrono::hours(1000)};

mqtt::publish message(std::string topic, std::string payload, mqtt::qos q = mqtt::qos::at_least_once) {
    return mqtt::publish{.topic = std::move(topic), .payload = std::move(payload), .qos = q, .retain = true};
}

std::vector<std::string> payloads(const std::vector<mqtt::publish>& ms) {
    std::vector<std::string> out;
    for (const auto& m : ms) out.push_back(m.payload);
    return out;
}

// One message per topic, the last written; an empty payload deletes; served with retain set,
// oldest-written first, to the filters that match (the '$' rule included).
TEST(RetainedCache, KeepsTheLastMessagePerTopicAndDeletesOnEmptyPayload) {
    retained_cache c;
    auto live = message("a/b", "1");
    live.retain = false;  // a local retained publish as the cache is handed it keeps no flag of its own
    c.put(live, t0);
    c.put(message("a/c", "2"), t0);
    c.put(message("a/b", "3"), t0);  // rewritten: now the newest
    c.put(message("$SYS/x", "4"), t0);
    EXPECT_EQ(c.size(), 3U);
    EXPECT_EQ(c.bytes(), 3U + 1 + 3 + 1 + 6 + 1);
    const auto all = c.matching("#", t0);
    EXPECT_THAT(payloads(all), ElementsAre("2", "3"));  // '#' does not match "$SYS/x"
    for (const auto& m : all) EXPECT_TRUE(m.retain);
    EXPECT_THAT(payloads(c.matching("a/+", t0)), ElementsAre("2", "3"));
    EXPECT_THAT(payloads(c.matching("a/b", t0)), ElementsAre("3"));
    EXPECT_THAT(payloads(c.matching("$SYS/#", t0)), ElementsAre("4"));
    EXPECT_THAT(c.matching("b/#", t0), IsEmpty());

    c.put(message("a/b", ""), t0);
    EXPECT_THAT(c.matching("a/b", t0), IsEmpty());
    EXPECT_EQ(c.size(), 2U);
    EXPECT_TRUE(c.erase("a/c"));
    EXPECT_FALSE(c.erase("a/c"));
    EXPECT_EQ(c.dropped(), 0U);
}

// Nothing of the connection a message came over is kept (topic alias, subscription identifiers).
TEST(RetainedCache, KeepsMessagePropertiesOnly) {
    retained_cache c;
    auto m = message("a", "x");
    m.props.topic_alias = 3;
    m.props.subscription_identifiers = {7};
    m.props.content_type = "text/plain";
    m.props.user_properties = {{"k", "v"}};
    c.put(m, t0);
    const auto out = c.matching("a", t0);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_FALSE(out[0].props.topic_alias);
    EXPECT_THAT(out[0].props.subscription_identifiers, IsEmpty());
    EXPECT_EQ(out[0].props.content_type, "text/plain");
    EXPECT_EQ(out[0].props.user_properties.size(), 1U);
}

// Hostile: a flood of distinct retained topics stays within both bounds, the oldest-written
// going first, each eviction counted.
TEST(RetainedCache, AFloodOfTopicsStaysWithinTheBounds) {
    retained_cache c({.messages = 100, .bytes = 1'000'000});
    for (int i = 0; i < 10'000; ++i) c.put(message("flood/" + std::to_string(i), "payload"), t0);
    EXPECT_EQ(c.size(), 100U);
    EXPECT_EQ(c.dropped(), 9'900U);
    EXPECT_EQ(payloads(c.matching("flood/9900", t0)).size(), 1U);  // the newest stay
    EXPECT_THAT(c.matching("flood/9899", t0), IsEmpty());

    retained_cache by_bytes({.messages = 1'000'000, .bytes = 1'000});
    for (int i = 0; i < 1'000; ++i)
        by_bytes.put(message("t/" + std::to_string(i % 10) + "/" + std::to_string(i), std::string(90, 'x')), t0);
    EXPECT_LE(by_bytes.bytes(), 1'000U);
    EXPECT_EQ(by_bytes.size(), 10U);  // each entry is 95 to 97 bytes
    EXPECT_EQ(by_bytes.dropped(), 990U);

    // One message over the byte bound is not kept, and replaces what its topic held.
    by_bytes.put(message("t/0/999", "small"), t0);
    by_bytes.put(message("t/0/999", std::string(2'000, 'y')), t0);
    EXPECT_THAT(by_bytes.matching("t/0/999", t0), IsEmpty());
    EXPECT_EQ(by_bytes.dropped(), 991U);

    // Lower bounds evict at once; 0 messages keeps none.
    c.set_limits({.messages = 10, .bytes = 1'000'000});
    EXPECT_EQ(c.size(), 10U);
    EXPECT_EQ(c.dropped(), 9'990U);
    c.set_limits({.messages = 0, .bytes = 1'000'000});
    c.put(message("x", "y"), t0);
    EXPECT_EQ(c.size(), 0U);
    EXPECT_EQ(c.dropped(), 10'001U);
}

// What D-Bus shows of the cache (RetainedMessages, RetainedBytes, RetainedDropped): entries and
// their bytes as they are; as dropped, each message the bounds cost, evicted or never kept, and
// nothing that MQTT's own rules removed (a newer message on the topic, an empty payload, expiry,
// a different live message).
TEST(RetainedCache, CountsWhatItsBoundsCost) {
    retained_cache c({.messages = 3, .bytes = 30});
    c.put(message("a", "123456789"), t0);  // 10 bytes each
    c.put(message("b", "123456789"), t0);
    c.put(message("a", "987654321"), t0);  // replaces a: nothing dropped
    EXPECT_EQ(c.size(), 2U);
    EXPECT_EQ(c.bytes(), 20U);
    EXPECT_EQ(c.dropped(), 0U);

    c.put(message("c", "123456789"), t0);
    c.put(message("d", "123456789"), t0);  // the fourth: b, the oldest-written, goes
    EXPECT_EQ(c.size(), 3U);
    EXPECT_EQ(c.bytes(), 30U);
    EXPECT_EQ(c.dropped(), 1U);
    EXPECT_THAT(c.matching("b", t0), IsEmpty());

    c.put(message("e", "12345678901234"), t0);  // 15 bytes: a and c go for it
    EXPECT_EQ(c.size(), 2U);
    EXPECT_EQ(c.bytes(), 25U);
    EXPECT_EQ(c.dropped(), 3U);

    c.put(message("f", std::string(30, 'x')), t0);  // 31 bytes: never fits, kept nowhere
    EXPECT_EQ(c.size(), 2U);
    EXPECT_EQ(c.dropped(), 4U);

    // MQTT's own rules, not the bounds.
    c.put(message("d", ""), t0);
    auto expiring = message("g", "1");
    expiring.props.message_expiry_interval = 1;
    c.put(expiring, t0);
    EXPECT_THAT(c.matching("g", t0 + 2s), IsEmpty());
    auto live = message("e", "other");
    live.retain = false;
    EXPECT_TRUE(c.forget_if_different(live));
    EXPECT_EQ(c.size(), 0U);
    EXPECT_EQ(c.bytes(), 0U);
    EXPECT_EQ(c.dropped(), 4U);

    // Lower bounds from a reload evict, and count.
    c.put(message("h", "1"), t0);
    c.put(message("i", "1"), t0);
    c.set_limits({.messages = 1, .bytes = 30});
    EXPECT_EQ(c.size(), 1U);
    EXPECT_EQ(c.dropped(), 5U);
}

// MQTT 5 Message Expiry: served with what remains, gone once it ran out.
TEST(RetainedCache, MessagesExpire) {
    retained_cache c;
    auto m = message("a", "x");
    m.props.message_expiry_interval = 10;
    c.put(m, t0);
    c.put(message("b", "y"), t0);
    const auto later = c.matching("a", t0 + 4s);
    ASSERT_EQ(later.size(), 1U);
    EXPECT_EQ(later[0].props.message_expiry_interval, 6U);
    EXPECT_THAT(c.matching("#", t0 + 10s), ElementsAre(::testing::Field(&mqtt::publish::topic, "b")));
    EXPECT_EQ(c.size(), 1U);
    EXPECT_EQ(c.dropped(), 0U);
}

// A live message on a cached topic that differs from the cached one deletes the entry; the same
// content (an echo of the retained publish itself, another QoS) keeps it.
TEST(RetainedCache, ADifferentLiveMessageDeletesTheEntry) {
    retained_cache c;
    c.put(message("a", "v1"), t0);
    auto echo = message("a", "v1", mqtt::qos::at_most_once);
    echo.retain = false;
    EXPECT_FALSE(c.forget_if_different(echo));
    EXPECT_EQ(c.size(), 1U);
    auto other = echo;
    other.props.content_type = "x";
    EXPECT_TRUE(c.forget_if_different(other));
    EXPECT_EQ(c.size(), 0U);
    EXPECT_FALSE(c.forget_if_different(message("b", "v")));
}

// Sessions join an upstream filter whose SUBSCRIBE is unanswered; its retained messages are for
// them only, until a later overlapping SUBSCRIBE is granted, the filter goes, or the connection
// changes after the grant.
TEST(RetainedRecipients, OnlyJoinersAwaitAndGroupsClose) {
    retained_recipients r;
    const session_id a{1}, b{2}, c{3};
    r.join("dt/x", a);
    r.sent("dt/x");
    r.join("dt/x", b);  // joined while the SUBSCRIBE is on its way
    EXPECT_TRUE(r.awaits(a, "dt/x"));
    EXPECT_TRUE(r.awaits(b, "dt/x"));
    EXPECT_FALSE(r.awaits(c, "dt/x"));
    EXPECT_FALSE(r.awaits(a, "dt/y"));
    r.granted("dt/x");
    EXPECT_TRUE(r.awaits(a, "dt/x"));  // its retained messages follow the SUBACK

    // Another overlapping filter, sent after dt/x was granted: its grant closes dt/x's group.
    r.join("dt/+", c);
    r.sent("dt/+");
    EXPECT_TRUE(r.awaits(a, "dt/x"));
    r.granted("dt/+");
    EXPECT_FALSE(r.awaits(a, "dt/x"));
    EXPECT_FALSE(r.awaits(b, "dt/x"));
    EXPECT_TRUE(r.awaits(c, "dt/x"));

    // Sent in one SUBSCRIBE, granted in one SUBACK: neither closes the other.
    retained_recipients same;
    same.join("a/b", a);
    same.join("a/+", b);
    same.sent("a/b");
    same.sent("a/+");
    same.granted("a/b");
    same.granted("a/+");
    EXPECT_TRUE(same.awaits(a, "a/b"));
    EXPECT_TRUE(same.awaits(b, "a/b"));

    // A reconnect closes the granted groups, not those still waiting for their SUBACK.
    same.join("q", c);
    same.reset();
    EXPECT_FALSE(same.awaits(a, "a/b"));
    EXPECT_TRUE(same.awaits(c, "q"));
    same.drop("q");
    EXPECT_TRUE(same.empty());

    r.forget(c);
    EXPECT_TRUE(r.empty());
}

// An echo is taken once, by content; a refused publish expects none; the table is bounded.
TEST(EchoTable, TakesEachExpectedEchoOnce) {
    echo_table t(3);
    const session_id a{1}, b{2};
    t.expect(a, 11);
    t.expect(b, 22);
    t.expect(a, 11);
    EXPECT_EQ(t.take(11), a);
    EXPECT_EQ(t.take(22), b);
    EXPECT_EQ(t.take(22), std::nullopt);
    t.cancel(a, 11);
    EXPECT_EQ(t.take(11), std::nullopt);
    for (std::uint64_t i = 0; i < 10; ++i) t.expect(b, 100 + i);
    EXPECT_EQ(t.size(), 3U);
    EXPECT_EQ(t.overflowed(), 7U);
    EXPECT_EQ(t.take(100), std::nullopt);
    t.forget(b);
    EXPECT_TRUE(t.empty());
}

}  // namespace
}  // namespace thingmux::thing
