#include "tests/support/process.hpp"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace thingmux::test {
namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

// RAII for the two posix_spawn helper objects.
struct spawn_setup {
    posix_spawn_file_actions_t actions{};
    posix_spawnattr_t attr{};
    spawn_setup() {
        posix_spawn_file_actions_init(&actions);
        posix_spawnattr_init(&attr);
        // A test runner may block or ignore signals (e.g. SIGPIPE); children must start clean.
        sigset_t none;
        sigset_t all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    }
    ~spawn_setup() {
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
    }
    spawn_setup(const spawn_setup&) = delete;
    spawn_setup& operator=(const spawn_setup&) = delete;

    void redirect(int fd, const std::filesystem::path& file) {
        const char* path = file.empty() ? "/dev/null" : file.c_str();
        const int flags = fd == STDIN_FILENO ? O_RDONLY : O_WRONLY | O_CREAT | O_APPEND;
        posix_spawn_file_actions_addopen(&actions, fd, path, flags, 0644);
    }
    // Descriptors the test process opened without O_CLOEXEC (sockets of the code under test)
    // must not leak into children: a leaked listening socket would outlive the test's close().
    void close_others() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
        posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
    }
};

// With `setpriv --pdeathsig KILL` the child dies with the test process even if that crashes or
// is killed, so no broker outlives a test run. The signal fires when the spawning *thread* exits:
// spawn long-lived children from the test's main thread.
bool have_setpriv() {
    static const bool have = access("/usr/bin/setpriv", X_OK) == 0;
    return have;
}

// PATH lookup done here so that a missing program still throws despite the setpriv wrapper.
std::string resolve(const std::string& name) {
    if (name.find('/') != std::string::npos) {
        if (access(name.c_str(), X_OK) == 0) return name;
        throw_errno(errno, "cannot start " + name);
    }
    const char* path = std::getenv("PATH");
    std::string_view dirs = path != nullptr ? path : "/usr/bin:/bin";
    while (!dirs.empty()) {
        const auto colon = dirs.find(':');
        const auto dir = dirs.substr(0, colon);
        auto candidate = (dir.empty() ? std::string(".") : std::string(dir)) + "/" + name;
        if (access(candidate.c_str(), X_OK) == 0) return candidate;
        dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    }
    throw_errno(ENOENT, "cannot start " + name + " (not found in PATH)");
}

pid_t spawn(const std::vector<std::string>& argv, spawn_setup& setup, const std::vector<std::string>& extra_env) {
    if (argv.empty()) throw std::invalid_argument("child_process: empty argv");
    std::vector<std::string> args;
    if (have_setpriv()) args = {"/usr/bin/setpriv", "--pdeathsig", "KILL", "--"};
    args.push_back(resolve(argv[0]));
    args.insert(args.end(), argv.begin() + 1, argv.end());
    std::vector<char*> cargv;
    for (auto& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);

    std::vector<std::string> env_storage = extra_env;
    std::vector<char*> cenv;
    for (auto& e : env_storage) cenv.push_back(e.data());
    for (char** e = environ; *e != nullptr; ++e) {
        // extra_env overrides inherited variables of the same name
        const std::string_view var(*e);
        const auto name = var.substr(0, var.find('=') + 1);
        bool overridden = false;
        for (const auto& x : extra_env) overridden = overridden || x.starts_with(name);
        if (!overridden) cenv.push_back(*e);
    }
    cenv.push_back(nullptr);

    pid_t pid = -1;
    const int rc = posix_spawnp(&pid, cargv[0], &setup.actions, &setup.attr, cargv.data(), cenv.data());
    if (rc != 0) throw_errno(rc, "cannot start " + argv[0]);
    return pid;
}

// Waits for `pid` up to timeout_ms (< 0: forever); returns its wait status.
std::optional<int> wait_pid(pid_t pid, int timeout_ms) {
    int st = 0;
    if (timeout_ms < 0) {
        while (waitpid(pid, &st, 0) < 0) {
            if (errno != EINTR) return 0;  // ECHILD: already reaped elsewhere
        }
        return st;
    }
    std::optional<int> status;
    eventually(
        [&] {
            const pid_t r = waitpid(pid, &st, WNOHANG);
            if (r == pid) status = st;
            if (r < 0 && errno == ECHILD) status = 0;
            return status.has_value();
        },
        timeout_ms);
    return status;
}

}  // namespace

