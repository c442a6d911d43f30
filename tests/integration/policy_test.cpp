// Configuration, local authorization and the guardrails that protect the shared session, end to
// end: the real thingmuxd reading a real configuration file, the AWS-like mosquitto, raw IPC
// clients, and peers running under other uids and groups (the test runs as root and forks).
#include "tests/support/as_user.hpp"
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/peer_process.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

namespace thingmux::test {
namespace {

const std::string thingmuxd = std::string(THINGMUX_BIN_DIR) + "/thingmuxd";

ipc::result publish(ipc_client& c, ipc::publish p) {
    const auto id = p.request_id;
    c.send(p);
    auto m = c.result_of(id);
    if (!m || !std::holds_alternative<ipc::publish_result>(*m))
        return {.code = ipc::errc::internal_error, .mqtt_reason_code = 0, .message = "no publish_result"};
    return std::get<ipc::publish_result>(*m).outcome;
}

class PolicyTest : public ::testing::Test {
protected:
    broker_fixture broker;
};

// --- configuration -------------------------------------------------------------------------

TEST_F(PolicyTest, CheckConfigExitsZeroForAUsableFileAndOneNamingEveryProblemAtFileLineColumn) {
    daemon_fixture daemon(broker);
    std::string out;
    ASSERT_EQ(run_command({thingmuxd, "--check-config", "--config", daemon.config_file().string()}, &out), 0) << out;
    EXPECT_NE(out.find("OK: 1 Thing(s), 1 app rule(s)"), std::string::npos) << out;

    // Two mistakes in one file: a certificate that does not exist and a misspelt key. Both are
    // reported, each with its position.
    auto yaml = daemon.config_yaml();
    const auto cert = broker.thing("gateway-01").cert.string();
    yaml.replace(yaml.find(cert), cert.size(), "/nonexistent/gateway-01.crt");
    yaml.replace(yaml.find("    protocol:"), 13, "    protocoll:");
    const auto broken = broker.dir() / "broken.yaml";
    std::ofstream(broken) << yaml;
    ASSERT_EQ(run_command({thingmuxd, "--check-config", "--config", broken.string()}, &out), 1) << out;
    EXPECT_NE(out.find(broken.string() + ":5:5: things[0].protocoll"), std::string::npos) << out;
    EXPECT_NE(out.find(broken.string() + ":7:11: things[0].cert"), std::string::npos) << out;
    EXPECT_NE(out.find("/nonexistent/gateway-01.crt"), std::string::npos) << out;

    // The daemon refuses to start on it, with the same messages.
    ASSERT_EQ(run_command({thingmuxd, "--config", broken.string()}, &out), 1) << out;
    EXPECT_NE(out.find("/nonexistent/gateway-01.crt"), std::string::npos) << out;
    EXPECT_NE(out.find("not starting"), std::string::npos) << out;

    ASSERT_EQ(run_command({thingmuxd, "--check-config", "--config", (broker.dir() / "missing.yaml").string()}, &out), 1);
    EXPECT_NE(out.find("missing.yaml"), std::string::npos) << out;
}

// --- local authorization ---------------------------------------------------------------------

// Runs `body` as another user, connected to the daemon; `out` collects what went wrong.
as_user_result as_peer(const user_identity& who, const std::filesystem::path& socket,
                       const std::function<void(ipc_client&, std::string& out)>& body) {
    return run_as_user(who, [&](std::string& out) {
        ipc_client c(socket);
        body(c, out);
        return out.empty() ? 0 : 1;
    });
}

void expect_code(std::string& out, const std::string& what, const ipc::result& r, ipc::errc code,
                 const std::string& text = {}) {
    if (r.code != code) out += what + ": got " + ipc::to_string(r.code) + " (" + r.message + ")\n";
    if (!text.empty() && r.message.find(text) == std::string::npos) out += what + ": message lacks '" + text + "': " + r.message + "\n";
}

TEST_F(PolicyTest, AppsAreAuthorizedByUidUserAndGroupFromTheKernelWithVariablesExpanded) {
    shared_temp_dir dir;
    observer_subscription cloud(broker, "dt/#");
    observer_subscription jobs(broker, "$aws/things/gateway-01/jobs/#", "observer-jobs");
    ASSERT_TRUE(jobs.wait_ready());
    ASSERT_TRUE(cloud.wait_ready());
    daemon_setup setup;
    setup.socket = dir.path() / "thingmux.sock";
    setup.apps = "  - name: sensors\n"
                 "    match: { user: nobody }\n"
                 "    publish: ['dt/${thing}/${user}/#']\n"
                 "    subscribe: ['cmd/${thing}/#']\n"
                 "  - name: operators\n"
                 "    match: { group: users }\n"
                 "    publish: ['$aws/things/${thing}/jobs/#']\n";
    daemon_fixture daemon(broker, setup);
    const auto sock = daemon.socket_path();

    // nobody, primary group only: the sensors rule.
    auto r = as_peer({.uid = 65534, .gid = 65534, .groups = {65534}}, sock, [](ipc_client& c, std::string& out) {
        const auto w = c.hello("sensor");
        if (w.thing != "gateway-01") out += "no welcome\n";
        if (w.link != ipc::link_state::connected && !c.wait_state(ipc::link_state::connected)) out += "never connected\n";
        expect_code(out, "own topic", c.publish("dt/gateway-01/nobody/temp", "n1"), ipc::errc::ok);
        expect_code(out, "another user's topic", c.publish("dt/gateway-01/daemon/temp", "x"), ipc::errc::not_authorized,
                    "(sensors)");
        expect_code(out, "operators' reserved topic", c.publish("$aws/things/gateway-01/jobs/start-next", "{}"),
                    ipc::errc::not_authorized);
        expect_code(out, "granted filter", c.subscribe({"cmd/gateway-01/#"}).at(0), ipc::errc::ok);
        expect_code(out, "wider filter", c.subscribe({"cmd/#"}).at(0), ipc::errc::not_authorized, "subscribe to 'cmd/#'");
    });
    EXPECT_EQ(r.exit_code, 0) << r.output;

    // nobody with the supplementary group users: both rules apply.
    r = as_peer({.uid = 65534, .gid = 65534, .groups = {65534, 100}}, sock, [](ipc_client& c, std::string& out) {
        c.hello("operator");
        expect_code(out, "group's topic", c.publish("$aws/things/gateway-01/jobs/start-next", R"({"statusDetails":{"by":"o1"}})"),
                    ipc::errc::ok);
        expect_code(out, "own topic", c.publish("dt/gateway-01/nobody/temp", "n2"), ipc::errc::ok);
    });
    EXPECT_EQ(r.exit_code, 0) << r.output;

    // uid 1 (daemon): no rule applies, and root (this process) is not special either.
    r = as_peer({.uid = 1, .gid = 1, .groups = {}}, sock, [](ipc_client& c, std::string& out) {
        c.send(ipc::hello{.version = ipc::protocol_version, .app_name = "stranger", .thing = {}});
        c.wait_closed();
        if (!c.last_error || c.last_error->code != ipc::errc::not_authorized ||
            c.last_error->message.find("uid 1 (daemon)") == std::string::npos)
            out += "expected not_authorized naming uid 1 (daemon), got " +
                   (c.last_error ? c.last_error->message : std::string("nothing")) + "\n";
    });
    EXPECT_EQ(r.exit_code, 0) << r.output;
    ipc_client root(sock);
    root.send(ipc::hello{.version = ipc::protocol_version, .app_name = "root", .thing = {}});
    ASSERT_TRUE(root.wait_closed());
    ASSERT_TRUE(root.last_error.has_value());
    EXPECT_EQ(root.last_error->code, ipc::errc::not_authorized);

    // Exactly the three granted publishes reached the broker; denials never left the device.
    ASSERT_GE(cloud.wait_for(2, 10'000), 2U);
    ASSERT_GE(jobs.wait_for(1, 10'000), 1U);
    auto lines = cloud.lines();
    EXPECT_EQ(std::set<std::string>(lines.begin(), lines.end()),
              (std::set<std::string>{"dt/gateway-01/nobody/temp n1", "dt/gateway-01/nobody/temp n2"}));
    EXPECT_EQ(lines.size(), 2U);
    // The Jobs request went with the daemon's clientToken put in (docs/services.md), the rest as sent.
    const auto job_lines = jobs.lines();
    ASSERT_EQ(job_lines.size(), 1U);
    EXPECT_TRUE(job_lines[0].starts_with(R"($aws/things/gateway-01/jobs/start-next {"clientToken":"tmx-)")) << job_lines[0];
    EXPECT_TRUE(job_lines[0].ends_with(R"(","statusDetails":{"by":"o1"}})")) << job_lines[0];
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
    EXPECT_TRUE(log_has(daemon, "not authorized to publish to 'dt/gateway-01/daemon/temp'"));
}

TEST_F(PolicyTest, AppsAreAuthorizedByTheirSystemdUnitWithTheUnitVariableExpanded) {
    const std::string unit = "thingmux-test-" + std::to_string(::getpid()) + ".service";
    daemon_setup setup;
    setup.apps = "  - name: unit-apps\n    match: { unit: 'thingmux-test-*.service' }\n"
                 "    publish: ['dt/${thing}/${unit}/#']\n";
    daemon_fixture daemon(broker, setup);
    constexpr int cannot_test = 77;
    const auto r = run_as_user({.uid = 0, .gid = 0, .groups = {0}}, [&](std::string& out) {
        if (auto why = enter_unit_cgroup(unit); !why.empty()) {
            out = why;
            return cannot_test;
        }
        ipc_client c(daemon.socket_path());
        if (!hello_connected(c, "unit-app")) out += "no connection\n";
        expect_code(out, "own unit's topic", c.publish("dt/gateway-01/" + unit + "/x", "u1"), ipc::errc::ok);
        expect_code(out, "another unit's topic", c.publish("dt/gateway-01/other.service/x", "u2"), ipc::errc::not_authorized,
                    "(unit-apps)");
        return out.empty() ? 0 : 1;
    });
    remove_unit_cgroup(unit);
    if (r.exit_code == cannot_test) GTEST_SKIP() << "cannot place a process in a systemd unit's cgroup here: " << r.output;
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(log_has(daemon, "unit " + unit)) << "the daemon's log names the unit";
}

// The attack on unit rules through a recycled pid, end to end: a process without any rule
// connects from a child that exits at once; before thingmuxd looks at the connection (here: while
// it is stopped, so the connection waits in the listen backlog), the child's pid passes to a
// process of a unit that has a rule. The connection must not get that unit's rights
// (docs/config.md, "How a peer is identified").
TEST_F(PolicyTest, AConnectionWhosePidPassedToAProcessOfAGrantedUnitGetsNoUnitRights) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to place processes in cgroups and choose pids (CI runs as root)";
    const std::string unit = "thingmux-test-" + std::to_string(::getpid()) + "-heir.service";
    observer_subscription cloud(broker, "dt/#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_setup setup;
    setup.apps =
        "  - name: unit-apps\n    match: { unit: 'thingmux-test-*.service' }\n    publish: ['dt/${thing}/#']\n";
    daemon_fixture daemon(broker, setup);

    ASSERT_EQ(::kill(daemon.pid(), SIGSTOP), 0);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    std::string error;
    const pid_t gone = fd >= 0 ? connect_from_exited_child(fd, daemon.socket_path(), error) : -1;
    std::optional<process_with_pid> heir;
    if (gone > 0) heir.emplace(gone, unit);
    ::kill(daemon.pid(), SIGCONT);
    ipc_client attacker(fd);
    ASSERT_GT(gone, 0) << error;
    if (const auto why = heir->error(); !why.empty()) {
        heir.reset();
        remove_unit_cgroup(unit);
        GTEST_SKIP() << "cannot give a pid to a process in a systemd unit here: " << why;
    }

    attacker.send(ipc::hello{.version = ipc::protocol_version, .app_name = "heir", .thing = {}});
    attacker.send(ipc::publish{
        .request_id = 1, .topic = "dt/gateway-01/stolen", .payload = "x", .qos = 1, .retain = false, .props = {}});
    const bool closed = attacker.wait_closed();
    const auto result = attacker.result_of(1, 1'000);
    heir.reset();
    remove_unit_cgroup(unit);

    ASSERT_TRUE(closed) << "the connection was accepted with the rights of " << unit;
    ASSERT_TRUE(attacker.last_error.has_value());
    EXPECT_EQ(attacker.last_error->code, ipc::errc::not_authorized);
    EXPECT_NE(attacker.last_error->message.find("pid " + std::to_string(gone) + " uid 0"), std::string::npos)
        << attacker.last_error->message;
    EXPECT_NE(attacker.last_error->message.find(", no unit: the process that connected has exited"), std::string::npos)
        << attacker.last_error->message;
    EXPECT_FALSE(result.has_value()) << "the publish got a result";
    EXPECT_TRUE(log_has(daemon, "refused: no rule under apps: applies to it"));
    EXPECT_TRUE(log_has(
        daemon, "pid " + std::to_string(gone) + " uid 0 (root) gid 0, no unit: the process that connected has exited"));
    EXPECT_TRUE(cloud.lines().empty()) << cloud.lines().front();
}

// --- guardrails ------------------------------------------------------------------------------

TEST_F(PolicyTest, BadPublishesAreRefusedLocallyAndTheSessionStaysUpForEveryone) {
    observer_subscription cloud(broker, "dt/#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_setup setup;
    setup.apps = "  - name: root-dt\n    match: { uid: 0 }\n    publish: ['dt/#']\n    subscribe: ['dt/#']\n";
    daemon_fixture daemon(broker, setup);
    ipc_client bad(daemon.socket_path()), good(daemon.socket_path());
    ASSERT_TRUE(hello_connected(bad, "bad"));
    good.hello("good");

    std::uint32_t id = 1;
    auto pub = [&](std::string topic, std::size_t size, std::uint8_t qos, bool retain = false) {
        return publish(bad, {.request_id = id++, .topic = std::move(topic), .payload = std::string(size, 'x'), .qos = qos,
                             .retain = retain, .props = {}});
    };
    auto r = pub("dt/gateway-01/big", 128 * 1024 + 1, 1);
    EXPECT_EQ(r.code, ipc::errc::payload_too_large) << r.message;
    EXPECT_NE(r.message.find("limit 131072"), std::string::npos) << r.message;
    r = pub("dt/gateway-01/3/4/5/6/7/8/9", 1, 1);  // 9 levels, 8 slashes
    EXPECT_EQ(r.code, ipc::errc::invalid_topic) << r.message;
    EXPECT_NE(r.message.find("9 levels, limit 8"), std::string::npos) << r.message;
    EXPECT_EQ(pub("dt/gateway-01/3/4/5/6/7/8", 1, 1).code, ipc::errc::ok);  // 8 levels pass
    r = pub("dt/gateway-01/qos2", 1, 2);
    EXPECT_EQ(r.code, ipc::errc::qos_not_supported) << r.message;
    r = pub("cmd/gateway-01/x", 1, 1);  // the broker would allow it; the local rule does not
    EXPECT_EQ(r.code, ipc::errc::not_authorized) << r.message;
    EXPECT_NE(r.message.find("root-dt"), std::string::npos) << r.message;
    r = pub("dt/gateway-01/" + std::string(300, 'a'), 1, 0);
    EXPECT_EQ(r.code, ipc::errc::invalid_topic) << r.message;
    r = pub("dt/gateway-01/+/wild", 1, 0);
    EXPECT_EQ(r.code, ipc::errc::invalid_topic) << r.message;

    // The other app is unaffected, and so is the bad one for valid requests.
    EXPECT_EQ(good.publish("dt/gateway-01/good", "g1").code, ipc::errc::ok);
    EXPECT_EQ(bad.publish("dt/gateway-01/bad", "b1").code, ipc::errc::ok);
    ASSERT_GE(cloud.wait_for(3, 10'000), 3U);
    EXPECT_EQ(cloud.lines().size(), 3U);
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U) << "a bad publish cost the shared session a reconnect";
    EXPECT_FALSE(bad.closed());

    // QoS 2 may be downgraded instead, and retained messages refused, by configuration (reloaded).
    setup.limits = "qos2: downgrade\nretain: refuse";
    daemon.configure(setup);
    daemon.reload();
    ASSERT_TRUE(eventually([&] { return log_has(daemon, "configuration reloaded"); }, 10'000));
    r = pub("dt/gateway-01/qos2", 1, 2);
    EXPECT_EQ(r.code, ipc::errc::ok) << r.message;
    r = pub("dt/gateway-01/retained", 1, 1, true);
    EXPECT_EQ(r.code, ipc::errc::not_authorized) << r.message;
    EXPECT_NE(r.message.find("limits.retain"), std::string::npos) << r.message;
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U) << "a limits change must not reconnect";
}

// IPC-40: a denial names the rule and the grant to add (or, when no rule applies any more, the
// rule to write); IPC-26: a publish's response topic must be a topic the app may subscribe to
// and receive, so an app with rights to its own topics cannot have a responder answer onto
// another Thing's command topic.
TEST_F(PolicyTest, DenialsNameTheGrantToAddAndResponseTopicsStayWithinTheAppsOwnTopics) {
    observer_subscription cloud(broker, "dt/#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_setup setup;
    setup.apps = "  - name: requester\n    match: { uid: 0 }\n    publish: ['dt/${thing}/#']\n"
                 "    subscribe: ['dt/${thing}/replies/#']\n";
    daemon_fixture daemon(broker, setup);
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "requester"));

    auto r = app.publish("cmd/gateway-01/reboot", "x");
    EXPECT_EQ(r.code, ipc::errc::not_authorized);
    EXPECT_EQ(r.message,
              "not authorized to publish to 'cmd/gateway-01/reboot' on Thing gateway-01: none of the rules that apply "
              "(requester) grants it; add 'cmd/gateway-01/reboot', or a filter that matches it, to publish: of rule "
              "'requester' under apps: in the thingmuxd configuration, then reload thingmuxd");
    r = app.subscribe({"cmd/#"}).at(0);
    EXPECT_EQ(r.code, ipc::errc::not_authorized);
    EXPECT_EQ(r.message,
              "not authorized to subscribe to 'cmd/#' on Thing gateway-01: none of the rules that apply (requester) grants "
              "it; add 'cmd/#', or a filter that covers it, to subscribe: of rule 'requester' under apps: in the thingmuxd "
              "configuration, then reload thingmuxd");

    auto request = [&](std::uint32_t id, const std::string& payload, const std::string& reply_to) {
        return publish(app, {.request_id = id, .topic = "dt/gateway-01/request", .payload = payload, .qos = 1, .retain = false,
                             .props = {.payload_format_indicator = {}, .message_expiry_interval = {}, .content_type = {},
                                       .response_topic = reply_to, .correlation_data = {}, .user_properties = {}}});
    };
    r = request(100, "q1", "cmd/gateway-02/reboot");  // another Thing's command topic
    EXPECT_EQ(r.code, ipc::errc::not_authorized);
    EXPECT_EQ(r.mqtt_reason_code, 0x87);
    EXPECT_EQ(r.message,
              "not authorized to use 'cmd/gateway-02/reboot' as the response topic on Thing gateway-01 (a response topic "
              "must be a topic the app may subscribe to and receive): none of the rules that apply (requester) grants it; "
              "add 'cmd/gateway-02/reboot', or a filter that matches it, to subscribe: (and to receive:, where that rule "
              "lists receive:) of rule 'requester' under apps: in the thingmuxd configuration, then reload thingmuxd");
    r = request(101, "q2", "dt/gateway-01/status");  // the app may publish there, not listen there
    EXPECT_EQ(r.code, ipc::errc::not_authorized) << r.message;
    r = request(102, "q3", "dt/gateway-01/replies/42");
    EXPECT_EQ(r.code, ipc::errc::ok) << r.message;
    EXPECT_EQ(app.publish("dt/gateway-01/done", "end").code, ipc::errc::ok);
    ASSERT_GE(cloud.wait_for(2, 10'000), 2U);
    EXPECT_EQ(cloud.lines(), (std::vector<std::string>{"dt/gateway-01/request q3", "dt/gateway-01/done end"}))
        << "a refused request reached the broker";

    // After a reload no rule applies to the app any more: it stays connected, and a denial says
    // that no rule matches it and how to write one.
    setup.apps = "  - name: someone-else\n    match: { uid: 4242 }\n    publish: ['dt/#']\n";
    daemon.configure(setup);
    daemon.reload();
    ASSERT_TRUE(eventually([&] { return log_has(daemon, "configuration reloaded"); }, 10'000));
    r = app.publish("dt/gateway-01/temp", "x");
    EXPECT_EQ(r.code, ipc::errc::not_authorized);
    const std::string head = "not authorized to publish to 'dt/gateway-01/temp' on Thing gateway-01: no rule under apps: in "
                             "the thingmuxd configuration applies to pid " + std::to_string(::getpid()) + " uid 0 (root) gid 0";
    const std::string tail = " on Thing gateway-01; add one whose match: names its unit, user, group or uid and whose "
                             "publish: lists 'dt/gateway-01/temp', or a filter that matches it, then reload thingmuxd";
    EXPECT_TRUE(r.message.starts_with(head)) << r.message;
    EXPECT_TRUE(r.message.ends_with(tail)) << r.message;
    EXPECT_FALSE(app.closed());
}

TEST_F(PolicyTest, OneUserCannotTakeEveryConnectionSlot) {
    daemon_setup setup;
    setup.ipc = "max_clients_per_uid: 2";
    daemon_fixture daemon(broker, setup);
    ipc_client a(daemon.socket_path()), b(daemon.socket_path());
    a.hello("a");
    b.hello("b");
    ipc_client c(daemon.socket_path());
    ASSERT_TRUE(c.wait_closed());
    ASSERT_TRUE(c.last_error.has_value());
    EXPECT_EQ(c.last_error->code, ipc::errc::quota_exceeded);
    EXPECT_NE(c.last_error->message.find("too many connections from uid 0 (limit 2, ipc.max_clients_per_uid)"), std::string::npos)
        << c.last_error->message;
    EXPECT_FALSE(a.closed());
    a.send(ipc::ping{.token = 7});
    EXPECT_TRUE(a.receive().has_value()) << "the first connections keep working";
}

TEST_F(PolicyTest, UpstreamSubscriptionQuotaCountsDistinctFiltersAcrossApps) {
    daemon_setup setup;
    setup.limits = "subscriptions: 3";
    daemon_fixture daemon(broker, setup);
    ipc_client a(daemon.socket_path()), b(daemon.socket_path());
    a.hello("a");
    b.hello("b");
    EXPECT_EQ(a.subscribe({"cmd/gateway-01/1"}).at(0).code, ipc::errc::ok);
    EXPECT_EQ(b.subscribe({"cmd/gateway-01/1"}).at(0).code, ipc::errc::ok);  // shared: still one upstream
    EXPECT_EQ(a.subscribe({"cmd/gateway-01/2"}).at(0).code, ipc::errc::ok);
    EXPECT_EQ(b.subscribe({"cmd/gateway-01/3"}).at(0).code, ipc::errc::ok);
    const auto r = a.subscribe({"cmd/gateway-01/4"}).at(0);
    EXPECT_EQ(r.code, ipc::errc::quota_exceeded) << r.message;
    EXPECT_NE(r.message.find("limits.subscriptions"), std::string::npos) << r.message;
    EXPECT_EQ(b.subscribe({"cmd/gateway-01/2"}).at(0).code, ipc::errc::ok) << "an existing upstream filter is always shareable";
    // Freeing one makes room.
    a.unsubscribe({"cmd/gateway-01/2"});
    b.unsubscribe({"cmd/gateway-01/2"});
    EXPECT_EQ(a.subscribe({"cmd/gateway-01/4"}).at(0).code, ipc::errc::ok);
    const auto upstream = broker_filters(broker, "gateway-01");
    EXPECT_EQ(std::set<std::string>(upstream.begin(), upstream.end()),
              (std::set<std::string>{"cmd/gateway-01/1", "cmd/gateway-01/2", "cmd/gateway-01/3", "cmd/gateway-01/4"}));
    EXPECT_EQ(upstream.size(), 4U) << "each filter went upstream once";
}

// A flooding app next to a quiet one: the upstream rate stays within the limit, the quiet app
// is served within one round of the fair queue, and the flooder gets back-pressure, not loss.
TEST_F(PolicyTest, FloodingAppIsShapedFairlyAndGetsBackPressureNotLoss) {
    constexpr int rate = 20;     // publishes/s for this test (AWS IoT Core: 100)
    constexpr int queue = 40;    // publishes one app may have waiting for results
    observer_subscription cloud(broker, "dt/#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_setup setup;
    setup.limits = "publishes_per_second: " + std::to_string(rate);
    setup.ipc = "client_inflight: " + std::to_string(queue);
    daemon_fixture daemon(broker, setup);
    ipc_client flood(daemon.socket_path()), quiet(daemon.socket_path());
    ASSERT_TRUE(hello_connected(flood, "flood"));
    quiet.hello("quiet");

    std::map<std::uint32_t, int> seq_of;  // flood request id -> payload number
    std::map<int, ipc::errc> flood_result;
    std::uint32_t next_id = 1;
    int sent = 0;
    auto collect = [&] {
        flood.drain();
        for (auto it = seq_of.begin(); it != seq_of.end();) {
            auto m = flood.result_of(it->first, 0);
            if (!m) {
                ++it;
                continue;
            }
            flood_result[it->second] = std::get<ipc::publish_result>(*m).outcome.code;
            it = seq_of.erase(it);
        }
    };
    auto highest_ok = [&] {
        int h = 0;
        for (const auto& [seq, code] : flood_result)
            if (code == ipc::errc::ok) h = std::max(h, seq);
        return h;
    };

    const auto start = std::chrono::steady_clock::now();
    constexpr int quiet_count = 4;
    std::vector<int> acked_before_quiet;  // highest flood number acknowledged when quiet i was sent
    for (int q = 1; q <= quiet_count; ++q) {
        // 1 s of flooding at 10x the limit: 20 publishes every 100 ms, never waiting.
        for (int burst = 0; burst < 10; ++burst) {
            for (int k = 0; k < rate; ++k) {
                ++sent;
                seq_of[next_id] = sent;
                flood.send(ipc::publish{.request_id = next_id++, .topic = "dt/gateway-01/flood", .payload = std::to_string(sent),
                                        .qos = 1, .retain = false, .props = {}});
            }
            collect();
            ::usleep(100'000);
        }
        collect();
        acked_before_quiet.push_back(highest_ok());
        const auto r = quiet.publish("dt/gateway-01/quiet", "q" + std::to_string(q));
        EXPECT_EQ(r.code, ipc::errc::ok) << r.message;
    }
    ASSERT_TRUE(eventually([&] {
        collect();
        return seq_of.empty();
    }, 30'000)) << seq_of.size() << " flood publishes never got a result";
    const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    int ok = 0, pushed_back = 0;
    for (const auto& [seq, code] : flood_result) {
        if (code == ipc::errc::ok) ++ok;
        else if (code == ipc::errc::rate_limited) ++pushed_back;
        else ADD_FAILURE() << "flood " << seq << ": unexpected " << ipc::to_string(code);
    }
    EXPECT_EQ(ok + pushed_back, sent) << "every publish got an answer";
    EXPECT_GT(pushed_back, 0) << "the flooder never felt back-pressure";

    // At the broker: every accepted message arrived (no loss), and nothing else.
    const auto expected = static_cast<std::size_t>(ok + quiet_count);
    cloud.wait_for(expected, 30'000);
    const auto lines = cloud.lines();
    std::set<int> flood_seen;
    std::vector<std::string> order;  // "q1" or flood numbers, in arrival order
    for (const auto& l : lines) {
        if (l.starts_with("dt/gateway-01/flood ")) flood_seen.insert(std::stoi(l.substr(20)));
        order.push_back(l);
    }
    for (const auto& [seq, code] : flood_result) {
        if (code == ipc::errc::ok) EXPECT_TRUE(flood_seen.count(seq)) << "accepted flood " << seq << " was lost";
        else EXPECT_FALSE(flood_seen.count(seq)) << "refused flood " << seq << " reached the broker";
    }
    EXPECT_EQ(lines.size(), expected);

    // The upstream rate stayed within the limit (plus the 100 ms burst the bucket allows).
    EXPECT_LE(static_cast<double>(lines.size()), rate * elapsed + rate / 10.0 + 1)
        << lines.size() << " messages in " << elapsed << " s";

    // Fairness, counted at the broker: quiet i went up before the flood messages that were
    // already queued when it was sent. FIFO would put a whole queue (40) of them in front.
    for (int q = 1; q <= quiet_count; ++q) {
        const auto at = std::find(order.begin(), order.end(), "dt/gateway-01/quiet q" + std::to_string(q));
        ASSERT_NE(at, order.end());
        int ahead = 0;  // accepted flood messages after the acknowledged ones, before quiet q
        for (auto it = order.begin(); it != at; ++it) {
            if (it->starts_with("dt/gateway-01/flood ") && std::stoi(it->substr(20)) > acked_before_quiet[static_cast<std::size_t>(q - 1)])
                ++ahead;
        }
        EXPECT_LE(ahead, 3) << "quiet message " << q << " waited behind " << ahead << " flood messages";
        std::cout << "[ measured ] quiet " << q << ": " << ahead << " flood message(s) ahead of it\n";
    }
    std::cout << "[ measured ] flood: " << sent << " sent, " << ok << " accepted, " << pushed_back
              << " pushed back; upstream " << static_cast<double>(lines.size()) / elapsed << " msg/s (limit " << rate << ")\n";
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
}

// IPC-29: an app churning subscriptions of distinct filters (1000 SUBSCRIBE then 1000
// UNSUBSCRIBE requests, never waiting) next to a quiet app. What reaches the broker stays within
// the subscription rate (one filter of burst, then 10 per second), the churner is told
// rate_limited for what exceeds its share, the quiet app is served, every request is answered
// once, and the broker ends up holding exactly what the apps hold.
TEST_F(PolicyTest, IPC29_SubscriptionChurnIsShapedToTheSubscriptionRateAndSharedFairly) {
    constexpr double rate = 10;   // filters per second (AWS IoT Core quota in the docs: 500 per account)
    constexpr double burst = 1;   // a tenth of a second's worth, at least one
    daemon_setup setup;
    setup.limits = "subscriptions_per_second: 10";
    daemon_fixture daemon(broker, setup);
    ipc_client churn(daemon.socket_path()), quiet(daemon.socket_path());
    ASSERT_TRUE(hello_connected(churn, "churn"));
    quiet.hello("quiet");
    const auto upstream = [&](const char* packet) { return broker_filters(broker, "gateway-01", packet); };
    ASSERT_TRUE(upstream("SUBSCRIBE").empty());

    const auto start = std::chrono::steady_clock::now();
    constexpr std::uint32_t n = 1000;
    const auto filter = [](std::uint32_t i) { return "cmd/gateway-01/churn/" + std::to_string(i); };
    // Results are read as they come (the daemon stops reading a client whose answers pile up,
    // IPC-35), but no request waits for one.
    for (std::uint32_t i = 0; i < n; ++i) {
        churn.send(ipc::subscribe{.request_id = i + 1, .subscriptions = {{.filter = filter(i), .max_qos = 1}}});
        if (i % 50 == 49) churn.drain();
    }
    for (std::uint32_t i = 0; i < n; ++i) {
        churn.send(ipc::unsubscribe{.request_id = n + i + 1, .filters = {filter(i)}});
        if (i % 50 == 49) churn.drain();
    }
    const auto q = quiet.subscribe({"cmd/gateway-01/quiet"}).at(0);
    EXPECT_EQ(q.code, ipc::errc::ok) << "the quiet app was refused: " << q.message;

    int granted = 0, limited = 0;
    for (std::uint32_t id = 1; id <= 2 * n; ++id) {
        const auto m = churn.result_of(id, 10'000);
        ASSERT_TRUE(m.has_value()) << "request " << id << " never answered";
        if (id <= n) {
            const auto& r = std::get<ipc::subscribe_result>(*m).results.at(0);
            if (r.code == ipc::errc::ok) {
                ++granted;
            } else if (r.code == ipc::errc::rate_limited) {
                ++limited;
                EXPECT_NE(r.message.find("limits.subscriptions_per_second"), std::string::npos) << r.message;
            } else {
                ADD_FAILURE() << "subscribe " << id << ": " << ipc::to_string(r.code) << " " << r.message;
            }
        } else {
            EXPECT_EQ(std::get<ipc::unsubscribe_result>(*m).results.at(0).code, ipc::errc::ok);
        }
    }
    const auto subscribed = upstream("SUBSCRIBE");
    const auto unsubscribed = upstream("UNSUBSCRIBE");
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_GT(limited, 0) << "the churning app never felt the rate";
    EXPECT_EQ(granted + limited, static_cast<int>(n));
    // Every filter costs a token: the broker saw at most the burst plus the rate over the run.
    const auto seen = subscribed.size() + unsubscribed.size();
    EXPECT_LE(static_cast<double>(seen), burst + rate * elapsed + 1) << seen << " filters upstream in " << elapsed << " s";

    // Nothing churned stays held upstream: every SUBSCRIBE that went out is followed by its UNSUBSCRIBE.
    ASSERT_TRUE(eventually([&] {
        const auto subs = upstream("SUBSCRIBE");
        const auto unsubs = upstream("UNSUBSCRIBE");
        std::multiset<std::string> held(subs.begin(), subs.end());
        for (const auto& f : unsubs) {
            const auto it = held.find(f);
            if (it == held.end()) return false;  // an UNSUBSCRIBE before its SUBSCRIBE
            held.erase(it);
        }
        return std::set<std::string>(held.begin(), held.end()) == std::set<std::string>{"cmd/gateway-01/quiet"};
    }, 20'000)) << "the broker does not hold exactly the quiet app's filter";
    std::cout << "[ measured ] churn: " << granted << " subscribes granted, " << limited << " rate_limited; " << seen
              << " filters upstream in " << elapsed << " s (limit " << rate << "/s)\n";
}

// --- several Things ----------------------------------------------------------------------------

TEST(PolicyThingsTest, EachThingHasItsOwnSessionAndAppsPickTheirsAtHello) {
    broker_fixture broker(broker_fixture::options{.things = {"gateway-01", "gateway-02"}});
    daemon_setup setup;
    setup.things = {"gateway-01", "gateway-02"};
    setup.apps = "  - name: root\n    match: { uid: 0 }\n    publish: ['dt/${thing}/#']\n    subscribe: ['cmd/${thing}/#']\n";
    daemon_fixture daemon(broker, setup);
    ipc_client one(daemon.socket_path()), two(daemon.socket_path()), fallback(daemon.socket_path());
    ASSERT_TRUE(hello_connected(one, "one"));
    ASSERT_TRUE(hello_connected(two, "two", "gateway-02"));
    EXPECT_EQ(fallback.hello("fallback").thing, "gateway-01") << "the first Thing is the default";

    EXPECT_EQ(one.publish("dt/gateway-01/a", "1").code, ipc::errc::ok);
    EXPECT_EQ(one.publish("dt/gateway-02/a", "1").code, ipc::errc::not_authorized) << "${thing} is the client's Thing";
    EXPECT_EQ(two.publish("dt/gateway-02/b", "2").code, ipc::errc::ok);
    ASSERT_EQ(one.subscribe({"cmd/gateway-01/#"}).at(0).code, ipc::errc::ok);
    ASSERT_EQ(two.subscribe({"cmd/gateway-02/#"}).at(0).code, ipc::errc::ok);
    publish_from_cloud(broker, "cmd/gateway-02/go", {"for-two"});
    publish_from_cloud(broker, "cmd/gateway-01/go", {"for-one"});
    ASSERT_TRUE(two.wait_messages(1));
    ASSERT_TRUE(one.wait_messages(1));
    EXPECT_EQ(two.messages.at(0).payload, "for-two");
    EXPECT_EQ(one.messages.at(0).payload, "for-one");
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
    EXPECT_EQ(broker_connections(broker, "gateway-02"), 1U);

    ipc_client stranger(daemon.socket_path());
    stranger.send(ipc::hello{.version = ipc::protocol_version, .app_name = "x", .thing = "gateway-99"});
    ASSERT_TRUE(stranger.wait_closed());
    ASSERT_TRUE(stranger.last_error.has_value());
    EXPECT_EQ(stranger.last_error->code, ipc::errc::unknown_thing);
    EXPECT_NE(stranger.last_error->message.find("gateway-01, gateway-02"), std::string::npos) << stranger.last_error->message;

    // Removing a Thing by reload disconnects it and its apps; the other Thing is untouched.
    setup.things = {"gateway-01"};
    daemon.configure(setup);
    daemon.reload();
    ASSERT_TRUE(two.wait_closed());
    ASSERT_TRUE(two.last_error.has_value());
    EXPECT_EQ(two.last_error->code, ipc::errc::unknown_thing);
    EXPECT_EQ(one.publish("dt/gateway-01/a", "3").code, ipc::errc::ok);
    EXPECT_FALSE(one.closed());
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
}

// --- takeover ----------------------------------------------------------------------------------

// The daemon's "connecting" log lines, as milliseconds since midnight.
std::vector<long> connect_times(const daemon_fixture& d) {
    std::vector<long> out;
    constexpr long day = 24L * 3600 * 1000;
    std::istringstream in(read_file(d.log_file()));
    for (std::string line; std::getline(in, line);) {
        if (line.find("thing gateway-01: connecting to") == std::string::npos || line.size() < 23) continue;
        // "2026-11-24 10:14:13.924 info ..."
        out.push_back(((std::stol(line.substr(11, 2)) * 60 + std::stol(line.substr(14, 2))) * 60 + std::stol(line.substr(17, 2))) *
                          1000 + std::stol(line.substr(20, 3)));
        if (out.size() > 1 && out.back() < out[out.size() - 2]) out.back() += day;  // past midnight
    }
    return out;
}

TEST_F(PolicyTest, TakeoverLoopIsReportedToAppsAndConnectsStayPacedAtOnePerSecond) {
    daemon_fixture daemon(broker);
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "app"));
    // Another process with the Thing's certificate and client ID, reconnecting whenever kicked off.
    auto args = broker.client_args(broker.thing("gateway-01"), "gateway-01");
    args.insert(args.begin(), "mosquitto_sub");
    for (const char* a : {"-t", "cmd/gateway-01/#", "-q", "1"}) args.emplace_back(a);
    child_process intruder(args);
    auto reported = [&] {
        app.drain();
        return std::any_of(app.states.begin(), app.states.end(), [](const ipc::state& s) {
            return s.reason.find("client ID 'gateway-01' is in use by another connection") != std::string::npos;
        });
    };
    ASSERT_TRUE(eventually(reported, 40'000)) << read_file(daemon.log_file());
    EXPECT_TRUE(log_has(daemon, "is in use by another connection"));
    const auto times = connect_times(daemon);
    ASSERT_GE(times.size(), 3U);
    for (std::size_t i = 1; i < times.size(); ++i)
        EXPECT_GE(times[i] - times[i - 1], 1000) << "CONNECT " << i << " came " << times[i] - times[i - 1] << " ms after the previous one";
    std::cout << "[ measured ] takeover reported to the app after " << times.size() << " connection attempts\n";
}

// --- reload ----------------------------------------------------------------------------------

TEST_F(PolicyTest, ReloadAppliesNewRulesAndARotatedCertificateWhileAppsStayConnected) {
    daemon_setup setup;
    setup.apps = "  - name: root\n    match: { uid: 0 }\n    publish: ['dt/#']\n    subscribe: ['cmd/#']\n";
    daemon_fixture daemon(broker, setup);
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "app"));
    ASSERT_EQ(app.subscribe({"cmd/gateway-01/#"}).at(0).code, ipc::errc::ok);
    EXPECT_EQ(app.publish("$aws/things/gateway-01/jobs/x", "1").code, ipc::errc::not_authorized);

    // New rule, and a new key and certificate at the same paths.
    const auto id = broker.thing("gateway-01");
    const auto old_cert = read_file(id.cert);
    std::filesystem::remove(id.cert);
    std::filesystem::remove(id.key);
    std::string out;
    ASSERT_EQ(run_command({THINGMUX_BROKER_SCRIPT, "pki", broker.dir().string(), "gateway-01"}, &out), 0) << out;
    ASSERT_NE(read_file(id.cert), old_cert);
    setup.apps = "  - name: root\n    match: { uid: 0 }\n    publish: ['dt/#', '$aws/things/${thing}/jobs/#']\n    subscribe: ['cmd/#']\n";
    daemon.configure(setup);
    daemon.reload();
    ASSERT_TRUE(eventually([&] { return broker_connections(broker, "gateway-01") == 2; }, 15'000))
        << "the rotated certificate did not cause a reconnect";
    ASSERT_TRUE(app.wait_state(ipc::link_state::connected));

    const auto r = app.publish("$aws/things/gateway-01/jobs/x", "2");
    EXPECT_EQ(r.code, ipc::errc::ok) << r.message;
    publish_from_cloud(broker, "cmd/gateway-01/go", {"after-reload"});
    ASSERT_TRUE(app.wait_messages(1));
    EXPECT_EQ(app.messages.back().payload, "after-reload");
    EXPECT_FALSE(app.closed()) << "the app was disconnected by the reload";

    // A broken file is rejected; the configuration in force stays.
    daemon.write_config("things: [\n");
    daemon.reload();
    ASSERT_TRUE(eventually([&] { return log_has(daemon, "keeping the one in force"); }, 10'000));
    EXPECT_EQ(app.publish("$aws/things/gateway-01/jobs/x", "3").code, ipc::errc::ok);
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 2U);
    EXPECT_FALSE(app.closed());
}

}  // namespace
}  // namespace thingmux::test
