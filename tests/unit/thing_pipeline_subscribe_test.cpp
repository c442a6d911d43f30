// The subscribe and inbound paths of a Thing's pipeline, rule by rule as docs/config.md and
// docs/architecture.md state them (things[].limits: subscriptions, subscriptions_per_second,
// overlap_copies; Subscription shaping; ipc.client_subscriptions; apps: receive grants), with a
// fake upstream and a fake clock. Tests count SUBSCRIBEs, UNSUBSCRIBEs and deliveries.
#include "pipeline_fakes.hpp"

#include <gmock/gmock.h>

namespace thingmux::thing::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// architecture.md, Hub: "N apps on cmd/# = one upstream SUBSCRIBE; UNSUBSCRIBE goes up only
// when the last holder leaves (or disconnects)". An app's result comes after the SUBACK.
TEST(PipelineSubscribe, SubscriptionsAreReferenceCounted) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    auto b = rig.session(2);
    rig.subscribe(a, 1, {"dt/#"});
    EXPECT_TRUE(a->subscribed.empty());
    ASSERT_EQ(rig.up.subscribes.size(), 1U);
    rig.subscribe(b, 1, {"dt/#"});
    EXPECT_EQ(rig.up.subscribes.size(), 1U);
    rig.up.answer_subscribe(0);
    ASSERT_EQ(a->subscribed[1].size(), 1U);
    EXPECT_EQ(a->subscribe_code(1, 0), ipc::errc::ok);
    EXPECT_EQ(a->subscribed[1][0].mqtt_reason_code, 1);  // granted QoS
    ASSERT_EQ(b->subscribed[1].size(), 1U);
    EXPECT_EQ(b->subscribe_code(1, 0), ipc::errc::ok);

    // A filter the held one covers costs no SUBSCRIBE and is answered at once.
    rig.subscribe(b, 2, {"dt/x/+"});
    EXPECT_EQ(rig.up.subscribes.size(), 1U);
    EXPECT_EQ(b->subscribe_code(2, 0), ipc::errc::ok);

    rig.pipe->unsubscribe(a, 3, {"dt/#"});
    EXPECT_EQ(a->unsubscribed[3][0].mqtt_reason_code, mqtt::reason::success);
    EXPECT_THAT(rig.up.unsubscribed, IsEmpty());
    const auto gone = rig.pipe->detach(b->flow());
    EXPECT_EQ(gone.released, 1U);
    EXPECT_THAT(rig.up.unsubscribed, ElementsAre("dt/#"));
    EXPECT_THAT(rig.pipe->status().upstream_filters, IsEmpty());
}

// config.md, limits.subscriptions: "a filter that would need one more upstream filter beyond the
// quota is refused"; ipc.client_subscriptions: "Filters one client may hold".
TEST(PipelineSubscribe, QuotasRefuseLocally) {
    auto limits = pipeline_rig::unlimited();
    limits.subscriptions = 1;
    pipeline_rig rig(limits, session_rules{.max_subscriptions = 2, .max_pending_publishes = 10});
    rig.connect();
    auto a = rig.session(1);
    rig.subscribe(a, 1, {"dt/a", "dt/b"});
    ASSERT_EQ(rig.up.subscribes.size(), 1U);
    rig.up.answer_subscribe(0);
    ASSERT_EQ(a->subscribed[1].size(), 2U);
    EXPECT_EQ(a->subscribe_code(1, 0), ipc::errc::ok);
    EXPECT_EQ(a->subscribe_code(1, 1), ipc::errc::quota_exceeded);
    EXPECT_THAT(a->subscribed[1][1].message, HasSubstr("limits.subscriptions"));
    EXPECT_THAT(rig.up.subscribed_filters(), ElementsAre("dt/a"));

    pipeline_rig per_client(pipeline_rig::unlimited(), session_rules{.max_subscriptions = 1, .max_pending_publishes = 10});
    per_client.connect();
    auto c = per_client.session(1);
    per_client.subscribe(c, 1, {"dt/a", "dt/b"});
    per_client.up.answer_subscribe(0);
    EXPECT_THAT(c->subscribed[1][1].message, HasSubstr("ipc.client_subscriptions"));
    EXPECT_THAT(per_client.up.subscribed_filters(), ElementsAre("dt/a"));
}

