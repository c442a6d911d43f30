// The publish path of a Thing's pipeline, rule by rule as docs/config.md states them
// (things[].limits, Rate shaping, Back-pressure, Reloading), with a fake upstream and a fake
// clock: every test counts what reached the upstream and what each session was told.
#include "pipeline_fakes.hpp"

#include <gmock/gmock.h>

#include <algorithm>

namespace thingmux::thing::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// config.md, things[].limits: "A publish is checked in this order, and the first failure
// answers it: QoS, topic syntax, max_topic_length, max_topic_levels, max_payload, retain, the
// MQTT 5 response topic's syntax, the app's publish grants, the response topic against its
// subscribe and receive grants, for QoS 0 the Thing's link, then ipc.client_inflight."
TEST(PipelinePublish, EveryGuardrailRefusesLocallyAndNothingReachesTheUpstream) {
    auto limits = pipeline_rig::unlimited();
    limits.max_topic_length = 20;
    limits.max_topic_levels = 3;
    limits.max_payload = 8;
    limits.retain = config::retain_policy::refuse;
    pipeline_rig rig(limits);
    rig.connect();
    auto app = rig.session(1);
    auto send = [&](std::uint32_t id, ipc::publish m) {
        m.request_id = id;
        rig.pipe->publish(app, id, std::move(m));
    };
    send(1, {.topic = "dt/a", .payload = "x", .qos = 2});
    send(2, {.topic = "dt/+", .payload = "x", .qos = 1});
    send(3, {.topic = "dt/aaaaaaaaaaaaaaaaaaaaa", .payload = "x", .qos = 1});
    send(4, {.topic = "dt/a/b/c", .payload = "x", .qos = 1});
    send(5, {.topic = "dt/a", .payload = "123456789", .qos = 1});
    send(6, {.topic = "dt/a", .payload = "x", .qos = 1, .retain = true});
    ipc::publish with_response{.topic = "dt/a", .payload = "x", .qos = 1};
    with_response.props.response_topic = "dt/#";
    send(7, with_response);
    send(8, {.topic = "cmd/a", .payload = "x", .qos = 1});
    with_response.props.response_topic = "cmd/reply";
    send(9, with_response);

    EXPECT_EQ(app->code_of(1), ipc::errc::qos_not_supported);
    EXPECT_EQ(app->code_of(2), ipc::errc::invalid_topic);
    EXPECT_THAT(app->published[3].message, HasSubstr("limits.max_topic_length"));
    EXPECT_THAT(app->published[4].message, HasSubstr("limits.max_topic_levels"));
    EXPECT_EQ(app->code_of(5), ipc::errc::payload_too_large);
    EXPECT_THAT(app->published[6].message, HasSubstr("limits.retain"));
    EXPECT_THAT(app->published[7].message, HasSubstr("response topic"));
    EXPECT_EQ(app->code_of(8), ipc::errc::not_authorized);
    EXPECT_EQ(app->code_of(9), ipc::errc::not_authorized);
    EXPECT_EQ(app->published.size(), 9U);
    EXPECT_TRUE(rig.up.publishes.empty());
    EXPECT_EQ(rig.counters.denied, 2U);
    EXPECT_EQ(rig.counters.refused, 7U);
    EXPECT_EQ(rig.counters.publishes, 9U);
}

// config.md, things[].limits, qos2: "downgrade: it is sent as QoS 1".
TEST(PipelinePublish, Qos2DowngradeSendsQos1) {
    auto limits = pipeline_rig::unlimited();
    limits.qos2 = config::qos2_policy::downgrade;
    pipeline_rig rig(limits);
    rig.connect();
    auto app = rig.session(1);
    rig.publish(app, 1, "dt/a", 2);
    ASSERT_EQ(rig.up.publishes.size(), 1U);
    EXPECT_EQ(rig.up.publishes[0].msg.qos, mqtt::qos::at_least_once);
    rig.up.answer_publish(0);
    EXPECT_EQ(app->code_of(1), ipc::errc::ok);
}

