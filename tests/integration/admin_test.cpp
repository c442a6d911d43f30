// Management over the IPC socket (docs/ipc-protocol.md section 9) end to end: the real thingmuxd
// and mosquitto, the real thingmuxctl, peers of other uids in forked children, and a private
// dbus-daemon where both paths are compared. Names cite the requirements; hostile frames count
// answers and log lines, never time.
#include "tests/support/as_user.hpp"
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/dbus_fixture.hpp"
#include "tests/support/measure.hpp"

#include "ipc/admin_clients.hpp"
#include "ipc/codec.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace thingmux::test {
namespace {

const std::string ctl = std::string(THINGMUX_BIN_DIR) + "/thingmuxctl";

// No system bus for thingmuxctl's --via auto for as long as it lives.
class no_system_bus {
public:
    explicit no_system_bus(const std::filesystem::path& dir) {
        ::setenv("DBUS_SYSTEM_BUS_ADDRESS", ("unix:path=" + (dir / "no-bus-here").string()).c_str(), 1);
    }
    ~no_system_bus() { ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS"); }
    no_system_bus(const no_system_bus&) = delete;
    no_system_bus& operator=(const no_system_bus&) = delete;
};

struct command_output {
    int exit_code = -1;
    std::string text;  // stdout and stderr
};

command_output thingmuxctl(const daemon_fixture& daemon, std::vector<std::string> args) {
    std::vector<std::string> argv{ctl, "--socket", daemon.socket_path().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    command_output out;
    out.exit_code = run_command(argv, &out.text);
    return out;
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// One admin request on `c`; its answer, or nullopt (the failure is recorded).
std::optional<ipc::admin_result> admin(ipc_client& c, ipc::admin_command command, std::uint32_t id = 1) {
    c.send(ipc::admin{.request_id = id, .command = command});
    const auto m = c.result_of(id);
    if (!m || !std::holds_alternative<ipc::admin_result>(*m)) return std::nullopt;
    return std::get<ipc::admin_result>(*m);
}

std::string rule(const std::string& name, const std::string& match, const std::string& rest) {
    return "  - name: " + name + "\n    match: " + match + "\n" + rest;
}

class AdminTest : public ::testing::Test {
protected:
    broker_fixture broker;
    static daemon_setup without_bus() {
        daemon_setup s;  // bus empty: --bus none
        s.apps = rule("root", "{ uid: 0 }", "    publish: ['dt/${thing}/a/#']\n    subscribe: ['cmd/#']\n");
        return s;
    }
};

TEST_F(AdminTest, IPC_50_WithoutABusClientsListsExactlyTheConnectedApps) {
    daemon_fixture daemon(broker, without_bus());
    no_system_bus none(broker.dir());
    std::vector<std::unique_ptr<ipc_client>> apps;
    for (const auto* name : {"alpha", "beta", "gamma"}) {
        apps.push_back(std::make_unique<ipc_client>(daemon.socket_path()));
        ASSERT_TRUE(hello_connected(*apps.back(), name));
    }
    ASSERT_EQ(apps[1]->subscribe({"cmd/beta/#"}).at(0).code, ipc::errc::ok);

    const auto out = thingmuxctl(daemon, {"clients"});
    ASSERT_EQ(out.exit_code, 0) << out.text;
    const auto rows = lines(out.text);
    ASSERT_EQ(rows.size(), 1 + apps.size()) << "a header and one row per app, nothing else:\n" << out.text;
    EXPECT_TRUE(rows[0].starts_with("ID   PID")) << rows[0];
    for (const auto* name : {"alpha", "beta", "gamma"})
        EXPECT_EQ(std::count_if(rows.begin(), rows.end(), [&](const std::string& r) { return r.find(name) != std::string::npos; }), 1)
            << name << "\n" << out.text;
    EXPECT_NE(out.text.find("cmd/beta/#"), std::string::npos) << out.text;
    EXPECT_EQ(out.text.find("IPC socket"), std::string::npos) << "the path is named only with --verbose or on failure";

    const auto verbose = thingmuxctl(daemon, {"clients", "--verbose"});
    ASSERT_EQ(verbose.exit_code, 0) << verbose.text;
    EXPECT_NE(verbose.text.find("over the IPC socket " + daemon.socket_path().string()), std::string::npos) << verbose.text;

    // --via dbus without a bus: unavailable, and it says which way it asked.
    const auto dbus = thingmuxctl(daemon, {"clients", "--via", "dbus"});
    EXPECT_EQ(dbus.exit_code, 3) << dbus.text;
    EXPECT_NE(dbus.text.find("over D-Bus"), std::string::npos) << dbus.text;
}

TEST_F(AdminTest, IPC_49_ReloadAppliesAChangedRuleAndRefusesABrokenFileKeepingTheOldOne) {
    auto setup = without_bus();
    daemon_fixture daemon(broker, setup);
    no_system_bus none(broker.dir());
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "sensor"));
    EXPECT_EQ(app.publish("dt/gateway-01/b/x", "1").code, ipc::errc::not_authorized);

    setup.apps = rule("root", "{ uid: 0 }", "    publish: ['dt/${thing}/b/#']\n");
    daemon.configure(setup);
    auto out = thingmuxctl(daemon, {"reload"});
    ASSERT_EQ(out.exit_code, 0) << out.text;
    EXPECT_EQ(out.text, "thingmuxd reloaded its configuration\n");
    // The changed rule is in force for the connected app's next request.
    EXPECT_EQ(app.publish("dt/gateway-01/b/x", "2").code, ipc::errc::ok);
    EXPECT_EQ(app.publish("dt/gateway-01/a/x", "3").code, ipc::errc::not_authorized);

    daemon.write_config("things: [\n");
    out = thingmuxctl(daemon, {"reload"});
    EXPECT_EQ(out.exit_code, 1) << out.text;
    EXPECT_NE(out.text.find("Reload failed: "), std::string::npos) << out.text;
    EXPECT_NE(out.text.find("thingmux.yaml:"), std::string::npos) << "the problems are listed: " << out.text;
    EXPECT_NE(out.text.find("asked thingmuxd over the IPC socket"), std::string::npos) << "a failure names the way: " << out.text;
    // The old configuration stays.
    EXPECT_EQ(app.publish("dt/gateway-01/b/x", "4").code, ipc::errc::ok);
    EXPECT_EQ(lines_containing(daemon.log_file(), "configuration reloaded"), 1U);
    EXPECT_EQ(lines_containing(daemon.log_file(), "asks for a reload over IPC"), 2U);
}

TEST_F(AdminTest, IPC_49_IPC_50_AnotherUidWithoutTheGrantIsRefusedAndSeesOnlyItsOwnClients) {
    shared_temp_dir dir;
    auto setup = without_bus();
    setup.socket = dir.path() / "thingmux.sock";
    setup.apps += rule("nobody", "{ uid: 65534 }", "    publish: ['dt/n/#']\n");
    daemon_fixture daemon(broker, setup);
    ipc_client root_app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(root_app, "root-app"));
    const user_identity nobody{.uid = 65534, .gid = 65534, .groups = {65534}};
    const auto sock = daemon.socket_path();