child_process::child_process(std::vector<std::string> argv, std::filesystem::path stdout_file,
                             std::filesystem::path stderr_file, std::vector<std::string> extra_env) {
    spawn_setup setup;
    setup.redirect(STDIN_FILENO, {});
    setup.redirect(STDOUT_FILENO, stdout_file);
    setup.redirect(STDERR_FILENO, stderr_file);
    setup.close_others();
    pid_ = spawn(argv, setup, extra_env);
}

child_process::child_process(child_process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(std::exchange(other.status_, std::nullopt)) {}

child_process::~child_process() {
    if (pid_ > 0 && !status_) stop();
}

void child_process::signal(int sig) const {
    if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

std::optional<int> child_process::wait(int timeout_ms) {
    if (pid_ > 0 && !status_) status_ = wait_pid(pid_, timeout_ms);
    return status_;
}

int child_process::stop(int timeout_ms) {
    if (pid_ <= 0) return 0;
    signal(SIGTERM);
    if (!wait(timeout_ms)) {
        signal(SIGKILL);
        wait(-1);
    }
    return *status_;
}

bool child_process::running() { return pid_ > 0 && !wait(0); }

int run_command(const std::vector<std::string>& argv, std::string* output, int timeout_ms) {
    // Output goes to an anonymous file, not a pipe: a command that leaves a background process
    // holding its stdout (`aws-like-broker start`) would otherwise block us until the timeout.
    struct memfd {
        int fd = memfd_create("run_command", MFD_CLOEXEC);
        ~memfd() {
            if (fd >= 0) close(fd);
        }
    } out;
    if (out.fd < 0) throw_errno(errno, "memfd_create");
    spawn_setup setup;
    setup.redirect(STDIN_FILENO, {});
    posix_spawn_file_actions_adddup2(&setup.actions, out.fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&setup.actions, out.fd, STDERR_FILENO);
    setup.close_others();
    const pid_t pid = spawn(argv, setup, {});
    auto status = wait_pid(pid, timeout_ms);
    const bool timed_out = !status;
    if (timed_out) {
        ::kill(pid, SIGKILL);
        status = wait_pid(pid, -1);
    }
    if (output) {
        output->clear();
        std::array<char, 4096> buf{};
        ssize_t n = 0;
        while ((n = pread(out.fd, buf.data(), buf.size(), static_cast<off_t>(output->size()))) > 0)
            output->append(buf.data(), static_cast<std::size_t>(n));
        if (timed_out)
            *output += "\n[run_command: " + argv[0] + " timed out after " + std::to_string(timeout_ms) + " ms]";
    }
    if (timed_out) return -1;
    if (WIFEXITED(*status)) return WEXITSTATUS(*status);
    return 128 + WTERMSIG(*status);  // shell convention
}

std::string run_or_throw(const std::vector<std::string>& argv) {
    std::string out;
    if (const int rc = run_command(argv, &out); rc != 0) {
        std::string cmd;
        for (const auto& a : argv) cmd += a + " ";
        throw std::runtime_error(cmd + "failed (exit " + std::to_string(rc) + "):\n" + out);
    }
    return out;
}

fd_guard::~fd_guard() {
    if (fd >= 0) close(fd);
}

unsigned short free_tcp_port() {
    const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) throw_errno(errno, "socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    const bool ok = bind(s, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
                    getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
    const int err = errno;
    close(s);
    if (!ok) throw_errno(err, "bind 127.0.0.1:0");
    return ntohs(addr.sin_port);
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file_atomically(const std::filesystem::path& to, const std::string& content) {
    const auto next = std::filesystem::path(to.string() + ".next");
    {
        std::ofstream out(next, std::ios::binary | std::ios::trunc);
        out << content;
        if (!out.flush()) throw std::runtime_error("cannot write " + next.string());
    }
    std::filesystem::rename(next, to);
}

bool tcp_accepts(std::uint16_t port) {
    const int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = connect(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    close(s);
    return ok;
}

}  // namespace thingmux::test
