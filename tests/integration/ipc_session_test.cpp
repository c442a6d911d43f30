// IPC protocol version 2, sessions (docs/ipc-protocol.md, section 8: IPC-43..46), end to end: the
// real thingmuxd, the real AWS-like mosquitto as the cloud, raw version 2 clients and libthingmux
// apps over real Unix sockets. Every test counts what arrived. A cloud "marker" published after
// the fact shows that nothing else came: the daemon delivers in the order the broker sent
// (IPC-31), and a resumed session gets what waited before anything live (IPC-43).
#include "tests/integration/ipc_session_helpers.hpp"
#include "tests/support/as_user.hpp"
#include "tests/support/session_restart.hpp"
#include "tests/unit/ipc_codec_test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>

namespace thingmux::test {
namespace {

using ipc::test::cat;
using ipc::test::frame;
using ipc::test::s;
using ipc::test::x;

class IpcSessionTest : public ::testing::Test {
protected:
    // The cloud publishes `marker`; true once `c` got it.
    bool marker_arrives(ipc_client& c, const std::string& marker, acking ack = acking::no) {
        publish_from_cloud(broker, command_topic, {marker});
        return wait_for_payloads(c, {marker}, ack) == 0;
    }

    broker_fixture broker;
};

// Payloads of `c` that arrived before `marker`.
std::vector<std::string> before(const ipc_client& c, const std::string& marker) {
    auto all = payloads_of(c.messages);
    all.erase(std::find(all.begin(), all.end(), marker), all.end());
    return all;
}

// Delivery ids of the QoS 1 messages of `c`.
std::vector<std::uint32_t> qos1_ids(const std::vector<ipc::message>& ms) {
    std::vector<std::uint32_t> ids;
    for (const auto& m : ms)
        if (m.qos == 1) ids.push_back(m.delivery_id);
    return ids;
}

// Whether the child `pid` has finished (a zombie not reaped yet, or gone), without reaping it.
bool exited(pid_t pid) {
    const auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto end_of_name = stat.rfind(") ");
    return end_of_name == std::string::npos || stat.at(end_of_name + 2) == 'Z';
}

bool all_distinct_and_nonzero(const std::vector<std::uint32_t>& ids) {
    const std::set<std::uint32_t> unique(ids.begin(), ids.end());
    return unique.size() == ids.size() && unique.count(0) == 0;
}

// --- IPC-43: resume, takeover, end -------------------------------------------------------------

// An app with a session subscribes at QoS 1 and closes its connection; the cloud sends 100
// commands meanwhile. The next connection of the session resumes it: session_present, every
// command once or more, the first arrivals oldest first, and its subscription delivers live
// commands without a new subscribe (subscribing again is harmless).
TEST_F(IpcSessionTest, IPC43_AResumedSessionGetsTheCommandsSentWhileItWasAwayWithoutSubscribingAgain) {
    daemon_fixture daemon(broker);
    const auto left = subscribe_and_leave(daemon, session_hello("valve", 3600, "valve-1"));
    EXPECT_EQ(left.version, 2);
    EXPECT_FALSE(left.session_present);
    EXPECT_EQ(left.session_expiry, 3600U);
    const auto away = cloud_sends(broker, 100, "away-");

    ipc_client again(daemon.socket_path());
    const auto w = again.hello(session_hello("valve", 3600, "valve-2"));
    EXPECT_EQ(w.version, 2);
    EXPECT_TRUE(w.session_present);
    EXPECT_EQ(w.session_expiry, 3600U);
    EXPECT_EQ(wait_for_payloads(again, away), 0U) << read_file(daemon.log_file());
    std::vector<std::string> first_arrivals;
    for (const auto& p : payloads_of(again.messages))
        if (std::find(first_arrivals.begin(), first_arrivals.end(), p) == first_arrivals.end())
            first_arrivals.push_back(p);
    EXPECT_EQ(first_arrivals, away) << "what waited comes oldest first";
    EXPECT_TRUE(
        std::all_of(again.messages.begin(), again.messages.end(), [](const ipc::message& m) { return m.qos == 1; }));
    EXPECT_TRUE(all_distinct_and_nonzero(qos1_ids(again.messages)));
    auto acked = ack_all(again);

    ASSERT_TRUE(marker_arrives(again, "live-1")) << "the resumed subscription does not deliver";
    ASSERT_EQ(again.subscribe({command_filter}).at(0).code, ipc::errc::ok);
    ASSERT_TRUE(marker_arrives(again, "live-2"));
    const auto got = payloads_of(again.messages);
    EXPECT_EQ(std::count(got.begin(), got.end(), "live-2"), 1) << "subscribing again to a held filter doubled it";
    acked = ack_all(again, acked);
    EXPECT_TRUE(again.ping(1)) << "an ack of a delivery closed the connection";
    std::cout << "[ measured ] " << away.size() << " commands sent while away, " << got.size() - 2
              << " deliveries after the resume\n";
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
}

// The same with a libthingmux app that is killed with SIGKILL, and comes back as a new process.
TEST_F(IpcSessionTest, IPC43_AnAppKilledWithSigkillResumesItsSessionAsANewProcess) {
    daemon_fixture daemon(broker);
    const auto dir = daemon.dir();
    std::vector<std::string> commands;
    {
        session_app first(daemon.socket_path(), "recorder", dir, "recorder-1");
        ASSERT_EQ(first.wait_status("welcome"), "welcome 3 0 3600") << read_file(daemon.log_file());
        ASSERT_EQ(first.wait_status("subscribed"), "subscribed ok");
        cloud_sends(broker, 10, "before-");
        ASSERT_TRUE(eventually([&] { return payloads_on(first.messages(), command_topic).size() >= 10; }));
        first.kill();
    }
    ASSERT_TRUE(wait_gone(daemon, "recorder-1"));
    const auto away = cloud_sends(broker, 100, "away-");

    session_app second(daemon.socket_path(), "recorder", dir, "recorder-2");
    EXPECT_EQ(second.wait_status("welcome"), "welcome 3 1 3600");
    std::size_t missing = away.size();
    eventually([&] { return (missing = missing_from(payloads_on(second.messages(), command_topic), away)) == 0; },
               30'000);
    EXPECT_EQ(missing, 0U) << read_file(daemon.log_file());
    publish_from_cloud(broker, command_topic, {"live"});
    EXPECT_TRUE(eventually([&] { return missing_from(payloads_on(second.messages(), command_topic), {"live"}) == 0; }));
}

// A hello naming a session another connection holds takes it over: the old connection gets
// error session_taken_over, the new one resumes, with the deliveries the old one had not
// acknowledged again (new ids), and gets what comes next.
TEST_F(IpcSessionTest, IPC43_ASecondConnectionTakesTheSessionOverAndTheFirstGetsSessionTakenOver) {
    daemon_fixture daemon(broker);
    ipc_client first(daemon.socket_path());
    greet_and_subscribe(first, session_hello("panel", 3600, "panel-1"));
    const auto unacked = cloud_sends(broker, 5, "unacked-");
    ASSERT_EQ(wait_for_payloads(first, unacked), 0U);

    ipc_client second(daemon.socket_path());
    const auto w = second.hello(session_hello("panel", 3600, "panel-2"));
    EXPECT_TRUE(w.session_present);
    EXPECT_TRUE(first.wait_closed());
    ASSERT_TRUE(first.last_error.has_value());
    EXPECT_EQ(first.last_error->code, ipc::errc::session_taken_over) << first.last_error->message;
    EXPECT_EQ(wait_for_payloads(second, unacked), 0U) << "the deliveries the first had not acknowledged";
    EXPECT_TRUE(all_distinct_and_nonzero(qos1_ids(second.messages)));

    const auto after = cloud_sends(broker, 5, "after-");
    EXPECT_EQ(wait_for_payloads(second, after), 0U);
    EXPECT_EQ(first.messages.size(), unacked.size()) << "the first got something after it was taken over";
    ack_all(second);
    EXPECT_TRUE(second.ping(1));
    EXPECT_FALSE(second.last_error.has_value());
}

// welcome.session_expiry 0: the session ends with its connection. The next hello with the name
// starts a new session, and nothing the cloud sent meanwhile is delivered.
TEST_F(IpcSessionTest, IPC43_ASessionWithExpiry0EndsWithItsConnection) {
    daemon_fixture daemon(broker);
    const auto left = subscribe_and_leave(daemon, session_hello("brief", 0, "brief-1"));
    EXPECT_FALSE(left.session_present);
    EXPECT_EQ(left.session_expiry, 0U);
    cloud_sends(broker, 10, "gone-");

    ipc_client again(daemon.socket_path());
    const auto w = greet_and_subscribe(again, session_hello("brief", 3600, "brief-2"));
    EXPECT_FALSE(w.session_present);
    EXPECT_EQ(w.session_expiry, 3600U);
    ASSERT_TRUE(marker_arrives(again, "marker"));
    EXPECT_EQ(before(again, "marker"), std::vector<std::string>{}) << "delivered from a session that had ended";
}

// A kept session resumed by a hello asking for expiry 0 delivers what waited, then ends with that
// connection: its row leaves the spool's file, and the next hello starts a new session.
TEST_F(IpcSessionTest, IPC43_ResumingWithExpiry0GetsWhatWaitedAndEndsTheSessionWithTheConnection) {
    daemon_fixture daemon(broker);
    const auto spool = daemon.dir() / "spool.db";
    subscribe_and_leave(daemon, session_hello("last", 3600, "last-1"));
    const auto waited = cloud_sends(broker, 5, "waited-");
    {
        ipc_client c(daemon.socket_path());
        const auto w = c.hello(session_hello("last", 0, "last-2"));
        EXPECT_TRUE(w.session_present);
        EXPECT_EQ(w.session_expiry, 0U);
        EXPECT_EQ(wait_for_payloads(c, waited, acking::as_they_come), 0U);
        EXPECT_TRUE(c.ping(1));
    }
    ASSERT_TRUE(wait_gone(daemon, "last-2"));
    EXPECT_TRUE(eventually([&] { return spool_rows(spool, "local_session") == 0; }))
        << spool_rows(spool, "local_session");
    cloud_sends(broker, 5, "after-");
    ipc_client again(daemon.socket_path());
    EXPECT_FALSE(greet_and_subscribe(again, session_hello("last", 3600, "last-3")).session_present);
    ASSERT_TRUE(marker_arrives(again, "marker"));
    EXPECT_EQ(before(again, "marker"), std::vector<std::string>{});
}

// The session ends session_expiry seconds after its last connection, not sooner: its upstream
// filter goes (no other client holds it) and its row leaves the spool's file.
TEST_F(IpcSessionTest, IPC43_ASessionEndsSessionExpirySecondsAfterItsConnectionAndReleasesItsFilter) {
    daemon_fixture daemon(broker);
    const auto spool = daemon.dir() / "spool.db";
    {
        ipc_client c(daemon.socket_path());
        EXPECT_EQ(greet_and_subscribe(c, session_hello("short", 2, "short-1")).session_expiry, 2U);
    }
    const auto closed_at = std::chrono::steady_clock::now();
    const auto released = [&] {
        const auto f = broker_filters(broker, "gateway-01", "UNSUBSCRIBE");
        return std::find(f.begin(), f.end(), command_filter) != f.end();
    };
    ASSERT_TRUE(eventually(released, 20'000)) << "the expired session's filter is still held upstream";
    const auto lasted = std::chrono::steady_clock::now() - closed_at;
    EXPECT_GE(lasted, std::chrono::milliseconds(1900)) << "the session ended before its expiry";
    EXPECT_TRUE(eventually([&] { return spool_rows(spool, "local_session") == 0; }));

    ipc_client again(daemon.socket_path());
    EXPECT_FALSE(again.hello(session_hello("short", 2, "short-2")).session_present);
}

// welcome.session_expiry: the asked value, capped by ipc.session_expiry; 0 without a name.
TEST_F(IpcSessionTest, IPC43_WelcomeSessionExpiryIsTheAskedValueCappedByIpcSessionExpiry) {
    daemon_fixture daemon(broker, {.ipc = "session_expiry: 1m"});
    const std::vector<std::pair<std::uint32_t, std::uint32_t>> asked_granted{{3600, 60}, {60, 60}, {30, 30}, {0, 0}};
    int n = 0;
    for (const auto& [asked, granted] : asked_granted) {
        ipc_client c(daemon.socket_path());
        const auto w = c.hello(session_hello("capped-" + std::to_string(++n), asked, "capped"));
        EXPECT_EQ(w.version, 2);
        EXPECT_EQ(w.session_expiry, granted) << "asked " << asked;
    }
    ipc_client nameless(daemon.socket_path());
    const auto w = nameless.hello(ipc::hello{.version = 2, .app_name = "nameless", .thing = ""});
    EXPECT_EQ(w.version, 2);
    EXPECT_FALSE(w.session_present);
    EXPECT_EQ(w.session_expiry, 0U);
}

// ipc.max_sessions bounds the sessions kept beyond their connection (connected or not): past it a
// new session gets welcome.session_expiry 0, still serves its connection (deliveries with ids)
// and ends with it; a kept session can still be resumed.
TEST_F(IpcSessionTest, IPC43_PastIpcMaxSessionsANewSessionLastsOnlyAsLongAsItsConnection) {
    daemon_fixture daemon(broker, {.ipc = "max_sessions: 2"});
    auto a = std::make_unique<ipc_client>(daemon.socket_path());
    ipc_client b(daemon.socket_path());
    EXPECT_EQ(a->hello(session_hello("s1", 600, "s1-1")).session_expiry, 600U);
    EXPECT_EQ(b.hello(session_hello("s2", 600, "s2-1")).session_expiry, 600U);
    {
        ipc_client over(daemon.socket_path());
        const auto w = greet_and_subscribe(over, session_hello("s3", 600, "s3-1"));
        EXPECT_EQ(w.session_expiry, 0U) << "a third session kept with ipc.max_sessions 2";
        ASSERT_TRUE(marker_arrives(over, "served"));
        ASSERT_EQ(over.messages.size(), 1U);
        EXPECT_NE(over.messages.at(0).delivery_id, 0U) << "a session not kept is a session while it lasts";
        ack_all(over);
        EXPECT_TRUE(over.ping(1));
    }
    EXPECT_TRUE(log_has(daemon, "ipc.max_sessions")) << "no warning names the limit";
    ASSERT_TRUE(wait_gone(daemon, "s3-1"));
    {
        ipc_client c(daemon.socket_path());
        EXPECT_FALSE(c.hello(session_hello("s3", 600, "s3-2")).session_present) << "s3 outlived its connection";
    }
    a.reset();  // s1 is away: kept, so it still counts
    ASSERT_TRUE(wait_gone(daemon, "s1-1"));
    ipc_client fourth(daemon.socket_path());
    EXPECT_EQ(fourth.hello(session_hello("s4", 600, "s4-1")).session_expiry, 0U);
    ipc_client back(daemon.socket_path());
    const auto w = back.hello(session_hello("s1", 600, "s1-2"));
    EXPECT_TRUE(w.session_present);
    EXPECT_EQ(w.session_expiry, 600U) << "a kept session resumed needs no new place";
}

// A session belongs to uid, Thing and name: another user naming it gets a session of its own,
// neither the messages that wait for the first user's nor its connection.
TEST_F(IpcSessionTest, IPC43_AnotherUserCannotResumeOrTakeOverTheSession) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another user";
    shared_temp_dir dir;
    daemon_setup setup;
    setup.socket = dir.path() / "thingmux.sock";
    setup.apps += "  - name: nobody\n    match: { uid: 65534 }\n    subscribe: ['cmd/${thing}/#']\n";
    daemon_fixture daemon(broker, setup);
    const user_identity nobody{.uid = 65534, .gid = 65534, .groups = {65534}};
    subscribe_and_leave(daemon, session_hello("shared", 3600, "owner-1"));
    const auto away = cloud_sends(broker, 10, "away-");

    // nobody, while the owner is away: a new session; its first message is a marker the cloud
    // sends once it subscribed, so everything before it came from the owner's session.
    user_process intruder(nobody, [&](std::string& out) {
        ipc_client c(daemon.socket_path());
        const auto w = c.hello(session_hello("shared", 3600, "intruder"));
        out += "present " + std::to_string(w.session_present) + "\n";
        c.subscribe({command_filter});
        while (!c.closed()) {
            c.wait_messages(c.messages.size() + 1, 1000);
            const auto got = payloads_of(c.messages);
            const auto marker =
                std::find_if(got.begin(), got.end(), [](const std::string& p) { return p.starts_with("marker"); });
            if (marker == got.end()) continue;
            for (auto it = got.begin(); it != marker; ++it) out += "got " + *it + "\n";
            return 0;
        }
        out += "closed\n";
        return 1;
    });
    int round = 0;
    EXPECT_TRUE(eventually(
        [&] {
            publish_from_cloud(broker, command_topic, {"marker-" + std::to_string(++round)});
            return eventually([&] { return exited(intruder.pid()); }, 500);
        },
        20'000));
    const auto r = intruder.wait();
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output, "present 0\n") << "another uid got the owner's session";

    ipc_client owner(daemon.socket_path());
    EXPECT_TRUE(owner.hello(session_hello("shared", 3600, "owner-2")).session_present);
    EXPECT_EQ(wait_for_payloads(owner, away), 0U) << "the owner's waiting commands went elsewhere";
    ack_all(owner);

    // nobody again, while the owner is connected: its own session, no takeover of the owner's.
    const auto again = run_as_user(nobody, [&](std::string& out) {
        ipc_client c(daemon.socket_path());
        out += "present " + std::to_string(c.hello(session_hello("shared", 3600, "intruder-2")).session_present) + "\n";
        return 0;
    });
    EXPECT_EQ(again.output, "present 1\n") << "nobody's own session, kept from its first connection";
    EXPECT_TRUE(owner.ping(7)) << "the owner's connection was taken over by another uid";
    EXPECT_FALSE(owner.last_error.has_value()) << ipc::to_string(owner.last_error->code);
}

// The same name on another Thing is another session.
TEST(IpcSessionOfTwoThings, IPC43_TheSameNameOnAnotherThingIsAnotherSession) {
    broker_fixture broker({.things = {"gateway-01", "gateway-02"}});
    daemon_fixture daemon(broker, {.things = {"gateway-01", "gateway-02"}});
    ipc_client one(daemon.socket_path());
    EXPECT_FALSE(
        one
            .hello(ipc::hello{
                .version = 2, .app_name = "one", .thing = "gateway-01", .session_name = "x", .session_expiry = 600})
            .session_present);
    ipc_client other(daemon.socket_path());
    const auto w = other.hello(ipc::hello{
        .version = 2, .app_name = "other", .thing = "gateway-02", .session_name = "x", .session_expiry = 600});
    EXPECT_EQ(w.thing, "gateway-02");
    EXPECT_FALSE(w.session_present) << "gateway-01's session resumed on gateway-02";
    EXPECT_TRUE(one.ping(1));
    EXPECT_FALSE(one.last_error.has_value()) << "taken over from another Thing";
}

// What a session keeps while it has no connection is bounded by ipc.session_queue (topic +
// payload bytes): what does not fit is dropped, the oldest are kept, and later ones flow again.
TEST_F(IpcSessionTest, IPC43_WhatASessionKeepsWhileAwayIsBoundedByIpcSessionQueue) {
    daemon_fixture daemon(broker, {.ipc = "session_queue: 2KiB"});
    subscribe_and_leave(daemon, session_hello("bounded", 3600, "bounded-1"));
    // 120 bytes each (topic 20 + payload 100): 17 fit in 2 KiB.
    std::vector<std::string> flood;
    for (int i = 1; i <= 50; ++i) {
        auto p = std::to_string(i) + "-";
        flood.push_back(p + std::string(100 - p.size(), 'x'));
    }
    publish_from_cloud(broker, command_topic, flood);

    ipc_client again(daemon.socket_path());
    EXPECT_TRUE(again.hello(session_hello("bounded", 3600, "bounded-2")).session_present);
    ASSERT_TRUE(marker_arrives(again, "marker", acking::as_they_come)) << read_file(daemon.log_file());
    const auto kept = before(again, "marker");
    std::cout << "[ measured ] " << kept.size() << " of 50 messages of 120 bytes kept within ipc.session_queue 2 KiB\n";
    EXPECT_LE(kept.size(), 17U);
    EXPECT_GE(kept.size(), 8U) << "far less kept than the limit allows";
    EXPECT_EQ(kept, std::vector<std::string>(flood.begin(), flood.begin() + static_cast<std::ptrdiff_t>(kept.size())))
        << "not the oldest";
}

// QoS 0 messages are not kept for a session without a connection; a filter unsubscribed is no
// longer the session's, so nothing on it is kept either.
TEST_F(IpcSessionTest, IPC43_NeitherQoS0MessagesNorThoseOfAnUnsubscribedFilterAreKeptWhileAway) {
    daemon_fixture daemon(broker);
    const std::string dropped_filter = "dt/gateway-01/dropped/#";  // outside command_filter
    {
        ipc_client c(daemon.socket_path());
        greet_and_subscribe(c, session_hello("selective", 3600, "selective-1"));
        ASSERT_EQ(c.subscribe({dropped_filter}).at(0).code, ipc::errc::ok);
        ASSERT_EQ(c.unsubscribe({dropped_filter}).at(0).code, ipc::errc::ok);
    }
    ASSERT_TRUE(wait_gone(daemon, "selective-1"));
    ipc_client publisher(daemon.socket_path()), other(daemon.socket_path());
    ASSERT_TRUE(hello_connected(publisher, "publisher"));
    other.hello("other");  // holds the dropped filter upstream, so its messages do reach the daemon
    ASSERT_EQ(other.subscribe({dropped_filter}).at(0).code, ipc::errc::ok);
    for (int i = 1; i <= 5; ++i) {
        ASSERT_EQ(publisher.publish(command_topic, "qos0-" + std::to_string(i), 0).code, ipc::errc::ok);
        ASSERT_EQ(publisher.publish("dt/gateway-01/dropped/x", "unsubscribed-" + std::to_string(i), 1).code,
                  ipc::errc::ok);
    }
    ASSERT_EQ(wait_for_payloads(other, {"unsubscribed-5"}), 0U);

    ipc_client again(daemon.socket_path());
    EXPECT_TRUE(again.hello(session_hello("selective", 3600, "selective-2")).session_present);
    ASSERT_TRUE(marker_arrives(again, "marker"));
    EXPECT_EQ(before(again, "marker"), std::vector<std::string>{})
        << "kept a QoS 0 message or an unsubscribed filter's";
}

// IPC-46: a client that never acknowledges gets at most 256 deliveries awaiting acknowledgement;
// the rest wait in its session (the broker has its PUBACK for each), and come as acks make room.
TEST_F(IpcSessionTest, IPC46_ADaemonHoldsAtMost256DeliveriesAwaitingAcknowledgementOnAConnection) {
    daemon_fixture daemon(broker);
    ipc_client hoarder(daemon.socket_path());
    greet_and_subscribe(hoarder, session_hello("hoarder", 3600, "hoarder"));
    const auto sent = cloud_sends(broker, 300, "h-");
    const auto pubacks = [&] { return lines_containing(broker.log_file(), "Received PUBACK from gateway-01 ("); };
    ASSERT_TRUE(eventually([&] { return pubacks() >= sent.size(); }, 30'000))
        << pubacks() << " PUBACKs: the daemon did not take every message for the session";
    ASSERT_TRUE(hoarder.ping(1));  // every delivery made before the pong came before it
    EXPECT_EQ(hoarder.messages.size(), 256U);
    EXPECT_TRUE(all_distinct_and_nonzero(qos1_ids(hoarder.messages)));

    ack_all(hoarder);
    EXPECT_EQ(wait_for_payloads(hoarder, sent, acking::as_they_come), 0U) << hoarder.messages.size() << " delivered";
    EXPECT_EQ(hoarder.messages.size(), sent.size()) << "a message delivered twice on one connection";
    EXPECT_TRUE(hoarder.ping(2));
}

// ipc.max_sessions_per_uid bounds the kept sessions of one uid apart: past it, that uid's new
// session ends with its connection, while another uid still gets one kept.
TEST_F(IpcSessionTest, IPC43_PastIpcMaxSessionsPerUidOnlyThatUidsNewSessionsEndWithTheirConnection) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another user";
    shared_temp_dir dir;
    daemon_setup setup;
    setup.socket = dir.path() / "thingmux.sock";
    setup.ipc = "max_sessions_per_uid: 2";
    setup.apps += "  - name: nobody\n    match: { uid: 65534 }\n    subscribe: ['cmd/${thing}/#']\n";
    daemon_fixture daemon(broker, setup);
    ipc_client a(daemon.socket_path()), b(daemon.socket_path()), c(daemon.socket_path());
    EXPECT_EQ(a.hello(session_hello("u1", 600, "u1")).session_expiry, 600U);
    EXPECT_EQ(b.hello(session_hello("u2", 600, "u2")).session_expiry, 600U);
    EXPECT_EQ(c.hello(session_hello("u3", 600, "u3")).session_expiry, 0U) << "a third session kept for uid 0";
    EXPECT_TRUE(log_has(daemon, "ipc.max_sessions_per_uid")) << "no warning names the limit";
    const auto other = run_as_user({.uid = 65534, .gid = 65534, .groups = {65534}}, [&](std::string& out) {
        ipc_client n(daemon.socket_path());
        out = std::to_string(n.hello(session_hello("n1", 600, "n1")).session_expiry);
        return 0;
    });
    EXPECT_EQ(other.output, "600") << "another uid paid for uid 0's sessions";
}

// --- IPC-44: delivery ids and ack, frame by frame -------------------------------------------

// Delivery ids: distinct and non-zero for QoS 1 deliveries to a session; 0 for QoS 0 ones, and
// for every delivery on a version 2 connection without a session.
TEST_F(IpcSessionTest, IPC44_QoS1DeliveriesToASessionCarryDistinctNonZeroIdsAndTheOthers0) {
    daemon_fixture daemon(broker);
    ipc_client session(daemon.socket_path()), sessionless(daemon.socket_path()), publisher(daemon.socket_path());
    greet_and_subscribe(session, session_hello("ids", 3600, "ids"));
    greet_and_subscribe(sessionless, ipc::hello{.version = 2, .app_name = "sessionless", .thing = ""});
    publisher.hello("publisher");
    for (int i = 1; i <= 10; ++i) {
        ASSERT_EQ(publisher.publish(command_topic, "q1-" + std::to_string(i), 1).code, ipc::errc::ok);
        ASSERT_EQ(publisher.publish(command_topic, "q0-" + std::to_string(i), 0).code, ipc::errc::ok);
    }
    ASSERT_TRUE(session.wait_messages(20));
    ASSERT_TRUE(sessionless.wait_messages(20));
    std::vector<std::uint32_t> q1_ids;
    for (const auto& m : session.messages) {
        if (m.payload.starts_with("q1-")) {
            EXPECT_EQ(m.qos, 1);
            q1_ids.push_back(m.delivery_id);
        } else {
            EXPECT_EQ(m.qos, 0);
            EXPECT_EQ(m.delivery_id, 0U) << m.payload;
        }
    }
    EXPECT_EQ(q1_ids.size(), 10U);
    EXPECT_TRUE(all_distinct_and_nonzero(q1_ids));
    for (const auto& m : sessionless.messages) EXPECT_EQ(m.delivery_id, 0U) << m.payload;
    ack_all(session);
    EXPECT_TRUE(session.ping(1));
}

// An ack must name a delivery awaiting acknowledgement on this connection: an id never given (with
// or without a session) or one already acknowledged is a protocol violation; id 0 is malformed,
// and so is an ack on a version 1 connection, where the type does not exist.
TEST_F(IpcSessionTest, IPC44_AnAckOfAnIdNotAwaitingAcknowledgementClosesTheConnection) {
    daemon_fixture daemon(broker);
    ipc_client twice(daemon.socket_path());
    greet_and_subscribe(twice, session_hello("twice", 3600, "twice"));
    publish_from_cloud(broker, command_topic, {"a", "b"});
    ASSERT_TRUE(twice.wait_messages(2));
    twice.ack(twice.messages.at(0).delivery_id);
    ASSERT_TRUE(twice.ping(1)) << "a first ack closed the connection";
    twice.ack(twice.messages.at(0).delivery_id);
    EXPECT_TRUE(twice.wait_closed());
    ASSERT_TRUE(twice.last_error.has_value()) << "an ack of an acknowledged delivery was taken";
    EXPECT_EQ(twice.last_error->code, ipc::errc::protocol_violation) << twice.last_error->message;

    struct bad_ack {
        const char* what;
        ipc::hello hello;
        std::vector<std::uint8_t> ack;
        ipc::errc expected;
    };
    const std::vector<bad_ack> cases{
        {"an id never given", session_hello("never", 3600, "never"), x("00 00 00 05 06 00 00 30 39"),
         ipc::errc::protocol_violation},
        {"an ack without a session", ipc::hello{.version = 2, .app_name = "nameless", .thing = ""},
         x("00 00 00 05 06 00 00 00 01"), ipc::errc::protocol_violation},
        {"delivery id 0", session_hello("zero", 3600, "zero"), x("00 00 00 05 06 00 00 00 00"),
         ipc::errc::malformed_frame},
        {"an ack in version 1", ipc::hello{.version = 1, .app_name = "v1", .thing = ""},
         x("00 00 00 05 06 00 00 00 01"), ipc::errc::malformed_frame},
    };
    for (const auto& c : cases) {
        ipc_client conn(daemon.socket_path());
        conn.hello(c.hello);
        conn.send_raw(c.ack);
        EXPECT_TRUE(conn.wait_closed()) << c.what;
        ASSERT_TRUE(conn.last_error.has_value()) << c.what;
        EXPECT_EQ(conn.last_error->code, c.expected) << c.what << ": " << conn.last_error->message;
    }
}

// A delivery not acknowledged when its connection ends comes again, once, to the next connection
// of the session, with an id of that connection; an acknowledged one does not.
TEST_F(IpcSessionTest, IPC44_AnUnacknowledgedDeliveryComesAgainToTheNextConnectionAndAnAcknowledgedOneDoesNot) {
    daemon_fixture daemon(broker);
    const auto sent = numbered(10, "r-");
    std::vector<std::string> unacked;
    {
        ipc_client first(daemon.socket_path());
        greet_and_subscribe(first, session_hello("redeliver", 3600, "redeliver-1"));
        publish_from_cloud(broker, command_topic, sent);
        ASSERT_EQ(wait_for_payloads(first, sent), 0U);
        ASSERT_EQ(first.messages.size(), sent.size());
        for (std::size_t i = 0; i < first.messages.size(); ++i) {
            if (i % 2 == 0) {
                first.ack(first.messages[i].delivery_id);
            } else {
                unacked.push_back(first.messages[i].payload);
            }
        }
        ASSERT_TRUE(first.ping(1)) << "the acks were not taken";
    }
    ASSERT_TRUE(wait_gone(daemon, "redeliver-1"));

    {
        ipc_client second(daemon.socket_path());
        EXPECT_TRUE(second.hello(session_hello("redeliver", 3600, "redeliver-2")).session_present);
        ASSERT_TRUE(marker_arrives(second, "marker-1"));
        EXPECT_EQ(before(second, "marker-1"), unacked) << "exactly the unacknowledged ones, in order";
        EXPECT_TRUE(all_distinct_and_nonzero(qos1_ids(second.messages)));
        ack_all(second);
        ASSERT_TRUE(second.ping(1)) << "the new ids were not the new connection's";
    }
    ASSERT_TRUE(wait_gone(daemon, "redeliver-2"));

    ipc_client third(daemon.socket_path());
    EXPECT_TRUE(third.hello(session_hello("redeliver", 3600, "redeliver-3")).session_present);
    ASSERT_TRUE(marker_arrives(third, "marker-2"));
    EXPECT_EQ(before(third, "marker-2"), std::vector<std::string>{}) << "acknowledged deliveries came again";
}

// --- IPC-46: both versions side by side ------------------------------------------------------

TEST_F(IpcSessionTest, IPC46_Version1ClientsWorkUnchangedNextToVersion2Ones) {
    daemon_fixture daemon(broker);
    ipc_client v1(daemon.socket_path()), v2(daemon.socket_path());
    const auto w1 = greet_and_subscribe(v1, ipc::hello{.version = 1, .app_name = "v1", .thing = ""});
    EXPECT_EQ(w1.version, 1);
    greet_and_subscribe(v2, session_hello("v2", 3600, "v2"));
    const auto commands = cloud_sends(broker, 20, "c-");
    EXPECT_EQ(wait_for_payloads(v1, commands), 0U);
    EXPECT_EQ(wait_for_payloads(v2, commands), 0U);
    EXPECT_EQ(v1.messages.size(), commands.size());
    EXPECT_EQ(v2.messages.size(), commands.size());
    ack_all(v2);
    EXPECT_EQ(v1.publish("dt/gateway-01/v1", "1").code, ipc::errc::ok);
    EXPECT_EQ(v2.publish("dt/gateway-01/v2", "2").code, ipc::errc::ok);
    EXPECT_TRUE(v1.ping(1));
    EXPECT_TRUE(v2.ping(1));
}

// --- hostile hellos --------------------------------------------------------------------------

// IPC-7, IPC-43: a session name over 256 bytes, one that is not UTF-8 or holds U+0000, and a
// session expiry without a name make the hello malformed: error malformed_frame saying why, then close. 256 bytes is a
// name.
TEST_F(IpcSessionTest, IPC43_ALongSessionNameOrAnExpiryWithoutANameIsAMalformedHello) {
    daemon_fixture daemon(broker);
    const std::string longest(ipc::max_session_name, 'n');
    const std::vector<std::pair<std::vector<std::uint8_t>, std::string>> cases{
        {frame(0x01, cat({x("00 02"), s("app"), s(""), s(longest + "n"), x("00 00 0e 10")})),
         "session name is 257 bytes, longer than 256"},
        {frame(0x01, cat({x("00 02"), s("app"), s(""), s(""), x("00 00 0e 10")})),
         "session expiry without a session name"},
        {frame(0x01, cat({x("00 02"), s("app"), s(""), s("s\xff"), x("00 00 0e 10")})),
         "session name is not valid UTF-8 or contains U+0000"},
        {frame(0x01, cat({x("00 02"), s("app"), s(""), s(std::string("s\0t", 3)), x("00 00 0e 10")})),
         "session name is not valid UTF-8 or contains U+0000"},
    };
    for (const auto& [bytes, why] : cases) {
        ipc_client c(daemon.socket_path());
        c.send_raw(bytes);
        EXPECT_TRUE(c.wait_closed()) << why;
        ASSERT_TRUE(c.last_error.has_value()) << why;
        EXPECT_EQ(c.last_error->code, ipc::errc::malformed_frame) << why;
        EXPECT_NE(c.last_error->message.find(why), std::string::npos) << c.last_error->message;
    }
    ipc_client ok(daemon.socket_path());
    const auto w = ok.hello(session_hello(longest, 60, "longest"));
    EXPECT_EQ(w.version, 2);
    EXPECT_EQ(w.session_expiry, 60U);
}

// A session name is text from outside: in every log line about the session (new, kept, resumed,
// taken over) it is escaped, so that no app can forge a line or steer a terminal.
TEST_F(IpcSessionTest, IPC43_ASessionNameCannotForgeLogLines) {
    daemon_fixture daemon(broker);
    const std::string forged = "s\n[info] client connected uid 0 (root)\x1b[31m";
    subscribe_and_leave(daemon, session_hello(forged, 3600, "forger-1"));
    {
        ipc_client first(daemon.socket_path()), second(daemon.socket_path());
        EXPECT_TRUE(first.hello(session_hello(forged, 3600, "forger-2")).session_present);
        EXPECT_TRUE(second.hello(session_hello(forged, 3600, "forger-3")).session_present);
        EXPECT_TRUE(first.wait_closed());
        ASSERT_TRUE(first.last_error.has_value());
        EXPECT_EQ(first.last_error->code, ipc::errc::session_taken_over);
    }
    EXPECT_EQ(daemon.stop(), 0);

    const auto log = read_file(daemon.log_file());
    for (const auto& line : lines_of(daemon.log_file()))
        EXPECT_FALSE(line.starts_with("[info] client connected")) << "forged line: " << line;
    EXPECT_EQ(log.find('\x1b'), std::string::npos) << "raw ESC in the log";
    EXPECT_GE(count_of(log, "'s\\n[info] client connected uid 0 (root)\\x1b[31m'"), 3U)
        << "the name, escaped, in the lines about its session:\n"
        << lines_with(log, "session");
}

}  // namespace
}  // namespace thingmux::test
