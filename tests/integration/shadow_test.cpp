// Device Shadow requests from many apps over the one shared session (docs/services.md), with the
// real thingmuxd, the AWS-like broker and the test's Device Shadow responder
// (tests/support/iot-services-responder) as AWS IoT: ten libthingmux apps use the same
// clientToken at once and each gets exactly its own answers, with its own token; the broker sees
// one subscription per shadow topic; a version conflict reaches the loser only; a request AWS
// does not answer gets thingmuxd's 504 after services.request_timeout.
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/iot_services_fixture.hpp"
#include "tests/support/message_inbox.hpp"

#include <thingmux/client.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

namespace thingmux::test {
namespace {

using namespace std::chrono_literals;

const std::string shadow = "$aws/things/gateway-01/shadow";

boost::json::object json_of(const std::string& text) {
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    if (ec || !v.is_object()) {
        ADD_FAILURE() << "not a JSON object: " << text;
        return {};
    }
    return v.as_object();
}

std::string string_at(const boost::json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string("<none>");
}

std::int64_t int_at(const boost::json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_int64() ? v->get_int64() : -1;
}

daemon_setup with_services(const std::string& lines) {
    daemon_setup s;
    s.thing = "services: {" + lines + "}\n";
    return s;
}

struct app {
    std::unique_ptr<client> c;
    message_inbox box;
};

// `n` apps connected with the Thing online, each subscribed to `filters` (its messages in its message_inbox).
std::vector<std::unique_ptr<app>> connect_apps(const daemon_fixture& daemon, std::size_t n, const std::vector<std::string>& filters) {
    std::vector<std::unique_ptr<app>> apps;
    for (std::size_t i = 0; i < n; ++i) {
        auto a = std::make_unique<app>();
        options o;
        o.socket_path = daemon.socket_path().string();
        o.app_name = "shadow-app-" + std::to_string(i);
        a->c = std::make_unique<client>(o);
        a->c->start();
        const auto connected = a->c->connect().get();
        EXPECT_TRUE(connected.ok()) << connected.message;
        for (const auto& f : filters) {
            const auto r = a->c->subscribe(f, 1, [box = &a->box](const message& m) { box->add(m); }).get();
            EXPECT_TRUE(r.ok()) << f << ": " << r.message;
        }
        apps.push_back(std::move(a));
    }
    EXPECT_TRUE(eventually([&] { return apps.front()->c->current_state().uplink == uplink_state::connected; }, 20'000));
    return apps;
}

// The issue's test: 10 apps, gets and updates at once, all with clientToken "same".
TEST(Shadow, TenAppsWithTheSameClientTokenGetExactlyTheirOwnAnswers) {
    broker_fixture broker;
    iot_services_responder responder(broker, {.things = {"gateway-01"}, .silent = {}, .delayed = {}});
    daemon_fixture daemon(broker, with_services("request_timeout: 10s"));
    const std::vector<std::string> filters{shadow + "/get/accepted", shadow + "/get/rejected", shadow + "/update/accepted",
                                           shadow + "/update/rejected"};
    auto apps = connect_apps(daemon, 10, filters);

    // The reported state names the app, so each update's answer says whose it is.
    std::vector<std::future<result>> sent;
    for (std::size_t i = 0; i < apps.size(); ++i) {
        sent.push_back(apps[i]->c->publish(
            {.topic = shadow + "/update", .payload = R"({"state":{"reported":{"app":)" + std::to_string(i) + R"(}},"clientToken":"same"})", .qos = 1}));
        sent.push_back(apps[i]->c->publish({.topic = shadow + "/get", .payload = R"({"clientToken":"same"})", .qos = 1}));
    }
    for (auto& f : sent) {
        const auto r = f.get();
        EXPECT_TRUE(r.ok()) << r.message;
    }
    ASSERT_TRUE(eventually([&] { return std::all_of(apps.begin(), apps.end(), [](const auto& a) { return a->box.size() >= 2; }); },
                           20'000))
        << read_file(daemon.log_file());
    // The responder saw 20 requests with 20 distinct tokens, none of them the apps'.
    const auto seen = responder.wait_for([](const auto& r) { return r.kind == "shadow-update" || r.kind == "shadow-get"; }, 20);
    std::set<std::string> tokens;
    for (const auto& r : seen) tokens.insert(r.client_token);
    EXPECT_EQ(tokens.size(), 20U);
    EXPECT_FALSE(tokens.contains("same"));

    for (std::size_t i = 0; i < apps.size(); ++i) {
        const auto got = apps[i]->box.all();
        ASSERT_EQ(got.size(), 2U) << "app " << i;
        std::size_t updates = 0;
        std::size_t gets = 0;
        for (const auto& m : got) {
            const auto o = json_of(m.payload);
            EXPECT_EQ(string_at(o, "clientToken"), "same") << m.payload;
            if (m.topic == shadow + "/update/accepted") {
                ++updates;
                EXPECT_NE(m.payload.find(R"("app":)" + std::to_string(i) + "}"), std::string::npos) << "app " << i << ": " << m.payload;
            } else {
                EXPECT_EQ(m.topic, shadow + "/get/accepted");
                ++gets;
            }
        }
        EXPECT_EQ(updates, 1U) << "app " << i;
        EXPECT_EQ(gets, 1U) << "app " << i;
    }

    // One upstream subscription per shadow topic, whatever the number of apps.
    const auto upstream = broker_filters(broker, "gateway-01");
    for (const auto& f : filters) EXPECT_EQ(std::count(upstream.begin(), upstream.end(), f), 1) << f;

    // Version conflicts: every app updates the version it read; AWS takes one, the nine others
    // get 409, each app its own answer.
    const auto version = int_at(json_of(responder.shadow_document("gateway-01", "")), "version");
    ASSERT_GT(version, 0);
    sent.clear();
    for (std::size_t i = 0; i < apps.size(); ++i)
        sent.push_back(apps[i]->c->publish({.topic = shadow + "/update",
                                            .payload = R"({"state":{"desired":{"winner":)" + std::to_string(i) + R"(}},"version":)" +
                                                       std::to_string(version) + R"(,"clientToken":"same"})",
                                            .qos = 1}));
    for (auto& f : sent) EXPECT_TRUE(f.get().ok());
    ASSERT_TRUE(eventually([&] { return std::all_of(apps.begin(), apps.end(), [](const auto& a) { return a->box.size() >= 3; }); },
                           20'000));
    std::size_t accepted = 0;
    std::size_t conflicts = 0;
    for (std::size_t i = 0; i < apps.size(); ++i) {
        const auto got = apps[i]->box.all();
        ASSERT_EQ(got.size(), 3U) << "app " << i;
        const auto& answer = got.back();
        const auto o = json_of(answer.payload);
        EXPECT_EQ(string_at(o, "clientToken"), "same");
        if (answer.topic == shadow + "/update/accepted") {
            ++accepted;
            EXPECT_NE(answer.payload.find(R"("winner":)" + std::to_string(i) + "}"), std::string::npos) << answer.payload;
        } else {
            EXPECT_EQ(answer.topic, shadow + "/update/rejected");
            EXPECT_EQ(int_at(o, "code"), 409) << answer.payload;
            ++conflicts;
        }
    }
    EXPECT_EQ(accepted, 1U);
    EXPECT_EQ(conflicts, 9U);
}

// AWS does not answer: the requester gets thingmuxd's 504 on …/get/rejected after
// services.request_timeout, with its own token; another app subscribed to it gets nothing.
TEST(Shadow, ASilentResponderGivesThe504AfterTheRequestTimeout) {
    broker_fixture broker;
    iot_services_responder responder(broker, {.things = {"gateway-01"}, .silent = {}, .delayed = {}});
    daemon_fixture daemon(broker, with_services("request_timeout: 2s"));
    auto apps = connect_apps(daemon, 2, {shadow + "/get/accepted", shadow + "/get/rejected"});
    responder.silence("shadow-get", 1);
    const auto start = std::chrono::steady_clock::now();
    const auto r = apps[0]->c->publish({.topic = shadow + "/get", .payload = R"({"clientToken":"t-504"})", .qos = 1}).get();
    ASSERT_TRUE(r.ok()) << r.message;
    ASSERT_TRUE(eventually([&] { return apps[0]->box.size() == 1; }, 10'000)) << read_file(daemon.log_file());
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, 1900ms);
    const auto m = apps[0]->box.all().front();
    EXPECT_EQ(m.topic, shadow + "/get/rejected");
    const auto o = json_of(m.payload);
    EXPECT_EQ(int_at(o, "code"), 504);
    EXPECT_EQ(string_at(o, "clientToken"), "t-504");
    EXPECT_EQ(string_at(o, "message"), "thingmuxd: AWS IoT did not answer within 2 s");

    // The next get is answered by AWS again, and only to its requester: the other app's message_inbox,
    // after that answer, still holds nothing.
    const auto again = apps[1]->c->publish({.topic = shadow + "/get", .payload = "{}", .qos = 1}).get();
    ASSERT_TRUE(again.ok()) << again.message;
    ASSERT_TRUE(eventually([&] { return apps[1]->box.size() == 1; }, 10'000));
    EXPECT_EQ(apps[1]->box.all().front().topic, shadow + "/get/rejected");  // no shadow yet: 404
    EXPECT_EQ(int_at(json_of(apps[1]->box.all().front().payload), "code"), 404);
    EXPECT_EQ(apps[0]->box.size(), 1U);
}

// services.shadow_cache: with the broker gone, a get is answered at once from the last document
// seen, marked cached, with AWS's version and the app's token; a request that is not a cached get
// is refused with not_connected.
TEST(Shadow, OfflineGetIsAnsweredFromTheShadowCache) {
    broker_fixture broker;
    iot_services_responder responder(broker, {.things = {"gateway-01"}, .silent = {}, .delayed = {}});
    daemon_fixture daemon(broker, with_services("shadow_cache: true"));
    auto apps = connect_apps(daemon, 1, {shadow + "/get/accepted", shadow + "/update/accepted"});
    auto& a = *apps[0];
    ASSERT_TRUE(a.c->publish({.topic = shadow + "/update", .payload = R"({"state":{"reported":{"fw":"1.2"}}})", .qos = 1}).get().ok());
    ASSERT_TRUE(a.c->publish({.topic = shadow + "/get", .payload = "{}", .qos = 1}).get().ok());
    ASSERT_TRUE(eventually([&] { return a.box.size() == 2; }, 10'000));
    const auto online = json_of(a.box.all().back().payload);
    ASSERT_GT(int_at(online, "version"), 0);

    broker.stop();
    ASSERT_TRUE(eventually([&] { return a.c->current_state().uplink != uplink_state::connected; }, 20'000));
    const auto r = a.c->publish({.topic = shadow + "/get", .payload = R"({"clientToken":"offline"})", .qos = 1}).get();
    ASSERT_TRUE(r.ok()) << r.message;
    ASSERT_TRUE(eventually([&] { return a.box.size() == 3; }, 10'000));
    const auto m = a.box.all().back();
    EXPECT_EQ(m.topic, shadow + "/get/accepted");
    const auto cached = json_of(m.payload);
    EXPECT_TRUE(cached.if_contains("cached") != nullptr && cached.at("cached").is_bool() && cached.at("cached").as_bool()) << m.payload;
    EXPECT_EQ(int_at(cached, "version"), int_at(online, "version"));
    EXPECT_EQ(string_at(cached, "clientToken"), "offline");
    EXPECT_NE(m.payload.find(R"("fw":"1.2")"), std::string::npos) << m.payload;
    const auto update = a.c->publish({.topic = shadow + "/update", .payload = "{}", .qos = 1}).get();
    EXPECT_EQ(update.code, error_code::not_connected) << update.message;
}

// A request whose payload is not a JSON object is refused with invalid_payload, and AWS never
// sees it.
TEST(Shadow, AnInvalidPayloadIsRefusedLocally) {
    broker_fixture broker;
    iot_services_responder responder(broker, {.things = {"gateway-01"}, .silent = {}, .delayed = {}});
    daemon_fixture daemon(broker);
    auto apps = connect_apps(daemon, 1, {shadow + "/update/accepted"});
    const auto r = apps[0]->c->publish({.topic = shadow + "/update", .payload = "[1,2]", .qos = 1}).get();
    EXPECT_EQ(r.code, error_code::invalid_payload) << r.message;
    const auto ok = apps[0]->c->publish({.topic = shadow + "/update", .payload = R"({"state":{"reported":{"x":1}}})", .qos = 1}).get();
    EXPECT_TRUE(ok.ok()) << ok.message;
    ASSERT_TRUE(eventually([&] { return apps[0]->box.size() == 1; }, 10'000));
    EXPECT_EQ(responder.requests().size(), 1U);  // the valid one only
    EXPECT_EQ(json_of(apps[0]->box.all().front().payload).if_contains("clientToken"), nullptr);  // it gave none
}

}  // namespace
}  // namespace thingmux::test
