// thingmuxd under a service manager, without systemd as PID 1: the unit files checked by
// systemd-analyze, socket activation through systemd-socket-activate, and readiness, status,
// reload and watchdog notifications received on a test NOTIFY_SOCKET.
#include "tests/support/daemon_fixture.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>

namespace thingmux::test {
namespace {

const std::filesystem::path source_dir = THINGMUX_SOURCE_DIR;

// A datagram socket standing in for systemd's notification socket.
class notify_socket {
public:
    explicit notify_socket(std::filesystem::path path) : path_(std::move(path)) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            throw std::runtime_error("cannot bind " + path_.string());
    }
    ~notify_socket() { ::close(fd_); }
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;

    [[nodiscard]] std::string env() const { return "NOTIFY_SOCKET=" + path_.string(); }

    // Receives until a message contains `text` (true) or `timeout_ms` passed; keeps everything.
    bool wait_for(const std::string& text, int timeout_ms = 20'000) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        for (;;) {
            for (std::size_t i = 0; i < messages.size(); ++i)
                if (messages[i].find(text) != std::string::npos) return true;
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            char buf[4096];
            const auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n > 0) messages.emplace_back(buf, static_cast<std::size_t>(n));
        }
    }
    [[nodiscard]] std::size_t count(const std::string& text) const {
        return static_cast<std::size_t>(
            std::count_if(messages.begin(), messages.end(), [&](const std::string& m) { return m.find(text) != std::string::npos; }));
    }
    // Index of the first message containing `text`, or messages.size().
    [[nodiscard]] std::size_t index_of(const std::string& text) const {
        for (std::size_t i = 0; i < messages.size(); ++i)
            if (messages[i].find(text) != std::string::npos) return i;
        return messages.size();
    }

    std::vector<std::string> messages;

private:
    std::filesystem::path path_;
    int fd_ = -1;
};

// The units with ExecStart pointing at the built daemon (systemd-analyze checks that it exists).
std::filesystem::path units_for_test(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    auto service = read_file(source_dir / "systemd/thingmuxd.service");
    const std::string installed = "/usr/bin/thingmuxd";
    service.replace(service.find(installed), installed.size(), std::string(THINGMUX_BIN_DIR) + "/thingmuxd");
    std::ofstream(dir / "thingmuxd.service") << service;
    std::filesystem::copy_file(source_dir / "systemd/thingmuxd.socket", dir / "thingmuxd.socket",
                               std::filesystem::copy_options::overwrite_existing);
    return dir;
}

class SystemdTest : public ::testing::Test {
protected:
    broker_fixture broker;
};

TEST_F(SystemdTest, UnitFilesPassSystemdAnalyzeVerify) {
    const auto dir = units_for_test(broker.dir() / "units");
    std::string out;
    const int rc = run_command({"sh", "-c", "cd " + dir.string() + " && systemd-analyze verify --man=no thingmuxd.service thingmuxd.socket"},
                               &out);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out, "") << "systemd-analyze had remarks";
}

TEST_F(SystemdTest, ServiceHardeningExposureIsAtMostTwo) {
    const auto dir = units_for_test(broker.dir() / "units");
    std::string out;
    run_command({"sh", "-c", "cd " + dir.string() + " && systemd-analyze security --offline=true thingmuxd.service"}, &out);
    const std::string label = "Overall exposure level for thingmuxd.service: ";
    const auto at = out.find(label);
    ASSERT_NE(at, std::string::npos) << out;
    const double exposure = std::stod(out.substr(at + label.size()));
    EXPECT_LE(exposure, 2.0) << out;
    std::cout << "[ measured ] systemd-analyze security exposure: " << exposure << " (0 = most restricted, 10 = unprotected)\n";
}

