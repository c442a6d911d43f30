// The pipeline's side of thingmuxd's services (daemon/thing/pipeline.hpp, "$thingmux/" topics):
// local to the Thing, subscribed by apps with rights, published only by the daemon
// (deliver_local), which learns how many sessions got each message. With the pipeline's fakes.
#include "pipeline_fakes.hpp"

#include <gmock/gmock.h>

namespace thingmux::thing::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Rights of an app registered for one job operation: subscribe and receive its topic only.
config::grants handler_of(const std::string& operation) {
    const auto topic = "$thingmux/jobs/" + operation;
    return {.rules = {"test"}, .publish = {topic, "dt/#"}, .subscribe = {topic}, .receive = {topic}};
}

std::shared_ptr<recording_session> attach(pipeline_rig& rig, std::uint64_t id, config::grants g) {
    auto s = std::make_shared<recording_session>(id, std::move(g));
    rig.pipe->attach(s);
    return s;
}

TEST(ServicesJobsPipeline, DaemonTopicsAreRecognised) {
    EXPECT_TRUE(is_daemon_topic("$thingmux/jobs/update"));
    EXPECT_TRUE(is_daemon_topic("$thingmux/#"));
    EXPECT_TRUE(is_daemon_topic("$thingmux"));
    EXPECT_FALSE(is_daemon_topic("$thingmuxx/jobs"));
    EXPECT_FALSE(is_daemon_topic("thingmux/jobs"));
    EXPECT_FALSE(is_daemon_topic("$aws/things/gw/jobs/notify-next"));
}

// A "$thingmux/jobs/OP" filter is held locally (no SUBSCRIBE, answered at once); the daemon's
// message reaches the sessions holding a matching filter, never the broker, and deliver_local()
// says how many got it.
TEST(ServicesJobsPipeline, DeliverLocalReachesTheHoldersOnlyAndCountsThem) {
    pipeline_rig rig;
    rig.connect();
    auto update = attach(rig, 1, handler_of("update"));
    auto reboot = attach(rig, 2, handler_of("reboot"));
    auto other = attach(rig, 3, {.rules = {"test"}, .publish = {}, .subscribe = {"#"}, .receive = {"#"}});
    rig.subscribe(update, 1, {"$thingmux/jobs/update"});
    rig.subscribe(reboot, 1, {"$thingmux/jobs/reboot"});
    rig.subscribe(other, 1, {"#"});  // '#' never matches a '$' topic
    EXPECT_EQ(update->subscribe_code(1), ipc::errc::ok);
    EXPECT_EQ(reboot->subscribe_code(1), ipc::errc::ok);
    EXPECT_THAT(rig.up.subscribed_filters(), ElementsAre("#"));

    EXPECT_EQ(rig.pipe->deliver_local("$thingmux/jobs/update", R"({"jobId":"j1"})"), 1U);
    EXPECT_EQ(rig.pipe->deliver_local("$thingmux/jobs/reboot", R"({"jobId":"j2"})"), 1U);
    EXPECT_EQ(rig.pipe->deliver_local("$thingmux/jobs/format", R"({"jobId":"j3"})"), 0U);
    ASSERT_EQ(update->delivered.size(), 1U);
    EXPECT_EQ(update->delivered[0].topic, "$thingmux/jobs/update");
    EXPECT_EQ(update->delivered[0].payload, R"({"jobId":"j1"})");
    EXPECT_EQ(update->delivered[0].qos, 1);
    ASSERT_EQ(reboot->delivered.size(), 1U);
    EXPECT_EQ(reboot->delivered[0].payload, R"({"jobId":"j2"})");
    EXPECT_THAT(other->delivered, IsEmpty());
    EXPECT_THAT(rig.up.published_topics(), IsEmpty());
    EXPECT_THAT(rig.pipe->filters_of(update->flow()), ElementsAre("$thingmux/jobs/update"));
}

// Two apps on one operation both get it; an app gone (detached) no longer counts.
TEST(ServicesJobsPipeline, EveryHolderCountsUntilItLeaves) {
    pipeline_rig rig;
    auto a = attach(rig, 1, handler_of("update"));
    auto b = attach(rig, 2, handler_of("update"));
    rig.subscribe(a, 1, {"$thingmux/jobs/update"});
    rig.subscribe(b, 1, {"$thingmux/jobs/update"});
    EXPECT_TRUE(rig.pipe->has_local_subscriber("$thingmux/jobs/update"));
    EXPECT_EQ(rig.pipe->deliver_local("$thingmux/jobs/update", "{}"), 2U);
    (void)rig.pipe->detach(a->flow());
    EXPECT_EQ(rig.pipe->deliver_local("$thingmux/jobs/update", "{}"), 1U);
    rig.pipe->unsubscribe(b, 2, {"$thingmux/jobs/update"});
    EXPECT_FALSE(rig.pipe->has_local_subscriber("$thingmux/jobs/update"));
    EXPECT_EQ(rig.pipe->deliver_local("$thingmux/jobs/update", "{}"), 0U);
    EXPECT_EQ(b->delivered.size(), 2U);
}

