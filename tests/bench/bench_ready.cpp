// thingmux-bench-ready: time from process start to systemd readiness (READY=1), for thingmuxd or
// any other Type=notify service (Debian's mosquitto is built with sd_notify), without systemd.
//
// It plays the service manager's part: a private AF_UNIX datagram socket becomes the child's
// NOTIFY_SOCKET, the clock starts just before fork() and stops when a datagram with the line
// READY=1 arrives; with --status TEXT also when a STATUS= line containing TEXT arrives (thingmuxd
// reports each Thing's link state there, e.g. "gateway-01: connected"). Then the child gets
// SIGTERM (again after 1 s, SIGKILL after 5 s). With --runs N it repeats and prints the median.
//
// Prints one line: ready_ms=M [status_ms=M] runs=N ready_all=a,b,... [status_all=a,b,...]
// (each run also goes to stderr when N > 1). Exit status: 0 on success, 2 when the command
// cannot be executed, exits before it is ready, or the timeout passes; 130 on SIGINT/SIGTERM.
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kill_grace = 5s;
constexpr auto term_again = 1s;
constexpr std::size_t tail_lines = 20;

// Setup and run failures end the program with exit status 2; the message says what happened.
struct bench_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct settings {
    double timeout_s = 30;
    std::string status;
    unsigned runs = 1;
    std::string log = "/dev/null";
    std::vector<std::string> command;
};

struct run_result {
    double ready_ms = 0;
    std::optional<double> status_ms;
};

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

volatile std::sig_atomic_t interrupted = 0;
extern "C" void on_interrupt(int) {
    interrupted = 1;
}

// The NOTIFY_SOCKET. A path in a fresh temporary directory when it fits sun_path (108 bytes with
// its NUL; a long $TMPDIR may not), otherwise an abstract socket ("@...", Linux only, scoped to the
// network namespace), which sd_notify also accepts and which needs no directory.
class notify_socket {
public:
    notify_socket() {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd_ < 0) throw bench_error(errno_text("socket(AF_UNIX, SOCK_DGRAM)"));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        socklen_t len = 0;

        const char* tmp = std::getenv("TMPDIR");
        std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/thingmux-ready.XXXXXX";
        std::vector<char> buf(templ.begin(), templ.end());
        buf.push_back('\0');
        if (::mkdtemp(buf.data()) == nullptr) throw bench_error(errno_text("mkdtemp " + templ));
        dir_ = buf.data();
        // A service started as root may drop privileges before it says READY=1 (mosquitto switches
        // to user mosquitto), so, like systemd's own notify socket, anyone may reach this one.
        ::chmod(dir_.c_str(), 0711);
        const std::string path = dir_ + "/notify";
        if (path.size() < sizeof addr.sun_path) {
            std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
            len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
            env_value_ = path;
        } else {
            ::rmdir(dir_.c_str());
            dir_.clear();
            std::random_device rd;
            const std::string name = "thingmux-ready/" + std::to_string(::getpid()) + "/" + std::to_string(rd());
            addr.sun_path[0] = '\0';  // abstract: no NUL terminator, the length says where it ends
            std::memcpy(addr.sun_path + 1, name.data(), name.size());
            len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
            env_value_ = "@" + name;
        }
        if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) != 0)
            throw bench_error(errno_text("bind " + env_value_));
        if (!dir_.empty()) ::chmod(env_value_.c_str(), 0666);
    }
    ~notify_socket() {
        if (fd_ >= 0) ::close(fd_);
        if (!dir_.empty()) {
            ::unlink(env_value_.c_str());
            ::rmdir(dir_.c_str());
        }
    }
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;

    [[nodiscard]] int fd() const { return fd_; }
    // The value for NOTIFY_SOCKET.
    [[nodiscard]] const std::string& address() const { return env_value_; }

    // Datagrams left over from an earlier run (a child that went on talking while it stopped).
    void drain() {
        char b[256];
        while (::recv(fd_, b, sizeof b, MSG_DONTWAIT) >= 0) {
        }
    }

private:
    int fd_ = -1;
    std::string dir_;
    std::string env_value_;
};