// config.md, apps: a filter outside the app's subscribe grants, or not a valid filter, is refused
// and never goes upstream.
TEST(PipelineSubscribe, InvalidAndUnauthorizedFiltersNeverGoUpstream) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    rig.subscribe(a, 1, {"dt/#/x", "cmd/#", "dt/a"});
    rig.up.answer_subscribe(0);
    ASSERT_EQ(a->subscribed[1].size(), 3U);
    EXPECT_EQ(a->subscribe_code(1, 0), ipc::errc::invalid_filter);
    EXPECT_EQ(a->subscribe_code(1, 1), ipc::errc::not_authorized);
    EXPECT_EQ(a->subscribe_code(1, 2), ipc::errc::ok);
    EXPECT_THAT(rig.up.subscribed_filters(), ElementsAre("dt/a"));
    EXPECT_EQ(rig.counters.denied, 1U);
}

// A SUBACK failure code reaches the apps waiting for the filter as broker_refused.
TEST(PipelineSubscribe, BrokerRefusalReachesEveryWaitingApp) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    auto b = rig.session(2);
    rig.subscribe(a, 1, {"dt/secret"});
    rig.subscribe(b, 7, {"dt/secret"});
    rig.up.answer_subscribe(0, {0x87});
    EXPECT_EQ(a->subscribe_code(1, 0), ipc::errc::broker_refused);
    EXPECT_EQ(b->subscribe_code(7, 0), ipc::errc::broker_refused);
    EXPECT_EQ(b->subscribed[7][0].mqtt_reason_code, 0x87);
    EXPECT_THAT(rig.pipe->filters_of(a->flow()), IsEmpty());
}

// config.md, Subscription shaping: SUBSCRIBEs wait for the subscription rate and for the link;
// a SUBSCRIBE still waiting when its last app unsubscribes is dropped (nothing goes upstream);
// an app with a second's worth (at least 8) waiting gets rate_limited.
TEST(PipelineSubscribe, SubscriptionChangesAreShaped) {
    auto limits = pipeline_rig::unlimited();
    limits.subscriptions_per_second = 10;  // bucket of 1
    pipeline_rig rig(limits);
    auto a = rig.session(1);
    // One filter per request: what waits counts from the requests before.
    for (std::uint32_t i = 0; i < 12; ++i) rig.subscribe(a, i, {"dt/" + std::to_string(i)});
    EXPECT_TRUE(rig.up.subscribes.empty());  // the link is down
    EXPECT_EQ(a->subscribe_code(10, 0), ipc::errc::rate_limited);  // 10 wait: a second's worth
    EXPECT_EQ(a->subscribe_code(11, 0), ipc::errc::rate_limited);
    EXPECT_THAT(a->subscribed[11][0].message, HasSubstr("limits.subscriptions_per_second"));
    rig.connect();
    EXPECT_THAT(rig.up.subscribed_filters(), ElementsAre("dt/0"));
    rig.pipe->unsubscribe(a, 100, {"dt/9"});
    EXPECT_EQ(a->subscribe_code(9, 0), ipc::errc::ok);  // withdrawn before it went up: still answered
    rig.clk.advance(*rig.pipe, 2s);
    const auto sent = rig.up.subscribed_filters();
    EXPECT_EQ(sent.size(), 9U);
    EXPECT_EQ(std::count(sent.begin(), sent.end(), "dt/9"), 0);
    EXPECT_THAT(rig.up.unsubscribed, IsEmpty());
    for (std::size_t i = 0; i < rig.up.subscribes.size(); ++i) rig.up.answer_subscribe(i);
    for (std::uint32_t i = 0; i < 9; ++i) EXPECT_EQ(a->subscribe_code(i, 0), ipc::errc::ok) << i;
}

