// Local topics of a Thing's pipeline (docs/config.md, things[].local_topics): messages between the
// Thing's local sessions that never reach the broker, under the same app rules. With a fake
// upstream: tests count what went upstream (nothing) and what each session received.
#include "pipeline_fakes.hpp"

#include <gmock/gmock.h>

namespace thingmux::thing::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

pipeline_rig local_rig() { return pipeline_rig(pipeline_rig::unlimited(), {}, nullptr, {"local/#"}); }

std::vector<std::string> topics_of(const recording_session& s) {
    std::vector<std::string> out;
    for (const auto& d : s.delivered) out.push_back(d.topic);
    return out;
}

// A filter within local_topics is held locally: no SUBSCRIBE, answered at once; a publish on a
// local topic reaches its holders and never the broker, and completes once they have it.
TEST(PipelineLocal, LocalTopicsStayBetweenLocalSessions) {
    auto rig = local_rig();
    rig.connect();
    auto sender = rig.session(1, "local");
    auto a = rig.session(2, "local");
    auto b = rig.session(3, "local");
    rig.subscribe(a, 1, {"local/#"});
    rig.subscribe(b, 1, {"local/lamp/+"});
    EXPECT_EQ(a->subscribe_code(1), ipc::errc::ok);
    EXPECT_EQ(a->subscribed[1][0].mqtt_reason_code, 1);  // granted QoS 1
    EXPECT_EQ(b->subscribe_code(1), ipc::errc::ok);
    EXPECT_THAT(rig.up.subscribed_filters(), IsEmpty());

    rig.publish(sender, 7, "local/lamp/on", 1);
    rig.publish(sender, 8, "local/fan", 0);
    EXPECT_THAT(rig.up.published_topics(), IsEmpty());
    EXPECT_EQ(sender->code_of(7), ipc::errc::ok);
    EXPECT_EQ(sender->published[7].mqtt_reason_code, mqtt::reason::success);
    EXPECT_EQ(sender->code_of(8), ipc::errc::ok);
    EXPECT_THAT(topics_of(*a), ElementsAre("local/lamp/on", "local/fan"));
    EXPECT_THAT(topics_of(*b), ElementsAre("local/lamp/on"));
    EXPECT_THAT(topics_of(*sender), IsEmpty());
    EXPECT_THAT(rig.pipe->filters_of(a->flow()), ElementsAre("local/#"));

    rig.pipe->unsubscribe(a, 2, {"local/#"});
    EXPECT_EQ(a->unsubscribed[2][0].mqtt_reason_code, mqtt::reason::success);
    rig.publish(sender, 9, "local/fan", 1);
    EXPECT_EQ(sender->published[9].mqtt_reason_code, mqtt::reason::no_matching_subscribers);
    EXPECT_EQ(a->delivered.size(), 2U);
    EXPECT_THAT(rig.up.unsubscribed, IsEmpty());
}

// Local topics do not depend on the link: offline, a QoS 0 local publish is delivered (a QoS 0
// publish to the broker is refused), and nothing goes to the spool or waits.
TEST(PipelineLocal, LocalTopicsWorkWhileTheThingIsOffline) {
    auto rig = local_rig();
    auto sender = rig.session(1, "local");
    auto a = rig.session(2, "local");
    rig.subscribe(a, 1, {"local/#"});
    rig.publish(sender, 1, "local/x", 0);
    rig.publish(sender, 2, "local/y", 1);
    EXPECT_EQ(sender->code_of(1), ipc::errc::ok);
    EXPECT_EQ(sender->code_of(2), ipc::errc::ok);
    EXPECT_THAT(topics_of(*a), ElementsAre("local/x", "local/y"));
    EXPECT_EQ(rig.pipe->status().waiting, 0U);
}

// The same app rules: publishing needs a publish grant, receiving a receive grant.
TEST(PipelineLocal, AppRulesApplyToLocalTopics) {
    auto rig = local_rig();
    rig.connect();
    auto outsider = rig.session(1, "dt");  // grants under dt/# only
    auto a = rig.session(2, "local");
    rig.subscribe(a, 1, {"local/#"});
    rig.publish(outsider, 1, "local/x");
    EXPECT_EQ(outsider->code_of(1), ipc::errc::not_authorized);
    rig.subscribe(outsider, 2, {"local/#"});
    EXPECT_EQ(outsider->subscribe_code(2), ipc::errc::not_authorized);
    EXPECT_THAT(topics_of(*a), IsEmpty());
}

// A wide filter ("#") is held upstream as usual and also gets the local messages it matches,
// once per session even when a local filter of the same session matches too.
TEST(PipelineLocal, AWideFilterGetsLocalMessagesOnce) {
    auto rig = local_rig();
    rig.connect();
    auto wide = std::make_shared<recording_session>(
        2, config::grants{.rules = {"t"}, .publish = {"#"}, .subscribe = {"#"}, .receive = {"#"}});
    rig.pipe->attach(wide);
    rig.subscribe(wide, 1, {"#", "local/#"});
    EXPECT_THAT(rig.up.subscribed_filters(), ElementsAre("#"));
    rig.up.answer_subscribe(0);
    rig.publish(wide, 5, "local/a", 1);
    EXPECT_THAT(rig.up.published_topics(), IsEmpty());
    EXPECT_THAT(topics_of(*wide), ElementsAre("local/a"));
    // The per-session subscription limit counts both kinds.
    EXPECT_EQ(rig.pipe->filters_of(wide->flow()).size(), 2U);
}

// A session that goes away drops its local filters with the rest.
TEST(PipelineLocal, DetachDropsLocalFilters) {
    auto rig = local_rig();
    auto sender = rig.session(1, "local");
    auto a = rig.session(2, "local");
    rig.subscribe(a, 1, {"local/#"});
    rig.pipe->detach(a->flow());
    rig.publish(sender, 1, "local/x", 1);
    EXPECT_EQ(sender->published[1].mqtt_reason_code, mqtt::reason::no_matching_subscribers);
    EXPECT_THAT(topics_of(*a), IsEmpty());
}

}  // namespace
}  // namespace thingmux::thing::testing