TEST_F(SystemdTest, SystemdUnitsAndPolicyAreShippedTogether) {
    // The service needs its socket unit and owns the bus name the policy file grants.
    const auto service = read_file(source_dir / "systemd/thingmuxd.service");
    EXPECT_NE(service.find("Requires=thingmuxd.socket"), std::string::npos);
    EXPECT_NE(service.find("Type=notify"), std::string::npos);
    EXPECT_NE(service.find("WatchdogSec="), std::string::npos);
    EXPECT_NE(service.find("LimitNOFILE="), std::string::npos) << "systemd's default soft limit (1024) equals ipc.max_clients";
    // Ordered after time sync, where a time service provides it (certificates need the clock):
    // wanted and ordered, never required, and time-sync.target itself is passive (it pulls in no
    // time service, so a machine without one reaches it at once).
    EXPECT_NE(service.find("\nWants=time-sync.target\n"), std::string::npos);
    EXPECT_NE(service.find("\nAfter=time-sync.target\n"), std::string::npos);
    EXPECT_EQ(service.find("Requires=time-sync.target"), std::string::npos);
    for (const char* dir : {"/usr/lib/systemd/system", "/lib/systemd/system"}) {
        const auto target = std::filesystem::path(dir) / "time-sync.target";
        if (!std::filesystem::exists(target)) continue;
        const auto text = read_file(target);
        EXPECT_EQ(text.find("Requires="), std::string::npos) << text;
        for (const char* provider : {"timesyncd", "chrony", "ntp", "time-wait-sync"})
            EXPECT_EQ(text.find(provider), std::string::npos) << target << " pulls in a time service: " << text;
        break;
    }
    const auto socket_unit = read_file(source_dir / "systemd/thingmuxd.socket");
    EXPECT_NE(socket_unit.find("ListenStream=/run/thingmux/thingmux.sock"), std::string::npos);
    EXPECT_NE(socket_unit.find("ListenStream=/run/thingmux/mqtt.sock"), std::string::npos)
        << "the MQTT face's default socket";
    EXPECT_NE(read_file(source_dir / "systemd/org.thingmux.Thingmux1.conf").find("<allow own=\"org.thingmux.Thingmux1\"/>"),
              std::string::npos);
}

