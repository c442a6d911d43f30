// thingmuxd's D-Bus interface end to end: a private dbus-daemon, the real thingmuxd, the real
// busctl and dbus-send, and an sd-bus client in the test that records signals.
#include "tests/support/as_user.hpp"
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/dbus_fixture.hpp"
#include "tests/support/iot_services_fixture.hpp"

#include <gtest/gtest.h>
#include <systemd/sd-bus.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

namespace thingmux::test {
namespace {

const std::string name = "org.thingmux.Thingmux1";
const std::string manager = "/org/thingmux/Thingmux1";
const std::string thing_path = "/org/thingmux/Thingmux1/thing/gateway_2d01";
const std::string manager_iface = "org.thingmux.Thingmux1.Manager";
const std::string thing_iface = "org.thingmux.Thingmux1.Thing";
const std::string log_iface = "org.freedesktop.LogControl1";

// Signals from thingmuxd, as "Member path arg1 arg2" lines (string arguments only).
class signal_recorder {
public:
    explicit signal_recorder(const std::string& address) {
        if (sd_bus_new(&bus_) < 0 || sd_bus_set_address(bus_, address.c_str()) < 0 ||
            sd_bus_set_bus_client(bus_, 1) < 0 || sd_bus_start(bus_) < 0)
            throw std::runtime_error("cannot connect to " + address);
        const std::string rule = "type='signal',sender='" + name + "'";
        if (sd_bus_add_match(bus_, nullptr, rule.c_str(), on_signal, this) < 0) throw std::runtime_error("add_match failed");
    }
    ~signal_recorder() { sd_bus_flush_close_unref(bus_); }
    signal_recorder(const signal_recorder&) = delete;
    signal_recorder& operator=(const signal_recorder&) = delete;

    // Processes the bus until a recorded line contains `text` (true) or `timeout_ms` passed.
    bool wait_for(const std::string& text, int timeout_ms = 20'000) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        for (;;) {
            for (const auto& l : lines)
                if (l.find(text) != std::string::npos) return true;
            const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            while (sd_bus_process(bus_, nullptr) > 0) {}
            sd_bus_wait(bus_, static_cast<std::uint64_t>(left.count()));
        }
    }

    std::vector<std::string> lines;

private:
    static int on_signal(sd_bus_message* m, void* userdata, sd_bus_error*) {
        auto& self = *static_cast<signal_recorder*>(userdata);
        std::string line = std::string(sd_bus_message_get_member(m)) + " " + sd_bus_message_get_path(m);
        const char* s = nullptr;
        if (std::string_view(sd_bus_message_get_signature(m, 1)) == "ss") {
            const char* t = nullptr;
            if (sd_bus_message_read(m, "ss", &s, &t) >= 0) line += std::string(" ") + s + " " + t;
        } else if (std::string_view(sd_bus_message_get_signature(m, 1)).starts_with("sa{sv}")) {
            if (sd_bus_message_read(m, "s", &s) >= 0) line += std::string(" ") + s;
            // PropertiesChanged: " [Name,Name,...]", the properties announced (changed with values
            // or invalidated), so that a test can count the announcements of one property.
            line += " [" + property_names(m) + "]";
        }
        self.lines.push_back(line);
        return 0;
    }
    static std::string property_names(sd_bus_message* m) {
        std::string names;
        const auto add = [&](const char* n) { names += (names.empty() ? "" : ",") + std::string(n); };
        if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0) return names;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
            const char* n = nullptr;
            if (sd_bus_message_read(m, "s", &n) < 0 || sd_bus_message_skip(m, "v") < 0) break;
            add(n);
            sd_bus_message_exit_container(m);
        }
        sd_bus_message_exit_container(m);
        char** invalidated = nullptr;
        if (sd_bus_message_read_strv(m, &invalidated) >= 0 && invalidated != nullptr) {
            for (char** i = invalidated; *i != nullptr; ++i) {
                add(*i);
                std::free(*i);
            }
            std::free(invalidated);
        }
        return names;
    }
    sd_bus* bus_ = nullptr;
};

std::string interface_block(const std::string& xml, const std::string& iface) {
    const auto start = xml.find(" <interface name=\"" + iface + "\">");
    if (start == std::string::npos) return {};
    const auto end = xml.find(" </interface>", start);
    return xml.substr(start, end - start);
}