std::string describe_wait_status(int st) {
    if (WIFEXITED(st)) return "exited with status " + std::to_string(WEXITSTATUS(st));
    if (WIFSIGNALED(st)) {
        const char* name = sigabbrev_np(WTERMSIG(st));
        return "was killed by signal " + std::to_string(WTERMSIG(st)) +
               (name != nullptr ? std::string(" (SIG") + name + ")" : "");
    }
    return "stopped with wait status " + std::to_string(st);
}

// The child process: started with fork+exec, stopped (SIGTERM, then SIGKILL) when this goes away.
class child {
public:
    // Everything exec needs is built before fork(), so the child only calls async-signal-safe
    // functions. An exec failure comes back through a close-on-exec pipe as an errno.
    child(const std::vector<std::string>& command, const std::string& notify, int log_fd) {
        std::vector<char*> argv;
        argv.reserve(command.size() + 1);
        for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        std::vector<std::string> env_storage{"NOTIFY_SOCKET=" + notify};
        for (char** e = environ; *e != nullptr; ++e)
            if (std::string_view(*e).substr(0, 14) != "NOTIFY_SOCKET=") env_storage.emplace_back(*e);
        std::vector<char*> envp;
        envp.reserve(env_storage.size() + 1);
        for (auto& e : env_storage) envp.push_back(e.data());
        envp.push_back(nullptr);

        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw bench_error(errno_text("pipe2"));
        const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        const pid_t parent = ::getpid();

        started_ = clock_type::now();
        pid_ = ::fork();
        if (pid_ < 0) throw bench_error(errno_text("fork"));
        if (pid_ == 0) {
            ::close(pipe_fds[0]);
            // Do not outlive this benchmark if it is killed.
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) ::_exit(127);
            if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
            ::dup2(log_fd, STDOUT_FILENO);
            ::dup2(log_fd, STDERR_FILENO);
            ::signal(SIGINT, SIG_DFL);
            ::signal(SIGTERM, SIG_DFL);
            ::execvpe(argv[0], argv.data(), envp.data());
            const int err = errno;
            (void)!::write(pipe_fds[1], &err, sizeof err);
            ::_exit(127);
        }
        ::close(pipe_fds[1]);
        if (devnull >= 0) ::close(devnull);
        int err = 0;
        ssize_t n;
        do n = ::read(pipe_fds[0], &err, sizeof err);
        while (n < 0 && errno == EINTR);
        ::close(pipe_fds[0]);
        if (n == static_cast<ssize_t>(sizeof err)) {
            reap_blocking();
            throw bench_error("cannot execute '" + command[0] + "': " + std::strerror(err));
        }
        pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));  // -1 on kernels before 5.3
    }
    ~child() {
        if (pid_ > 0 && !status_) (void)stop();
        if (pidfd_ >= 0) ::close(pidfd_);
    }
    child(const child&) = delete;
    child& operator=(const child&) = delete;

    [[nodiscard]] clock_type::time_point started() const { return started_; }
    // Readable once the child has exited; -1 when the kernel has no pidfd (then poll try_reap).
    [[nodiscard]] int pidfd() const { return pidfd_; }

    // Its wait status once it has exited.
    [[nodiscard]] std::optional<int> try_reap() {
        if (status_) return status_;
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) status_ = st;
        return status_;
    }

    // SIGTERM, SIGKILL after the grace period. Returns true when SIGKILL was needed.
    // SIGTERM goes out a second time after a second: mosquitto 2.0 sets `run = 1` just after
    // sd_notify("READY=1"), so a SIGTERM that arrives in between is lost (seen here in most runs).
    bool stop() {
        if (try_reap()) return false;
        ::kill(pid_, SIGTERM);
        const auto start = clock_type::now();
        bool again = false;
        while (clock_type::now() < start + kill_grace) {
            if (try_reap()) return false;
            if (!again && clock_type::now() >= start + term_again) {
                again = true;
                ::kill(pid_, SIGTERM);
            }
            std::this_thread::sleep_for(2ms);
        }
        ::kill(pid_, SIGKILL);
        reap_blocking();
        return true;
    }

