// read_peer_credentials against real peers of other users: children dropped to nobody and daemon
// by tests/support/as_user connect a real AF_UNIX socket; the test reads what the kernel and NSS
// say about them (IPC-2: identity comes from the kernel, never from the client). Needs root to
// change identity, and Debian's standard accounts nobody/nogroup, users and daemon. The systemd
// unit of a peer is checked against processes placed in a unit's cgroup, including one that took
// over the pid of a peer that exited (tests/support/peer_process.hpp).
#include "daemon/hub/peer.hpp"
#include "daemon/hub/peer_unit.hpp"
#include "tests/support/as_user.hpp"
#include "tests/support/peer_process.hpp"
#include "tests/support/process.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace thingmux::test {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

std::string errno_text() {
    return std::generic_category().message(errno);
}

sockaddr_un unix_address(const std::filesystem::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    return addr;
}

std::vector<gid_t> sorted(std::vector<gid_t> v) {
    std::sort(v.begin(), v.end());
    return v;
}

// Fails (does not skip) when an account the test relies on is missing or has another id: a
// machine without them cannot run this test, and should say so.
::testing::AssertionResult has_user(const char* name, uid_t uid) {
    passwd entry{};
    passwd* pw = nullptr;
    std::array<char, 16384> buf{};
    ::getpwnam_r(name, &entry, buf.data(), buf.size(), &pw);
    if (pw == nullptr)
        return ::testing::AssertionFailure() << "user '" << name << "' missing (getent passwd " << name
                                             << "): this test needs Debian's standard accounts";
    if (pw->pw_uid != uid)
        return ::testing::AssertionFailure() << "user '" << name << "' has uid " << pw->pw_uid << ", expected " << uid;
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult has_group(const char* name, gid_t gid) {
    group entry{};
    group* gr = nullptr;
    std::array<char, 16384> buf{};
    ::getgrnam_r(name, &entry, buf.data(), buf.size(), &gr);
    if (gr == nullptr)
        return ::testing::AssertionFailure() << "group '" << name << "' missing (getent group " << name
                                             << "): this test needs Debian's standard groups";
    if (gr->gr_gid != gid)
        return ::testing::AssertionFailure() << "group '" << name << "' has gid " << gr->gr_gid << ", expected " << gid;
    return ::testing::AssertionSuccess();
}

class PeerIdentityTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as other users (CI runs as root)";
        ASSERT_TRUE(has_user("nobody", 65534));
        ASSERT_TRUE(has_group("nogroup", 65534));
        ASSERT_TRUE(has_group("users", 100));
        ASSERT_TRUE(has_user("daemon", 1));
        ASSERT_TRUE(has_group("daemon", 1));

        socket_ = dir_.path() / "peer.sock";
        listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(listener_, 0) << errno_text();
        const auto addr = unix_address(socket_);
        ASSERT_EQ(::bind(listener_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0) << errno_text();
        ASSERT_EQ(::chmod(socket_.c_str(), 0777), 0) << errno_text();
        ASSERT_EQ(::listen(listener_, 4), 0) << errno_text();
    }
    void TearDown() override {
        if (listener_ >= 0) ::close(listener_);
    }

    // The child's side: connect, then stay connected until the test closes its end, so the test
    // reads the credentials of a live process.
    [[nodiscard]] as_user_body connect_and_hold() const {
        return [path = socket_](std::string& out) {
            const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                out = "socket: " + errno_text();
                return 1;
            }
            const auto addr = unix_address(path);
            if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
                out = "connect " + path.string() + ": " + errno_text();
                return 2;
            }
            char byte = 0;
            while (::read(fd, &byte, 1) < 0 && errno == EINTR) {
            }
            out = "held";
            return 0;
        };
    }

    // Accepts the child's connection (bounded wait) and reads its credentials while it is alive.
    // On failure the child's own report is in the message.
    [[nodiscard]] ::testing::AssertionResult accept_peer(user_process& child, hub::peer_credentials& creds) const {
        pollfd p{listener_, POLLIN, 0};
        if (::poll(&p, 1, 10'000) != 1) {
            const auto r = child.wait(1'000);
            return ::testing::AssertionFailure()
                   << "no connection from the child (exit " << r.exit_code << "): " << r.output;
        }
        const fd_guard conn(::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC));
        if (conn.fd < 0) return ::testing::AssertionFailure() << "accept: " << errno_text();
        creds = hub::read_peer_credentials(conn.fd);
        return ::testing::AssertionSuccess();
    }

    shared_temp_dir dir_;
    std::filesystem::path socket_;
    int listener_ = -1;
};

