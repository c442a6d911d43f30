#include "tests/support/peer_process.hpp"

#include <systemd/sd-login.h>

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <vector>

namespace thingmux::test {
namespace {

constexpr const char* cgroup_roots[] = {"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup"};

std::string errno_text(int err) {
    return std::generic_category().message(err);
}

// Creates the cgroup `unit` on every hierarchy systemd may read units from and returns the
// cgroup.procs files a process writes "0" to in order to enter it.
std::vector<std::string> unit_cgroup_procs_files(const std::string& unit) {
    std::vector<std::string> files;
    for (const char* root : cgroup_roots) {
        const std::filesystem::path base(root);
        std::error_code ec;
        if (!std::filesystem::exists(base / "cgroup.procs", ec)) continue;
        std::filesystem::create_directory(base / unit, ec);
        files.push_back((base / unit / "cgroup.procs").string());
    }
    return files;
}

// Async-signal-safe: also runs in a child made by a raw clone3, where only system calls are safe.
int enter_cgroups(const std::vector<const char*>& files) {
    int entered = 0;
    for (const char* file : files) {
        const int fd = ::open(file, O_WRONLY | O_CLOEXEC);
        if (fd < 0) continue;
        if (::write(fd, "0\n", 2) == 2) ++entered;
        ::close(fd);
    }
    return entered;
}

std::vector<const char*> c_strings(const std::vector<std::string>& v) {
    std::vector<const char*> out;
    for (const auto& s : v) out.push_back(s.c_str());
    return out;
}

}  // namespace

std::string unit_of(pid_t pid) {
    char* got = nullptr;
    const int rc = sd_pid_get_unit(pid, &got);
    std::string unit = rc >= 0 && got != nullptr ? got : "";
    std::free(got);
    return unit;
}

std::string enter_unit_cgroup(const std::string& unit) {
    const auto files = unit_cgroup_procs_files(unit);
    if (enter_cgroups(c_strings(files)) == 0) return "no writable cgroup hierarchy";
    if (const auto got = unit_of(0); got != unit) return "systemd reads the unit as '" + got + "'";
    return {};
}

void remove_unit_cgroup(const std::string& unit) {
    for (const char* root : cgroup_roots) {
        std::error_code ec;
        std::filesystem::remove(std::filesystem::path(root) / unit, ec);
    }
}

pid_t connect_from_exited_child(int socket_fd, const std::filesystem::path& path, std::string& error) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    const pid_t child = ::fork();
    if (child < 0) {
        error = "fork: " + errno_text(errno);
        return -1;
    }
    if (child == 0) {
        const int rc = ::connect(socket_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
        ::_exit(rc == 0 ? 0 : (errno & 0xff));
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        error = "connect " + path.string() + " from the child: " +
                (WIFEXITED(status) ? errno_text(WEXITSTATUS(status)) : std::string("killed by a signal"));
        return -1;
    }
    return child;
}

process_with_pid::process_with_pid(pid_t pid, const std::string& unit) {
    const auto files = unit.empty() ? std::vector<std::string>{} : unit_cgroup_procs_files(unit);
    const auto file_names = c_strings(files);
    int ready[2] = {-1, -1};
    if (::pipe2(ready, O_CLOEXEC) != 0) {
        error_ = "pipe: " + errno_text(errno);
        return;
    }
    pid_t wanted = pid;
    clone_args args{};
    args.exit_signal = SIGCHLD;
    args.set_tid = reinterpret_cast<std::uintptr_t>(&wanted);
    args.set_tid_size = 1;
    const long rc = ::syscall(SYS_clone3, &args, sizeof args);
    if (rc == 0) {
        // The child of a raw clone3: glibc did not see it happen, so system calls only.
        const int entered = enter_cgroups(file_names);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        const char answer = file_names.empty() || entered > 0 ? 'y' : 'n';
        (void)!::write(ready[1], &answer, 1);
        for (;;) ::pause();
    }
    const int err = errno;
    ::close(ready[1]);
    if (rc < 0) {
        ::close(ready[0]);
        error_ = "clone3 with pid " + std::to_string(pid) + ": " + errno_text(err);
        return;
    }
    pid_ = static_cast<pid_t>(rc);
    pollfd p{ready[0], POLLIN, 0};
    char answer = 0;
    if (::poll(&p, 1, 10'000) != 1 || ::read(ready[0], &answer, 1) != 1)
        error_ = "the process with pid " + std::to_string(pid) + " did not start";
    else if (answer != 'y')
        error_ = "no writable cgroup hierarchy";
    else if (!unit.empty() && unit_of(pid_) != unit)
        error_ = "systemd reads the unit of pid " + std::to_string(pid) + " as '" + unit_of(pid_) + "'";
    ::close(ready[0]);
}

process_with_pid::~process_with_pid() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
}

}  // namespace thingmux::test
