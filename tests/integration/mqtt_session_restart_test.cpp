// Local MQTT sessions that survive thingmuxd itself (docs/local-mqtt.md, "Sessions"): a client
// with a persistent session, the real thingmuxd with its spool, and the real AWS-like mosquitto
// as the cloud. The app and the daemon are killed with SIGKILL while the cloud sends numbered
// commands; every command must reach the app in the end (duplicates allowed, counted).
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/measure.hpp"
#include "tests/support/mosquitto_clients.hpp"
#include "tests/support/mqtt_raw_client.hpp"
#include "tests/support/session_restart.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

daemon_setup face_setup(const std::string& more = {}) {
    daemon_setup s;
    s.mqtt = "  session_expiry: 1h\n" + more;
    return s;
}

// An MQTT 5 CONNECT asking for a session kept `expiry` seconds (Clean Start 0).
mqtt::connect persistent_connect(const std::string& client_id, std::uint32_t expiry) {
    auto c = mqtt_raw_client::connect_packet(mqtt::protocol_version::v5, client_id);
    c.clean_start = false;
    c.props.session_expiry_interval = expiry;
    return c;
}

// How often each command arrived, over every instance of the app.
std::map<std::string, int> arrivals(const std::string& topic, const std::vector<const mosquitto_subscriber*>& apps) {
    std::map<std::string, int> seen;
    for (const auto* app : apps)
        for (const auto& line : app->messages())
            if (line.starts_with(topic + " cmd-")) ++seen[line.substr(topic.size() + 1)];
    return seen;
}

class MqttSessionRestartTest : public ::testing::Test {
protected:
    broker_fixture broker;
};