// READY=1 as soon as the socket listens and the configuration is loaded, even with the broker
// down; STATUS= follows the connection; reload and stop are announced; the watchdog is fed.
TEST_F(SystemdTest, ReadinessStatusReloadWatchdogAndStopAreNotified) {
    notify_socket notify(broker.dir() / "notify.sock");
    broker.stop();
    daemon_setup setup;
    setup.env = {notify.env(), "WATCHDOG_USEC=400000"};
    daemon_fixture daemon(broker, setup);
    ASSERT_TRUE(notify.wait_for("READY=1"));
    EXPECT_NE(notify.messages.at(notify.index_of("READY=1")).find("STATUS=gateway-01: "), std::string::npos);
    ASSERT_TRUE(notify.wait_for("gateway-01: backing_off (")) << "status while the broker is down";

    broker.start();
    ASSERT_TRUE(notify.wait_for("STATUS=gateway-01: connected", 30'000));
    // 400 ms watchdog: pinged every 200 ms from the event loop.
    const auto pings = notify.count("WATCHDOG=1");
    ASSERT_TRUE(eventually([&] {
        notify.wait_for("no such message", 100);
        return notify.count("WATCHDOG=1") >= pings + 5;
    }, 10'000)) << "watchdog not fed";

    daemon.reload();
    ASSERT_TRUE(notify.wait_for("RELOADING=1"));
    const auto reloading = notify.index_of("RELOADING=1");
    ASSERT_TRUE(eventually([&] {
        notify.wait_for("no such message", 100);
        for (auto i = reloading + 1; i < notify.messages.size(); ++i)
            if (notify.messages[i].starts_with("READY=1")) return true;
        return false;
    }, 10'000)) << "no READY=1 after the reload";
    EXPECT_NE(notify.messages.at(reloading).find("MONOTONIC_USEC="), std::string::npos);

    EXPECT_EQ(daemon.stop(), 0);
    ASSERT_TRUE(notify.wait_for("STOPPING=1", 5'000));
}

TEST_F(SystemdTest, SocketActivationStartsTheDaemonOnTheFirstClient) {
    const auto socket = broker.dir() / "activated.sock";
    daemon_setup setup;
    setup.socket = socket;
    setup.launcher = {"systemd-socket-activate", "-l", socket.string()};
    daemon_fixture daemon(broker, setup);
    ipc_client app(socket);
    ASSERT_TRUE(hello_connected(app, "app"));
    EXPECT_EQ(app.publish("dt/gateway-01/activated", "1").code, ipc::errc::ok);
    ASSERT_TRUE(eventually([&] { return read_file(daemon.log_file()).find("listening on the socket systemd passed") != std::string::npos; },
                           5'000))
        << read_file(daemon.log_file());
    EXPECT_EQ(daemon.stop(), 0);
}

// thingmuxd.socket passes two sockets; thingmuxd tells them apart by the path each is bound to,
// not by their order, and closes one it has no use for. The MQTT socket (mqtt.sock next to
// ipc.socket: the default) is taken as passed: bound by thingmuxd itself it would have failed to
// start (systemd-socket-activate's socket answers on that path), and it accepts from it: a
// connection that sends a packet which is not CONNECT is hung up on.
TEST_F(SystemdTest, SocketActivationWithBothSocketsUsesEachForItsFace) {
    const auto ipc_socket = broker.dir() / "activated.sock";
    const auto mqtt_socket = broker.dir() / "mqtt.sock";
    const auto stray_socket = broker.dir() / "stray.sock";
    daemon_setup setup;
    setup.socket = ipc_socket;
    setup.launcher = {"systemd-socket-activate", "-l", mqtt_socket.string(), "-l",
                      stray_socket.string(),     "-l", ipc_socket.string()};
    daemon_fixture daemon(broker, setup);

    ipc_client app(ipc_socket);
    ASSERT_TRUE(hello_connected(app, "app"));
    EXPECT_EQ(app.publish("dt/gateway-01/activated", "1").code, ipc::errc::ok);
    const auto log = read_file(daemon.log_file());
    EXPECT_NE(log.find("listening on the socket systemd passed"), std::string::npos) << log;
    EXPECT_NE(log.find("MQTT face listening on " + mqtt_socket.string() + ", the socket systemd passed"),
              std::string::npos)
        << log;

    EXPECT_TRUE(mqtt_socket_accepts(mqtt_socket)) << "thingmuxd did not accept from the MQTT socket";

    EXPECT_NE(log.find("systemd passed a socket on " + stray_socket.string() + ", which is neither ipc.socket"),
              std::string::npos)
        << log;
    EXPECT_EQ(connect_stream(stray_socket), -ECONNREFUSED) << "the socket no face uses is closed";
    EXPECT_EQ(daemon.stop(), 0);
}

// With the MQTT face off, its passed socket is closed with a warning, not left to fill up.
TEST_F(SystemdTest, SocketActivationClosesThePassedMqttSocketWhenTheFaceIsOff) {
    const auto ipc_socket = broker.dir() / "activated.sock";
    const auto mqtt_socket = broker.dir() / "mqtt.sock";
    daemon_setup setup;
    setup.socket = ipc_socket;
    setup.mqtt = "enabled: false";
    setup.launcher = {"systemd-socket-activate", "-l", ipc_socket.string(), "-l", mqtt_socket.string()};
    daemon_fixture daemon(broker, setup);
    ipc_client app(ipc_socket);
    ASSERT_TRUE(hello_connected(app, "app"));
    const auto log = read_file(daemon.log_file());
    EXPECT_NE(
        log.find("systemd passed the MQTT socket " + mqtt_socket.string() + ", but mqtt.enabled is false: closing it"),
        std::string::npos)
        << log;
    EXPECT_EQ(connect_stream(mqtt_socket), -ECONNREFUSED);
    EXPECT_EQ(daemon.stop(), 0);
}

}  // namespace
}  // namespace thingmux::test
