// Running test code as another user: fork, drop to a uid/gid/group list, run a callback, report
// its exit code and a string back. For integration tests that need real peers with other kernel
// credentials (authorization by uid/gid/groups, SO_PEERCRED). Changing identity needs root
// (CAP_SETUID, CAP_SETGID); without it the child reports the failed call and exits with
// as_user_setup_failed.
//
// Fork constraint: the callback runs in a forked copy of the test process. Fork from a
// single-threaded test (no Asio or other threads running at that moment): a lock held by another
// thread at fork time stays locked forever in the child. Simple work -- connect a Unix socket,
// send and receive a few frames, build a string -- is fine. GoogleTest assertions inside the
// callback are not seen by the parent: report through the return code and `out` instead.
//
// Reachability: the child runs as `who`, so every directory on the path to a socket it connects
// to must be searchable (x) by that identity, and the socket itself writable. Test temp
// directories (mkdtemp) are 0700 and owned by root: put such sockets in a shared_temp_dir and
// chmod them (e.g. 0777).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace thingmux::test {

// Kernel credentials to run as. `groups` is the complete supplementary group list (setgroups):
// empty means none, not "keep the test's".
// (Named user_identity because broker_fixture.hpp already has a certificate `identity`.)
struct user_identity {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;
};

// Exit codes of the child itself, outside the callback's range by convention; `output` then says why.
inline constexpr int as_user_setup_failed = 125;  // setgroups, setgid or setuid failed
inline constexpr int as_user_threw = 126;         // the callback threw

struct as_user_result {
    pid_t pid = -1;  // the child's pid (already reaped)
    // Like run_command: the callback's return value, 128 + signal when killed by one, -1 when the
    // child did not finish in time (it is then killed).
    int exit_code = -1;
    std::string output;  // what the callback left in `out` (plus a reason on setup failure)
};

// The callback: runs as the other user, fills `out`, returns the child's exit code (0..255).
using as_user_body = std::function<int(std::string& out)>;

// A child running `body` as `who`, started at construction, for a test that must act while the
// child runs (e.g. accept its connection and read SO_PEERCRED while it is alive). The child gets
// SIGKILL when the test process dies and is always reaped: the destructor kills it if needed.
class user_process {
public:
    // Forks; in the child: setgroups(who.groups), setgid(who.gid), setuid(who.uid) -- in that
    // order, each checked -- then body(out), sends `out` back and _exits with the return value.
    // Throws std::system_error when the fork or the pipe fails.
    user_process(const user_identity& who, const as_user_body& body);
    ~user_process();  // SIGKILL and reap if still running
    user_process(const user_process&) = delete;
    user_process& operator=(const user_process&) = delete;
    user_process(user_process&&) = delete;
    user_process& operator=(user_process&&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    // Waits up to timeout_ms for the child to finish (killing it after that), collecting its
    // output meanwhile. Idempotent: later calls return the same result.
    as_user_result wait(int timeout_ms = 30'000);

private:
    void drain();

    pid_t pid_ = -1;
    int out_fd_ = -1;  // read end of the child's output pipe, non-blocking
    std::string output_;
    std::optional<as_user_result> result_;
};

// Runs `body` as `who` and waits for it (bounded: after timeout_ms the child is killed and
// exit_code is -1). The parent does nothing meanwhile: a callback that needs the test to answer
// (accept, reply) must talk to another process, or use user_process.
[[nodiscard]] as_user_result run_as_user(const user_identity& who, const as_user_body& body, int timeout_ms = 30'000);

// A fresh temporary directory with mode 0755, so that any user can reach what the test puts
// in it; removed with its contents on destruction (kept when THINGMUX_KEEP_TEST_DIRS=1).
class shared_temp_dir {
public:
    shared_temp_dir();  // throws std::system_error
    ~shared_temp_dir();
    shared_temp_dir(const shared_temp_dir&) = delete;
    shared_temp_dir& operator=(const shared_temp_dir&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

}  // namespace thingmux::test
