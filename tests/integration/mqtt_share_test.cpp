// Shared subscriptions on thingmuxd's local MQTT face ("$share/NAME/FILTER", docs/local-mqtt.md)
// end to end: Debian's unmodified mosquitto_sub (MQTT 5 and 3.1.1, which use the same form) and
// a raw MQTT client for exact acknowledgements, on the face's Unix socket; the real thingmuxd;
// the real AWS-like mosquitto as the cloud. Each test counts the numbered messages every member
// got, and what the broker's log shows went upstream.
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/mosquitto_clients.hpp"
#include "tests/support/mqtt_raw_client.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace thingmux::test {
namespace {

using mqtt::protocol_version;

const std::string filter = "cmd/gateway-01/#";
const std::string workers = "$share/workers/" + filter;
const std::string command_topic = "cmd/gateway-01/job";

daemon_setup share_setup(std::string ipc_lines = {}) {
    daemon_setup s;
    s.ipc = std::move(ipc_lines);
    return s;
}

// How often each payload with `prefix` arrived, over the "topic payload" lines of `command_topic`.
void tally(const std::vector<std::string>& lines, const std::string& prefix, std::map<std::string, int>& seen) {
    const auto head = command_topic + " " + prefix;
    for (const auto& l : lines)
        if (l.starts_with(head)) ++seen[l.substr(command_topic.size() + 1)];
}

std::map<std::string, int> tally(const std::vector<const mosquitto_subscriber*>& subs, const std::string& prefix) {
    std::map<std::string, int> seen;
    for (const auto* s : subs) tally(s->messages(), prefix, seen);
    return seen;
}

std::size_t total(const std::map<std::string, int>& seen) {
    std::size_t n = 0;
    for (const auto& [payload, times] : seen) n += static_cast<std::size_t>(times);
    return n;
}

// MQTT 5 section 4.8.2 with unmodified clients: three mosquitto_sub share $share/workers/FILTER
// (two MQTT 5, one 3.1.1) next to a plain subscriber of FILTER. The cloud publishes 300 numbered
// QoS 1 commands: the plain subscriber gets all 300; the members together get each exactly once,
// every member some; the broker saw one SUBSCRIBE, of FILTER.
TEST(MqttShareTest, MembersShareTheMessagesOfOneUpstreamSubscription) {
    broker_fixture broker;
    daemon_fixture daemon(broker, share_setup());
    const auto sock = daemon.mqtt_socket_path();
    mosquitto_subscriber a({sock, "5", "worker-a"}, {workers}, broker.dir());
    mosquitto_subscriber b({sock, "5", "worker-b"}, {workers}, broker.dir());
    mosquitto_subscriber c({sock, "311", "worker-c"}, {workers}, broker.dir());
    mosquitto_subscriber plain({sock, "5", "auditor"}, {filter}, broker.dir());
    for (auto* s : {&a, &b, &c, &plain}) {
        const auto codes = s->wait_subscribed();
        ASSERT_TRUE(codes) << s->transcript() << read_file(daemon.log_file());
        EXPECT_EQ(*codes, std::vector<std::uint8_t>{mqtt::reason::granted_qos_1}) << s->transcript();
    }

    constexpr int commands = 300;
    const auto expected = topic_lines(command_topic, numbered(commands, "c"));
    publish_from_cloud(broker, command_topic, numbered(commands, "c"));
    EXPECT_EQ(plain.wait_for_all(expected, 30'000), 0U) << plain.transcript();
    const std::vector<const mosquitto_subscriber*> members{&a, &b, &c};
    EXPECT_TRUE(eventually([&] { return total(tally(members, "c")) >= commands; }, 30'000));
    const auto seen = tally(members, "c");
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(commands)) << "distinct commands the members got";
    EXPECT_EQ(total(seen), static_cast<std::size_t>(commands)) << "each command to one member only";
    std::vector<std::size_t> shares;
    for (const auto* m : members) {
        std::map<std::string, int> own;
        tally(m->messages(), "c", own);
        shares.push_back(own.size());
        EXPECT_GT(own.size(), 0U) << m->transcript();
    }
    std::cout << "[ measured ] members got " << shares[0] << ", " << shares[1] << ", " << shares[2] << " of "
              << commands << "; the plain subscriber " << tally({&plain}, "c").size() << "\n";
    for (auto* s : {&a, &b, &c, &plain}) EXPECT_TRUE(s->running()) << s->transcript();

    EXPECT_EQ(daemon.stop(), 0);
    broker.stop();  // mosquitto writes its log through a stdio buffer: stopping flushes it
    EXPECT_EQ(broker_filters(broker, "gateway-01"), std::vector<std::string>{filter})
        << "one plain SUBSCRIBE serves the group";
    EXPECT_EQ(broker_sent(broker, "gateway-01", command_topic), static_cast<std::size_t>(commands));
}

// A member leaves in the middle (its connection closes with commands it got and never
// acknowledged, and more on their way to it): nothing is lost, what it did not acknowledge goes
// to the other members (MQTT 5 section 4.8.2). The leaving member is a raw client, so that what
// it acknowledged is exactly known: each command arrives once, counting what it acknowledged.
TEST(MqttShareTest, AMemberThatLeavesMidwayLosesNothingForTheGroup) {
    broker_fixture broker;
    daemon_fixture daemon(broker, share_setup());
    const auto sock = daemon.mqtt_socket_path();
    mosquitto_subscriber a({sock, "5", "worker-a"}, {workers}, broker.dir());
    mosquitto_subscriber b({sock, "311", "worker-b"}, {workers}, broker.dir());
    for (auto* s : {&a, &b}) ASSERT_TRUE(s->wait_subscribed()) << s->transcript();
    auto leaving = std::make_unique<mqtt_raw_client>(sock);
    ASSERT_TRUE(leaving->connect(protocol_version::v5, "worker-leaving"));
    ASSERT_EQ(leaving->subscribe({workers}), std::optional(std::vector<std::uint8_t>{mqtt::reason::granted_qos_1}));

    constexpr int commands = 300;
    constexpr std::size_t acknowledged_before_leaving = 20, received_before_leaving = 30;
    std::thread cloud_side([&] { publish_from_cloud(broker, command_topic, numbered(commands, "c")); });
    std::set<std::string> acknowledged, unacknowledged;
    // After its last PUBACK the leaver pings: the answer proves thingmuxd read the PUBACKs (it
    // handles a connection's packets in order), so none is lost in the close that follows.
    bool pinged = false, answered = false;
    while (acknowledged.size() + unacknowledged.size() < received_before_leaving || !answered) {
        auto p = leaving->receive(30'000);
        if (!p) break;
        if (std::holds_alternative<mqtt::pingresp>(*p)) answered = true;
        const auto* msg = std::get_if<mqtt::publish>(&*p);
        if (msg == nullptr) continue;
        if (acknowledged.size() < acknowledged_before_leaving) {
            ASSERT_TRUE(leaving->send(mqtt::puback{.packet_id = msg->packet_id, .reason_code = 0, .props = {}}));
            acknowledged.insert(msg->payload);
        } else {
            unacknowledged.insert(msg->payload);
        }
        if (acknowledged.size() == acknowledged_before_leaving && !pinged) pinged = leaving->send(mqtt::pingreq{});
    }
    ASSERT_TRUE(answered) << "no PINGRESP";
    leaving.reset();  // the socket closes, no DISCONNECT: its session ends with it
    cloud_side.join();
    ASSERT_GE(acknowledged.size() + unacknowledged.size(), received_before_leaving) << "the leaving member got too few";

    const std::vector<const mosquitto_subscriber*> stayed{&a, &b};
    const auto all_there = [&] {
        auto seen = tally(stayed, "c");
        for (const auto& p : acknowledged) ++seen[p];
        return seen;
    };
    EXPECT_TRUE(eventually([&] { return all_there().size() >= static_cast<std::size_t>(commands); }, 30'000));
    const auto seen = all_there();
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(commands))
        << "commands the group got, counting what the leaver acknowledged";
    for (const auto& [payload, times] : seen) EXPECT_EQ(times, 1) << payload << ": duplicated";
    const auto at_the_others = tally(stayed, "c");
    for (const auto& p : unacknowledged) EXPECT_TRUE(at_the_others.contains(p)) << p << " was lost with the leaver";
    std::cout << "[ measured ] the leaver acknowledged " << acknowledged.size() << " and left " << unacknowledged.size()
              << " unacknowledged; the other members got " << total(at_the_others) << "\n";
    for (auto* s : {&a, &b}) EXPECT_TRUE(s->running()) << s->transcript();
    EXPECT_FALSE(log_has(daemon, "is dropped")) << read_file(daemon.log_file());
}

// Hostile, within the quotas: 24 clients each join 16 groups on one filter (ipc.client_subscriptions
// 16 per client: a 17th is refused with 0x97), and one share name over limits.max_topic_length is
// refused with 0x8F. 40 commands reach each group exactly once (640 deliveries), over one
// upstream SUBSCRIBE.
TEST(MqttShareTest, ManyGroupsAndMembersWithinTheQuotasShareOneSubscription) {
    broker_fixture broker;
    daemon_fixture daemon(broker, share_setup("client_subscriptions: 16"));
    const auto sock = daemon.mqtt_socket_path();
    constexpr std::size_t clients = 24, groups = 16;
    std::vector<std::unique_ptr<mqtt_raw_client>> members;
    for (std::size_t i = 0; i < clients; ++i) {
        members.push_back(std::make_unique<mqtt_raw_client>(sock));
        ASSERT_TRUE(members.back()->connect(protocol_version::v5, "member-" + std::to_string(i)));
        std::vector<std::string> filters;
        for (std::size_t g = 0; g <= groups; ++g) filters.push_back("$share/g" + std::to_string(g) + "/" + filter);
        std::vector<std::uint8_t> expected(groups, mqtt::reason::granted_qos_1);
        expected.push_back(mqtt::reason::quota_exceeded);
        ASSERT_EQ(members.back()->subscribe(filters), std::optional<std::vector<std::uint8_t>>(expected));
    }
    mqtt_raw_client extra(sock);
    ASSERT_TRUE(extra.connect(protocol_version::v5, "member-extra"));
    EXPECT_EQ(extra.subscribe({"$share/" + std::string(257, 'n') + "/" + filter}),
              std::optional(std::vector<std::uint8_t>{mqtt::reason::topic_filter_invalid}));

    constexpr int commands = 40;
    publish_from_cloud(broker, command_topic, numbered(commands, "c"));
    const auto received = [&] {
        std::size_t n = 0;
        for (auto& m : members) n += m->publishes.size();
        return n;
    };
    EXPECT_TRUE(eventually(
        [&] {
            for (auto& m : members) m->wait_publishes(m->publishes.size() + 1, 20);
            return received() >= groups * commands;
        },
        30'000));
    std::map<std::string, std::size_t> per_command;
    for (auto& m : members) {
        m->wait_publishes(m->publishes.size() + 1, 20);  // nothing more may come
        for (const auto& p : m->publishes) ++per_command[p.payload];
    }
    EXPECT_EQ(received(), groups * commands);
    EXPECT_EQ(per_command.size(), static_cast<std::size_t>(commands));
    for (const auto& [payload, n] : per_command) EXPECT_EQ(n, groups) << payload << ": once per group";

    EXPECT_EQ(daemon.stop(), 0);
    broker.stop();
    EXPECT_EQ(broker_filters(broker, "gateway-01"), std::vector<std::string>{filter});
}

// A libthingmux app (IPC) cannot join a group: its deliveries are dispatched by topic, so the
// daemon refuses $share/... with invalid_filter and a reason, and nothing goes upstream; the
// app's plain filters are unaffected.
TEST(MqttShareTest, IpcAppsAreRefusedSharedSubscriptionsClearly) {
    broker_fixture broker;
    daemon_fixture daemon(broker, share_setup());
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "ipc-worker"));
    const auto results = app.subscribe({workers, filter});
    ASSERT_EQ(results.size(), 2U);
    EXPECT_EQ(results[0].code, ipc::errc::invalid_filter);
    EXPECT_NE(results[0].message.find("offers on its local MQTT face only"), std::string::npos) << results[0].message;
    EXPECT_EQ(results[1].code, ipc::errc::ok) << results[1].message;
    EXPECT_EQ(daemon.stop(), 0);
    broker.stop();
    EXPECT_EQ(broker_filters(broker, "gateway-01"), std::vector<std::string>{filter});
}

}  // namespace
}  // namespace thingmux::test