    // In the child: its own app, then a management connection without hello.
    const auto as_nobody = [&](bool expect_admin) {
        return run_as_user(nobody, [&](std::string& out) {
            ipc_client own(sock);
            own.hello("nobody-app");
            ipc_client c(sock);
            const auto reload = admin(c, ipc::admin_command::reload);
            if (!reload) {
                out += "no answer to reload\n";
                return 1;
            }
            if (expect_admin && reload->outcome.code != ipc::errc::ok)
                out += std::string("admin reload failed: ") + ipc::to_string(reload->outcome.code) + ": " + reload->outcome.message + "\n";
            if (!expect_admin && (reload->outcome.code != ipc::errc::not_authorized ||
                                  reload->outcome.message.find("admin: true") == std::string::npos ||
                                  reload->outcome.message.find("uid 65534") == std::string::npos))
                out += std::string("reload not refused as it should: ") + ipc::to_string(reload->outcome.code) + ": " +
                       reload->outcome.message + "\n";
            const auto list = admin(c, ipc::admin_command::list_clients, 2);
            if (!list || list->outcome.code != ipc::errc::ok) {
                out += "list_clients failed\n";
                return 1;
            }
            std::string why;
            const auto clients = ipc::read_clients_json(list->body, why);
            if (!clients) {
                out += "bad list: " + why + "\n";
                return 1;
            }
            std::string names;
            for (const auto& e : *clients) names += e.app_name + ",";
            out += "listed: " + names + "\n";
            const auto refused = run_command({ctl, "--socket", sock.string(), "reload", "--via", "ipc"}, &why);
            out += "thingmuxctl reload: " + std::to_string(refused) + ": " + why;
            return 0;
        });
    };
    auto r = as_nobody(false);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("listed: nobody-app,\n"), std::string::npos) << "its own client only: " << r.output;
    EXPECT_NE(r.output.find("thingmuxctl reload: 1: thingmuxctl reload: Reload failed: not_authorized: "), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("add admin: true to a rule under apps:"), std::string::npos) << r.output;
    EXPECT_EQ(lines_containing(daemon.log_file(), "configuration reloaded"), 0U);

