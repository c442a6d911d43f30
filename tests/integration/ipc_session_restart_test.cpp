// IPC sessions that survive thingmuxd itself (docs/ipc-protocol.md, IPC-43 and IPC-45): the real
// thingmuxd with its spool, the real AWS-like mosquitto as the cloud, the app as a raw version 2
// client or as a libthingmux app in a process of its own. The daemon (and the app) are killed with
// SIGKILL while commands wait for the app; every command must reach it in the end (duplicates
// allowed, counted). The local MQTT face's counterpart: mqtt_session_restart_test.cpp.
#include "tests/integration/ipc_session_helpers.hpp"
#include "tests/support/session_restart.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

const std::string ipc_sessions = "local_session WHERE kind = 'ipc'";

class IpcSessionRestartTest : public ::testing::Test {
protected:
    broker_fixture broker;
};

// A session's app is away with 100 commands stored for it in the spool when thingmuxd is killed.
// The restarted daemon brings the session back, keeps what the cloud sends before the app
// returns, and the app, resuming, gets all of it without subscribing again.
TEST_F(IpcSessionRestartTest, IPC45_CommandsStoredForAnAwaySessionReachTheAppAfterSigkillOfThingmuxd) {
    daemon_fixture daemon(broker);
    const auto spool = daemon.dir() / "spool.db";
    subscribe_and_leave(daemon, session_hello("durable", 3600, "durable-1"));
    ASSERT_TRUE(eventually([&] { return spool_rows(spool, ipc_sessions) == 1; }))
        << "the away session is not in the spool's file: " << spool_rows(spool, ipc_sessions) << " row(s)";
    const auto stored = commands(1, 100);
    publish_from_cloud(broker, command_topic, stored);
    ASSERT_TRUE(eventually([&] { return spool_rows(spool, "local_message") >= 100; }, 30'000))
        << spool_rows(spool, "local_message") << " message(s) stored for the session\n"
        << read_file(daemon.log_file());
    daemon.kill();
    daemon.start();
    {
        ipc_client other(daemon.socket_path());
        ASSERT_TRUE(hello_connected(other, "other"));
    }
    const auto later = commands(101, 120);  // for the restored session, while its app is away
    publish_from_cloud(broker, command_topic, later);

    ipc_client app(daemon.socket_path());
    const auto w = app.hello(session_hello("durable", 3600, "durable-2"));
    EXPECT_TRUE(w.session_present) << read_file(daemon.log_file());
    EXPECT_GT(w.session_expiry, 0U);
    auto all = stored;
    all.insert(all.end(), later.begin(), later.end());
    EXPECT_EQ(wait_for_payloads(app, all), 0U) << read_file(daemon.log_file());
    auto acked = ack_all(app);
    publish_from_cloud(broker, command_topic, {"live"});
    EXPECT_EQ(wait_for_payloads(app, {"live"}), 0U) << "the restored subscription does not deliver";
    acked = ack_all(app, acked);
    EXPECT_TRUE(app.ping(1));
    std::cout << "[ measured ] " << all.size() << " commands for the away session (100 stored before the SIGKILL), "
              << acked - 1 << " deliveries after the resume\n";
}

enum class stop_by { sigkill, sigterm };

// An app with a session got 20 commands and acknowledged the first 10 when thingmuxd goes down
// (`how`) under its open connection; the cloud sends 10 more while the daemon is down. After the
// restart the session is back (a session whose connection was open counts its expiry from the
// restart): the app's next connection gets the 10 it had not acknowledged and the 10 sent while
// the daemon was down. Acknowledged ones may come again (at least once), and are counted.
void the_session_outlives_the_daemon(const broker_fixture& broker, daemon_fixture& daemon, stop_by how) {
    ipc_client app(daemon.socket_path());
    greet_and_subscribe(app, session_hello("open", 3600, "open-1"));
    const auto sent = cloud_sends(broker, 20, "f-");
    ASSERT_EQ(wait_for_payloads(app, sent), 0U);
    std::vector<std::string> unacked;
    for (const auto& m : app.messages) {
        if (std::stoi(m.payload.substr(2)) <= 10) {
            app.ack(m.delivery_id);
        } else {
            unacked.push_back(m.payload);
        }
    }
    ASSERT_TRUE(app.ping(1)) << "the acks were not taken";
    if (how == stop_by::sigkill) {
        daemon.kill();
    } else {
        EXPECT_EQ(daemon.stop(), 0);
    }
    EXPECT_TRUE(app.wait_closed());
    const auto while_down = cloud_sends(broker, 10, "down-");
    daemon.start();

    ipc_client again(daemon.socket_path());
    const auto w = again.hello(session_hello("open", 3600, "open-2"));
    EXPECT_TRUE(w.session_present) << read_file(daemon.log_file());
    auto expected = unacked;
    expected.insert(expected.end(), while_down.begin(), while_down.end());
    EXPECT_EQ(wait_for_payloads(again, expected, acking::as_they_come), 0U) << read_file(daemon.log_file());
    const auto got = payloads_of(again.messages);
    const auto again_acked = std::count_if(got.begin(), got.end(), [&](const std::string& p) {
        return std::find(unacked.begin(), unacked.end(), p) == unacked.end() && p.starts_with("f-");
    });
    std::cout << "[ measured ] after the restart: " << unacked.size() << " unacknowledged and " << while_down.size()
              << " sent while down expected, " << got.size() << " delivered, " << again_acked
              << " of them acknowledged before\n";
    EXPECT_TRUE(again.ping(2));
}

TEST_F(IpcSessionRestartTest, IPC45_ASessionWithItsConnectionOpenWhenThingmuxdIsKilledComesBackWithWhatItHeld) {
    daemon_fixture daemon(broker);
    the_session_outlives_the_daemon(broker, daemon, stop_by::sigkill);
}

TEST_F(IpcSessionRestartTest, IPC43_ASessionWithItsConnectionOpenWhenThingmuxdStopsComesBackWithWhatItHeld) {
    daemon_fixture daemon(broker);
    the_session_outlives_the_daemon(broker, daemon, stop_by::sigterm);
}

// 1,000 numbered QoS 1 commands. The app (libthingmux, with a session) gets the first 200, then is
// killed. While the cloud sends the other 800 in bursts, thingmuxd is killed as soon as its spool
// holds at least 100 of them for the absent app, and started again once the cloud sent 200 more
// (queued by the broker for the Thing's session) while the cloud still sends. The app comes back
// as a new process with the same session name: it must get every one of the 800, from the spool,
// from the broker's queue for the Thing's session, and live.
TEST_F(IpcSessionRestartTest, IPC45_CommandsForAKilledSessionAppSurviveSigkillOfTheDaemonWhileTheCloudSends) {
    daemon_fixture daemon(broker);
    session_app first(daemon.socket_path(), "valve-controller", daemon.dir(), "valve-1");
    ASSERT_EQ(first.wait_status("welcome"), "welcome 3 0 3600") << read_file(daemon.log_file());
    ASSERT_EQ(first.wait_status("subscribed"), "subscribed ok");
    publish_from_cloud(broker, command_topic, commands(1, 200));
    ASSERT_TRUE(eventually(
        [&] { return missing_from(payloads_on(first.messages(), command_topic), commands(1, 200)) == 0; }, 30'000));
    first.kill();

    const auto run = kill_daemon_while_the_cloud_sends(broker, daemon, command_topic, 201, 1000, 100);
    ASSERT_TRUE(run.stored) << "the spool never held 100 messages for the absent app:\n"
                            << read_file(daemon.log_file());

    session_app again(daemon.socket_path(), "valve-controller", daemon.dir(), "valve-2");
    EXPECT_EQ(again.wait_status("welcome"), "welcome 3 1 3600") << read_file(daemon.log_file());
    std::size_t missing = 800;
    eventually(
        [&] {
            return (missing = missing_from(payloads_on(again.messages(), command_topic), commands(201, 1000))) == 0;
        },
        60'000);

    std::map<std::string, int> seen;
    for (const auto* app : {&first, &again})
        for (const auto& p : payloads_on(app->messages(), command_topic)) ++seen[p];
    const auto count = count_arrivals(seen, commands(1, 1000));
    std::cout << "[ measured ] cloud had sent " << run.sent_at_kill << " at the kill (" << run.stored_at_kill
              << " stored for the app), " << run.sent_at_start << " at the restart; the app got " << seen.size()
              << " distinct of 1000, " << count.duplicates << " duplicate(s)\n";
    EXPECT_EQ(missing, 0U) << read_file(daemon.log_file());
    EXPECT_EQ(count.absent, 0) << "commands lost, among them:" << count.absent_ones;
    EXPECT_GE(run.stored_at_kill, 100);
}

}  // namespace
}  // namespace thingmux::test