// config.md, Back-pressure: "Every publish gets exactly one result ... QoS 1: the PUBACK".
TEST(PipelinePublish, ResultIsTheBrokersAnswerAndComesOnce) {
    pipeline_rig rig;
    rig.connect();
    auto app = rig.session(1);
    rig.publish(app, 1, "dt/a");
    rig.publish(app, 2, "dt/b");
    EXPECT_TRUE(app->published.empty());  // nothing is answered before the broker
    rig.up.answer_publish(1, 0x87);        // not authorized, from the broker
    rig.up.answer_publish(0);
    EXPECT_EQ(app->code_of(1), ipc::errc::ok);
    EXPECT_EQ(app->code_of(2), ipc::errc::broker_refused);
    EXPECT_EQ(app->published[2].mqtt_reason_code, 0x87);
    EXPECT_THAT(app->published_order, ElementsAre(2U, 1U));
    EXPECT_EQ(rig.pipe->pending_publishes(app->flow()), 0U);
}

// An upstream that refuses a publish inside the call (the session's own checks) answers while
// the pipeline is still sending: the result must reach the app once and the queue keep going.
TEST(PipelinePublish, UpstreamThatAnswersInsideTheCallIsHandled) {
    pipeline_rig rig;
    rig.connect();
    auto app = rig.session(1);
    rig.up.refuse_inline = mqtt::local_error::packet_too_large;
    for (std::uint32_t i = 1; i <= 5; ++i) rig.publish(app, i, "dt/a");
    EXPECT_EQ(app->published.size(), 5U);
    for (std::uint32_t i = 1; i <= 5; ++i) EXPECT_EQ(app->code_of(i), ipc::errc::payload_too_large);
    EXPECT_EQ(rig.pipe->unfinished(), 0U);
}

// config.md, Rate shaping: "Two token buckets ... Each holds 100 ms worth of its rate (at least
// 1)", and the queue releases the rest at the rate, asking the clock for the next wake-up.
TEST(PipelinePublish, PublishesAreShapedToTheRate) {
    auto limits = pipeline_rig::unlimited();
    limits.publishes_per_second = 10;  // bucket of 1
    pipeline_rig rig(limits);
    rig.connect();
    auto app = rig.session(1);
    for (std::uint32_t i = 1; i <= 5; ++i) rig.publish(app, i, "dt/" + std::to_string(i));
    EXPECT_EQ(rig.up.publishes.size(), 1U);
    ASSERT_TRUE(rig.clk.wake.has_value());
    rig.clk.advance(*rig.pipe, 100ms);
    EXPECT_EQ(rig.up.publishes.size(), 2U);
    rig.clk.advance(*rig.pipe, 300ms);
    EXPECT_EQ(rig.up.publishes.size(), 5U);
    EXPECT_THAT(rig.up.published_topics(), ElementsAre("dt/1", "dt/2", "dt/3", "dt/4", "dt/5"));  // FIFO per app
}

// config.md, Rate shaping: "Deficit round robin between apps ... a turn sends at most one publish."
TEST(PipelinePublish, AppsTakeTurnsUnderTheRate) {
    auto limits = pipeline_rig::unlimited();
    limits.publishes_per_second = 10;
    pipeline_rig rig(limits);
    rig.connect();
    auto flood = rig.session(1);
    auto quiet = rig.session(2);
    for (std::uint32_t i = 1; i <= 20; ++i) rig.publish(flood, i, "dt/flood");
    rig.publish(quiet, 1, "dt/quiet");
    rig.clk.advance(*rig.pipe, 250ms);
    const auto topics = rig.up.published_topics();
    ASSERT_GE(topics.size(), 3U);
    // The first flood message went at once; then the turns: one flood message (its turn came
    // first) and the quiet one, not behind 19 others.
    EXPECT_EQ(topics[0], "dt/flood");
    EXPECT_EQ(topics[1], "dt/flood");
    EXPECT_EQ(topics[2], "dt/quiet");
}

