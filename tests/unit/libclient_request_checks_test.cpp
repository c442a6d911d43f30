// libthingmux's local checks (IPC-38) on their own: what fails before anything is queued, and
// the request a valid call builds.
#include "request_checks.hpp"

#include "ipc/codec.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using thingmux::error_code;
using thingmux::message;
using thingmux::result;
using namespace thingmux::detail;
namespace ipc = thingmux::ipc;

request_context welcomed(const ipc::limits& l) {
    request_context ctx;
    ctx.limits = &l;
    ctx.max_frame = l.max_frame;
    return ctx;
}

error_code refusal(const std::variant<request, result>& v) {
    const auto* r = std::get_if<result>(&v);
    return r != nullptr ? r->code : error_code::ok;
}

TEST(LibClientRequestChecks, IPC38_PublishChecksInTheOrderTheAppSeesThem) {
    const ipc::limits l{.max_frame = 4096, .max_payload = 10, .max_topic_length = 8};
    const auto ctx = welcomed(l);
    const auto check = [&](message m) { return refusal(publish_request(m, ctx)); };
    EXPECT_EQ(check({.topic = "a/#", .payload = "", .qos = 3}), error_code::qos_not_supported);
    EXPECT_EQ(check({.topic = "a/#", .payload = ""}), error_code::invalid_topic);
    EXPECT_EQ(check({.topic = "123456789", .payload = ""}), error_code::invalid_topic);
    EXPECT_EQ(check({.topic = "a", .payload = "12345678901"}), error_code::payload_too_large);
    EXPECT_EQ(check({.topic = "a", .payload = "", .payload_format_indicator = 2}), error_code::invalid_argument);
    EXPECT_EQ(check({.topic = "a", .payload = "ok", .qos = 1}), error_code::ok);
}

TEST(LibClientRequestChecks, IPC38_WhileTheDaemonIsAwayAValidRequestFailsWithTheOfflineResult) {
    request_context ctx;
    ctx.max_frame = ipc::default_max_frame;
    ctx.offline = result{error_code::not_connected, 0, "away"};
    message bad{.topic = "", .payload = ""};
    EXPECT_EQ(refusal(publish_request(bad, ctx)), error_code::invalid_topic);  // the app's mistake first
    message good{.topic = "a", .payload = "x"};
    const auto v = publish_request(good, ctx);
    ASSERT_TRUE(std::holds_alternative<result>(v));
    EXPECT_EQ(std::get<result>(v).message, "away");
    EXPECT_EQ(refusal(subscribe_request("a/#", 1, ctx)), error_code::not_connected);
}

TEST(LibClientRequestChecks, IPC5_APublishLargerThanTheFrameLimitIsRefused) {
    const ipc::limits l{.max_frame = 64, .max_payload = 1000, .max_topic_length = 100};
    message m{.topic = "a", .payload = std::string(100, 'x')};
    EXPECT_EQ(refusal(publish_request(m, welcomed(l))), error_code::payload_too_large);
}

TEST(LibClientRequestChecks, AValidPublishBuildsItsFrameWithTheMessagesFields) {
    const ipc::limits l{};
    message m{.topic = "dt/gw/t", .payload = "21.5", .qos = 1, .retain = true, .content_type = "text/plain"};
    auto v = publish_request(m, welcomed(l));
    ASSERT_TRUE(std::holds_alternative<request>(v));
    const auto& r = std::get<request>(v);
    EXPECT_EQ(r.kind, request_kind::publish);
    const auto& p = std::get<ipc::publish>(r.frame);
    EXPECT_EQ(p.topic, "dt/gw/t");
    EXPECT_EQ(p.payload, "21.5");
    EXPECT_EQ(p.qos, 1);
    EXPECT_TRUE(p.retain);
    EXPECT_EQ(p.props.content_type, "text/plain");
    EXPECT_EQ(r.size, ipc::encoded_size(r.frame));
}

TEST(LibClientRequestChecks, IPC38_SubscribeChecks) {
    const ipc::limits l{.max_frame = 4096, .max_payload = 10, .max_topic_length = 8};
    const auto ctx = welcomed(l);
    EXPECT_EQ(refusal(subscribe_request("a/#", -1, ctx)), error_code::qos_not_supported);
    EXPECT_EQ(refusal(subscribe_request("a/#/b", 1, ctx)), error_code::invalid_filter);
    EXPECT_EQ(refusal(subscribe_request("123456789", 1, ctx)), error_code::invalid_filter);
    // An empty handler is allowed: the filter's messages go to the message listeners and consume().
    EXPECT_TRUE(std::holds_alternative<request>(subscribe_request("a/#", 1, ctx)));
    const auto v = subscribe_request("a/#", 1, ctx);
    ASSERT_TRUE(std::holds_alternative<request>(v));
    const auto& r = std::get<request>(v);
    EXPECT_EQ(r.kind, request_kind::subscribe);
    EXPECT_EQ(std::get<ipc::subscribe>(r.frame).subscriptions.at(0), (ipc::subscription{"a/#", 1}));
    EXPECT_TRUE(r.filters.empty());  // the caller adds the registry's reference
}

}  // namespace