// architecture.md, Hub: routing through the subscription table, once per session, checked
// against the receive grants; a QoS 1 message is acknowledged upstream after every recipient has it.
TEST(PipelineInbound, MessagesGoToMatchingSessionsOnceAndAreAcknowledgedAfter) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    auto b = rig.session(2);
    rig.subscribe(a, 1, {"dt/#"});
    rig.subscribe(b, 1, {"dt/+/temp", "dt/room/temp"});
    rig.up.answer_subscribe(0);
    rig.inbound("dt/room/temp", mqtt::inbound_ticket{.connection = 1, .packet_id = 5});
    rig.inbound("other/x");
    ASSERT_EQ(a->delivered.size(), 1U);
    EXPECT_EQ(a->delivered[0].qos, 1);
    EXPECT_EQ(b->delivered.size(), 1U);  // two matching filters, one delivery
    EXPECT_THAT(rig.up.acknowledged, ElementsAre(mqtt::inbound_ticket{.connection = 1, .packet_id = 5}));
    EXPECT_EQ(rig.counters.deliveries, 2U);
    EXPECT_EQ(rig.counters.unrouted, 1U);
}

// config.md, Reloading: "every message delivered from then on is checked against its new
// receive grants".
TEST(PipelineInbound, ReceiveGrantsAreCheckedPerMessage) {
    pipeline_rig rig;
    rig.connect();
    auto narrow = std::make_shared<recording_session>(
        1, config::grants{.rules = {"r"}, .publish = {}, .subscribe = {"dt/#"}, .receive = {"dt/public/#"}});
    rig.pipe->attach(narrow);
    rig.subscribe(narrow, 1, {"dt/#"});
    rig.up.answer_subscribe(0);
    rig.inbound("dt/public/a");
    rig.inbound("dt/private/a");
    ASSERT_EQ(narrow->delivered.size(), 1U);
    EXPECT_EQ(narrow->delivered[0].topic, "dt/public/a");
    EXPECT_EQ(rig.counters.denied, 1U);
}

// config.md, limits.overlap_copies: per_subscription: of N identical messages on a topic N
// upstream filters match, apps get the first only; one: every message is delivered.
TEST(PipelineInbound, OverlapCopiesFollowTheSetting) {
    for (const auto mode : {config::overlap_copies::per_subscription, config::overlap_copies::one}) {
        auto limits = pipeline_rig::unlimited();
        limits.overlap = mode;
        pipeline_rig rig(limits);
        rig.connect();
        auto a = rig.session(1);
        rig.subscribe(a, 1, {"dt/+/c", "dt/b/#"});  // overlap, neither covers the other
        rig.up.answer_subscribe(0);
        ASSERT_EQ(rig.up.subscribed_filters().size(), 2U);
        rig.inbound("dt/b/c");
        rig.inbound("dt/b/c");
        EXPECT_EQ(a->delivered.size(), mode == config::overlap_copies::one ? 2U : 1U);
    }
}

// A session that cannot take a message (cut off) does not hold up the others or the PUBACK.
TEST(PipelineInbound, ASessionThatCannotTakeAMessageDoesNotHoldUpOthers) {
    pipeline_rig rig;
    rig.connect();
    auto slow = rig.session(1);
    auto fine = rig.session(2);
    rig.subscribe(slow, 1, {"dt/#"});
    rig.subscribe(fine, 1, {"dt/#"});
    rig.up.answer_subscribe(0);
    slow->accepting = false;
    rig.inbound("dt/a", mqtt::inbound_ticket{.connection = 1, .packet_id = 9});
    EXPECT_EQ(fine->delivered.size(), 1U);
    EXPECT_EQ(rig.up.acknowledged.size(), 1U);
    EXPECT_EQ(rig.counters.deliveries, 1U);
}

// A filter the broker refuses when re-subscribing after a lost session is dropped for its
// holders (logged), and the table stops holding it.
TEST(PipelineSubscribe, FilterLostOnReconnectIsDropped) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    rig.subscribe(a, 1, {"dt/a"});
    rig.up.answer_subscribe(0);
    rig.pipe->on_subscription_lost("dt/a", 0x87);
    EXPECT_THAT(rig.pipe->filters_of(a->flow()), IsEmpty());
    EXPECT_THAT(rig.pipe->status().upstream_filters, IsEmpty());
    rig.inbound("dt/a");
    EXPECT_TRUE(a->delivered.empty());
}


