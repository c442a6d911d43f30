// Hostile conditions on the daemon's own machine, end to end with the real thingmuxd: running out
// of file descriptors, a socket path someone else may write to, app-supplied text meant to forge
// log lines, and a FIFO where a configuration file or certificate should be. Each test counts
// something from /proc or the files themselves (CPU ticks, log lines, file modes), never time.
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/measure.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

const std::string thingmuxd = std::string(THINGMUX_BIN_DIR) + "/thingmuxd";

// "Max open files  4096  4096  files" -> the soft limit.
long soft_open_file_limit(pid_t pid) {
    for (const auto& line : lines_of("/proc/" + std::to_string(pid) + "/limits")) {
        if (!line.starts_with("Max open files")) continue;
        std::istringstream fields(line.substr(std::strlen("Max open files")));
        long soft = 0;
        fields >> soft;
        return soft;
    }
    return -1;
}

// A listening Unix socket of some other program.
class other_listener {
public:
    explicit other_listener(const std::filesystem::path& path) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && ::listen(fd_, 4) == 0;
    }
    ~other_listener() {
        if (fd_ >= 0) ::close(fd_);
    }
    other_listener(const other_listener&) = delete;
    other_listener& operator=(const other_listener&) = delete;
    [[nodiscard]] bool ok() const { return ok_; }

private:
    int fd_;
    bool ok_ = false;
};

// Replaces `file` by a FIFO with no writer (opening it for reading would wait for one).
void make_fifo(const std::filesystem::path& file) {
    std::filesystem::remove(file);
    ASSERT_EQ(::mkfifo(file.c_str(), 0600), 0) << std::strerror(errno);
}

// Opens and closes the FIFO for writing: a reader stuck waiting for a writer gets EOF.
void release_fifo(const std::filesystem::path& fifo) {
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) ::close(fd);
}

class HostileLocalTest : public ::testing::Test {
protected:
    broker_fixture broker;
};

// --- out of descriptors ------------------------------------------------------------------------