// config.md, Back-pressure: one more than ipc.client_inflight is refused at once: rate_limited
// when connected with publishes still queued, quota_exceeded otherwise, "; Thing NAME is
// offline" while offline.
TEST(PipelinePublish, ClientInflightIsBackPressureNotLoss) {
    auto limits = pipeline_rig::unlimited();
    limits.publishes_per_second = 10;
    pipeline_rig rig(limits, session_rules{.max_subscriptions = 10, .max_pending_publishes = 3});
    rig.connect();
    auto app = rig.session(1);
    for (std::uint32_t i = 1; i <= 4; ++i) rig.publish(app, i, "dt/a");
    EXPECT_EQ(app->code_of(4), ipc::errc::rate_limited);
    EXPECT_THAT(app->published[4].message, HasSubstr("ipc.client_inflight"));
    rig.clk.advance(*rig.pipe, 1s);
    EXPECT_EQ(rig.up.publishes.size(), 3U);  // the three accepted, none of the refused
    rig.publish(app, 5, "dt/a");
    EXPECT_EQ(app->code_of(5), ipc::errc::quota_exceeded);  // all three wait for the broker
    rig.up.answer_all_publishes();
    rig.publish(app, 6, "dt/a");
    rig.clk.advance(*rig.pipe, 1s);
    EXPECT_EQ(rig.up.publishes.size(), 4U);

    pipeline_rig offline(pipeline_rig::unlimited(), session_rules{.max_subscriptions = 10, .max_pending_publishes = 1});
    auto other = offline.session(1);
    offline.publish(other, 1, "dt/a");  // no spool: waits for the link
    offline.publish(other, 2, "dt/a");
    EXPECT_EQ(other->code_of(2), ipc::errc::quota_exceeded);
    EXPECT_THAT(other->published[2].message, HasSubstr("Thing gateway-01 is offline"));
}

// config.md, Rate shaping: "Held while the Thing's link is down: nothing is released until it is
// connected again"; QoS 0 while offline is refused with not_connected (spool.offline_qos0: drop)
// or held (queue).
TEST(PipelinePublish, NothingLeavesWhileTheLinkIsDown) {
    pipeline_rig rig;
    auto app = rig.session(1);
    rig.publish(app, 1, "dt/a", 1);
    rig.publish(app, 2, "dt/b", 0);
    EXPECT_EQ(app->code_of(2), ipc::errc::not_connected);
    EXPECT_THAT(app->published[2].message, HasSubstr("spool.offline_qos0"));
    rig.pipe->on_link(link_of(ipc::link_state::backing_off));
    EXPECT_TRUE(rig.up.publishes.empty());
    rig.connect();
    EXPECT_THAT(rig.up.published_topics(), ElementsAre("dt/a"));
    ASSERT_FALSE(app->states.empty());
    EXPECT_EQ(app->states.back().link, ipc::link_state::connected);

    pipeline_rig queue(pipeline_rig::unlimited(), session_rules{.offline_qos0 = config::offline_qos0::queue});
    auto other = queue.session(1);
    queue.publish(other, 1, "dt/a", 0);
    EXPECT_TRUE(other->published.empty());
    queue.connect();
    queue.up.answer_all_publishes();
    EXPECT_EQ(other->code_of(1), ipc::errc::ok);
}

// config.md, Back-pressure: "Publishes still queued when the app disconnects are dropped without
// being sent."
TEST(PipelinePublish, DetachDropsWhatWaitsAndAnswersWhatIsInFlightToTheGoneSession) {
    auto limits = pipeline_rig::unlimited();
    limits.publishes_per_second = 10;
    pipeline_rig rig(limits);
    rig.connect();
    auto app = rig.session(1);
    for (std::uint32_t i = 1; i <= 4; ++i) rig.publish(app, i, "dt/a");
    ASSERT_EQ(rig.up.publishes.size(), 1U);
    const auto gone = rig.pipe->detach(app->flow());
    EXPECT_EQ(gone.dropped, 3U);
    rig.clk.advance(*rig.pipe, 1s);
    EXPECT_EQ(rig.up.publishes.size(), 1U);
    rig.up.answer_publish(0);
    EXPECT_EQ(app->published.size(), 1U);  // the session object decides what to do with it
    EXPECT_EQ(rig.pipe->unfinished(), 0U);
}