// config.md, Subscription shaping: "an UNSUBSCRIBE still waiting when an app subscribes again is
// replaced by that SUBSCRIBE, so the two never reach the broker in the wrong order", and "so does
// any app [get rate_limited] while filters waiting for their UNSUBSCRIBE fill subscriptions".
TEST(PipelineSubscribe, WaitingUnsubscribesAreReplacedAndCountAgainstTheQuota) {
    auto limits = pipeline_rig::unlimited();
    limits.subscriptions_per_second = 10;  // bucket of 1
    limits.subscriptions = 2;
    pipeline_rig rig(limits);
    rig.connect();
    auto a = rig.session(1);
    rig.subscribe(a, 1, {"dt/a"});
    rig.clk.advance(*rig.pipe, 100ms);
    rig.subscribe(a, 2, {"dt/b"});  // the bucket refilled: goes at once and spends it
    ASSERT_EQ(rig.up.subscribes.size(), 2U);
    rig.up.answer_subscribe(0);
    rig.up.answer_subscribe(1);
    // Both leave while the bucket is spent: both UNSUBSCRIBEs wait, and the broker still counts
    // both filters, so a new filter does not fit in limits.subscriptions (2).
    rig.pipe->unsubscribe(a, 3, {"dt/a"});
    rig.pipe->unsubscribe(a, 4, {"dt/b"});
    EXPECT_THAT(rig.up.unsubscribed, IsEmpty());
    rig.subscribe(a, 5, {"dt/c"});
    EXPECT_EQ(a->subscribe_code(5), ipc::errc::rate_limited);
    EXPECT_THAT(a->subscribed[5][0].message, HasSubstr("UNSUBSCRIBE"));
    // Subscribing to dt/b again replaces its waiting UNSUBSCRIBE: no UNSUBSCRIBE of dt/b ever
    // goes upstream, so it cannot overtake the SUBSCRIBE.
    rig.subscribe(a, 6, {"dt/b"});
    rig.clk.advance(*rig.pipe, 1s);
    EXPECT_THAT(rig.up.unsubscribed, ElementsAre("dt/a"));
    for (std::size_t i = 2; i < rig.up.subscribes.size(); ++i) rig.up.answer_subscribe(i);
    EXPECT_EQ(a->subscribe_code(6), ipc::errc::ok);
    EXPECT_THAT(rig.pipe->status().upstream_filters, ElementsAre("dt/b"));
}

// architecture.md, Overlapping subscriptions: a wider filter acknowledged upstream replaces the
// narrower wildcard filters it covers, which are then unsubscribed; their holders keep receiving.
TEST(PipelineSubscribe, AWiderFilterReplacesTheNarrowerOnesOnceAcknowledged) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    auto b = rig.session(2);
    rig.subscribe(a, 1, {"dt/room/+"});
    rig.up.answer_subscribe(0);
    rig.subscribe(b, 1, {"dt/#"});
    EXPECT_THAT(rig.up.unsubscribed, IsEmpty());  // not before the wider one is acknowledged
    ASSERT_EQ(rig.up.subscribes.size(), 2U);
    rig.up.answer_subscribe(1);
    EXPECT_THAT(rig.up.unsubscribed, ElementsAre("dt/room/+"));
    EXPECT_THAT(rig.pipe->status().upstream_filters, ElementsAre("dt/#"));
    rig.inbound("dt/room/temp");
    EXPECT_EQ(a->delivered.size(), 1U);
    EXPECT_EQ(b->delivered.size(), 1U);
}

// config.md, Reloading: "A lower subscriptions refuses new filters and drops none that are held."
TEST(PipelineSubscribe, ALowerQuotaOnReloadDropsNothingHeld) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    rig.subscribe(a, 1, {"dt/a", "dt/b", "dt/c"});
    rig.up.answer_subscribe(0);
    auto settings = rig.pipe->settings();
    settings.limits.subscriptions = 1;
    rig.pipe->reconfigure(settings, {});
    rig.subscribe(a, 2, {"dt/d"});
    EXPECT_EQ(a->subscribe_code(2, 0), ipc::errc::quota_exceeded);
    EXPECT_EQ(rig.pipe->status().upstream_filters.size(), 3U);
    EXPECT_THAT(rig.up.unsubscribed, IsEmpty());
    rig.inbound("dt/c");
    EXPECT_EQ(a->delivered.size(), 1U);
}

}  // namespace
}  // namespace thingmux::thing::testing