    // Granted: it reloads and sees every client.
    setup.apps += rule("ops", "{ uid: 65534 }", "    admin: true\n");
    daemon.configure(setup);
    daemon.reload();
    ASSERT_TRUE(eventually([&] { return lines_containing(daemon.log_file(), "configuration reloaded") == 1; }))
        << read_file(daemon.log_file());
    r = as_nobody(true);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output.find("admin reload failed"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("thingmuxctl reload: 0: thingmuxd reloaded its configuration"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("root-app,"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("nobody-app,"), std::string::npos) << r.output;
    EXPECT_EQ(lines_containing(daemon.log_file(), "configuration reloaded"), 3U)
        << "SIGHUP, the child's reload and its thingmuxctl's (a connection of its own)";
}

TEST_F(AdminTest, IPC_48_HostileAdminFramesGetClearErrorsAndOneReloadPerSecond) {
    daemon_fixture daemon(broker, without_bus());

    // An unknown command: answered, the connection stays. (Admin requests after a hello, too.)
    ipc_client c(daemon.socket_path());
    ASSERT_TRUE(hello_connected(c, "hostile"));
    c.send(ipc::admin{.request_id = 5, .command = static_cast<ipc::admin_command>(9)});
    auto m = c.result_of(5);
    ASSERT_TRUE(m && std::holds_alternative<ipc::admin_result>(*m));
    EXPECT_EQ(std::get<ipc::admin_result>(*m).outcome.code, ipc::errc::protocol_violation);
    EXPECT_NE(std::get<ipc::admin_result>(*m).outcome.message.find("unknown management command 9"), std::string::npos);
    EXPECT_TRUE(c.ping(1));

    // Truncated: a malformed frame ends the connection with a clear error.
    {
        ipc_client t(daemon.socket_path());
        const std::vector<std::uint8_t> truncated{0x00, 0x00, 0x00, 0x05, 0x07, 0x00, 0x00, 0x00, 0x01};
        t.send_raw(truncated);
        ASSERT_TRUE(t.wait_closed());
        ASSERT_TRUE(t.last_error.has_value());
        EXPECT_EQ(t.last_error->code, ipc::errc::malformed_frame);
        EXPECT_EQ(t.last_error->message, "admin: command runs past the end of the frame");
    }
    // Too large for a request: refused from its header.
    {
        ipc_client t(daemon.socket_path());
        const std::vector<std::uint8_t> huge{0x00, 0x40, 0x00, 0x00, 0x07};
        t.send_raw(huge);
        ASSERT_TRUE(t.wait_closed());
        ASSERT_TRUE(t.last_error.has_value());
        EXPECT_EQ(t.last_error->code, ipc::errc::frame_too_large);
    }

    // 1000 reloads at once on one connection: at most one per second is carried out.
    constexpr std::uint32_t n = 1000;
    const auto log_before = lines_of(daemon.log_file()).size();
    std::vector<std::uint8_t> burst;
    for (std::uint32_t i = 1; i <= n; ++i)
        ipc::encode(ipc::client_message{ipc::admin{.request_id = 100 + i, .command = ipc::admin_command::reload}}, burst);
    const auto start = std::chrono::steady_clock::now();
    c.send_raw(burst);
    std::size_t applied = 0;
    std::size_t limited = 0;
    for (std::uint32_t i = 1; i <= n; ++i) {
        const auto r = c.result_of(100 + i);
        ASSERT_TRUE(r && std::holds_alternative<ipc::admin_result>(*r)) << "answer " << i;
        const auto& a = std::get<ipc::admin_result>(*r);
        if (a.outcome.code == ipc::errc::ok) ++applied;
        if (a.outcome.code == ipc::errc::rate_limited) {
            ++limited;
            if (limited == 1) {
                EXPECT_NE(a.outcome.message.find("at most one reload per second"), std::string::npos);
            }
        }
    }
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count();
    std::cout << "[ measured ] " << n << " reloads in " << seconds << " s: " << applied << " applied, " << limited << " rate limited\n";
    EXPECT_EQ(applied + limited, n);
    EXPECT_GE(applied, 1U);
    EXPECT_LE(applied, static_cast<std::size_t>(seconds) + 1) << "one per second";
    // Alive and serving.
    EXPECT_TRUE(c.ping(2));
    ipc_client after(daemon.socket_path());
    EXPECT_TRUE(hello_connected(after, "after"));
    // Log lines: the reloads carried out, and the refusals through a limiter of 5 a minute.
    EXPECT_EQ(lines_containing(daemon.log_file(), "asks for a reload over IPC"), applied);
    EXPECT_EQ(lines_containing(daemon.log_file(), "configuration reloaded"), applied);
    EXPECT_LE(lines_containing(daemon.log_file(), "reload refused: more than one per second"),
              5U * (static_cast<std::size_t>(seconds) / 60 + 1));
    EXPECT_LE(lines_of(daemon.log_file()).size() - log_before, 10 * applied + 20) << read_file(daemon.log_file());
}

TEST_F(AdminTest, IPC_47_AnOldDaemonMakesThingmuxctlSaySo) {
    // A daemon from before section 9: its decoder refuses type 0x07 (IPC-4).
    const auto path = broker.dir() / "old.sock";
    const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener, 0);
    fd_guard guard(listener);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    std::thread old([listener] {
        const int fd = ::accept(listener, nullptr, nullptr);
        if (fd < 0) return;
        std::uint8_t request[10];  // the whole admin frame: unread bytes would reset the connection
        (void)::recv(fd, request, sizeof request, MSG_WAITALL);
        const auto e = ipc::encode(ipc::daemon_message{ipc::error{ipc::errc::malformed_frame, "unknown message type 0x07"}});
        (void)::send(fd, e.data(), e.size(), MSG_NOSIGNAL);
        ::close(fd);
    });
    std::string out;
    const int rc = run_command({ctl, "--socket", path.string(), "clients", "--via", "ipc"}, &out);
    old.join();
    EXPECT_EQ(rc, 3) << out;
    EXPECT_NE(out.find("this thingmuxd is too old for management over IPC; use D-Bus"), std::string::npos) << out;
}

// The same daemon asked both ways prints the same.
TEST_F(AdminTest, IPC_50_DbusAndIpcOutputsAreEqual) {
    dbus_fixture bus;
    auto setup = without_bus();
    setup.bus = bus.address();
    daemon_fixture daemon(broker, setup);
    ASSERT_TRUE(eventually([&] { return bus.busctl({"status", "org.thingmux.Thingmux1"}).exit_code == 0; }, 15'000));
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address().c_str(), 1);
    ipc_client a(daemon.socket_path());
    ipc_client b(daemon.socket_path());
    ASSERT_TRUE(hello_connected(a, "app-a"));
    ASSERT_TRUE(hello_connected(b, "app-b"));
    ASSERT_EQ(b.subscribe({"cmd/x/#", "cmd/y/+"}).size(), 2U);

    const auto dbus = thingmuxctl(daemon, {"clients", "--via", "dbus"});
    const auto ipc = thingmuxctl(daemon, {"clients", "--via", "ipc"});
    EXPECT_EQ(dbus.exit_code, 0) << dbus.text;
    EXPECT_EQ(ipc.exit_code, 0) << ipc.text;
    EXPECT_EQ(lines(dbus.text).size(), 3U) << dbus.text;
    EXPECT_EQ(dbus.text, ipc.text);
    const auto automatic = thingmuxctl(daemon, {"clients", "--verbose"});
    EXPECT_NE(automatic.text.find("over D-Bus (org.thingmux.Thingmux1 on the system bus)"), std::string::npos) << automatic.text;

    const auto dbus_reload = thingmuxctl(daemon, {"reload", "--via", "dbus"});
    const auto ipc_reload = thingmuxctl(daemon, {"reload", "--via", "ipc"});
    EXPECT_EQ(dbus_reload.exit_code, 0) << dbus_reload.text;
    EXPECT_EQ(dbus_reload.text, ipc_reload.text);
    EXPECT_EQ(ipc_reload.exit_code, 0);

    daemon.write_config("things: [\n");
    const auto dbus_refused = thingmuxctl(daemon, {"reload", "--via", "dbus"});
    const auto ipc_refused = thingmuxctl(daemon, {"reload", "--via", "ipc"});
    EXPECT_EQ(dbus_refused.exit_code, 1) << dbus_refused.text;
    EXPECT_EQ(ipc_refused.exit_code, 1) << ipc_refused.text;
    // Equal but for the last line, which names the way.
    const auto without_way = [](const std::string& text) {
        auto l = lines(text);
        if (!l.empty() && l.back().find("asked thingmuxd over") != std::string::npos) l.pop_back();
        return l;
    };
    EXPECT_EQ(without_way(dbus_refused.text), without_way(ipc_refused.text)) << dbus_refused.text << "---\n" << ipc_refused.text;
    ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
}

}  // namespace
}  // namespace thingmux::test