class DbusTest : public ::testing::Test {
protected:
    broker_fixture broker;
    dbus_fixture bus;
    daemon_setup setup_for_bus() const {
        daemon_setup s;
        s.bus = bus.address();
        s.apps = "  - name: root\n    match: { uid: 0 }\n    publish: ['dt/${thing}/#', '$aws/things/${thing}/shadow/#']\n"
                 "    subscribe: ['cmd/${thing}/#']\n    receive: ['cmd/${thing}/#', '$aws/things/${thing}/shadow/#']\n";
        return s;
    }
    // busctl's value for a property ("s \"connected\"" -> "\"connected\"").
    std::string property(const std::string& path, const std::string& iface, const std::string& prop) const {
        const auto r = bus.busctl({"get-property", name, path, iface, prop});
        EXPECT_EQ(r.exit_code, 0) << prop << ": " << r.output;
        auto out = r.output;
        while (!out.empty() && out.back() == '\n') out.pop_back();
        return out;
    }
    bool wait_owned() const {
        return eventually([&] { return bus.busctl({"status", name}).exit_code == 0; }, 15'000);
    }
};

TEST_F(DbusTest, IntrospectionMatchesTheCommittedContract) {
    daemon_fixture daemon(broker, setup_for_bus());
    ASSERT_TRUE(wait_owned());
    const auto contract = read_file(std::filesystem::path(THINGMUX_SOURCE_DIR) / "docs/org.thingmux.Thingmux1.xml");
    for (const auto& [path, iface] : {std::pair{manager, manager_iface}, {thing_path, thing_iface}, {"/org/freedesktop/LogControl1", log_iface}}) {
        const auto live = bus.busctl({"introspect", "--xml-interface", name, path});
        ASSERT_EQ(live.exit_code, 0) << live.output;
        const auto expected = interface_block(contract, iface);
        ASSERT_FALSE(expected.empty()) << iface << " missing from docs/org.thingmux.Thingmux1.xml";
        EXPECT_EQ(interface_block(live.output, iface), expected) << "the running daemon's " << iface << " differs from the contract";
    }
}

TEST_F(DbusTest, EveryPropertyReadsAndEveryMethodAnswers) {
    daemon_fixture daemon(broker, setup_for_bus());
    ASSERT_TRUE(wait_owned());
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "sensor"));
    ASSERT_EQ(app.subscribe({"cmd/gateway-01/#"}).at(0).code, ipc::errc::ok);
    ASSERT_EQ(app.publish("dt/gateway-01/t", "1").code, ipc::errc::ok);

    EXPECT_EQ(property(manager, manager_iface, "Version"), "s \"" THINGMUX_VERSION "\"");
    EXPECT_EQ(property(manager, manager_iface, "Things"), "ao 1 \"" + thing_path + "\"");
    EXPECT_EQ(property(manager, manager_iface, "ClientCount"), "u 1");
    EXPECT_EQ(property(thing_path, thing_iface, "Name"), "s \"gateway-01\"");
    EXPECT_EQ(property(thing_path, thing_iface, "Endpoint"), "s \"" + broker.host() + ":" + std::to_string(broker.port()) + "\"");
    EXPECT_EQ(property(thing_path, thing_iface, "Proxy"), "s \"\"") << "directly";
    EXPECT_EQ(property(thing_path, thing_iface, "ClientId"), "s \"gateway-01\"");
    EXPECT_EQ(property(thing_path, thing_iface, "Protocol"), "s \"mqtt5\"");
    EXPECT_EQ(property(thing_path, thing_iface, "State"), "s \"connected\"");
    EXPECT_EQ(property(thing_path, thing_iface, "StateReason"), "s \"\"");
    EXPECT_EQ(property(thing_path, thing_iface, "Reconnects"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "UpstreamSubscriptions"), "as 1 \"cmd/gateway-01/#\"");
    EXPECT_EQ(property(thing_path, thing_iface, "InFlight"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "SpoolDepth"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "SpoolBytes"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "SpoolRejected"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "OfflineDropped"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "SharedDropped"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "RetainedMessages"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "RetainedBytes"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "RetainedDropped"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "ServiceRequests"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "ServiceTimeouts"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "CachedShadows"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "JobsState"), "s \"off\"") << "no jobs: in the configuration";
    EXPECT_EQ(property(thing_path, thing_iface, "JobOperations"), "as 0");
    EXPECT_EQ(property(thing_path, thing_iface, "CurrentJob"), "s \"\"");
    EXPECT_EQ(property(thing_path, thing_iface, "JobsHanded"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "JobsRejected"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "MessagesPublished"), "t 1");
    EXPECT_EQ(property(thing_path, thing_iface, "MessagesReceived"), "t 0");
    EXPECT_EQ(property(thing_path, thing_iface, "LastError"), "s \"\"");
    for (const char* p : {"BytesIn", "BytesOut", "ConnectedSinceUSec"}) {
        const auto v = property(thing_path, thing_iface, p);
        ASSERT_TRUE(v.starts_with("t ")) << v;
        EXPECT_GT(std::stoull(v.substr(2)), 0U) << p;
    }
    EXPECT_EQ(property("/org/freedesktop/LogControl1", log_iface, "SyslogIdentifier"), "s \"thingmuxd\"");
    EXPECT_EQ(property("/org/freedesktop/LogControl1", log_iface, "LogTarget"), "s \"console\"");

    auto r = bus.busctl({"call", name, manager, manager_iface, "ListClients"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("a(tuussssasttt) 1 "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("\"root\" \"\" \"sensor\" \"gateway-01\" 1 \"cmd/gateway-01/#\""), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(" " + std::to_string(::getpid()) + " 0 \"root\""), std::string::npos) << "pid and uid: " << r.output;

    // Reconnect: one more session at the broker; the app stays connected and subscribed.
    signal_recorder signals(bus.address());
    r = bus.busctl({"call", name, thing_path, thing_iface, "Reconnect"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_TRUE(eventually([&] { return broker_connections(broker, "gateway-01") == 2; }, 15'000));
    EXPECT_TRUE(signals.wait_for("StateChanged " + thing_path + " connected"));
    EXPECT_EQ(property(thing_path, thing_iface, "Reconnects"), "t 1");
    publish_from_cloud(broker, "cmd/gateway-01/x", {"after-reconnect"});
    EXPECT_TRUE(app.wait_messages(1));

    // Reload: the Reloaded signal; a broken file is refused with every problem, and nothing changes.
    r = bus.busctl({"call", name, manager, manager_iface, "Reload"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(signals.wait_for("Reloaded " + manager));
    daemon.write_config("things:\n  - name: gateway-01\n    endpoint: x\n    colour: blue\n");
    r = bus.dbus_send({"--print-reply", "--dest=" + name, manager, manager_iface + ".Reload"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.output.find("org.thingmux.Thingmux1.Error.InvalidConfiguration"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("thingmux.yaml:4:5: things[0].colour"), std::string::npos) << r.output;
    EXPECT_EQ(property(thing_path, thing_iface, "State"), "s \"connected\"");
}

// The retained cache's figures (docs/dbus.md, docs/local-mqtt.md RETAINED MESSAGES). The cloud
// keeps 8 retained messages of 20 bytes (topic + payload) and one of 319; the Thing's cache
// holds at most 5 messages and 200 bytes. An app subscribes to each topic (wildcard-free, as AWS
// IoT Core sends retained messages only to such filters): the broker's answers bring all 9 to
// the app and to the cache, which keeps the 5 last-written small ones, evicts 3 and never keeps
// the large one. D-Bus and thingmuxctl status show exactly that.
TEST_F(DbusTest, RetainedCacheFiguresCountWhatItsBoundsCost) {
    daemon_setup setup = setup_for_bus();
    setup.limits = "retained_messages: 5\nretained_bytes: 200";
    std::vector<std::string> topics;
    for (int i = 1; i <= 8; ++i) {
        topics.push_back("cmd/gateway-01/r/" + std::to_string(i));  // 18 bytes
        retain_from_cloud(broker, topics.back(), "v" + std::to_string(i));
    }
    topics.emplace_back("cmd/gateway-01/big");
    retain_from_cloud(broker, topics.back(), std::string(300, 'x'));
    daemon_fixture daemon(broker, setup);
    ASSERT_TRUE(wait_owned());
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "sensor"));
    for (const auto& r : app.subscribe(topics)) ASSERT_EQ(r.code, ipc::errc::ok) << r.message;
    ASSERT_TRUE(app.wait_messages(topics.size())) << app.messages.size() << " retained messages arrived";

    EXPECT_EQ(property(thing_path, thing_iface, "RetainedMessages"), "t 5");
    EXPECT_EQ(property(thing_path, thing_iface, "RetainedBytes"), "t 100");
    EXPECT_EQ(property(thing_path, thing_iface, "RetainedDropped"), "t 4") << "3 evicted, 1 too large";

    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address().c_str(), 1);
    const std::string ctl = std::string(THINGMUX_BIN_DIR) + "/thingmuxctl";
    std::string out;
    EXPECT_EQ(run_command({ctl, "--socket", daemon.socket_path().string(), "status"}, &out), 0) << out;
    EXPECT_NE(out.find("\nretained cache:    5 messages, 100 bytes; 4 dropped by its limits"), std::string::npos)
        << out;
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", ("unix:path=" + (broker.dir() / "nobus").string()).c_str(), 1);
    EXPECT_EQ(run_command({ctl, "--socket", daemon.socket_path().string(), "status"}, &out), 0)
        << "the IPC part stands without D-Bus: " << out;
    EXPECT_NE(out.find("\nretained cache:    not shown (cannot reach the system bus: "), std::string::npos) << out;
    ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
}

TEST_F(DbusTest, StateChangedWhenTheBrokerStopsAndStarts) {
    daemon_fixture daemon(broker, setup_for_bus());
    ASSERT_TRUE(wait_owned());
    ASSERT_TRUE(eventually([&] { return property(thing_path, thing_iface, "State") == "s \"connected\""; }, 15'000));
    signal_recorder signals(bus.address());
    broker.stop();
    ASSERT_TRUE(signals.wait_for("StateChanged " + thing_path + " backing_off"));
    EXPECT_TRUE(signals.wait_for("PropertiesChanged " + thing_path + " " + thing_iface));
    const auto last_error = property(thing_path, thing_iface, "LastError");
    EXPECT_NE(last_error, "s \"\"");
    broker.start();
    ASSERT_TRUE(signals.wait_for("StateChanged " + thing_path + " connected", 30'000));
    EXPECT_EQ(property(thing_path, thing_iface, "Reconnects"), "t 1");
    // Retries while the broker was away may have failed with reasons of their own ("connection
    // refused"): LastError keeps the reason of the last one, the last backing_off signal's.
    const std::string backing_off = "StateChanged " + thing_path + " backing_off ";
    std::string last_reason;
    for (const auto& l : signals.lines)
        if (l.starts_with(backing_off)) last_reason = l.substr(backing_off.size());
    ASSERT_FALSE(last_reason.empty());
    EXPECT_EQ(property(thing_path, thing_iface, "LastError"), "s \"" + last_reason + "\"") << "the last error is kept after recovery";
}

// One Reconnect() call is one change to backing_off, then connecting, then connected: each
// announced once with StateChanged and once with PropertiesChanged of State, and the log says the
// delay once (it used to be twice, with two different delays).
TEST_F(DbusTest, ReconnectAnnouncesEachStateChangeOnce) {
    daemon_fixture daemon(broker, setup_for_bus());
    ASSERT_TRUE(wait_owned());
    ASSERT_TRUE(eventually([&] { return property(thing_path, thing_iface, "State") == "s \"connected\""; }, 15'000));
    signal_recorder signals(bus.address());
    const auto r = bus.busctl({"call", name, thing_path, thing_iface, "Reconnect"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_TRUE(signals.wait_for("StateChanged " + thing_path + " connected", 20'000)) << read_file(daemon.log_file());
    // The log line comes before the signals of its state change.
    const std::string line = "reconnecting: an operator asked for it; retrying in ";
    const auto log = read_file(daemon.log_file());
    std::size_t said = 0;
    for (auto at = log.find(line); at != std::string::npos; at = log.find(line, at + 1)) ++said;
    EXPECT_EQ(said, 1U) << log;
    // A second Reconnect makes sure every signal of the first one was processed: the bus
    // delivers a sender's signals in order.
    ASSERT_EQ(bus.busctl({"call", name, thing_path, thing_iface, "Reconnect"}).exit_code, 0);
    ASSERT_TRUE(signals.wait_for("StateChanged " + thing_path + " backing_off", 20'000));

    std::vector<std::string> states;
    std::size_t state_properties = 0;
    for (const auto& l : signals.lines) {
        if (l.starts_with("StateChanged " + thing_path + " ")) {
            const auto state = l.substr(("StateChanged " + thing_path + " ").size());
            states.push_back(state.substr(0, state.find(' ')));
            if (states.back() == "connected") break;  // the first call's changes end here
        }
        if (l.starts_with("PropertiesChanged " + thing_path + " " + thing_iface + " [State,")) ++state_properties;
    }
    EXPECT_EQ(states, (std::vector<std::string>{"backing_off", "connecting", "connected"}));
    EXPECT_EQ(state_properties, 3U) << "one PropertiesChanged of State per change";
    EXPECT_TRUE(eventually([&] { return property(thing_path, thing_iface, "State") == "s \"connected\""; }, 20'000));
}

TEST_F(DbusTest, PublishReachesTheBrokerAndATopicNotGrantedIsNotAuthorized) {
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_fixture daemon(broker, setup_for_bus());
    ASSERT_TRUE(wait_owned());
    ASSERT_TRUE(eventually([&] { return property(thing_path, thing_iface, "State") == "s \"connected\""; }, 15'000));
    auto r = bus.busctl({"call", name, manager, manager_iface, "Publish", "ssayy", "gateway-01", "dt/gateway-01/from-bus", "2", "0x68",
                         "0x69", "1"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output, "y 0\n") << "QoS 1: the broker's PUBACK reason code (success: the observer subscribes)";
    ASSERT_GE(cloud.wait_for(1, 10'000), 1U);
    EXPECT_EQ(cloud.lines().at(0), "dt/gateway-01/from-bus hi");

    r = bus.dbus_send({"--print-reply", "--dest=" + name, manager, manager_iface + ".Publish", "string:gateway-01",
                       "string:cmd/gateway-01/reboot", "array:byte:0x31", "byte:1"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.output.find("org.thingmux.Thingmux1.Error.NotAuthorized"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("none of the rules that apply (root) grants it"), std::string::npos) << r.output;
    r = bus.dbus_send({"--print-reply", "--dest=" + name, manager, manager_iface + ".Publish", "string:gateway-09",
                       "string:dt/x", "array:byte:0x31", "byte:1"});
    EXPECT_NE(r.output.find("org.thingmux.Thingmux1.Error.UnknownThing"), std::string::npos) << r.output;
    r = bus.dbus_send({"--print-reply", "--dest=" + name, manager, manager_iface + ".Publish", "string:gateway-01",
                       "string:dt/gateway-01/x", "array:byte:0x31", "byte:7"});
    EXPECT_NE(r.output.find("org.freedesktop.DBus.Error.InvalidArgs"), std::string::npos) << r.output;
    EXPECT_EQ(cloud.lines().size(), 1U) << "refused publishes reached the broker";
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
}

TEST_F(DbusTest, LogControlChangesTheLevel) {
    daemon_setup setup = setup_for_bus();
    daemon_fixture daemon(broker, setup);
    ASSERT_TRUE(wait_owned());
    const std::string log = "/org/freedesktop/LogControl1";
    ASSERT_EQ(bus.busctl({"set-property", name, log, log_iface, "LogLevel", "s", "warning"}).exit_code, 0);
    EXPECT_EQ(property(log, log_iface, "LogLevel"), "s \"warning\"");
    ipc_client quiet(daemon.socket_path());
    quiet.hello("while-warning");
    ASSERT_EQ(bus.busctl({"set-property", name, log, log_iface, "LogLevel", "s", "debug"}).exit_code, 0);
    EXPECT_EQ(property(log, log_iface, "LogLevel"), "s \"debug\"");
    ipc_client loud(daemon.socket_path());
    loud.hello("while-debug");
    ASSERT_TRUE(eventually([&] { return read_file(daemon.log_file()).find("app 'while-debug'") != std::string::npos; }, 10'000));
    EXPECT_EQ(read_file(daemon.log_file()).find("app 'while-warning'"), std::string::npos) << "info lines were logged at warning level";
    const auto bad = bus.dbus_send({"--print-reply", "--dest=" + name, log, "org.freedesktop.DBus.Properties.Set",
                                    "string:" + log_iface, "string:LogLevel", "variant:string:loud"});
    EXPECT_NE(bad.output.find("org.freedesktop.DBus.Error.InvalidArgs"), std::string::npos) << bad.output;
}

TEST_F(DbusTest, WithoutABusTheDaemonSaysSoOnceAndServesApps) {
    daemon_setup setup = setup_for_bus();
    setup.bus = "unix:path=" + (broker.dir() / "no-bus-here").string();
    daemon_fixture daemon(broker, setup);
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "app"));
    EXPECT_EQ(app.publish("dt/gateway-01/x", "1").code, ipc::errc::ok);
    const auto log = read_file(daemon.log_file());
    const auto first = log.find("D-Bus management interface unavailable");
    ASSERT_NE(first, std::string::npos) << log;
    EXPECT_EQ(log.find("D-Bus management interface unavailable", first + 1), std::string::npos) << "said more than once";
}

TEST_F(DbusTest, ThingmuxctlListsClientsAndReloads) {
    daemon_fixture daemon(broker, setup_for_bus());
    ASSERT_TRUE(wait_owned());
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "sensor"));
    ASSERT_EQ(app.subscribe({"cmd/gateway-01/#"}).at(0).code, ipc::errc::ok);
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address().c_str(), 1);
    const std::string ctl = std::string(THINGMUX_BIN_DIR) + "/thingmuxctl";
    std::string out;
    EXPECT_EQ(run_command({ctl, "clients"}, &out), 0) << out;
    EXPECT_NE(out.find("sensor"), std::string::npos) << out;
    EXPECT_NE(out.find("cmd/gateway-01/#"), std::string::npos) << out;
    EXPECT_NE(out.find(std::to_string(::getpid())), std::string::npos) << out;
    EXPECT_EQ(run_command({ctl, "reload"}, &out), 0) << out;
    EXPECT_NE(out.find("reloaded"), std::string::npos) << out;
    daemon.write_config("things: [\n");
    EXPECT_EQ(run_command({ctl, "reload"}, &out), 1) << out;
    EXPECT_NE(out.find("thingmux.yaml:"), std::string::npos) << "the problems are listed: " << out;
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", ("unix:path=" + (broker.dir() / "nobus").string()).c_str(), 1);
    EXPECT_EQ(run_command({ctl, "clients"}, &out), 3) << out;
    ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
}

// Debian's system-bus defaults plus systemd/org.thingmux.Thingmux1.conf: anyone reads, only
// root (and group thingmux) drives.
TEST(DbusPolicyTest, AnyoneMayReadOnlyRootMayDrive) {
    broker_fixture broker;
    dbus_fixture bus(dbus_fixture::options{
        .include_policy = std::filesystem::path(THINGMUX_SOURCE_DIR) / "systemd/org.thingmux.Thingmux1.conf", .default_allow = false});
    daemon_setup setup;
    setup.bus = bus.address();
    setup.apps = "  - name: everyone\n    match: { uid: 65534 }\n    publish: ['dt/${thing}/#']\n"
                 "  - name: root\n    match: { uid: 0 }\n    publish: ['dt/${thing}/#']\n";
    daemon_fixture daemon(broker, setup);
    ASSERT_TRUE(eventually([&] { return bus.busctl({"status", name}).exit_code == 0; }, 15'000)) << read_file(daemon.log_file());
    const user_identity nobody{.uid = 65534, .gid = 65534, .groups = {65534}};

    auto r = bus.busctl({"get-property", name, thing_path, thing_iface, "Name"}, nobody);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    r = bus.busctl({"call", name, manager, manager_iface, "ListClients"}, nobody);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    r = bus.busctl({"introspect", name, manager}, nobody);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    for (const auto& args : std::vector<std::vector<std::string>>{
             {manager, manager_iface + ".Publish", "string:gateway-01", "string:dt/gateway-01/x", "array:byte:0x31", "byte:1"},
             {manager, manager_iface + ".Reload"},
             {thing_path, thing_iface + ".Reconnect"},
             {"/org/freedesktop/LogControl1", "org.freedesktop.DBus.Properties.Set", "string:" + log_iface, "string:LogLevel",
              "variant:string:debug"}}) {
        std::vector<std::string> call{"--print-reply", "--dest=" + name};
        call.insert(call.end(), args.begin(), args.end());
        r = bus.dbus_send(call, nobody);
        EXPECT_NE(r.output.find("org.freedesktop.DBus.Error.AccessDenied"), std::string::npos) << args[1] << ": " << r.output;
    }
    r = bus.busctl({"call", name, manager, manager_iface, "Publish", "ssayy", "gateway-01", "dt/gateway-01/x", "1", "0x31", "1"});
    EXPECT_EQ(r.exit_code, 0) << "root may publish: " << r.output;
    EXPECT_EQ(bus.busctl({"call", name, manager, manager_iface, "Reload"}).exit_code, 0);
}

// ListClients shows each client's pid, user, unit and topics: root sees every client, anyone
// else only its own -- members of group thingmux too (docs/dbus.md, Policy).
TEST(DbusPolicyTest, AnUnprivilegedCallerListsOnlyItsOwnClients) {
    broker_fixture broker;
    shared_temp_dir dir;
    dbus_fixture bus(dbus_fixture::options{
        .include_policy = std::filesystem::path(THINGMUX_SOURCE_DIR) / "systemd/org.thingmux.Thingmux1.conf",
        .default_allow = false});
    daemon_setup setup;
    setup.bus = bus.address();
    setup.socket = dir.path() / "thingmux.sock";
    setup.apps =
        "  - name: everyone\n    match: { uid: 65534 }\n    subscribe: ['cmd/${thing}/nobody/#']\n"
        "  - name: root\n    match: { uid: 0 }\n    subscribe: ['cmd/${thing}/root/#']\n";
    daemon_fixture daemon(broker, setup);
    ASSERT_TRUE(eventually(
        [&] {
            return bus.busctl({"status", name}).exit_code == 0;
        },
        15'000))
        << read_file(daemon.log_file());

    ipc_client root_app(daemon.socket_path());
    root_app.hello("root-app");
    user_process nobody_app(
        {.uid = 65534, .gid = 65534, .groups = {65534}}, [sock = daemon.socket_path()](std::string& out) {
            ipc_client c(sock);
            c.send(ipc::hello{.version = ipc::protocol_version, .app_name = "nobody-app", .thing = {}});
            const auto m = c.receive();
            if (!m || !std::holds_alternative<ipc::welcome>(*m)) {
                out = "no welcome";
                return 1;
            }
            (void)c.wait_closed(60'000);  // holds the connection until the test ends
            return 0;
        });
    ASSERT_TRUE(eventually([&] {
        return bus.busctl({"get-property", name, manager, manager_iface, "ClientCount"}).output == "u 2\n";
    })) << nobody_app.wait(1'000).output;

    auto list = [&](const std::optional<user_identity>& as) {
        const auto r = bus.busctl({"call", name, manager, manager_iface, "ListClients"}, as);
        EXPECT_EQ(r.exit_code, 0) << r.output;
        return r.output;
    };
    const auto by_root = list(std::nullopt);
    EXPECT_TRUE(by_root.starts_with("a(tuussssasttt) 2 ")) << by_root;
    for (const auto& groups : {std::vector<gid_t>{65534}, std::vector<gid_t>{65534, 100}}) {
        const auto by_nobody = list(user_identity{.uid = 65534, .gid = 65534, .groups = groups});
        EXPECT_TRUE(by_nobody.starts_with("a(tuussssasttt) 1 ")) << by_nobody;
        EXPECT_NE(by_nobody.find(" 65534 \"nobody\" \"\" \"nobody-app\" "), std::string::npos) << by_nobody;
        EXPECT_EQ(by_nobody.find("root"), std::string::npos) << "nobody sees root's client: " << by_nobody;
    }
    EXPECT_EQ(list(user_identity{.uid = 1, .gid = 1, .groups = {}}), "a(tuussssasttt) 0\n")
        << "a user without clients sees none";
}

// Every command in docs/dbus.md, in order: lines "$ busctl ..." / "$ dbus-send ..." must succeed,
// except those ending in "# error: NAME", which must fail with that error.
TEST_F(DbusTest, EveryExampleInTheDocsWorks) {
    iot_services_responder shadows(broker, {.things = {"gateway-01"}, .silent = {}, .delayed = {}});
    daemon_fixture daemon(broker, setup_for_bus());
    ASSERT_TRUE(wait_owned());
    ASSERT_TRUE(eventually([&] { return property(thing_path, thing_iface, "State") == "s \"connected\""; }, 15'000));
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address().c_str(), 1);
    std::istringstream doc(read_file(std::filesystem::path(THINGMUX_SOURCE_DIR) / "docs/dbus.md"));
    int run = 0;
    for (std::string line; std::getline(doc, line);) {
        if (!line.starts_with("$ ")) continue;
        auto command = line.substr(2);
        std::string expected_error;
        if (const auto mark = command.find("  # error: "); mark != std::string::npos) {
            expected_error = command.substr(mark + 11);
            command.resize(mark);
        }
        std::string out;
        const int rc = run_command({"sh", "-c", command}, &out);
        if (expected_error.empty()) {
            EXPECT_EQ(rc, 0) << command << "\n" << out;
        } else {
            EXPECT_NE(rc, 0) << command;
            EXPECT_NE(out.find(expected_error), std::string::npos) << command << "\n" << out;
        }
        ++run;
    }
    ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
    EXPECT_GE(run, 15) << "docs/dbus.md lost its examples";
}

// ShadowGet/ShadowUpdate/ShadowDelete against the test's shadow service: AWS's accepted documents
// come back as the answer, its rejections as ShadowRejected with AWS's code, a caller whose app
// rules do not grant the shadow topics is refused locally (the service sees nothing of it), and
// the daemon's one answer subscription per operation is reused by later calls.
TEST_F(DbusTest, ShadowMethodsAnswerWithAwsDocumentsAndRejections) {
    iot_services_responder shadows(broker, {.things = {"gateway-01"}, .silent = {}, .delayed = {}});
    auto setup = setup_for_bus();
    // uid 65534 may use the bus (group thingmux is not needed on a private bus) but has no shadow rights.
    setup.apps += "  - name: nobody\n    match: { uid: 65534 }\n    publish: ['dt/${thing}/#']\n";
    setup.thing = "services: {request_timeout: 1s}\n";
    daemon_fixture daemon(broker, setup);
    ASSERT_TRUE(wait_owned());
    ASSERT_TRUE(eventually([&] { return property(thing_path, thing_iface, "State") == "s \"connected\""; }, 15'000));
    const auto call = [&](std::vector<std::string> args, const std::optional<user_identity>& as = std::nullopt) {
        std::vector<std::string> full{"call", name, thing_path, thing_iface};
        full.insert(full.end(), args.begin(), args.end());
        return bus.busctl(full, as);
    };

    auto got = call({"ShadowGet", "s", ""});
    EXPECT_NE(got.exit_code, 0);
    EXPECT_NE(got.output.find("AWS IoT rejected the request"), std::string::npos) << got.output;
    EXPECT_NE(got.output.find("404"), std::string::npos) << got.output;

    auto updated = call({"ShadowUpdate", "ss", "", R"({"state":{"reported":{"fw":"1.2"}}})"});
    ASSERT_EQ(updated.exit_code, 0) << updated.output;
    EXPECT_NE(updated.output.find("\\\"version\\\":1"), std::string::npos) << updated.output;
    EXPECT_EQ(updated.output.find("clientToken"), std::string::npos) << "the daemon's token leaked: " << updated.output;

    got = call({"ShadowGet", "s", ""});
    ASSERT_EQ(got.exit_code, 0) << got.output;
    EXPECT_NE(got.output.find("1.2"), std::string::npos) << got.output;

    // A version conflict: AWS's 409 reaches the caller.
    auto conflict = call({"ShadowUpdate", "ss", "", R"({"state":{"reported":{"fw":"1.3"}},"version":7})"});
    EXPECT_NE(conflict.exit_code, 0);
    EXPECT_NE(conflict.output.find("409"), std::string::npos) << conflict.output;

    // A named shadow, then deleting it.
    ASSERT_EQ(call({"ShadowUpdate", "ss", "modem", R"({"state":{"desired":{"apn":"iot"}}})"}).exit_code, 0);
    EXPECT_NE(shadows.shadow_document("gateway-01", "modem").find("apn"), std::string::npos);
    auto deleted = call({"ShadowDelete", "s", "modem"});
    EXPECT_EQ(deleted.exit_code, 0) << deleted.output;
    EXPECT_EQ(shadows.shadow_document("gateway-01", "modem"), "");

    // Refused before anything is sent: no rights, a name AWS would refuse, JSON that is not an object.
    const auto before = shadows.requests().size();
    auto denied = call({"ShadowGet", "s", ""}, user_identity{.uid = 65534, .gid = 65534, .groups = {}});
    EXPECT_NE(denied.exit_code, 0);
    EXPECT_NE(denied.output.find("app rules"), std::string::npos) << denied.output;
    auto bad_name = call({"ShadowGet", "s", "a/b"});
    EXPECT_NE(bad_name.exit_code, 0);
    EXPECT_NE(bad_name.output.find("shadow name"), std::string::npos) << bad_name.output;
    auto not_object = call({"ShadowUpdate", "ss", "", "[1,2]"});
    EXPECT_NE(not_object.exit_code, 0);
    EXPECT_NE(not_object.output.find("JSON object"), std::string::npos) << not_object.output;
    EXPECT_EQ(shadows.requests().size(), before) << "a refused call reached the shadow service";
    // Six calls answered, one request each.
    EXPECT_EQ(before, 6u);

    // AWS IoT silent: the pipeline's 504 after services.request_timeout, counted.
    EXPECT_EQ(property(thing_path, thing_iface, "ServiceTimeouts"), "t 0");
    shadows.silence("shadow-get", 1);
    auto silent = call({"ShadowGet", "s", ""});
    EXPECT_NE(silent.exit_code, 0);
    EXPECT_NE(silent.output.find("504"), std::string::npos) << silent.output;
    EXPECT_EQ(property(thing_path, thing_iface, "ServiceTimeouts"), "t 1");
    EXPECT_EQ(property(thing_path, thing_iface, "ServiceRequests"), "t 0");

    // One answer filter per operation and shadow, kept for the next calls.
    const auto upstream = property(thing_path, thing_iface, "UpstreamSubscriptions");
    for (const auto* f : {"shadow/get/+", "shadow/update/+", "shadow/name/modem/update/+", "shadow/name/modem/delete/+"})
        EXPECT_NE(upstream.find(f), std::string::npos) << f << " not in " << upstream;
}

}  // namespace
}  // namespace thingmux::test
