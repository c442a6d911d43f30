// libthingmux and thingmuxctl against the real thingmuxd and the real AWS-like broker.
#include "tests/support/daemon_fixture.hpp"

#include <thingmux/client.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <mutex>
#include <optional>
#include <set>

namespace thingmux::test {
namespace {

using namespace std::chrono_literals;

// Payloads a handler received, safe to read from the test thread.
struct inbox {
    std::mutex m;
    std::multiset<std::string> payloads;
    void add(const std::string& p) {
        std::lock_guard l(m);
        payloads.insert(p);
    }
    std::size_t distinct() {
        std::lock_guard l(m);
        return std::set<std::string>(payloads.begin(), payloads.end()).size();
    }
    bool has(const std::string& p) {
        std::lock_guard l(m);
        return payloads.count(p) > 0;
    }
};

options app_options(const daemon_fixture& d, const std::string& name) {
    options o;
    o.socket_path = d.socket_path().string();
    o.app_name = name;
    return o;
}

TEST(Libthingmux, AppResumesReceivingAfterDaemonRestartWithoutAppCode) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    inbox got;
    client app(app_options(daemon, "controller"));
    app.start();
    ASSERT_TRUE(app.connect().get().ok());
    const auto sub = app.subscribe("cmd/gateway-01/#", 1, [&](const message& m) { got.add(m.payload); }).get();
    ASSERT_TRUE(sub.ok()) << sub.message;

    publish_from_cloud(broker, "cmd/gateway-01/x", numbered(10, "before-"));
    ASSERT_TRUE(eventually([&] { return got.distinct() == 10; }));

