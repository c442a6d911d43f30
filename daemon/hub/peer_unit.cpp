#include "daemon/hub/peer_unit.hpp"

#include <systemd/sd-login.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

// Linux 6.5; glibc before 2.39 does not name it.
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace thingmux::hub {
namespace {

constexpr const char* exited = "the process that connected has exited";

struct fd_closer {
    int fd;
    explicit fd_closer(int f) : fd(f) {}
    fd_closer(const fd_closer&) = delete;
    fd_closer& operator=(const fd_closer&) = delete;
    ~fd_closer() {
        if (fd >= 0) ::close(fd);
    }
};

// Linux 5.3. Called through syscall(): glibc has a wrapper only from 2.36 on.
int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U));
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

// A small file under /proc, whole; nullopt when it cannot be read (e.g. the process is gone).
std::optional<std::string> read_proc_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return std::nullopt;
    const fd_closer closer{fd};
    std::string text;
    char buf[4096];
    // /proc/PID/status is about 1.5 KiB; the bound only guards against a surprise.
    while (text.size() < 64 * 1024) {
        const auto n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::nullopt;
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    return text;
}

// The value after "Name:" at the start of a line of a /proc key-value file.
std::optional<std::string_view> proc_field(std::string_view text, std::string_view name) {
    for (std::size_t at = 0; at < text.size();) {
        const auto end = std::min(text.find('\n', at), text.size());
        const auto line = text.substr(at, end - at);
        if (line.starts_with(name) && line.size() > name.size() && line[name.size()] == ':')
            return line.substr(name.size() + 1);
        at = end + 1;
    }
    return std::nullopt;
}

// What /proc says about a process, for telling whether it can be the one that connected.
struct process_facts {
    bool dead = false;              // zombie: it has exited, its pid is not free yet
    std::uint64_t start_ticks = 0;  // start time, clock ticks since boot
    uid_t euid = 0;
    gid_t egid = 0;
};

std::optional<process_facts> read_process(pid_t pid) {
    const auto base = "/proc/" + std::to_string(pid);
    const auto stat = read_proc_file(base + "/stat");
    const auto status = read_proc_file(base + "/status");
    if (!stat || !status) return std::nullopt;
    process_facts f;
    // "PID (comm) S ppid ... starttime ...": comm may hold spaces and parentheses, so fields are
    // counted from the last ')'; the state is field 3, the start time field 22.
    const auto close = stat->rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(stat->substr(close + 1));
    std::string state;
    fields >> state;
    std::string skip;
    for (int field = 4; field < 22; ++field) fields >> skip;
    fields >> f.start_ticks;
    if (!fields || state.empty()) return std::nullopt;
    f.dead = state[0] == 'Z' || state[0] == 'X';
    // "Uid:\treal\teffective\tsaved\tfs"; SO_PEERCRED and D-Bus give the effective ids.
    const auto uids = proc_field(*status, "Uid");
    const auto gids = proc_field(*status, "Gid");
    if (!uids || !gids) return std::nullopt;
    std::istringstream u{std::string(*uids)}, g{std::string(*gids)};
    unsigned long real = 0, effective = 0;
    if (!(u >> real >> effective)) return std::nullopt;
    f.euid = static_cast<uid_t>(effective);
    if (!(g >> real >> effective)) return std::nullopt;
    f.egid = static_cast<gid_t>(effective);
    return f;
}

std::uint64_t ticks_of(std::uint64_t boot_ns) {
    const long per_second = ::sysconf(_SC_CLK_TCK);
    const auto tick_ns = 1'000'000'000ULL / static_cast<std::uint64_t>(per_second > 0 ? per_second : 100);
    return boot_ns / tick_ns;  // the kernel truncates the same way (nsec_to_clock_t)
}

// sd_pid_get_unit() on a number: only as good as the caller's proof that the number still names
// the process it means.
std::string unit_of_number(pid_t pid) {
    char* unit = nullptr;
    std::string out;
    if (sd_pid_get_unit(pid, &unit) >= 0 && unit != nullptr) out = unit;
    std::free(unit);
    return out;
}

}  // namespace

std::uint64_t boot_time_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_BOOTTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

pid_t pidfd_pid(int pidfd) {
    const auto info = read_proc_file("/proc/self/fdinfo/" + std::to_string(pidfd));
    if (!info) return -1;
    const auto value = proc_field(*info, "Pid");
    if (!value) return -1;
    const std::string text(*value);
    char* end = nullptr;
    errno = 0;
    const long pid = std::strtol(text.c_str(), &end, 10);
    if (errno != 0 || end == text.c_str()) return -1;
    return static_cast<pid_t>(pid);
}

bool pidfd_exited(int pidfd) {
    pollfd p{pidfd, POLLIN, 0};
    int n = 0;
    while ((n = ::poll(&p, 1, 0)) < 0 && errno == EINTR) {
    }
    // POLLIN: exited; POLLHUP: reaped; POLLERR/POLLNVAL: not a pidfd -- none of them a live process.
    return n != 0;
}

unit_lookup unit_of_pidfd(int pidfd) {
    const pid_t pid = pidfd_pid(pidfd);
    if (pid < 0) return {{}, exited};
    if (pid == 0) return {{}, "the process that connected runs in a pid namespace thingmuxd cannot see into"};
    auto unit = unit_of_number(pid);
    // Alive now, so it held `pid` during the whole lookup: the number named no other process.
    if (pidfd_exited(pidfd)) return {{}, exited};
    return {std::move(unit), {}};
}

unit_lookup unit_of_pid(pid_t pid, uid_t uid, gid_t gid, std::uint64_t connected_by) {
    if (pid <= 0) return {{}, "the kernel gave no pid for the process that connected"};
    // Pinned, `pid` cannot pass to another process while it is looked at (Linux >= 5.3).
    const int pin = open_pidfd(pid);
    if (pin < 0 && errno == ESRCH) return {{}, exited};
    const fd_closer closer{pin};
    const auto before = read_process(pid);
    if (!before || before->dead) return {{}, exited};
    const auto who = "pid " + std::to_string(pid);
    if (before->start_ticks > ticks_of(connected_by))
        return {{}, who + " was reused: its process started after the connection was made"};
    if (before->euid != uid || before->egid != gid)
        return {{},
                who + " runs as uid " + std::to_string(before->euid) + " gid " + std::to_string(before->egid) +
                    ", not as the uid " + std::to_string(uid) + " gid " + std::to_string(gid) +
                    " that connected: it may be another process that took over the pid"};
    auto unit = unit_of_number(pid);
    if (pin >= 0) {
        if (pidfd_exited(pin)) return {{}, exited};
    } else {
        // Without a pidfd: the same start time means the same process.
        const auto after = read_process(pid);
        if (!after || after->dead || after->start_ticks != before->start_ticks) return {{}, exited};
    }
    return {std::move(unit), {}};
}

unit_lookup peer_unit(int fd, pid_t pid, uid_t uid, gid_t gid, std::uint64_t connected_by) {
    int pidfd = -1;
    socklen_t len = sizeof pidfd;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) {
        const fd_closer closer{pidfd};
        return unit_of_pidfd(pidfd);
    }
    const int err = errno;
    if (err == ENOPROTOOPT) return unit_of_pid(pid, uid, gid, connected_by);  // Linux < 6.5
    // Linux 6.5 to 6.15 give no pidfd for a peer that was reaped.
    if (err == EINVAL || err == ESRCH) return {{}, exited};
    return {
        {},
        std::string("cannot get a pidfd for the process that connected (SO_PEERPIDFD: ") + std::strerror(err) + ")"};
}

}  // namespace thingmux::hub
