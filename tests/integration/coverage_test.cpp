// Coverage filters end to end (docs/config.md things[].coverage, docs/services.md): the
// real thingmuxd against the real mosquitto (aws-like-broker), apps over the IPC socket, the
// upstream subscriptions counted twice, from the broker's log and from D-Bus
// (UpstreamSubscriptions on a private bus).
#include "common/topic.hpp"
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/dbus_fixture.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

using strings = std::vector<std::string>;

const std::string coverage = "coverage: ['cmd/${thing}/#', '$aws/things/${thing}/shadow/#']";
const std::string thing_path = "/org/thingmux/Thingmux1/thing/gateway_2d01";

// Filters of app `i`: some its own, some shared with other apps, several matching one topic, and
// wildcard-free ones (which would each go upstream themselves without coverage).
strings filters_of_app(int i) {
    const auto n = std::to_string(i);
    return {
        "cmd/gateway-01/app" + n + "/#",
        "cmd/gateway-01/app" + n + "/+",
        "cmd/gateway-01/app" + n + "/reboot",
        "cmd/gateway-01/+/reboot",
        "cmd/gateway-01/group" + std::to_string(i % 5) + "/#",
        "cmd/gateway-01/app" + n + "/x/+",
        "$aws/things/gateway-01/shadow/name/s" + n + "/update/delta",
        "$aws/things/gateway-01/shadow/name/s" + n + "/+/accepted",
        "$aws/things/gateway-01/shadow/name/+/update/delta",
        "$aws/things/gateway-01/shadow/update/documents",
    };
}

std::size_t count_payload(const std::vector<ipc::message>& ms, const std::string& payload) {
    return static_cast<std::size_t>(
        std::count_if(ms.begin(), ms.end(), [&](const ipc::message& m) { return m.payload == payload; }));
}

