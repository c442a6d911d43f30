// A child process for tests: spawned with posix_spawn, stdout/stderr to files, stopped and
// reaped on destruction so a failing test never leaves processes behind. Children also get
// SIGKILL when the spawning thread dies (setpriv --pdeathsig), so spawn long-lived ones from the
// test's main thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace thingmux::test {

class child_process {
public:
    // Starts argv[0] (looked up in PATH) with the given arguments. Output goes to the files
    // (or /dev/null when empty). Throws std::runtime_error when it cannot start.
    child_process(std::vector<std::string> argv, std::filesystem::path stdout_file = {},
                  std::filesystem::path stderr_file = {}, std::vector<std::string> extra_env = {});
    ~child_process();  // SIGTERM, then SIGKILL after 5 s, then reap
    child_process(child_process&&) noexcept;
    child_process& operator=(child_process&&) = delete;
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    // Sends a signal (no-op when already reaped).
    void signal(int sig) const;
    // Waits up to timeout_ms (< 0: no limit) for exit; returns the wait status (see WIFEXITED) or nullopt.
    std::optional<int> wait(int timeout_ms);
    // SIGTERM, wait up to timeout_ms, then SIGKILL; returns the wait status.
    int stop(int timeout_ms = 5000);
    [[nodiscard]] bool running();

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
};

// Runs a command to completion; returns its exit code (128 + signal when killed by one; -1 after
// the timeout, when it is killed), stdout and stderr combined in `output`.
int run_command(const std::vector<std::string>& argv, std::string* output = nullptr, int timeout_ms = 60'000);
// run_command() that must succeed: returns its output, or throws std::runtime_error with the
// command line, exit code and output.
std::string run_or_throw(const std::vector<std::string>& argv);

// Closes a descriptor on scope exit.
struct fd_guard {
    int fd = -1;
    explicit fd_guard(int f) : fd(f) {}
    ~fd_guard();
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
};

// A loopback TCP port that was free a moment ago.
[[nodiscard]] unsigned short free_tcp_port();

// Whether something accepts TCP connections on 127.0.0.1:port now.
[[nodiscard]] bool tcp_accepts(std::uint16_t port);

// Reads a whole file (empty string when missing).
[[nodiscard]] std::string read_file(const std::filesystem::path& p);
// Writes `content` to `to` whole or not at all (written aside, then renamed): for files another
// process polls. Throws std::runtime_error when it cannot.
void write_file_atomically(const std::filesystem::path& to, const std::string& content);

// Polls `pred` every few milliseconds until it is true or `timeout_ms` passed; returns its last
// value. For waiting on an observable condition, never for hiding a race.
template <typename Pred>
bool eventually(Pred pred, int timeout_ms = 10'000);

}  // namespace thingmux::test

#include "tests/support/process_inl.hpp"