private:
    void reap_blocking() {
        int st = 0;
        while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
        }
        status_ = st;
    }

    pid_t pid_ = -1;
    int pidfd_ = -1;
    std::optional<int> status_;
    clock_type::time_point started_;
};

// The last lines the child wrote in this run, for error messages.
std::string log_tail(const std::string& path, off_t from) {
    struct stat sb {};
    if (::stat(path.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode))
        return "  (its output went to " + path + "; use --log FILE to see it)\n";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    const off_t start = std::max(from, sb.st_size - off_t{16384});
    std::string text(static_cast<std::size_t>(std::max(off_t{0}, sb.st_size - start)), '\0');
    const ssize_t n = ::pread(fd, text.data(), text.size(), start);
    ::close(fd);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    if (text.empty()) return "  (its log " + path + " is empty)\n";
    if (text.back() != '\n') text += '\n';
    std::size_t pos = text.size() - 1, lines = 0;
    while (pos > 0 && lines <= tail_lines)
        if (text[--pos] == '\n') ++lines;
    if (lines > tail_lines) text.erase(0, pos + 1);
    std::string out = "  last lines of " + path + ":\n";
    std::size_t b = 0;
    for (std::size_t e = text.find('\n'); e != std::string::npos; b = e + 1, e = text.find('\n', b))
        out += "  | " + text.substr(b, e - b) + "\n";
    return out;
}

std::string seconds(double s) {
    char b[32];
    std::snprintf(b, sizeof b, "%g s", s);
    return b;
}

double ms_since(clock_type::time_point t0) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

run_result run_once(const settings& s, notify_socket& sock, int log_fd) {
    sock.drain();
    const off_t log_start = ::lseek(log_fd, 0, SEEK_END);
    child c(s.command, sock.address(), log_fd);
    const auto deadline = c.started() + std::chrono::duration<double>(s.timeout_s);
    const bool want_status = !s.status.empty();
    run_result r;
    bool ready = false;
    std::string last_status;
    auto failed = [&](const std::string& why) {
        throw bench_error("'" + s.command[0] + "' " + why + "\n" + log_tail(s.log, log_start));
    };

    while (!ready || (want_status && !r.status_ms)) {
        pollfd fds[2] = {{sock.fd(), POLLIN, 0}, {c.pidfd(), POLLIN, 0}};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
        int wait_ms = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(left.count() + 1, 0, 1000));
        if (c.pidfd() < 0) wait_ms = std::min(wait_ms, 10);  // no pidfd: notice an exit by polling
        const int n = ::poll(fds, c.pidfd() >= 0 ? 2 : 1, wait_ms);
        if (interrupted) throw bench_error("interrupted");
        if (n < 0 && errno != EINTR) throw bench_error(errno_text("poll"));
        // Datagrams first: a child that said READY=1 and then exited still counts as ready.
        char buf[4096];
        ssize_t len;
        while ((len = ::recv(sock.fd(), buf, sizeof buf, MSG_DONTWAIT)) >= 0) {
            const double at = ms_since(c.started());
            std::string_view msg(buf, static_cast<std::size_t>(len));
            while (!msg.empty()) {
                const auto nl = msg.find('\n');
                const auto line = msg.substr(0, nl);
                msg = nl == std::string_view::npos ? std::string_view{} : msg.substr(nl + 1);
                if (line == "READY=1" && !ready) {
                    ready = true;
                    r.ready_ms = at;
                } else if (line.substr(0, 7) == "STATUS=") {
                    last_status = line.substr(7);
                    if (want_status && !r.status_ms && last_status.find(s.status) != std::string::npos)
                        r.status_ms = at;
                }
            }
        }
        if (ready && (!want_status || r.status_ms)) break;
        if (const auto st = c.try_reap()) {
            if (!ready) failed(describe_wait_status(*st) + " before it sent READY=1");
            failed(describe_wait_status(*st) + " after READY=1 but before a STATUS= line containing '" + s.status +
                   "' (last STATUS: '" + last_status + "')");
        }
        if (clock_type::now() >= deadline) {
            if (!ready) failed("sent no READY=1 within " + seconds(s.timeout_s));
            failed("sent READY=1 but no STATUS= line containing '" + s.status + "' within " + seconds(s.timeout_s) +
                   " (last STATUS: '" + last_status + "')");
        }
    }
    if (c.stop()) std::cerr << "thingmux-bench-ready: '" << s.command[0] << "' ignored SIGTERM for 5 s; killed it\n";
    return r;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 != 0 ? v[m] : (v[m - 1] + v[m]) / 2;
}