// 1,000 numbered QoS 1 commands. The app (mosquitto_sub, MQTT 5, Clean Start 0 with a Session
// Expiry Interval) gets the first 200, then is killed. While the cloud sends the other 800 in
// bursts, thingmuxd is killed as soon as its spool holds at least 100 of them for the absent
// app, and started again once the cloud sent 200 more (queued by the broker for the Thing's
// session) while the cloud still sends. The app comes back with the same client
// id: it must get every one of the 800, from the spool, from the broker's queue for the Thing's
// session, and live.
TEST_F(MqttSessionRestartTest, CommandsForAKilledAppSurviveSigkillOfTheDaemonWhileTheCloudSends) {
    daemon_fixture daemon(broker, face_setup());
    const auto sock = daemon.mqtt_socket_path();
    const std::string filter = "cmd/gateway-01/#", topic = "cmd/gateway-01/valve";
    const mqtt_endpoint app_endpoint{sock, "5", "valve-controller"};
    const std::vector<std::string> persistent{"-c", "-x", "3600"};

    mosquitto_subscriber first(app_endpoint, {filter}, broker.dir(), 1, persistent);
    ASSERT_TRUE(first.wait_subscribed()) << first.transcript();
    ASSERT_TRUE(probes_reach(broker, topic, {&first})) << first.transcript();
    publish_from_cloud(broker, topic, commands(1, 200));
    ASSERT_EQ(first.wait_for_all(topic_lines(topic, commands(1, 200)), 30'000), 0U) << first.transcript();
    first.kill();
    ASSERT_TRUE(eventually([&] { return !first.running(); }, 10'000));

    const auto run = kill_daemon_while_the_cloud_sends(broker, daemon, topic, 201, 1000, 100);
    ASSERT_TRUE(run.stored) << "the spool never held 100 messages for the absent app:\n" << read_file(daemon.log_file());

    mosquitto_subscriber again(app_endpoint, {filter}, broker.dir(), 1, persistent);
    ASSERT_TRUE(again.wait_subscribed()) << again.transcript() << read_file(daemon.log_file());
    const auto missing = again.wait_for_all(topic_lines(topic, commands(201, 1000)), 60'000);

    const auto seen = arrivals(topic, {&first, &again});
    const auto count = count_arrivals(seen, commands(1, 1000));
    std::cout << "[ measured ] cloud had sent " << run.sent_at_kill << " at the kill (" << run.stored_at_kill
              << " stored for the app), " << run.sent_at_start << " at the restart; the app got " << seen.size()
              << " distinct of 1000, " << count.duplicates << " duplicate(s)\n";
    EXPECT_EQ(missing, 0U) << again.transcript() << read_file(daemon.log_file());
    EXPECT_EQ(count.absent, 0) << "commands lost, among them:" << count.absent_ones;
    EXPECT_GE(run.stored_at_kill, 100);
    EXPECT_EQ(lines_containing(daemon.log_file(), "stored session(s) restored (1 MQTT, 0 IPC)"), 1U) << read_file(daemon.log_file());
    EXPECT_TRUE(again.running()) << again.transcript();
}

// A local app that asks for a persistent session with every new client id cannot make thingmuxd
// keep more than mqtt.max_sessions of them (each may hold mqtt.session_queue bytes in memory and
// on disk): past the limit, CONNACK tells an MQTT 5 client its session ends with the connection
// (Session Expiry Interval 0), and nothing of it is stored. A DISCONNECT with Session Expiry
// Interval 0 ends a kept session at once, in the spool's file too.
TEST_F(MqttSessionRestartTest, MaxSessionsBoundsTheKeptSessionsAndDisconnectCanEndOne) {
    daemon_fixture daemon(broker, face_setup("  max_sessions: 5\n"));
    const auto sock = daemon.mqtt_socket_path();
    const auto spool = daemon.dir() / "spool.db";
    int told_zero = 0;
    for (int i = 1; i <= 8; ++i) {
        mqtt_raw_client c(sock);
        const auto ack = c.connect(persistent_connect("hoarder-" + std::to_string(i), 600));
        ASSERT_TRUE(ack) << read_file(daemon.log_file());
        EXPECT_EQ(ack->reason_code, 0);
        if (i <= 5) {
            EXPECT_FALSE(ack->props.session_expiry_interval.has_value()) << "session " << i << " is kept as asked";
        } else if (ack->props.session_expiry_interval == std::optional<std::uint32_t>{0}) {
            ++told_zero;
        }
    }  // each connection closes without DISCONNECT
    EXPECT_EQ(told_zero, 3);
    EXPECT_TRUE(eventually([&] { return spool_rows(spool, "local_session") == 5; }, 10'000)) << spool_rows(spool, "local_session");
    EXPECT_EQ(lines_containing(daemon.log_file(), "sessions are kept already (mqtt.max_sessions)"), 3U);

    {
        mqtt_raw_client kept(sock);
        const auto ack = kept.connect(persistent_connect("hoarder-1", 600));
        ASSERT_TRUE(ack);
        EXPECT_TRUE(ack->session_present);
        mqtt::properties props;
        props.session_expiry_interval = 0;
        ASSERT_TRUE(kept.send(mqtt::disconnect{mqtt::reason::success, props}));
        EXPECT_TRUE(kept.wait_closed());
    }
    EXPECT_TRUE(eventually([&] { return spool_rows(spool, "local_session") == 4; }, 10'000)) << spool_rows(spool, "local_session");
    for (const auto* id : {"hoarder-1", "hoarder-7"}) {
        mqtt_raw_client again(sock);
        const auto ack = again.connect(persistent_connect(id, 600));
        ASSERT_TRUE(ack);
        EXPECT_FALSE(ack->session_present) << id << " has no session to resume";
    }
}

// MQTT 5 Will Delay Interval across a SIGKILL of thingmuxd: the delayed will of a kept session is
// in the spool's file with its due time, comes back with the session, and is published once,
// when due (its row then goes).
TEST_F(MqttSessionRestartTest, ADelayedWillOutlivesASigkillOfTheDaemonAndIsPublishedOnce) {
    daemon_fixture daemon(broker, face_setup());
    const auto spool = daemon.dir() / "spool.db";
    observer_subscription cloud(broker, "dt/gateway-01/will/#");
    ASSERT_TRUE(cloud.wait_ready());
    {
        mqtt_raw_client c(daemon.mqtt_socket_path());
        auto packet = persistent_connect("will-keeper", 600);
        packet.will = mqtt::will_message{.topic = "dt/gateway-01/will/keeper", .payload = "gone", .qos = mqtt::qos::at_least_once};
        packet.will->props.will_delay_interval = 5;
        const auto ack = c.connect(packet);
        ASSERT_TRUE(ack && ack->reason_code == 0) << read_file(daemon.log_file());
    }  // closed without DISCONNECT: the will is due in 5 s
    const auto left = std::chrono::steady_clock::now();
    ASSERT_TRUE(eventually([&] { return spool_rows(spool, "local_message") == 1; }, 10'000)) << spool_rows(spool, "local_message");
    daemon.kill();
    // Killed before the will was due, or this test shows nothing.
    ASSERT_LT(std::chrono::steady_clock::now() - left, std::chrono::milliseconds(4'000)) << "stored too late";
    EXPECT_TRUE(cloud.lines().empty()) << "the will went before its delay";
    daemon.start();
    EXPECT_EQ(cloud.wait_for_all({"dt/gateway-01/will/keeper gone"}, 20'000), 0U) << read_file(daemon.log_file());
    // The file keeps the due time in whole seconds of the system clock: due at least 4 s after the
    // client left (5 s, less what had run of the second it left in).
    EXPECT_GE(std::chrono::steady_clock::now() - left, std::chrono::milliseconds(3'900)) << "published before it was due";
    EXPECT_TRUE(eventually([&] { return spool_rows(spool, "local_message") == 0; }, 10'000)) << spool_rows(spool, "local_message");
    // A marker through the daemon reaches the cloud behind anything published before it: a second
    // will would be there.
    const auto marker = mosquitto_pub({daemon.mqtt_socket_path(), "5", "marker"}, "dt/gateway-01/will/marker", {"after"});
    ASSERT_EQ(marker.exit_code, 0) << marker.output;
    ASSERT_EQ(cloud.wait_for_all({"dt/gateway-01/will/marker after"}, 20'000), 0U);
    const auto lines = cloud.lines();
    EXPECT_EQ(std::count(lines.begin(), lines.end(), "dt/gateway-01/will/keeper gone"), 1);
}

// One owner (uid, MQTT user) keeps at most mqtt.max_sessions_per_uid sessions; another owner
// still gets its own, and a session resumed keeps its place.
TEST_F(MqttSessionRestartTest, MaxSessionsPerUidLeavesRoomForOtherOwners) {
    const auto passwords = broker.dir() / "face.passwd";
    std::string out;
    ASSERT_EQ(run_command({"mosquitto_passwd", "-c", "-b", passwords.string(), "other", "pw"}, &out), 0) << out;
    daemon_fixture daemon(broker, face_setup("  max_sessions: 10\n  max_sessions_per_uid: 2\n  passwords: " +
                                             passwords.string() + "\n"));
    const auto sock = daemon.mqtt_socket_path();
    const auto granted = [&](const std::string& id, std::optional<std::string> user) {
        mqtt_raw_client c(sock);
        auto packet = persistent_connect(id, 600);
        if (user) {
            packet.username = *user;
            packet.password = std::string("pw");
        }
        const auto ack = c.connect(packet);
        EXPECT_TRUE(ack && ack->reason_code == 0) << read_file(daemon.log_file());
        // CONNACK names the expiry only when it differs from the one asked for.
        return ack ? ack->props.session_expiry_interval.value_or(600) : 0U;
    };
    EXPECT_EQ(granted("mine-1", std::nullopt), 600U);
    EXPECT_EQ(granted("mine-2", std::nullopt), 600U);
    EXPECT_EQ(granted("mine-3", std::nullopt), 0U) << "a third session of the same owner";
    EXPECT_EQ(granted("theirs-1", "other"), 600U) << "another owner (MQTT user 'other') has room";
    EXPECT_EQ(granted("mine-1", std::nullopt), 600U) << "a session resumed keeps its place";
    EXPECT_EQ(lines_containing(daemon.log_file(), "kept already for its owner (mqtt.max_sessions_per_uid)"), 1U)
        << read_file(daemon.log_file());
}

}  // namespace
}  // namespace thingmux::test
