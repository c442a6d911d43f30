// Retained messages and MQTT 5 subscription options on thingmuxd's MQTT face (docs/local-mqtt.md,
// RETAINED MESSAGES) end to end: the real thingmuxd, the AWS-like mosquitto as the cloud,
// Debian's mosquitto_sub and the raw MQTT client (for Retain Handling, No Local and exact
// retain flags). Every test counts the copies each client got, after a marker message that
// arrives behind anything the subscribe could have brought, so a missing or extra copy shows.
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/mosquitto_clients.hpp"
#include "tests/support/mqtt_raw_client.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

using mqtt::protocol_version;

mqtt::subscription with_options(std::string filter, std::uint8_t retain_handling, bool no_local = false,
                                bool retain_as_published = false) {
    return {.filter = std::move(filter),
            .max_qos = mqtt::qos::at_least_once,
            .no_local = no_local,
            .retain_as_published = retain_as_published,
            .retain_handling = retain_handling};
}

std::size_t count_on(const mqtt_raw_client& c, const std::string& topic) {
    return static_cast<std::size_t>(std::count_if(c.publishes.begin(), c.publishes.end(),
                                                  [&](const mqtt::publish& p) { return p.topic == topic; }));
}

std::size_t retained_on(const mqtt_raw_client& c, const std::string& topic) {
    return static_cast<std::size_t>(std::count_if(
        c.publishes.begin(), c.publishes.end(), [&](const mqtt::publish& p) { return p.topic == topic && p.retain; }));
}

// Receives until a message on `topic` arrived (false on timeout or close).
bool wait_for(mqtt_raw_client& c, const std::string& topic, int timeout_ms = 20'000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (count_on(c, topic) == 0) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !c.wait_publishes(c.publishes.size() + 1, static_cast<int>(left.count())))
            return count_on(c, topic) > 0;
    }
    return true;
}

std::unique_ptr<mqtt_raw_client> connected_client(const std::filesystem::path& sock, const std::string& id) {
    auto c = std::make_unique<mqtt_raw_client>(sock);
    const auto ack = c->connect(protocol_version::v5, id);
    EXPECT_TRUE(ack && ack->reason_code == mqtt::reason::success) << id;
    return c;
}

// The cloud's marker: sent after a subscribe, it arrives behind whatever the subscribe brought.
const std::string marker = "cmd/gateway-01/marker";

const std::vector<std::uint8_t> granted_both{mqtt::reason::granted_qos_1, mqtt::reason::granted_qos_1};

class MqttRetainedTest : public ::testing::Test {
protected:
    broker_fixture broker;
};

