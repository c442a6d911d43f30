// Processes for tests of peer identity (docs/config.md, "How a peer is identified"): a cgroup that
// systemd reads as a unit, a socket connected by a child that is gone, and a process that takes
// over a given pid -- the pieces of the attack where a connection made by one process is
// identified by the pid after another process got that pid. All need root.
#pragma once

#include <filesystem>
#include <string>

#include <sys/types.h>

namespace thingmux::test {

// Moves the calling process into a cgroup named `unit` on every hierarchy systemd may use for
// it, the way systemd places a service. Returns what failed, empty on success (then
// sd_pid_get_unit() names `unit` for the caller).
[[nodiscard]] std::string enter_unit_cgroup(const std::string& unit);
// Removes the cgroups enter_unit_cgroup() made (they must be empty by then).
void remove_unit_cgroup(const std::string& unit);
// The unit systemd reads for `pid` (0: the caller), empty when none: sd_pid_get_unit() as is.
[[nodiscard]] std::string unit_of(pid_t pid);

// Connects `socket_fd` to the AF_UNIX socket at `path` from a forked child, which then exits and
// is reaped: the connection's SO_PEERCRED names a pid that no process has any more. Returns that
// pid, or -1 with `error` set.
[[nodiscard]] pid_t connect_from_exited_child(int socket_fd, const std::filesystem::path& path, std::string& error);

// A process created with a chosen pid (clone3 with set_tid, Linux >= 5.5, needs CAP_SYS_ADMIN or
// CAP_CHECKPOINT_RESTORE), placed in the cgroup of `unit` (enter_unit_cgroup) when `unit` is not
// empty, then idle until destroyed (SIGKILL, reaped; also killed if the test process dies).
class process_with_pid {
public:
    process_with_pid(pid_t pid, const std::string& unit);
    ~process_with_pid();
    process_with_pid(const process_with_pid&) = delete;
    process_with_pid& operator=(const process_with_pid&) = delete;

    // Empty when the process runs with the pid (and in the unit); else why not.
    [[nodiscard]] const std::string& error() const noexcept { return error_; }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

private:
    pid_t pid_ = -1;
    std::string error_;
};

}  // namespace thingmux::test
