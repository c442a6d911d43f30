// What a local session keeps across its connections (hub/session_state.hpp), front-end neutral:
// unacknowledged deliveries go again first and in order, the byte limit drops what does not fit,
// QoS 0 is never kept, acknowledgements of unknown tags are reported, subscriptions are tracked
// only for a session that outlives its connection.
#include "daemon/hub/session_state.hpp"
#include "daemon/hub/session_storage.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

namespace thingmux::hub {
namespace {

class owner final : public thing::local_session {
public:
    [[nodiscard]] thing::session_id flow() const override { return thing::session_id{1}; }
    [[nodiscard]] std::string describe() const override { return "test session"; }
    [[nodiscard]] std::string peer_description() const override { return "uid 0"; }
    [[nodiscard]] const config::grants& rights() const override { return rights_; }
    [[nodiscard]] thing::denial_log& denials() override { return denials_; }
    void publish_done(std::uint32_t, ipc::result) override {}
    void subscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
    void unsubscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
    bool deliver(thing::inbound_message&, std::uint8_t) override { return false; }
    void link_changed(const ipc::state&) override {}

private:
    config::grants rights_;
    thing::denial_log denials_;
};

session_state::held message(const std::string& topic, std::uint8_t qos = 1, std::string payload = "p") {
    mqtt::publish m;
    m.topic = topic;
    m.payload = std::move(payload);
    return {std::move(m), qos, {}, 0};
}

std::vector<std::string> topics(std::list<session_state::held> held) {
    std::vector<std::string> out;
    for (auto& h : held) out.push_back(h.msg.topic);
    return out;
}

// The IPC front end sends what waits one message at a time, as acks make room in its window
// (ipc_session.hpp): take_oldest() keeps the order and the byte counts, and the bytes awaiting
// an ack are counted for the window.
TEST(HubSessionState, TakeOldestKeepsOrderAndCountsBytesAwaitingAcks) {
    owner o;
    session_state s(o, 1024, "test.limit");
    EXPECT_EQ(s.oldest(), nullptr);
    ASSERT_TRUE(s.hold(message("first", 1, "12345")));   // 10 bytes
    ASSERT_TRUE(s.hold(message("second", 1, "123")));    // 9 bytes
    EXPECT_EQ(s.waiting_bytes(), 19U);
    ASSERT_NE(s.oldest(), nullptr);
    EXPECT_EQ(s.oldest()->msg.topic, "first");
    auto h = s.take_oldest();
    EXPECT_EQ(h.msg.topic, "first");
    EXPECT_EQ(s.waiting(), 1U);
    EXPECT_EQ(s.waiting_bytes(), 9U);
    s.sent(1, std::move(h));
    s.sent(2, s.take_oldest());
    EXPECT_EQ(s.unacknowledged(), 2U);
    EXPECT_EQ(s.unacknowledged_bytes(), 19U);
    EXPECT_EQ(s.oldest(), nullptr);
    EXPECT_TRUE(s.acknowledged(1));
    EXPECT_EQ(s.unacknowledged_bytes(), 9U);
    EXPECT_FALSE(s.acknowledged(1)) << "acknowledged twice";
    s.connection_ended();
    EXPECT_EQ(s.unacknowledged_bytes(), 0U);
    EXPECT_EQ(s.waiting_bytes(), 9U);
    EXPECT_EQ(topics(s.take_waiting()), (std::vector<std::string>{"second"}));
}

// What a stored session has left after a restart counts from the end of its last connection;
// an end time in the future (a clock set back, a damaged row) never gives more than its expiry.
TEST(HubSessionStorage, SecondsLeftNeverExceedTheExpiry) {
    spool::session_record r;
    r.expiry = 600;
    const std::int64_t now = 1'800'000'000;
    r.ended_at = now - 100;
    EXPECT_EQ(session_storage::seconds_left(r, now), 500);
    r.ended_at = now - 700;
    EXPECT_EQ(session_storage::seconds_left(r, now), -100);
    r.ended_at = std::nullopt;  // its connection was open when thingmuxd stopped
    EXPECT_EQ(session_storage::seconds_left(r, now), 600);
    r.ended_at = std::numeric_limits<std::int64_t>::max() - 1;
    EXPECT_EQ(session_storage::seconds_left(r, now), 600);
}

TEST(HubSessionState, UnacknowledgedGoAgainFirstInOrderOfTheirTags) {
    owner o;
    session_state s(o, 1024, "test.limit");
    s.sent(7, message("a"));
    s.sent(9, message("b"));
    s.sent(8, message("c"));
    EXPECT_TRUE(s.acknowledged(9));
    ASSERT_TRUE(s.hold(message("later")));
    s.connection_ended();
    EXPECT_EQ(s.unacknowledged(), 0U);
    EXPECT_EQ(topics(s.take_waiting()), (std::vector<std::string>{"a", "c", "later"}));
    EXPECT_EQ(s.waiting(), 0U);
    EXPECT_EQ(s.waiting_bytes(), 0U);
}

TEST(HubSessionState, AnUnknownOrRepeatedAcknowledgementIsReported) {
    owner o;
    session_state s(o, 1024, "test.limit");
    s.sent(1, message("a"));
    EXPECT_TRUE(s.awaiting(1));
    EXPECT_FALSE(s.acknowledged(2));
    EXPECT_TRUE(s.acknowledged(1));
    EXPECT_FALSE(s.acknowledged(1));
    EXPECT_FALSE(s.awaiting(1));
}

TEST(HubSessionState, QosZeroIsNeitherAwaitedNorKept) {
    owner o;
    session_state s(o, 1024, "test.limit");
    s.sent(1, message("a", 0));
    EXPECT_FALSE(s.awaiting(1));
    EXPECT_FALSE(s.hold(message("b", 0)));
    EXPECT_EQ(s.waiting(), 0U);
    EXPECT_EQ(s.dropped(), 1U);
}

TEST(HubSessionState, WhatExceedsTheByteLimitIsDroppedAndCounted) {
    owner o;
    session_state s(o, 10, "test.limit");  // topic + payload bytes
    EXPECT_TRUE(s.hold(message("t", 1, "1234")));   // 5
    EXPECT_TRUE(s.hold(message("t", 1, "1234")));   // 10
    EXPECT_FALSE(s.hold(message("t", 1, "1")));     // 12 > 10
    EXPECT_EQ(s.waiting(), 2U);
    EXPECT_EQ(s.waiting_bytes(), 10U);
    EXPECT_EQ(s.dropped(), 1U);
}

TEST(HubSessionState, SharedLeftoversAreTakenOutOfBothLists) {
    owner o;
    session_state s(o, 1024, "test.limit");
    auto shared = message("s1");
    shared.share = "$share/g/s/#";
    s.sent(1, shared);
    s.sent(2, message("plain"));
    shared.msg.topic = "s2";
    ASSERT_TRUE(s.hold(shared));
    const auto left = s.take_shared_leftovers();
    ASSERT_EQ(left.size(), 2U);
    EXPECT_EQ(left[0].msg.topic, "s1");
    EXPECT_EQ(left[1].msg.topic, "s2");
    EXPECT_EQ(left[0].msg.qos, mqtt::qos::at_least_once);
    EXPECT_TRUE(s.awaiting(2));
    EXPECT_EQ(s.waiting(), 0U);
    EXPECT_EQ(s.waiting_bytes(), 0U);
}

TEST(HubSessionState, SubscriptionsAreTrackedOnlyForASessionThatOutlivesItsConnection) {
    owner o;
    session_state s(o, 1024, "test.limit");
    s.subscribing(1, {{.filter = "a/#", .max_qos = 1, .options = 0}});
    s.subscribe_done(1, {ipc::result{}});
    EXPECT_TRUE(s.subscriptions().empty());

    s.expiry = std::chrono::seconds{60};
    s.subscribing(2, {{.filter = "a/#", .max_qos = 1, .options = 0}, {.filter = "b", .max_qos = 0, .options = 0}});
    s.subscribe_done(2, {ipc::result{}, ipc::result{.code = ipc::errc::not_authorized, .message = "no"}});
    ASSERT_EQ(s.subscriptions().size(), 1U);
    EXPECT_EQ(s.subscriptions()[0].filter, "a/#");
    s.subscribing(3, {{.filter = "a/#", .max_qos = 0, .options = 0}});
    s.subscribe_done(3, {ipc::result{}});
    ASSERT_EQ(s.subscriptions().size(), 1U);
    EXPECT_EQ(s.subscriptions()[0].max_qos, 0);
    s.unsubscribing(4, {"a/#"});
    EXPECT_EQ(s.subscriptions().size(), 1U);  // until answered
    s.unsubscribe_done(4);
    EXPECT_TRUE(s.subscriptions().empty());
}

}  // namespace
}  // namespace thingmux::hub