    ASSERT_EQ(daemon.stop(), 0);
    daemon.start();
    // The restarted daemon knows the filter only from the app's automatic re-subscribe; it
    // shows as a second SUBSCRIBE upstream.
    ASSERT_TRUE(eventually([&] {
        const auto f = broker_filters(broker, "gateway-01");
        return std::count(f.begin(), f.end(), "cmd/gateway-01/#") == 2;
    }, 20'000)) << read_file(daemon.log_file());
    publish_from_cloud(broker, "cmd/gateway-01/x", numbered(10, "after-"));
    ASSERT_TRUE(eventually([&] { return got.distinct() == 20; }, 20'000)) << got.distinct();
    for (int i = 1; i <= 10; ++i) EXPECT_TRUE(got.has("after-" + std::to_string(i)));
    EXPECT_EQ(app.current_state().daemon, daemon_state::connected);
}

TEST(Libthingmux, PublishWhileDaemonIsAwayFailsFastWithAClearError) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    client app(app_options(daemon, "sensor"));
    app.start();
    ASSERT_TRUE(app.connect().get().ok());
    ASSERT_TRUE(app.publish({.topic = "dt/gateway-01/t", .payload = "1", .qos = 1}).get().ok());
    daemon.kill();
    ASSERT_TRUE(eventually([&] { return app.current_state().daemon != daemon_state::connected; }));
    const auto r = app.publish({.topic = "dt/gateway-01/t", .payload = "2", .qos = 1}).get();
    EXPECT_EQ(r.code, error_code::not_connected) << r.message;
    EXPECT_FALSE(r.message.empty());
}

// Options of an app with the session `name`.
options session_options(const daemon_fixture& d, const std::string& name) {
    auto o = app_options(d, name);
    o.session_name = name;
    return o;
}

// Starts `app` and connects it; the daemon's welcome as the library keeps it (none: not connected).
std::optional<daemon_info> started(client& app) {
    app.start();
    const auto connected = app.connect().get();
    EXPECT_TRUE(connected.ok()) << connected.message;
    return app.daemon();
}

TEST(Libthingmux, IPC46_TheDaemonGrantsTheSessionAnAppNames) {
    // thingmuxd speaks version 3: the library's version 3 hello is welcomed with the session
    // (kept up to ipc.session_expiry, 1 day by default, as the library asks by default), and
    // the next connection under that name resumes it.
    broker_fixture broker;
    daemon_fixture daemon(broker);
    const auto o = session_options(daemon, "recorder");
    {
        client app(o);
        const auto info = started(app);
        ASSERT_TRUE(info);
        EXPECT_EQ(info->protocol_version, 3);
        EXPECT_FALSE(info->session_present);
        EXPECT_GT(info->session_expiry, 0s);
        EXPECT_EQ(info->session_expiry, o.session_expiry);

        inbox got;
        const auto sub = app.subscribe("cmd/gateway-01/#", 1, [&](const message& m) { got.add(m.payload); }).get();
        ASSERT_TRUE(sub.ok()) << sub.message;
        publish_from_cloud(broker, "cmd/gateway-01/x", numbered(5, "n-"));
        ASSERT_TRUE(eventually([&] { return got.distinct() == 5; })) << got.distinct();
    }
    client again(o);
    const auto info = started(again);
    ASSERT_TRUE(info);
    EXPECT_EQ(info->protocol_version, 3);
    EXPECT_TRUE(info->session_present);
}

// IPC-43 through the library (docs/libthingmux.md, *Sessions*): an app started again (a new
// client, as after a restart of its process) with the default options and the same session name
// gets the QoS 1 messages that waited for its session once it subscribes again with its handler.
TEST(Libthingmux, IPC43_AnAppStartedAgainGetsTheMessagesThatWaitedForItsSession) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    const auto o = session_options(daemon, "recorder");
    {
        client app(o);
        ASSERT_TRUE(started(app));
        ASSERT_TRUE(app.subscribe("cmd/gateway-01/#", 1, [](const message&) {}).get().ok());
    }
    publish_from_cloud(broker, "cmd/gateway-01/x", numbered(10, "waited-"));

    inbox got;
    client again(o);
    const auto info = started(again);
    ASSERT_TRUE(info);
    EXPECT_TRUE(info->session_present);
    ASSERT_TRUE(again.subscribe("cmd/gateway-01/#", 1, [&](const message& m) { got.add(m.payload); }).get().ok());
    EXPECT_TRUE(eventually([&] { return got.distinct() == 10; }))
        << got.distinct() << " of the 10 messages that waited for the session reached the app's handler";
}

// ---------------------------------------------------------------------------------------------
// Timeouts, registration, listeners and consume (docs/libthingmux.md) while the broker goes away

// A started, connected app whose Thing's uplink is connected.
void connected_app(client& app) {
    app.start();
    const auto r = app.connect().get();
    ASSERT_TRUE(r.ok()) << r.message;
    ASSERT_TRUE(eventually([&] { return app.current_state().uplink == uplink_state::connected; }, 15'000));
}

// Stops the broker and waits until the app hears that the uplink is down.
void broker_down(broker_fixture& broker, client& app) {
    broker.stop();
    ASSERT_TRUE(eventually([&] { return app.current_state().uplink != uplink_state::connected; }, 15'000));
}

TEST(Libthingmux, ATimeoutWhileTheBrokerIsDownCompletesOnceAndTheLateSubackIsCounted) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    client app(app_options(daemon, "controller"));
    connected_app(app);
    broker_down(broker, app);

    // A new filter needs the broker's SUBACK, which cannot come now: both forms time out.
    std::mutex m;
    std::vector<result> completions;
    inbox got;
    const auto handle = app.subscribe("cmd/gateway-01/a/#", 1, [&](const message& msg) { got.add(msg.payload); },
                                      {.timeout = 300ms}, [&](const result& r) {
                                          std::lock_guard l(m);
                                          completions.push_back(r);
                                      });
    auto fut = app.subscribe("cmd/gateway-01/b/#", 1, [](const message&) {}, request_options{.timeout = 300ms});
    ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(fut.get().code, error_code::timed_out);
    ASSERT_TRUE(eventually([&] { return handle.done(); }));
    {
        std::lock_guard l(m);
        ASSERT_EQ(completions.size(), 1U);
        EXPECT_EQ(completions[0].code, error_code::timed_out) << completions[0].message;
    }
    EXPECT_EQ(app.counters().timed_out, 2U);

    // The broker comes back: the daemon subscribes upstream and answers; those answers are
    // dropped (counted), and the handler that stayed registered gets the filter's messages.
    broker.start();
    ASSERT_TRUE(eventually([&] { return app.counters().late_results == 2; }, 30'000))
        << app.counters().late_results << "\n" << read_file(daemon.log_file());
    publish_from_cloud(broker, "cmd/gateway-01/a/x", numbered(5, "after-"));
    ASSERT_TRUE(eventually([&] { return got.distinct() == 5; }, 15'000)) << got.distinct();
    std::lock_guard l(m);
    EXPECT_EQ(completions.size(), 1U) << "completed twice";
}

TEST(Libthingmux, IPC61_ASubscribeCompletesAtRegistrationWhileTheBrokerIsDownAndMessagesFollowItsReturn) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    client app(app_options(daemon, "controller"));
    connected_app(app);
    std::vector<std::string> lost;
    app.on_subscription_lost([&](const std::string& f, const result&) { lost.push_back(f); });
    broker_down(broker, app);

    inbox got;
    auto fut = app.subscribe("cmd/gateway-01/#", 1, [&](const message& msg) { got.add(msg.payload); },
                             {.timeout = 10s, .complete_at = subscribe_completion::registered});
    ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
    const auto r = fut.get();
    EXPECT_EQ(r.code, error_code::ok) << r.message;
    EXPECT_EQ(r.message, "registered; waiting for the broker's SUBACK");
    EXPECT_EQ(r.reason_code, 1);

    broker.start();
    ASSERT_TRUE(eventually([&] {
        const auto f = broker_filters(broker, "gateway-01");
        return std::count(f.begin(), f.end(), "cmd/gateway-01/#") == 1;
    }, 30'000)) << read_file(daemon.log_file());
    ASSERT_TRUE(eventually([&] { return app.current_state().uplink == uplink_state::connected; }, 15'000));
    publish_from_cloud(broker, "cmd/gateway-01/x", numbered(10, "back-"));
    ASSERT_TRUE(eventually([&] { return got.distinct() == 10; }, 15'000)) << got.distinct();
    EXPECT_EQ(app.counters().late_results, 0U) << "the final answer is expected, not late";
    EXPECT_EQ(app.counters().timed_out, 0U);
    EXPECT_TRUE(lost.empty());
}

TEST(Libthingmux, TwoStateListenersBothSeeEveryChange) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    client app(app_options(daemon, "watcher"));
    std::mutex m;
    std::vector<uplink_state> first;
    std::vector<uplink_state> second;
    app.add_state_listener([&](const state& s) {
        std::lock_guard l(m);
        first.push_back(s.uplink);
    });
    app.add_state_listener([&](const state& s) {
        std::lock_guard l(m);
        second.push_back(s.uplink);
    });
    connected_app(app);
    broker_down(broker, app);
    broker.start();
    ASSERT_TRUE(eventually([&] { return app.current_state().uplink == uplink_state::connected; }, 30'000));
    // The change to connected may still be on its way to the listeners.
    ASSERT_TRUE(eventually([&] {
        std::lock_guard l(m);
        return !second.empty() && second.back() == uplink_state::connected;
    }));
    std::lock_guard l(m);
    EXPECT_EQ(first, second);
    EXPECT_NE(std::find(first.begin(), first.end(), uplink_state::backing_off), first.end());
    EXPECT_GE(first.size(), 4U) << "unknown, connected, backing_off, connected at least";
}

TEST(Libthingmux, ConsumeGetsTheMessagesInOrder) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    client app(app_options(daemon, "reader"));
    app.start_consuming({.capacity = 100});
    connected_app(app);
    ASSERT_TRUE(app.subscribe("cmd/gateway-01/#", 1, nullptr).get().ok());
    const auto sent = numbered(20, "c-");
    publish_from_cloud(broker, "cmd/gateway-01/x", sent);
    std::vector<std::string> got;
    while (got.size() < sent.size()) {
        const auto msg = app.consume(10s);
        if (!msg) break;
        EXPECT_EQ(msg->topic, "cmd/gateway-01/x");
        got.push_back(msg->payload);
    }
    EXPECT_EQ(got, sent);
    EXPECT_FALSE(app.try_consume()) << "one copy of each";
    EXPECT_EQ(app.counters().consume_dropped, 0U);
}

// A refusal names the program and the subcommand once, then the code and the daemon's reason: a
// script or a wrapper sees one self-describing line on stderr, and nothing on stdout.
TEST(Thingmuxctl, ARefusalIsOneLineNamingProgramAndSubcommandOnce) {
    broker_fixture broker;
    daemon_setup setup;
    setup.apps =
        "  - name: root\n    match: { uid: 0 }\n    publish: ['dt/${thing}/#']\n    subscribe: ['cmd/${thing}/x']\n";
    daemon_fixture daemon(broker, setup);
    const std::string ctl = std::string(THINGMUX_BIN_DIR) + "/thingmuxctl";
    const std::string sock = daemon.socket_path().string();

    std::string out;
    ASSERT_EQ(
        run_command({ctl, "--socket", sock, "pub", "-q", "1", "-t", "cmd/gateway-01/actuator", "-m", "reboot"}, &out),
        1);
    EXPECT_EQ(out,
              "thingmuxctl pub: refused: not_authorized: not authorized to publish to 'cmd/gateway-01/actuator' on "
              "Thing gateway-01: none of the rules that apply (root) grants it; add 'cmd/gateway-01/actuator', or a "
              "filter that matches it, to publish: of rule 'root' under apps: in the thingmuxd configuration, then "
              "reload thingmuxd\n");
    ASSERT_EQ(run_command({ctl, "--socket", sock, "sub", "-t", "cmd/gateway-01/#", "-C", "1"}, &out), 1);
    EXPECT_EQ(out,
              "thingmuxctl sub: \"cmd/gateway-01/#\" refused: not_authorized: not authorized to subscribe to "
              "'cmd/gateway-01/#' on Thing gateway-01: none of the rules that apply (root) grants it; add "
              "'cmd/gateway-01/#', or a filter that covers it, to subscribe: of rule 'root' under apps: in the "
              "thingmuxd configuration, then reload thingmuxd\n");
    ASSERT_EQ(run_command({ctl, "--socket", sock, "pub", "-t", "dt/gateway-01/+", "-m", "x"}, &out), 2);
    EXPECT_EQ(out,
              "thingmuxctl pub: \"dt/gateway-01/+\" is not a valid topic name (no '+' or '#', not empty, UTF-8)\n");
}

TEST(Thingmuxctl, PubAndSubWorkThroughTheDaemon) {
    broker_fixture broker;
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_fixture daemon(broker);
    const std::string ctl = std::string(THINGMUX_BIN_DIR) + "/thingmuxctl";
    const std::string sock = daemon.socket_path().string();

    std::string out;
    ASSERT_EQ(run_command({ctl, "--socket", sock, "pub", "-q", "1", "-t", "dt/gateway-01/ctl", "-m", "hello"}, &out), 0) << out;
    ASSERT_GE(cloud.wait_for(1, 10'000), 1U);
    EXPECT_EQ(cloud.lines().at(0), "dt/gateway-01/ctl hello");

    const auto sub_out = broker.dir() / "ctl-sub.out";
    child_process sub({ctl, "--socket", sock, "sub", "-q", "1", "-t", "cmd/gateway-01/ctl", "-C", "3", "-v"}, sub_out);
    // The subscription is live once the daemon sent it upstream.
    ASSERT_TRUE(eventually([&] {
        const auto f = broker_filters(broker, "gateway-01");
        return std::count(f.begin(), f.end(), "cmd/gateway-01/ctl") == 1;
    }));
    publish_from_cloud(broker, "cmd/gateway-01/ctl", numbered(3, "c"));
    const auto status = sub.wait(15'000);
    ASSERT_TRUE(status.has_value()) << "thingmuxctl sub -C 3 did not exit";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
    EXPECT_EQ(read_file(sub_out), "cmd/gateway-01/ctl c1\ncmd/gateway-01/ctl c2\ncmd/gateway-01/ctl c3\n");

    ASSERT_EQ(run_command({ctl, "--socket", sock, "status"}, &out), 0) << out;
    EXPECT_NE(out.find("gateway-01"), std::string::npos) << out;

    // Refused locally before anything is sent: a usage error.
    ASSERT_EQ(run_command({ctl, "--socket", sock, "pub", "-q", "1", "-t", "dt/gateway-01/+", "-m", "x"}, &out), 2);
    EXPECT_NE(out.find("not a valid topic name"), std::string::npos) << out;
    // Refused by the broker (outside the Thing's policy): the reason comes back end to end.
    ASSERT_EQ(run_command({ctl, "--socket", sock, "pub", "-q", "1", "-t", "dt/gateway-02/x", "-m", "x"}, &out), 1);
    EXPECT_NE(out.find("broker_refused"), std::string::npos) << out;

    daemon.stop();
    EXPECT_EQ(run_command({ctl, "--socket", sock, "pub", "-t", "dt/gateway-01/ctl", "-m", "late"}, &out), 3);
    EXPECT_NE(out.find("thingmuxd"), std::string::npos) << out;
}

}  // namespace
}  // namespace thingmux::test