// With the daemon's open-file limit far below the connections waiting for it, accept() fails
// with EMFILE until the hello timeout frees descriptors, several rounds in a row. Accepting must
// pause with a back-off meanwhile: every waiting connection is still served (here: closed for not
// saying hello), at the cost of a few CPU ticks and a bounded number of log lines, not a busy loop
// that logs each attempt.
TEST_F(HostileLocalTest, AcceptingPausesWhenOutOfDescriptorsAndResumesWhenOneFrees) {
#ifdef THINGMUX_SANITIZED
    GTEST_SKIP() << "UBSan's vptr check probes memory through a pipe, so a daemon held at EMFILE gets false "
                    "'invalid vptr' reports on its first virtual calls of a type (the normal build runs it)";
#endif
    daemon_setup setup;
    setup.ipc = "hello_timeout: 500ms\nmax_clients_per_uid: 1000";
    daemon_fixture daemon(broker, setup);
    const pid_t pid = daemon.pid();
    ASSERT_EQ(run_command({"prlimit", "--pid", std::to_string(pid), "--nofile=64:64"}), 0);

    constexpr std::size_t waiting = 150;  // about four rounds of what fits under the limit
    std::vector<std::unique_ptr<ipc_client>> clients;
    for (std::size_t i = 0; i < waiting; ++i) clients.push_back(std::make_unique<ipc_client>(daemon.socket_path()));
    ASSERT_TRUE(eventually([&] { return log_has(daemon, "Too many open files"); }))
        << read_file(daemon.log_file()).substr(0, 4000);
    const long before = cpu_ticks(pid);

    // The window: every waiting connection gets its turn (accepted, then closed for not saying hello).
    for (auto& c : clients) EXPECT_TRUE(c->wait_closed(60'000));
    const long used = cpu_ticks(pid) - before;
    clients.clear();

    const auto ticks_per_second = ::sysconf(_SC_CLK_TCK);
    std::cout << "[ measured ] CPU while " << waiting << " connections waited out EMFILE: " << used << " ticks ("
              << ticks_per_second << "/s)\n";
    EXPECT_LE(used, ticks_per_second / 4) << "accepting spun instead of pausing";
    const auto pauses = lines_containing(daemon.log_file(), "cannot accept IPC clients");
    EXPECT_GE(pauses, 1U);
    EXPECT_LE(pauses, 5U) << "the pause is logged through a rate limiter (5 lines per minute)";
    EXPECT_LE(lines_of(daemon.log_file()).size(), 3 * waiting + 100) << "about one line per connection, no more";

    // Descriptors are free again: a new client is served.
    ipc_client fresh(daemon.socket_path());
    EXPECT_EQ(fresh.hello("after-emfile").thing, "gateway-01");
}

// Waits until thingmuxd closed its end of `c`, leaving what it wrote before unread; false when
// it did not within `timeout_ms`.
bool daemon_hung_up(const ipc_client& c, int timeout_ms = 10'000) {
    pollfd p{.fd = c.fd(), .events = POLLRDHUP, .revents = 0};
    int ready = 0;
    while ((ready = ::poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {}
    return ready > 0 && (p.revents & (POLLHUP | POLLRDHUP)) != 0;
}

// Under systemd's default soft limit ordinary load must not reach EMFILE: the daemon raises its
// soft limit to the hard one, and when even that cannot hold ipc.max_clients it says so and
// refuses the clients past what it can hold with the usual quota error. The daemon refuses a
// client as it accepts it, before its hello, and hangs up: a client whose hello comes after
// that (its write fails) still reads the refusal. The last four clients wait for the hang-up
// before saying hello, the order a loaded machine may produce for any of them.
TEST_F(HostileLocalTest, MaxClientsIsKeptBelowWhatTheOpenFileLimitCanHold) {
    daemon_setup setup;
    setup.launcher = {"prlimit", "--nofile=100:100"};
    daemon_fixture daemon(broker, setup);
    // 100 descriptors, 64 kept for the daemon itself and 4 for its one Thing.
    EXPECT_TRUE(log_has(daemon,
                        "ipc.max_clients is 1024, but with an open-file limit of 100 thingmuxd can hold 32 "
                        "clients: using 32"))
        << read_file(daemon.log_file());
    std::vector<std::unique_ptr<ipc_client>> clients;
    std::size_t welcomed = 0, refused = 0;
    for (int i = 0; i < 40; ++i) {
        clients.push_back(std::make_unique<ipc_client>(daemon.socket_path()));
        auto& c = *clients.back();
        if (i >= 36) {
            EXPECT_TRUE(daemon_hung_up(c)) << "client " << i << " is past ipc.max_clients";
        }
        c.send(ipc::hello{.version = ipc::protocol_version, .app_name = "load-" + std::to_string(i), .thing = ""});
        const auto m = c.receive();
        if (m && std::holds_alternative<ipc::welcome>(*m)) {
            ++welcomed;
        } else if (const auto* e = m ? std::get_if<ipc::error>(&*m) : nullptr;
                   e && e->code == ipc::errc::quota_exceeded) {
            ++refused;
            EXPECT_NE(e->message.find("limit 32, ipc.max_clients"), std::string::npos) << e->message;
        }
    }
    EXPECT_EQ(welcomed, 32U);
    EXPECT_EQ(refused, 8U);
    EXPECT_FALSE(log_has(daemon, "Too many open files"));
}

// The MQTT face's clients share the descriptor budget: IPC clients keep their share, MQTT
// clients get what is left.
TEST_F(HostileLocalTest, MqttMaxClientsGetsWhatTheOpenFileLimitLeavesAfterIpc) {
    daemon_setup setup;
    setup.launcher = {"prlimit", "--nofile=100:100"};
    setup.ipc = "max_clients: 10";
    daemon_fixture daemon(broker, setup);
    EXPECT_TRUE(eventually([&] {
        return log_has(daemon,
                       "mqtt.max_clients is 1024, but with an open-file limit of 100 thingmuxd can hold 32 "
                       "clients, 10 of them for ipc.max_clients: using 22");
    })) << read_file(daemon.log_file());
    EXPECT_FALSE(log_has(daemon, "ipc.max_clients is")) << "10 IPC clients fit";
}

TEST_F(HostileLocalTest, SoftOpenFileLimitIsRaisedToTheHardOneAtStart) {
    daemon_setup setup;
    setup.launcher = {"prlimit", "--nofile=64:4096"};
    daemon_fixture daemon(broker, setup);
    EXPECT_EQ(soft_open_file_limit(daemon.pid()), 4096);
    EXPECT_FALSE(log_has(daemon, "ipc.max_clients is")) << "4096 descriptors hold the default 1024 clients";
}

// --- the socket path -----------------------------------------------------------------------------

// In a directory others may write to, someone replaces the socket by a link to a file of
// theirs... or of root's. A reload must not change that file's mode or group, and must say why.
TEST_F(HostileLocalTest, ReloadNeverFollowsALinkPlantedAtTheSocketPath) {
    const auto shared = broker.dir() / "shared";
    std::filesystem::create_directories(shared);
    ASSERT_EQ(::chmod(shared.c_str(), 0777), 0);  // writable by every user, no sticky bit
    daemon_setup setup;
    setup.socket = shared / "thingmux.sock";
    daemon_fixture daemon(broker, setup);
    EXPECT_TRUE(log_has(daemon, "the directory " + shared.string() + " of the IPC socket is writable by every user"))
        << read_file(daemon.log_file());

    const auto victim = broker.dir() / "victim";
    std::ofstream(victim) << "secret\n";
    ASSERT_EQ(::chmod(victim.c_str(), 0600), 0);
    ASSERT_EQ(::chown(victim.c_str(), 0, 0), 0);
    std::filesystem::remove(setup.socket);
    std::filesystem::create_symlink(victim, setup.socket);

    // The reload asks for group nogroup and mode 0666 on the socket.
    auto yaml = daemon.config_yaml();
    const std::string no_group = "group: \"\"";
    yaml.replace(yaml.find(no_group), no_group.size(), "group: nogroup");
    daemon.write_config(yaml);
    daemon.reload();
    ASSERT_TRUE(eventually([&] { return log_has(daemon, "configuration reloaded"); })) << read_file(daemon.log_file());

    struct stat st {};
    ASSERT_EQ(::stat(victim.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600U);
    EXPECT_EQ(st.st_uid, 0U);
    EXPECT_EQ(st.st_gid, 0U);
    EXPECT_TRUE(log_has(daemon, "not applying ipc.mode and ipc.group: " + setup.socket.string() +
                                    " is now a symbolic link to " + victim.string() +
                                    ", no longer the socket thingmuxd bound"))
        << read_file(daemon.log_file());
    EXPECT_EQ(daemon.stop(), 0);
    EXPECT_TRUE(std::filesystem::is_symlink(setup.socket)) << "what is not thingmuxd's socket is left alone";
}

// A link at the socket path pointing to another program's live socket is named for what it is.
TEST_F(HostileLocalTest, LinkToAnotherLiveSocketAtTheSocketPathIsNamedAtStart) {
    daemon_fixture daemon(broker);
    ASSERT_EQ(daemon.stop(), 0) << read_file(daemon.log_file());
    const auto elsewhere = broker.dir() / "elsewhere.sock";
    other_listener other(elsewhere);
    ASSERT_TRUE(other.ok());
    std::filesystem::create_symlink(elsewhere, daemon.socket_path());

    std::string out;
    EXPECT_EQ(run_command({thingmuxd, "--config", daemon.config_file().string(), "--bus", "none"}, &out, 30'000), 1)
        << out;
    EXPECT_NE(
        out.find(daemon.socket_path().string() + " is a symbolic link to " + elsewhere.string() + ", not a socket"),
        std::string::npos)
        << out;
    EXPECT_EQ(out.find("already listening"), std::string::npos) << out;
    EXPECT_TRUE(std::filesystem::is_symlink(daemon.socket_path()));
}

// The MQTT socket's path is checked like the IPC socket's; a start that fails on it leaves no
// IPC socket behind.
TEST_F(HostileLocalTest, LinkAtTheMqttSocketPathStopsTheStartNamingIt) {
    daemon_fixture daemon(broker);
    ASSERT_EQ(daemon.stop(), 0) << read_file(daemon.log_file());
    const auto mqtt_socket = daemon.socket_path().parent_path() / "mqtt.sock";
    const auto victim = broker.dir() / "victim";
    std::ofstream(victim) << "secret\n";
    std::filesystem::create_symlink(victim, mqtt_socket);

    std::string out;
    EXPECT_EQ(run_command({thingmuxd, "--config", daemon.config_file().string(), "--bus", "none"}, &out, 30'000), 1)
        << out;
    EXPECT_NE(out.find(mqtt_socket.string() + " is a symbolic link to " + victim.string() +
                       ", not a socket: thingmuxd neither follows nor replaces it; remove it, or set mqtt.socket"),
              std::string::npos)
        << out;
    EXPECT_TRUE(std::filesystem::is_symlink(mqtt_socket));
    EXPECT_EQ(read_file(victim), "secret\n");
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(daemon.socket_path())));
}

TEST_F(HostileLocalTest, AnotherProgramOnTheMqttSocketPathStopsTheStart) {
    daemon_fixture daemon(broker);
    ASSERT_EQ(daemon.stop(), 0) << read_file(daemon.log_file());
    const auto mqtt_socket = daemon.socket_path().parent_path() / "mqtt.sock";
    other_listener other(mqtt_socket);
    ASSERT_TRUE(other.ok());

    std::string out;
    EXPECT_EQ(run_command({thingmuxd, "--config", daemon.config_file().string(), "--bus", "none"}, &out, 30'000), 1)
        << out;
    EXPECT_NE(out.find("another program is already listening on " + mqtt_socket.string() +
                       " (another thingmuxd, or thingmuxd.socket): stop it first, or set mqtt.socket"),
              std::string::npos)
        << out;
}

// --- log forging -----------------------------------------------------------------------------------

// An app name and topics made to look like log lines of their own, with a terminal escape.
TEST_F(HostileLocalTest, TextFromAppsCannotForgeLogLines) {
    daemon_setup setup;
    setup.apps =
        "  - name: tests\n"
        "    match: { uid: 0 }\n"
        "    publish: ['allowed/#']\n"
        "    subscribe: ['allowed/#']\n";
    daemon_fixture daemon(broker, setup);
    const std::string forged = "\n[info] client connected uid 0 (root)\x1b[31m";
    {
        ipc_client app(daemon.socket_path());
        EXPECT_EQ(app.hello("x" + forged).thing, "gateway-01");
        EXPECT_EQ(app.publish("denied/x" + forged, "p", 0).code, ipc::errc::not_authorized);
        // The denial log allows one line per second per client: the subscribe comes from another.
        ipc_client other(daemon.socket_path());
        EXPECT_EQ(other.hello("y").thing, "gateway-01");
        const auto r = other.subscribe({"denied/y" + forged});
        ASSERT_EQ(r.size(), 1U);
        EXPECT_EQ(r[0].code, ipc::errc::not_authorized);
    }
    EXPECT_EQ(daemon.stop(), 0);

    const auto log = read_file(daemon.log_file());
    for (const auto& line : lines_of(daemon.log_file()))
        EXPECT_FALSE(line.starts_with("[info] client connected")) << "forged line: " << line;
    EXPECT_EQ(log.find('\x1b'), std::string::npos) << "raw ESC in the log";
    const std::string escaped = "\\n[info] client connected uid 0 (root)\\x1b[31m";
    EXPECT_NE(log.find("app 'x" + escaped + "'"), std::string::npos) << log;
    EXPECT_NE(log.find("publish to 'denied/x" + escaped + "'"), std::string::npos) << log;
    EXPECT_NE(log.find("subscribe to 'denied/y" + escaped + "'"), std::string::npos) << log;
}

// --- FIFOs where files should be ----------------------------------------------------------------

TEST_F(HostileLocalTest, CheckConfigRefusesAFifoAsConfigurationFile) {
    const auto fifo = broker.dir() / "fifo.yaml";
    make_fifo(fifo);
    std::string out;
    const int rc = run_command({thingmuxd, "--check-config", "--config", fifo.string()}, &out, 30'000);
    release_fifo(fifo);
    EXPECT_EQ(rc, 1) << "-1: it waited for a writer; " << out;
    EXPECT_NE(out.find(fifo.string() + ": the configuration file is a FIFO (named pipe), not a regular file"),
              std::string::npos)
        << out;
}

TEST_F(HostileLocalTest, ReloadRefusesAFifoAsConfigurationFileAndKeepsServing) {
    daemon_fixture daemon(broker);
    make_fifo(daemon.config_file());
    daemon.reload();
    const bool refused = eventually([&] { return log_has(daemon, "the configuration file is a FIFO (named pipe)"); });
    if (!refused) release_fifo(daemon.config_file());  // unblock a daemon stuck in open()
    EXPECT_TRUE(refused) << read_file(daemon.log_file());
    // The refusal's diagnostic is logged before the line that says the old configuration stays.
    EXPECT_TRUE(eventually([&] { return log_has(daemon, "keeping the one in force"); }))
        << read_file(daemon.log_file());

    ipc_client app(daemon.socket_path());
    EXPECT_EQ(app.hello("after-reload").thing, "gateway-01");
    app.send(ipc::ping{.token = 7});
    // Frames before the pong (the link's state) are skipped.
    std::optional<ipc::daemon_message> m;
    while ((m = app.receive()) && !std::holds_alternative<ipc::pong>(*m)) {
    }
    ASSERT_TRUE(m) << "no pong";
    EXPECT_EQ(std::get<ipc::pong>(*m).token, 7U);
}

TEST_F(HostileLocalTest, CheckConfigNamesACertificatePathHoldingAFifo) {
    daemon_fixture daemon(broker);
    ASSERT_EQ(daemon.stop(), 0) << read_file(daemon.log_file());
    const auto fifo = broker.dir() / "cert-fifo.pem";
    make_fifo(fifo);
    auto yaml = daemon.config_yaml();
    const auto cert = broker.thing("gateway-01").cert.string();
    yaml.replace(yaml.find(cert), cert.size(), fifo.string());
    daemon.write_config(yaml);
    std::string out;
    const int rc = run_command({thingmuxd, "--check-config", "--config", daemon.config_file().string()}, &out, 30'000);
    release_fifo(fifo);
    EXPECT_EQ(rc, 1) << out;
    EXPECT_NE(out.find("things[0].cert: " + fifo.string() + " is a FIFO (named pipe), not a regular file"),
              std::string::npos)
        << out;
}

}  // namespace
}  // namespace thingmux::test