// config.md, Reloading: limits "apply to the next request, without reconnecting".
TEST(PipelinePublish, ReloadAppliesNewLimitsToTheNextRequest) {
    pipeline_rig rig;
    rig.connect();
    auto app = rig.session(1);
    rig.publish(app, 1, "dt/a", 1, "0123456789");
    auto limits = pipeline_rig::unlimited();
    limits.max_payload = 4;
    config::thing t = rig.pipe->settings();
    t.limits = limits;
    rig.pipe->reconfigure(t, {});
    rig.publish(app, 2, "dt/a", 1, "0123456789");
    EXPECT_EQ(app->code_of(2), ipc::errc::payload_too_large);
    EXPECT_EQ(rig.up.publishes.size(), 1U);
}

// config.md, Back-pressure: "On SIGTERM, queued publishes keep going out ... the rest are
// answered daemon_shutting_down".
TEST(PipelinePublish, StoppingRefusesNewPublishesAndAnswersWhatWaits) {
    auto limits = pipeline_rig::unlimited();
    limits.publishes_per_second = 10;
    pipeline_rig rig(limits);
    rig.connect();
    auto app = rig.session(1);
    for (std::uint32_t i = 1; i <= 3; ++i) rig.publish(app, i, "dt/a");
    rig.pipe->stop_accepting();
    rig.publish(app, 4, "dt/a");
    EXPECT_EQ(app->code_of(4), ipc::errc::daemon_shutting_down);
    EXPECT_EQ(rig.pipe->unfinished(), 3U);
    rig.pipe->abandon_waiting();
    EXPECT_EQ(app->code_of(2), ipc::errc::daemon_shutting_down);
    EXPECT_EQ(app->code_of(3), ipc::errc::daemon_shutting_down);
    EXPECT_EQ(rig.pipe->unfinished(), 1U);  // the one at the upstream gets the broker's answer
    rig.up.answer_publish(0);
    EXPECT_EQ(app->code_of(1), ipc::errc::ok);
}

// docs/dbus.md Publish(): D-Bus callers share one queue and one ipc.client_inflight budget.
TEST(PipelinePublish, CallersOfOneFlowShareItsBudget) {
    class call final : public local_session {
    public:
        explicit call(std::vector<ipc::result>& out) : out_(out) {}
        session_id flow() const override { return pipeline::one_shot_flow; }
        std::string describe() const override { return "D-Bus caller"; }
        std::string peer_description() const override { return "uid 0"; }
        const config::grants& rights() const override { return rights_; }
        denial_log& denials() override { return log_; }
        void publish_done(std::uint32_t, ipc::result r) override { out_.push_back(std::move(r)); }
        void subscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
        void unsubscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
        bool deliver(inbound_message&, std::uint8_t) override { return false; }
        void link_changed(const ipc::state&) override {}

    private:
        std::vector<ipc::result>& out_;
        config::grants rights_ = grants_under("dt");
        denial_log log_;
    };
    pipeline_rig rig(pipeline_rig::unlimited(), session_rules{.max_subscriptions = 1, .max_pending_publishes = 2});
    rig.connect();
    std::vector<ipc::result> results;
    for (int i = 0; i < 3; ++i)
        rig.pipe->publish(std::make_shared<call>(results), 0, ipc::publish{.topic = "dt/a", .payload = "x", .qos = 1});
    ASSERT_EQ(results.size(), 1U);
    EXPECT_EQ(results[0].code, ipc::errc::quota_exceeded);
    rig.up.answer_all_publishes();
    EXPECT_EQ(results.size(), 3U);
    EXPECT_EQ(rig.up.publishes.size(), 2U);
}