// The cloud holds a retained message. A subscribes: its SUBSCRIBE goes upstream and the broker's
// answer brings the message. B (mosquitto_sub) subscribes the same filter later: nothing goes
// upstream, and B gets exactly one copy, from thingmuxd's cache, with the retain flag. C with
// Retain Handling 2 gets none; D with Retain Handling 1 gets one on its first SUBSCRIBE and none
// on its second. A gets no duplicate, and the broker saw one SUBSCRIBE of the filter.
TEST_F(MqttRetainedTest, ACloudRetainedMessageReachesEachNewSubscriberOnceAsRetainHandlingSays) {
    daemon_fixture daemon(broker);
    const auto sock = daemon.mqtt_socket_path();
    const std::string config = "cmd/gateway-01/config";
    retain_from_cloud(broker, config, "v1");

    auto a = connected_client(sock, "retained-a");
    ASSERT_EQ(a->subscribe(std::vector<std::string>{config, marker}), granted_both);
    ASSERT_TRUE(wait_for(*a, config)) << "the broker's retained message";
    EXPECT_EQ(retained_on(*a, config), 1U);

    mosquitto_subscriber b({sock, "5", "retained-b"}, {config, marker}, broker.dir());
    ASSERT_TRUE(b.wait_subscribed()) << b.transcript();
    auto c = connected_client(sock, "retained-c");
    ASSERT_EQ(c->subscribe({with_options(config, 2), with_options(marker, 0)}), granted_both);
    auto d = connected_client(sock, "retained-d");
    ASSERT_EQ(d->subscribe({with_options(config, 1), with_options(marker, 0)}), granted_both);
    ASSERT_EQ(d->subscribe({with_options(config, 1)}), std::vector<std::uint8_t>{mqtt::reason::granted_qos_1});

    // Behind whatever the subscriptions brought.
    publish_from_cloud(broker, marker, {"m1"});
    for (auto* x : {a.get(), c.get(), d.get()}) ASSERT_TRUE(wait_for(*x, marker));
    ASSERT_EQ(b.wait_for_all({marker + " m1"}, 20'000), 0U) << b.transcript();

    EXPECT_EQ(count_on(*a, config), 1U) << "no duplicate for the first subscriber";
    const auto b_lines = b.messages();
    EXPECT_EQ(std::count(b_lines.begin(), b_lines.end(), config + " v1"), 1) << b.transcript();
    EXPECT_NE(b.transcript().find("r1, m"), std::string::npos) << "served with the retain flag:\n" << b.transcript();
    EXPECT_EQ(count_on(*c, config), 0U) << "Retain Handling 2";
    EXPECT_EQ(count_on(*d, config), 1U) << "Retain Handling 1: only for the new subscription";
    EXPECT_EQ(retained_on(*d, config), 1U);
    for (const auto* x : {a.get(), c.get(), d.get()}) EXPECT_EQ(retained_on(*x, marker), 0U);

    EXPECT_EQ(daemon.stop(), 0);
    broker.stop();
    const auto filters = broker_filters(broker, "gateway-01");
    EXPECT_EQ(std::count(filters.begin(), filters.end(), config), 1);
}

// A client holds cmd/gateway-01/# (the broker's answer brought it the cloud's retained message).
// Another subscribes the wildcard-free cmd/gateway-01/x, which goes upstream on its own (AWS IoT
// Core sends retained messages to such filters only): the broker's answer brings the retained
// message again, to the new subscriber only; the first gets no second copy.
TEST_F(MqttRetainedTest, TheBrokersResendIsOnlyForTheNewSubscription) {
    daemon_fixture daemon(broker);
    const auto sock = daemon.mqtt_socket_path();
    const std::string topic = "cmd/gateway-01/x";
    retain_from_cloud(broker, topic, "kept");
    mosquitto_subscriber wide({sock, "311", "gateway-01"}, {"cmd/gateway-01/#"}, broker.dir());
    ASSERT_EQ(wide.wait_for_all({topic + " kept"}, 20'000), 0U) << wide.transcript();

    auto exact = connected_client(sock, "exact");
    ASSERT_EQ(exact->subscribe(std::vector<std::string>{topic, marker}), granted_both);
    ASSERT_TRUE(wait_for(*exact, topic));
    publish_from_cloud(broker, marker, {"m1"});
    ASSERT_TRUE(wait_for(*exact, marker));
    ASSERT_EQ(wide.wait_for_all({marker + " m1"}, 20'000), 0U) << wide.transcript();

    EXPECT_EQ(retained_on(*exact, topic), 1U);
    EXPECT_EQ(count_on(*exact, topic), 1U);
    const auto lines = wide.messages();
    EXPECT_EQ(std::count(lines.begin(), lines.end(), topic + " kept"), 1) << wide.transcript();
    EXPECT_EQ(daemon.stop(), 0);
    broker.stop();
    const auto filters = broker_filters(broker, "gateway-01");
    EXPECT_EQ(std::count(filters.begin(), filters.end(), topic), 1) << "its own upstream SUBSCRIBE";
}

// No Local: a client subscribed with No Local does not get its own publish back when the broker
// returns it on the Thing's session; another local subscriber does, and the first gets the
// cloud's next message.
TEST_F(MqttRetainedTest, NoLocalKeepsAClientsOwnPublishFromIt) {
    daemon_fixture daemon(broker);
    const auto sock = daemon.mqtt_socket_path();
    const std::string topic = "dt/gateway-01/echo";
    auto me = connected_client(sock, "no-local");
    ASSERT_EQ(me->subscribe({with_options(topic, 0, true)}), std::vector<std::uint8_t>{mqtt::reason::granted_qos_1});
    mosquitto_subscriber other({sock, "5", "other"}, {topic}, broker.dir());
    ASSERT_TRUE(other.wait_subscribed()) << other.transcript();

    EXPECT_EQ(me->publish(topic, "mine"), mqtt::reason::success);
    ASSERT_EQ(other.wait_for_all({topic + " mine"}, 20'000), 0U) << other.transcript();
    publish_from_cloud(broker, topic, {"cloud"});
    ASSERT_TRUE(wait_for(*me, topic));
    ASSERT_EQ(other.wait_for_all({topic + " cloud"}, 20'000), 0U) << other.transcript();
    ASSERT_EQ(me->publishes.size(), 1U);
    EXPECT_EQ(me->publishes[0].payload, "cloud");
    EXPECT_EQ(daemon.stop(), 0);
}

// Local topics: thingmuxd is their only retained store. A live retained publish keeps its flag
// only for Retain As Published; a later subscriber gets it from the cache. Hostile: a client
// that retains 3,000 distinct topics leaves at most limits.retained_messages (100) in the cache,
// the newest, which is all a new subscriber gets.
TEST_F(MqttRetainedTest, LocalRetainedMessagesAreServedAndStayWithinTheBound) {
    daemon_setup setup;
    setup.thing = "local_topics: ['local/#']";
    setup.limits = "retained_messages: 100";
    daemon_fixture daemon(broker, setup);
    const auto sock = daemon.mqtt_socket_path();
    auto plain = connected_client(sock, "plain");
    auto as_published = connected_client(sock, "as-published");
    ASSERT_EQ(plain->subscribe({with_options("local/lamp", 0)}),
              std::vector<std::uint8_t>{mqtt::reason::granted_qos_1});
    ASSERT_EQ(as_published->subscribe({with_options("local/lamp", 0, false, true)}),
              std::vector<std::uint8_t>{mqtt::reason::granted_qos_1});
    const auto lamp = mosquitto_pub({sock, "5", "lamp"}, "local/lamp", {"on"}, 1, {"-r"});
    ASSERT_EQ(lamp.exit_code, 0) << lamp.output;
    ASSERT_TRUE(wait_for(*plain, "local/lamp"));
    ASSERT_TRUE(wait_for(*as_published, "local/lamp"));
    EXPECT_FALSE(plain->publishes.at(0).retain);
    EXPECT_TRUE(as_published->publishes.at(0).retain);
    mosquitto_subscriber late({sock, "311", "gateway-01"}, {"local/lamp"}, broker.dir());
    ASSERT_EQ(late.wait_for_all({"local/lamp on"}, 20'000), 0U) << late.transcript();

    auto flooder = connected_client(sock, "flooder");
    constexpr int topics = 3'000;
    for (int i = 1; i <= topics; ++i) {
        mqtt::publish p{.topic = "local/flood/" + std::to_string(i),
                        .payload = "x",
                        .qos = mqtt::qos::at_most_once,
                        .retain = true};
        ASSERT_TRUE(flooder->send(p)) << i;
    }
    ASSERT_EQ(flooder->publish("local/flood-done", "done"), mqtt::reason::no_matching_subscribers);  // behind the flood
    auto reader = connected_client(sock, "reader");
    ASSERT_EQ(reader->subscribe(std::vector<std::string>{"local/flood/#", "local/marker"}), granted_both);
    ASSERT_EQ(flooder->publish("local/marker", "end"), mqtt::reason::success);
    ASSERT_TRUE(wait_for(*reader, "local/marker"));
    const auto flood = static_cast<std::size_t>(
        std::count_if(reader->publishes.begin(), reader->publishes.end(),
                      [](const mqtt::publish& p) { return p.topic.starts_with("local/flood/") && p.retain; }));
    EXPECT_EQ(flood, 100U) << "limits.retained_messages";
    EXPECT_EQ(reader->publishes.front().topic, "local/flood/" + std::to_string(topics - 99)) << "the newest stay";
    EXPECT_EQ(daemon.stop(), 0);
}

}  // namespace
}  // namespace thingmux::test