std::string join(const std::vector<double>& v) {
    std::string out;
    char b[32];
    for (double x : v) {
        std::snprintf(b, sizeof b, "%.1f", x);
        out += (out.empty() ? "" : ",") + std::string(b);
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "thingmux-bench-ready: time from fork() to READY=1 on NOTIFY_SOCKET (systemd Type=notify), without "
        "systemd.\nExample: thingmux-bench-ready --runs 5 --status 'gateway-01: connected' -- thingmuxd --config "
        "FILE --bus none"};
    settings s;
    app.add_option("--timeout", s.timeout_s, "give up after this many seconds (per run)")
        ->check(CLI::Range(0.001, 86400.0))
        ->capture_default_str();
    app.add_option("--status", s.status,
                   "also time the first STATUS= line containing TEXT (thingmuxd: 'THING: connected')")
        ->type_name("TEXT");
    app.add_option("--runs", s.runs, "start the command this many times; print the median")
        ->check(CLI::Range(1U, 1000U))
        ->capture_default_str();
    app.add_option("--log", s.log, "the command's stdout and stderr (truncated, then appended to by each run)")
        ->type_name("FILE")
        ->capture_default_str();
    app.add_option("command", s.command, "the command and its arguments, after --")->required()->expected(-1);
    app.footer(
        "NOTIFY_SOCKET is a socket in a new directory under $TMPDIR (or /tmp), or an abstract socket when that "
        "path would not fit sun_path.\nOutput: ready_ms=M [status_ms=M] runs=N ready_all=... [status_all=...] "
        "(medians, then each run, in ms).\nExit status 2: cannot execute, exited before READY=1 (status and log "
        "tail shown), timeout.");
    CLI11_PARSE(app, argc, argv);

    struct sigaction sa {};
    sa.sa_handler = on_interrupt;  // no SA_RESTART: poll() returns and the child is stopped
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);

    try {
        const int log_fd = ::open(s.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) throw bench_error(errno_text("open " + s.log));
        notify_socket sock;
        std::vector<double> ready, status;
        for (unsigned i = 1; i <= s.runs; ++i) {
            if (s.runs > 1) {
                const std::string mark = "--- thingmux-bench-ready: run " + std::to_string(i) + " ---\n";
                (void)!::write(log_fd, mark.data(), mark.size());
            }
            const auto r = run_once(s, sock, log_fd);
            ready.push_back(r.ready_ms);
            if (r.status_ms) status.push_back(*r.status_ms);
            if (s.runs > 1) {
                std::fprintf(stderr, "run %u: ready_ms=%.1f", i, r.ready_ms);
                if (r.status_ms) std::fprintf(stderr, " status_ms=%.1f", *r.status_ms);
                std::fprintf(stderr, "\n");
            }
        }
        ::close(log_fd);
        std::printf("ready_ms=%.1f", median(ready));
        if (!status.empty()) std::printf(" status_ms=%.1f", median(status));
        std::printf(" runs=%u ready_all=%s", s.runs, join(ready).c_str());
        if (!status.empty()) std::printf(" status_all=%s", join(status).c_str());
        std::printf("\n");
        return 0;
    } catch (const bench_error& e) {
        std::string msg = e.what();
        if (!msg.empty() && msg.back() == '\n') msg.pop_back();
        std::cerr << "thingmux-bench-ready: " << msg << '\n';
        return interrupted ? 130 : 2;
    } catch (const std::exception& e) {
        std::cerr << "thingmux-bench-ready: " << e.what() << '\n';
        return 2;
    }
}