// config.md, Rate shaping: the byte bucket (bytes_per_second, each publish costing topic +
// payload bytes) shapes together with the message bucket.
TEST(PipelinePublish, BytesAreShapedToTheByteRate) {
    auto limits = pipeline_rig::unlimited();
    limits.bytes_per_second = 10'000;  // bucket: 1000 bytes
    pipeline_rig rig(limits);
    rig.connect();
    auto app = rig.session(1);
    const std::string payload(496, 'x');  // "dt/N" + 496 = 500 bytes
    for (std::uint32_t i = 1; i <= 6; ++i) rig.publish(app, i, "dt/" + std::to_string(i), 1, payload);
    EXPECT_EQ(rig.up.publishes.size(), 2U);  // 1000 bytes of burst
    rig.clk.advance(*rig.pipe, 100ms);       // 1000 bytes more
    EXPECT_EQ(rig.up.publishes.size(), 4U);
    rig.clk.advance(*rig.pipe, 100ms);
    EXPECT_EQ(rig.up.publishes.size(), 6U);
}

// config.md, Rate shaping: "an app whose next publish is larger than its credit passes its turn
// until it has earned enough, so large messages do not take the byte budget from apps with small
// ones."
TEST(PipelinePublish, LargeMessagesDoNotTakeTheByteBudgetFromSmallOnes) {
    auto limits = pipeline_rig::unlimited();
    limits.bytes_per_second = 100'000;
    pipeline_rig rig(limits);
    rig.connect();
    auto big = rig.session(1);
    auto small = rig.session(2);
    const std::string large(16 * 1024, 'x');
    for (std::uint32_t i = 1; i <= 10; ++i) rig.publish(big, i, "dt/big", 1, large);
    for (std::uint32_t i = 1; i <= 10; ++i) rig.publish(small, i, "dt/small", 1, "s");
    rig.clk.advance(*rig.pipe, 3s);
    const auto topics = rig.up.published_topics();
    ASSERT_EQ(topics.size(), 20U);
    // A big message costs four turns of credit (16 KiB against 4 KiB a turn): the small app's ten
    // messages are all out before the big app's sixth, instead of waiting behind its ten.
    const auto nth = [&](const std::string& topic, std::size_t n) {
        std::size_t seen = 0;
        for (std::size_t i = 0; i < topics.size(); ++i)
            if (topics[i] == topic && ++seen == n) return i;
        return topics.size();
    };
    EXPECT_LT(nth("dt/small", 10), nth("dt/big", 6));
    EXPECT_LE(nth("dt/small", 1), 2U);
}

// config.md, Rate shaping: "Publishes of either QoS accepted before the link went down and still
// queued wait here for the reconnect", and go before what was spooled meanwhile (the spool keeps
// each app's order behind them).
TEST(PipelinePublish, QueuedBeforeTheLinkWentDownGoFirstOnReconnect) {
    temporary_spool store;
    ASSERT_NE(store.get(), nullptr);
    auto limits = pipeline_rig::unlimited();
    limits.publishes_per_second = 10;
    pipeline_rig rig(limits, {}, store.get());
    rig.connect();
    auto app = rig.session(1);
    for (std::uint32_t i = 1; i <= 3; ++i) rig.publish(app, i, "dt/" + std::to_string(i));
    rig.pipe->on_link(link_of(ipc::link_state::backing_off));
    rig.publish(app, 4, "dt/4");
    EXPECT_EQ(app->code_of(4), ipc::errc::spooled);
    rig.clk.advance(*rig.pipe, 1s);
    EXPECT_EQ(rig.up.publishes.size(), 1U);  // held while down
    rig.connect();
    rig.clk.advance(*rig.pipe, 1s);
    EXPECT_THAT(rig.up.published_topics(), ElementsAre("dt/1", "dt/2", "dt/3", "dt/4"));
    rig.up.answer_all_publishes();
    EXPECT_EQ(store->count("gateway-01"), 0U);
}

}  // namespace
}  // namespace thingmux::thing::testing