// The issue's test: 50 apps x 10 filters = 500 local subscriptions under two coverage filters,
// with the connection's quota at 2. The broker sees exactly 2 filters subscribed (and D-Bus shows
// exactly those 2 upstream); each app receives exactly the messages its filters match, once.
TEST(CoverageTest, FiveHundredLocalSubscriptionsUnderTwoCoverageFiltersTakeTwoUpstreamSubscriptions) {
    broker_fixture broker;
    dbus_fixture bus;
    daemon_setup setup;
    setup.thing = coverage;
    setup.limits = "subscriptions: 2";
    setup.bus = bus.address();
    daemon_fixture daemon(broker, setup);

    constexpr int apps = 50;
    std::vector<std::unique_ptr<ipc_client>> clients;
    for (int i = 0; i < apps; ++i) {
        clients.push_back(std::make_unique<ipc_client>(daemon.socket_path()));
        if (i == 0) {
            ASSERT_TRUE(hello_connected(*clients.back(), "app0"));
        } else {
            clients.back()->hello("app" + std::to_string(i));
        }
    }
    std::size_t subscriptions = 0;
    for (int i = 0; i < apps; ++i) {
        for (const auto& r : clients[static_cast<std::size_t>(i)]->subscribe(filters_of_app(i))) {
            ASSERT_EQ(r.code, ipc::errc::ok) << "app " << i << ": " << r.message;
            ++subscriptions;
        }
    }
    ASSERT_EQ(subscriptions, 500U);

    auto upstream = broker_filters(broker, "gateway-01");
    std::sort(upstream.begin(), upstream.end());
    EXPECT_EQ(upstream, (strings{"$aws/things/gateway-01/shadow/#", "cmd/gateway-01/#"}));
    EXPECT_TRUE(broker_filters(broker, "gateway-01", "UNSUBSCRIBE").empty());
    const auto listed = bus.thing_property("UpstreamSubscriptions", thing_path);
    ASSERT_EQ(listed.exit_code, 0) << listed.output;
    EXPECT_EQ(listed.output, "as 2 \"$aws/things/gateway-01/shadow/#\" \"cmd/gateway-01/#\"\n");

    // Numbered messages from the cloud: topics matching one app's filter, several of one app's
    // filters, filters of many apps, and none.
    const strings topics{
        "cmd/gateway-01/app0/reboot",   // app 0 x4 filters; every app's cmd/gateway-01/+/reboot
        "cmd/gateway-01/app7/reboot",
        "cmd/gateway-01/app49/reboot",
        "cmd/gateway-01/app3/status",   // app 3: two filters
        "cmd/gateway-01/app5/x/y",      // app 5: two filters
        "cmd/gateway-01/group2/cmd",    // the 10 apps with i % 5 == 2
        "cmd/gateway-01/nobody/here",   // under a coverage filter, no app's
        "$aws/things/gateway-01/shadow/name/s4/update/delta",  // app 4 x2; every app's name/+/update/delta
        "$aws/things/gateway-01/shadow/name/s9/get/accepted",  // app 9
        "$aws/things/gateway-01/shadow/update/documents",      // every app
    };
    std::map<std::string, std::string> topic_of;  // payload -> topic
    int number = 0;
    for (const auto& t : topics) {
        strings payloads;
        for (int k = 0; k < 2; ++k) {
            payloads.push_back("m" + std::to_string(++number));
            topic_of[payloads.back()] = t;
        }
        publish_from_cloud(broker, t, payloads);
    }
    // Last, to every app: once it has this, it has everything before it (one connection, in order).
    publish_from_cloud(broker, "$aws/things/gateway-01/shadow/update/documents", {"end"});

    std::size_t deliveries = 0;
    for (int i = 0; i < apps; ++i) {
        auto& c = *clients[static_cast<std::size_t>(i)];
        ASSERT_TRUE(eventually([&] {
            c.drain();
            return count_payload(c.messages, "end") > 0;
        }, 20'000)) << "app " << i << " got " << c.messages.size() << " messages";
        c.drain();
        const auto mine = filters_of_app(i);
        for (const auto& [payload, topic] : topic_of) {
            const bool matched = std::any_of(mine.begin(), mine.end(), [&](const std::string& f) { return topic::matches(f, topic); });
            EXPECT_EQ(count_payload(c.messages, payload), matched ? 1U : 0U) << "app " << i << ", " << payload << " on " << topic;
        }
        EXPECT_EQ(c.messages.size(), static_cast<std::size_t>(std::count_if(topic_of.begin(), topic_of.end(), [&](const auto& p) {
                                         return std::any_of(mine.begin(), mine.end(), [&](const std::string& f) { return topic::matches(f, p.second); });
                                     })) + 1)
            << "app " << i;
        deliveries += c.messages.size();
    }
    std::cout << "[ measured ] 500 local subscriptions, 2 upstream; " << deliveries << " deliveries of " << number + 1
              << " messages to " << apps << " apps\n";
    EXPECT_EQ(broker_filters(broker, "gateway-01").size(), 2U) << "nothing more went upstream";
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
}

// The broker refuses a coverage filter (as AWS IoT Core does for a filter the IoT policy does not
// allow; mosquitto grants every SUBSCRIBE, so a relay in front of it refuses ops/...): every
// subscribe waiting on it gets broker_refused with the broker's code, and so does a later one
// under it; a filter under the other coverage filter, in the same request, is granted.
TEST(CoverageTest, ARefusedCoverageFilterRefusesEverySubscriptionUnderIt) {
    broker_fixture broker;
    const auto port_file = broker.dir() / "refuser.port";
    const auto pki = broker.dir() / "pki";
    child_process refuser({"/usr/bin/python3", SUBACK_REFUSER, port_file.string(), std::to_string(broker.port()),
                           broker.ca_file().string(), (pki / "server.crt").string(), (pki / "server.key").string(),
                           broker.thing("gateway-01").cert.string(), broker.thing("gateway-01").key.string(), "ops/",
                           "0x87"},
                          broker.dir() / "refuser.out", broker.dir() / "refuser.err");
    ASSERT_TRUE(eventually([&] { return std::filesystem::exists(port_file); })) << read_file(broker.dir() / "refuser.err");
    daemon_setup setup;
    setup.thing = "coverage: ['cmd/${thing}/#', 'ops/${thing}/#']";
    setup.port = static_cast<std::uint16_t>(std::stoi(read_file(port_file)));
    daemon_fixture daemon(broker, setup);
    ipc_client a(daemon.socket_path()), b(daemon.socket_path());
    ASSERT_TRUE(hello_connected(a, "a")) << read_file(broker.dir() / "refuser.err");
    b.hello("b");
    a.send(ipc::subscribe{.request_id = 1,
                          .subscriptions = {{.filter = "ops/gateway-01/a", .max_qos = 1},
                                            {.filter = "cmd/gateway-01/a", .max_qos = 1}}});
    b.send(ipc::subscribe{.request_id = 1, .subscriptions = {{.filter = "ops/gateway-01/+/b", .max_qos = 1}}});
    const auto ra = a.result_of(1);
    const auto rb = b.result_of(1);
    ASSERT_TRUE(ra && std::holds_alternative<ipc::subscribe_result>(*ra));
    ASSERT_TRUE(rb && std::holds_alternative<ipc::subscribe_result>(*rb));
    const auto& resa = std::get<ipc::subscribe_result>(*ra).results;
    const auto& resb = std::get<ipc::subscribe_result>(*rb).results;
    ASSERT_EQ(resa.size(), 2U);
    ASSERT_EQ(resb.size(), 1U);
    EXPECT_EQ(resa[0].code, ipc::errc::broker_refused) << resa[0].message;
    EXPECT_EQ(resa[0].mqtt_reason_code, 0x87) << "MQTT 5 Not authorized";
    EXPECT_EQ(resa[1].code, ipc::errc::ok) << resa[1].message;
    EXPECT_EQ(resb[0].code, ipc::errc::broker_refused) << resb[0].message;
    EXPECT_EQ(resb[0].mqtt_reason_code, 0x87);

    const auto later = b.subscribe({"ops/gateway-01/later"});
    EXPECT_EQ(later.at(0).code, ipc::errc::broker_refused) << later.at(0).message;
    EXPECT_EQ(later.at(0).mqtt_reason_code, 0x87);
    // Asked for once for a's and b's requests (twice if b's came after the refusal), once more
    // for the later subscribe: never while filters waiting on its refusal were held.
    const auto asked = broker_filters(broker, "gateway-01");
    EXPECT_EQ(std::count(asked.begin(), asked.end(), "cmd/gateway-01/#"), 1);
    const auto refused = std::count(asked.begin(), asked.end(), "ops/gateway-01/#");
    EXPECT_TRUE(refused == 2 || refused == 3) << refused;
    EXPECT_TRUE(eventually([&] { return log_has(daemon, "broker refused subscription to 'ops/gateway-01/#'"); }));

    // The granted one works.
    publish_from_cloud(broker, "cmd/gateway-01/a", {"1"});
    ASSERT_TRUE(a.wait_messages(1));
    EXPECT_EQ(a.messages.at(0).topic, "cmd/gateway-01/a");
}

// A reload adds the coverage filter: it is subscribed, and the filters it replaces are
// unsubscribed after it (once the broker acknowledged it); messages keep arriving once. A reload
// that removes it brings them back first.
TEST(CoverageTest, ReloadMovesBetweenOwnFiltersAndACoverageFilterWithoutAGap) {
    broker_fixture broker;
    daemon_setup setup;
    daemon_fixture daemon(broker, setup);
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "app"));
    for (const auto& r : app.subscribe({"cmd/gateway-01/a", "cmd/gateway-01/b/+"})) ASSERT_EQ(r.code, ipc::errc::ok) << r.message;

    setup.thing = "coverage: ['cmd/${thing}/#']";
    daemon.configure(setup);
    daemon.reload();
    ASSERT_TRUE(eventually([&] { return broker_filters(broker, "gateway-01", "UNSUBSCRIBE").size() == 2; }, 15'000));
    const strings changes{"SUBSCRIBE cmd/gateway-01/a",       "SUBSCRIBE cmd/gateway-01/b/+",
                          "SUBSCRIBE cmd/gateway-01/#",       "UNSUBSCRIBE cmd/gateway-01/a",
                          "UNSUBSCRIBE cmd/gateway-01/b/+"};
    EXPECT_EQ(broker_filter_changes(broker, "gateway-01"), changes);
    publish_from_cloud(broker, "cmd/gateway-01/a", {"1"});
    publish_from_cloud(broker, "cmd/gateway-01/b/c", {"2"});
    publish_from_cloud(broker, "cmd/gateway-01/other", {"not for the app"});
    ASSERT_TRUE(eventually([&] {
        app.drain();
        return count_payload(app.messages, "2") > 0;
    }));
    EXPECT_EQ(count_payload(app.messages, "1"), 1U);
    EXPECT_EQ(count_payload(app.messages, "2"), 1U);

    setup.thing.clear();
    daemon.configure(setup);
    daemon.reload();
    ASSERT_TRUE(eventually([&] { return broker_filters(broker, "gateway-01", "UNSUBSCRIBE").size() == 3; }, 15'000));
    auto again = broker_filter_changes(broker, "gateway-01");
    ASSERT_EQ(again.size(), 8U);
    std::sort(again.begin() + 5, again.begin() + 7);
    EXPECT_EQ(strings(again.begin() + 5, again.end()),
              (strings{"SUBSCRIBE cmd/gateway-01/a", "SUBSCRIBE cmd/gateway-01/b/+", "UNSUBSCRIBE cmd/gateway-01/#"}));
    publish_from_cloud(broker, "cmd/gateway-01/a", {"3"});
    ASSERT_TRUE(eventually([&] {
        app.drain();
        return count_payload(app.messages, "3") > 0;
    }));
    app.drain();
    EXPECT_EQ(count_payload(app.messages, "3"), 1U);
    EXPECT_EQ(count_payload(app.messages, "not for the app"), 0U);
}

}  // namespace
}  // namespace thingmux::test