// The app rules apply: subscribing needs a subscribe grant; a session holding a matching filter
// without the receive grant neither gets the message nor counts as a handler.
TEST(ServicesJobsPipeline, RightsDecideWhoSubscribesAndReceives) {
    pipeline_rig rig;
    auto outsider = rig.session(1, "dt");
    rig.subscribe(outsider, 1, {"$thingmux/jobs/update"});
    EXPECT_EQ(outsider->subscribe_code(1), ipc::errc::not_authorized);
    auto deaf = attach(rig, 2, {.rules = {"test"}, .publish = {}, .subscribe = {"$thingmux/jobs/#"}, .receive = {}});
    rig.subscribe(deaf, 1, {"$thingmux/jobs/#"});
    EXPECT_EQ(deaf->subscribe_code(1), ipc::errc::ok);
    EXPECT_FALSE(rig.pipe->has_local_subscriber("$thingmux/jobs/update"));
    EXPECT_EQ(rig.pipe->deliver_local("$thingmux/jobs/update", "{}"), 0U);
    EXPECT_THAT(deaf->delivered, IsEmpty());
    EXPECT_THAT(rig.up.subscribed_filters(), IsEmpty());
}

// An app cannot pass for a daemon service: its publish on a "$thingmux/" topic is refused even
// when its rules grant it, and nobody receives it.
TEST(ServicesJobsPipeline, AppsMayNotPublishOnDaemonTopics) {
    pipeline_rig rig;
    rig.connect();
    auto handler = attach(rig, 1, handler_of("update"));
    rig.subscribe(handler, 1, {"$thingmux/jobs/update"});
    auto forger = attach(rig, 2, {.rules = {"test"}, .publish = {"#", "$thingmux/#"}, .subscribe = {}, .receive = {}});
    rig.publish(forger, 1, "$thingmux/jobs/update", 1, R"({"jobId":"forged"})");
    rig.publish(forger, 2, "$thingmux/jobs/update", 0);
    EXPECT_EQ(forger->code_of(1), ipc::errc::not_authorized);
    EXPECT_EQ(forger->published[1].mqtt_reason_code, mqtt::reason::not_authorized);
    EXPECT_NE(forger->published[1].message.find("only thingmuxd's services publish there"), std::string::npos)
        << forger->published[1].message;
    EXPECT_EQ(forger->code_of(2), ipc::errc::not_authorized);
    EXPECT_THAT(handler->delivered, IsEmpty());
    EXPECT_THAT(rig.up.published_topics(), IsEmpty());
    EXPECT_EQ(rig.counters.denied, 2U);
}

// The broker cannot speak for thingmuxd either: an inbound message on a "$thingmux/" topic
// reaches no holder of a daemon filter.
TEST(ServicesJobsPipeline, BrokerMessagesNeverReachDaemonFilters) {
    pipeline_rig rig;
    rig.connect();
    auto handler = attach(rig, 1, handler_of("update"));
    rig.subscribe(handler, 1, {"$thingmux/jobs/update"});
    rig.inbound("$thingmux/jobs/update");
    EXPECT_THAT(handler->delivered, IsEmpty());
    EXPECT_EQ(rig.counters.unrouted, 1U);
}

// While offline too: the daemon's messages do not depend on the link.
TEST(ServicesJobsPipeline, DeliverLocalWorksOffline) {
    pipeline_rig rig;
    auto handler = attach(rig, 1, handler_of("update"));
    rig.subscribe(handler, 1, {"$thingmux/jobs/update"});
    EXPECT_EQ(rig.pipe->deliver_local("$thingmux/jobs/update", "{}"), 1U);
    EXPECT_EQ(handler->delivered.size(), 1U);
}

TEST(ServicesJobsPipeline, LocalFiltersListsTheRegisteredOperations) {
    pipeline_rig rig(pipeline_rig::unlimited(), {}, nullptr, {"local/#"});
    auto a = attach(rig, 1, handler_of("update"));
    auto b = attach(rig, 2, handler_of("reboot"));
    auto c = rig.session(3, "local");
    rig.subscribe(a, 1, {"$thingmux/jobs/update"});
    rig.subscribe(b, 1, {"$thingmux/jobs/reboot"});
    auto a2 = attach(rig, 4, handler_of("update"));
    rig.subscribe(a2, 1, {"$thingmux/jobs/update"});
    rig.subscribe(c, 1, {"local/x"});
    EXPECT_THAT(rig.pipe->local_filters("$thingmux/jobs/"), ElementsAre("$thingmux/jobs/reboot", "$thingmux/jobs/update"));
    EXPECT_THAT(rig.pipe->local_filters("local/"), ElementsAre("local/x"));
}

}  // namespace
}  // namespace thingmux::thing::testing