TEST_F(PeerIdentityTest, IPC_2_NobodyWithSupplementaryGroupsIsIdentifiedByTheKernelAndNss) {
    user_process child(user_identity{65534, 65534, {65534, 100}}, connect_and_hold());
    hub::peer_credentials creds;
    ASSERT_TRUE(accept_peer(child, creds));
    const auto result = child.wait();
    ASSERT_EQ(result.exit_code, 0) << result.output;

    EXPECT_EQ(creds.pid, child.pid());
    EXPECT_EQ(creds.uid, 65534u);
    EXPECT_EQ(creds.gid, 65534u);
    EXPECT_THAT(sorted(creds.groups), ElementsAreArray(std::vector<gid_t>{100, 65534}));
    EXPECT_EQ(creds.user, "nobody");
    EXPECT_THAT(creds.group_names, UnorderedElementsAre("nogroup", "users"));
    EXPECT_THAT(creds.describe(), HasSubstr("pid " + std::to_string(child.pid()) + " uid 65534 (nobody) gid 65534"));

    const auto id = creds.identity();
    EXPECT_EQ(id.uid, 65534u);
    EXPECT_EQ(id.gid, 65534u);
    EXPECT_EQ(id.groups, creds.groups);
    EXPECT_EQ(id.user, "nobody");
    EXPECT_THAT(id.group_names, UnorderedElementsAre("nogroup", "users"));
    EXPECT_EQ(id.unit, creds.unit);
}

TEST_F(PeerIdentityTest, IPC_2_DaemonWithoutSupplementaryGroupsHasOnlyItsPrimaryGroup) {
    user_process child(user_identity{1, 1, {}}, connect_and_hold());
    hub::peer_credentials creds;
    ASSERT_TRUE(accept_peer(child, creds));
    const auto result = child.wait();
    ASSERT_EQ(result.exit_code, 0) << result.output;

    EXPECT_EQ(creds.pid, child.pid());
    EXPECT_EQ(creds.uid, 1u);
    EXPECT_EQ(creds.gid, 1u);
    EXPECT_THAT(creds.groups, IsEmpty());
    EXPECT_EQ(creds.user, "daemon");
    EXPECT_THAT(creds.group_names, UnorderedElementsAre("daemon"));

    const auto id = creds.identity();
    EXPECT_EQ(id.uid, 1u);
    EXPECT_EQ(id.gid, 1u);
    EXPECT_THAT(id.groups, IsEmpty());
    EXPECT_EQ(id.user, "daemon");
    EXPECT_THAT(id.group_names, UnorderedElementsAre("daemon"));
}

// run_as_user reports the callback's output and exit code, and a failed identity change.
TEST_F(PeerIdentityTest, RunAsUserReportsOutputExitCodeAndSetupFailure) {
    const auto ok = run_as_user(user_identity{65534, 65534, {}}, [](std::string& out) {
        out = std::to_string(::getuid()) + " " + std::to_string(::getgid());
        return 7;
    });
    EXPECT_EQ(ok.exit_code, 7);
    EXPECT_EQ(ok.output, "65534 65534");
    EXPECT_GT(ok.pid, 0);

    // Once nobody, there is no way back to root: a nested change must fail and say which call.
    const auto nested = run_as_user(user_identity{65534, 65534, {}}, [](std::string& out) {
        const auto inner = run_as_user(user_identity{0, 0, {}}, [](std::string&) { return 0; });
        out = std::to_string(inner.exit_code) + " " + inner.output;
        return 0;
    });
    EXPECT_EQ(nested.exit_code, 0) << nested.output;
    EXPECT_EQ(nested.output, std::to_string(as_user_setup_failed) + " setgroups: Operation not permitted");

    // More than a pipe buffer of output is collected while waiting, not deadlocked on.
    const auto big = run_as_user(user_identity{65534, 65534, {}}, [](std::string& out) {
        out.assign(1 << 20, 'x');
        return 0;
    });
    EXPECT_EQ(big.exit_code, 0);
    EXPECT_EQ(big.output.size(), std::size_t{1} << 20);

    // A child that does not finish in time is killed and reported, so a test cannot hang.
    const auto slow = run_as_user(
        user_identity{65534, 65534, {}},
        [](std::string&) {
            ::sleep(30);
            return 0;
        },
        200);
    EXPECT_EQ(slow.exit_code, -1);
    EXPECT_THAT(slow.output, HasSubstr("timed out"));
}

