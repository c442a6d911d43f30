// Subscribes answered at registration (docs/ipc-protocol-libapi.md, IPC-61, IPC-62): the
// pipeline answers once the filters are registered, and again with the final outcomes, with the
// broker down and back, refused, already held and unsubscribed in between. With a fake upstream.
#include "pipeline_fakes.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace thingmux::thing::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

void subscribe_registered(pipeline_rig& rig, const std::shared_ptr<recording_session>& s, std::uint32_t request,
                          std::vector<std::string> filters) {
    std::vector<ipc::subscription> subs;
    for (auto& f : filters) subs.push_back({.filter = std::move(f), .max_qos = 1});
    rig.pipe->subscribe(s, request, std::move(subs), {}, true);
}

TEST(PipelineRegistration, IPC61_IPC62_WhileTheBrokerIsDownTheFirstAnswerComesAtOnceTheFinalAfterTheSuback) {
    pipeline_rig rig;  // the uplink is not connected
    auto app = rig.session(1, "cmd");
    subscribe_registered(rig, app, 5, {"cmd/gw/#"});
    ASSERT_TRUE(app->registered.contains(5));
    ASSERT_EQ(app->registered[5].size(), 1U);
    EXPECT_EQ(app->registered[5][0].code, ipc::errc::ok);
    EXPECT_EQ(app->registered[5][0].mqtt_reason_code, 1);
    EXPECT_EQ(app->registered[5][0].message, "registered; waiting for the broker's SUBACK");
    EXPECT_FALSE(app->subscribed.contains(5)) << "no final answer before the SUBACK";
    EXPECT_THAT(rig.up.subscribed_filters(), IsEmpty());

    rig.connect();
    ASSERT_THAT(rig.up.subscribed_filters(), ElementsAre("cmd/gw/#"));
    rig.up.answer_subscribe(0);
    ASSERT_TRUE(app->subscribed.contains(5));
    EXPECT_EQ(app->subscribe_code(5), ipc::errc::ok);
    EXPECT_EQ(app->subscribed[5][0].mqtt_reason_code, 1);
    rig.inbound("cmd/gw/x");
    ASSERT_EQ(app->delivered.size(), 1U);
    EXPECT_EQ(app->delivered[0].answered, 1U) << "delivered after the final answer";
}

TEST(PipelineRegistration, IPC62_ASubackFailureIsTheFinalAnswerAndTheFilterIsNotHeld) {
    pipeline_rig rig;
    rig.connect();
    auto app = rig.session(1, "cmd");
    subscribe_registered(rig, app, 5, {"cmd/gw/#"});
    EXPECT_EQ(app->registered[5][0].code, ipc::errc::ok);
    rig.up.answer_subscribe(0, {0x87});
    EXPECT_EQ(app->subscribe_code(5), ipc::errc::broker_refused);
    EXPECT_EQ(app->subscribed[5][0].mqtt_reason_code, 0x87);
    rig.inbound("cmd/gw/x");
    EXPECT_THAT(app->delivered, IsEmpty());
}

TEST(PipelineRegistration, IPC61_RefusalsAndFiltersAlreadyActiveAreAnsweredAsTheyAreAndBothAnswersCome) {
    pipeline_rig rig;
    rig.connect();
    auto first = rig.session(1, "cmd");
    rig.subscribe(first, 1, {"cmd/#"});
    rig.up.answer_subscribe(0);
    auto app = rig.session(2, "cmd");
    // Served by an active upstream filter; not granted to this app.
    subscribe_registered(rig, app, 9, {"cmd/gw/+", "secret/x"});
    ASSERT_EQ(app->registered[9].size(), 2U);
    EXPECT_EQ(app->registered[9][0].code, ipc::errc::ok);
    EXPECT_EQ(app->registered[9][0].message, "") << "active already: not waiting for a SUBACK";
    EXPECT_EQ(app->registered[9][1].code, ipc::errc::not_authorized);
    // The final answer follows at once, the same.
    ASSERT_TRUE(app->subscribed.contains(9));
    EXPECT_EQ(app->subscribe_code(9, 0), ipc::errc::ok);
    EXPECT_EQ(app->subscribe_code(9, 1), ipc::errc::not_authorized);
}

TEST(PipelineRegistration, IPC62_UnsubscribedBeforeTheSubackTheFinalAnswerIsOk) {
    pipeline_rig rig;
    auto app = rig.session(1, "cmd");
    subscribe_registered(rig, app, 5, {"cmd/gw/#"});
    EXPECT_EQ(app->registered[5][0].code, ipc::errc::ok);
    rig.pipe->unsubscribe(app, 6, {"cmd/gw/#"});
    EXPECT_EQ(app->subscribe_code(5), ipc::errc::ok);
    rig.connect();
    EXPECT_THAT(rig.up.subscribed_filters(), IsEmpty()) << "a SUBSCRIBE still waiting never goes upstream";
}

TEST(PipelineRegistration, WithoutTheFlagThereIsOneAnswer) {
    pipeline_rig rig;
    auto app = rig.session(1, "cmd");
    rig.subscribe(app, 5, {"cmd/gw/#"});
    EXPECT_TRUE(app->registered.empty());
    EXPECT_FALSE(app->subscribed.contains(5));
    rig.connect();
    rig.up.answer_subscribe(0);
    EXPECT_EQ(app->subscribe_code(5), ipc::errc::ok);
    EXPECT_TRUE(app->registered.empty());
}

}  // namespace
}  // namespace thingmux::thing::testing