// --- the systemd unit, and pids that pass to other processes --------------------------------

int open_pidfd(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U));
}

// A forked child that waits until the test closes `release`, then exits. Never reaped by itself:
// the test decides when (waitpid), to see it as a zombie first.
struct waiting_child {
    pid_t pid = -1;
    int release = -1;  // write end; closing it lets the child exit
    waiting_child() {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) return;
        pid = ::fork();
        if (pid == 0) {
            ::close(p[1]);
            char byte = 0;
            while (::read(p[0], &byte, 1) < 0 && errno == EINTR) {
            }
            ::_exit(0);
        }
        ::close(p[0]);
        release = p[1];
    }
    void let_exit() {
        if (release >= 0) ::close(release);
        release = -1;
    }
    void reap() {
        if (pid > 0) ::waitpid(pid, nullptr, 0);
        pid = -1;
    }
    ~waiting_child() {
        let_exit();
        reap();
    }
    waiting_child(const waiting_child&) = delete;
    waiting_child& operator=(const waiting_child&) = delete;
};

// Waits (bounded) until the process behind `pidfd` has exited: a pidfd turns readable then.
bool wait_exited(int pidfd) {
    pollfd p{pidfd, POLLIN, 0};
    return ::poll(&p, 1, 10'000) == 1;
}

TEST(PeerUnit, IPC_2_APidfdNamesItsPidWhileTheProcessLivesAndNothingOnceItIsReaped) {
    waiting_child child;
    ASSERT_GT(child.pid, 0) << errno_text();
    const fd_guard pidfd(open_pidfd(child.pid));
    ASSERT_GE(pidfd.fd, 0) << "pidfd_open: " << errno_text();

    EXPECT_EQ(hub::pidfd_pid(pidfd.fd), child.pid);
    EXPECT_FALSE(hub::pidfd_exited(pidfd.fd));
    auto live = hub::unit_of_pidfd(pidfd.fd);
    EXPECT_EQ(live.unit, unit_of(::getpid())) << "a child runs in its parent's unit";
    EXPECT_EQ(live.withheld, "");

    child.let_exit();
    ASSERT_TRUE(wait_exited(pidfd.fd));
    // A zombie still holds its pid, but has exited: no unit.
    EXPECT_EQ(hub::pidfd_pid(pidfd.fd), child.pid);
    EXPECT_TRUE(hub::pidfd_exited(pidfd.fd));
    auto zombie = hub::unit_of_pidfd(pidfd.fd);
    EXPECT_EQ(zombie.unit, "");
    EXPECT_EQ(zombie.withheld, "the process that connected has exited");

    child.reap();
    EXPECT_EQ(hub::pidfd_pid(pidfd.fd), -1);
    EXPECT_TRUE(hub::pidfd_exited(pidfd.fd));
    auto reaped = hub::unit_of_pidfd(pidfd.fd);
    EXPECT_EQ(reaped.unit, "");
    EXPECT_EQ(reaped.withheld, "the process that connected has exited");
}

class PeerUnitTest : public PeerIdentityTest {
protected:
    void SetUp() override {
        PeerIdentityTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        unit_ = "thingmux-test-" + std::to_string(::getpid()) + "-peer.service";
    }
    void TearDown() override {
        remove_unit_cgroup(unit_);
        PeerIdentityTest::TearDown();
    }

    // Accepts what waits in the backlog (bounded) and reads its credentials.
    [[nodiscard]] ::testing::AssertionResult accept_waiting(hub::peer_credentials& creds) const {
        pollfd p{listener_, POLLIN, 0};
        if (::poll(&p, 1, 10'000) != 1) return ::testing::AssertionFailure() << "nothing to accept";
        const fd_guard conn(::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC));
        if (conn.fd < 0) return ::testing::AssertionFailure() << "accept: " << errno_text();
        creds = hub::read_peer_credentials(conn.fd);
        return ::testing::AssertionSuccess();
    }

    std::string unit_;
};

// The control for the tests below: a live process of the unit is identified with it.
TEST_F(PeerUnitTest, IPC_2_ALivePeerInAUnitIsIdentifiedWithItsUnit) {
    user_process child(user_identity{0, 0, {0}}, [this, hold = connect_and_hold()](std::string& out) {
        if (auto why = enter_unit_cgroup(unit_); !why.empty()) {
            out = why;
            return 77;
        }
        return hold(out);
    });
    hub::peer_credentials creds;
    ASSERT_TRUE(accept_peer(child, creds));
    const auto r = child.wait();
    if (r.exit_code == 77) GTEST_SKIP() << "cannot place a process in a systemd unit's cgroup here: " << r.output;
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(creds.pid, child.pid());
    EXPECT_EQ(creds.unit, unit_);
    EXPECT_EQ(creds.unit_withheld, "");
    EXPECT_EQ(creds.identity().unit, unit_);
    EXPECT_THAT(creds.describe(), HasSubstr(" unit " + unit_));
}

// The attack: a child connects and exits, its parent keeps the socket, and the child's pid goes
// to a process of a unit (clone3 with set_tid stands in for waiting until the pid counter comes
// round). Looking the unit up by pid would name that unit; the peer must get none.
TEST_F(PeerUnitTest, IPC_2_APeerWhosePidPassedToAProcessOfAUnitGetsNoUnit) {
    const fd_guard sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    std::string error;
    const pid_t gone = connect_from_exited_child(sock.fd, socket_, error);
    ASSERT_GT(gone, 0) << error;
    process_with_pid heir(gone, unit_);
    if (!heir.error().empty())
        GTEST_SKIP() << "cannot give a pid to a process in a systemd unit here: " << heir.error();
    ASSERT_EQ(unit_of(gone), unit_) << "the pid of the peer now names a process of the unit";

    hub::peer_credentials creds;
    ASSERT_TRUE(accept_waiting(creds));
    EXPECT_EQ(creds.pid, gone) << "SO_PEERCRED still names the pid of the process that connected";
    EXPECT_EQ(creds.uid, 0u);
    EXPECT_EQ(creds.unit, "");
    EXPECT_EQ(creds.unit_withheld, "the process that connected has exited");
    EXPECT_EQ(creds.identity().unit, "");
    EXPECT_THAT(creds.describe(), HasSubstr("gid 0, no unit: the process that connected has exited"));
}

// Kernels without SO_PEERPIDFD: the unit of a pid is given only to a process that can be the one
// that connected -- started no later than the connection, same effective uid and gid, alive.
TEST_F(PeerUnitTest, IPC_2_WithoutAPidfdTheUnitOfAPidIsGivenOnlyToAProcessThatCanBeThePeer) {
    const auto before_heir = hub::boot_time_ns();
    // Guarantees a later clock tick for the heir than for `connected_before_heir` (start times
    // in /proc count in clock ticks).
    const auto tick_ns = 1'000'000'000ULL / static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
    const auto connected_before_heir = before_heir - tick_ns;

    const fd_guard sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    std::string error;
    const pid_t gone = connect_from_exited_child(sock.fd, socket_, error);
    ASSERT_GT(gone, 0) << error;
    std::optional<process_with_pid> heir;
    heir.emplace(gone, unit_);
    if (!heir->error().empty())
        GTEST_SKIP() << "cannot give a pid to a process in a systemd unit here: " << heir->error();
    const auto after_heir = hub::boot_time_ns();

    // The heir, root like the peer, started after the connection: not the peer.
    auto r = hub::unit_of_pid(gone, 0, 0, connected_before_heir);
    EXPECT_EQ(r.unit, "");
    EXPECT_EQ(r.withheld,
              "pid " + std::to_string(gone) + " was reused: its process started after the connection was made");
    // Connected (as far as thingmuxd can tell) after the heir started, by another uid: not the peer.
    r = hub::unit_of_pid(gone, 65534, 65534, after_heir);
    EXPECT_EQ(r.unit, "");
    EXPECT_EQ(r.withheld, "pid " + std::to_string(gone) +
                              " runs as uid 0 gid 0, not as the uid 65534 gid 65534 that "
                              "connected: it may be another process that took over the pid");
    // Same uid and gid, started before the connection: it may be the peer, and gets its unit.
    r = hub::unit_of_pid(gone, 0, 0, after_heir);
    EXPECT_EQ(r.unit, unit_);
    EXPECT_EQ(r.withheld, "");

    heir.reset();
    r = hub::unit_of_pid(gone, 0, 0, hub::boot_time_ns());
    EXPECT_EQ(r.unit, "");
    EXPECT_EQ(r.withheld, "the process that connected has exited");
    r = hub::unit_of_pid(0, 0, 0, hub::boot_time_ns());
    EXPECT_EQ(r.withheld, "the kernel gave no pid for the process that connected");
}

// A zombie still holds its pid but is not a peer that can act any more: no unit.
TEST(PeerUnit, IPC_2_AZombieByPidGetsNoUnit) {
    waiting_child child;
    ASSERT_GT(child.pid, 0) << errno_text();
    const fd_guard pidfd(open_pidfd(child.pid));
    ASSERT_GE(pidfd.fd, 0) << "pidfd_open: " << errno_text();
    auto r = hub::unit_of_pid(child.pid, ::geteuid(), ::getegid(), hub::boot_time_ns());
    EXPECT_EQ(r.unit, unit_of(::getpid()));
    EXPECT_EQ(r.withheld, "");
    child.let_exit();
    ASSERT_TRUE(wait_exited(pidfd.fd));
    r = hub::unit_of_pid(child.pid, ::geteuid(), ::getegid(), hub::boot_time_ns());
    EXPECT_EQ(r.unit, "");
    EXPECT_EQ(r.withheld, "the process that connected has exited");
}

TEST(PeerIdentity, IPC_2_RootOverSocketpairIsRoot) {
    if (::geteuid() != 0) GTEST_SKIP() << "checks the identity of root; CI runs as root";
    int sv[2] = {-1, -1};
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0) << errno_text();
    const fd_guard a(sv[0]);
    const fd_guard b(sv[1]);

    const auto creds = hub::read_peer_credentials(a.fd);
    EXPECT_EQ(creds.pid, ::getpid());
    EXPECT_EQ(creds.uid, 0u);
    EXPECT_EQ(creds.gid, ::getgid());
    EXPECT_EQ(creds.user, "root");

    const int n = ::getgroups(0, nullptr);
    ASSERT_GE(n, 0);
    std::vector<gid_t> mine(static_cast<std::size_t>(n));
    ASSERT_EQ(::getgroups(n, mine.data()), n);
    EXPECT_EQ(sorted(creds.groups), sorted(mine));
    group entry{};
    group* gr = nullptr;
    std::array<char, 16384> buf{};
    if (::getgrgid_r(::getgid(), &entry, buf.data(), buf.size(), &gr) == 0 && gr != nullptr) {
        EXPECT_THAT(creds.group_names, ::testing::Contains(std::string(gr->gr_name)));
    }

    const auto id = creds.identity();
    EXPECT_EQ(id.uid, 0u);
    EXPECT_EQ(id.user, "root");
    EXPECT_EQ(id.groups, creds.groups);
    EXPECT_EQ(id.group_names, creds.group_names);
    EXPECT_THAT(creds.describe(), HasSubstr("uid 0 (root) gid "));
}

}  // namespace
}  // namespace thingmux::test
