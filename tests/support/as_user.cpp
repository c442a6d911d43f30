#include "tests/support/as_user.hpp"

#include "tests/support/process.hpp"

#include <array>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace thingmux::test {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // the parent is gone or stopped listening: nothing left to tell
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

// The child side: never returns, never runs the test process's atexit handlers or destructors.
[[noreturn]] void run_child(const user_identity& who, const as_user_body& body, int out_fd, pid_t parent) {
    const auto fail = [out_fd](const char* call) {
        const int err = errno;
        write_all(out_fd, std::string(call) + ": " + std::generic_category().message(err));
        ::_exit(as_user_setup_failed);
    };
    // Groups first: once the uid is dropped, setgroups and setgid are no longer permitted.
    if (::setgroups(who.groups.size(), who.groups.data()) != 0) fail("setgroups");
    if (::setgid(who.gid) != 0) fail("setgid");
    if (::setuid(who.uid) != 0) fail("setuid");
    // The kernel clears the parent-death signal when credentials change, so it is set only now;
    // the getppid check covers a parent that died before it was set.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("prctl(PR_SET_PDEATHSIG)");
    if (::getppid() != parent) ::_exit(as_user_setup_failed);

    std::string out;
    int code = 0;
    try {
        code = body(out);
    } catch (const std::exception& e) {
        out += std::string("\n[as_user: callback threw: ") + e.what() + "]";
        code = as_user_threw;
    } catch (...) {
        out += "\n[as_user: callback threw]";
        code = as_user_threw;
    }
    write_all(out_fd, out);
    ::_exit(code & 0xff);
}

bool keep_dirs() {
    const char* v = std::getenv("THINGMUX_KEEP_TEST_DIRS");
    return v != nullptr && std::string_view(v) == "1";
}

// True when every directory from / down to `dir` lets others search it.
bool world_searchable(const fs::path& dir) {
    fs::path p;
    for (const auto& part : fs::absolute(dir)) {
        p /= part;
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0 || (st.st_mode & S_IXOTH) == 0) return false;
    }
    return true;
}

}  // namespace

// ---- user_process ------------------------------------------------------------------------

user_process::user_process(const user_identity& who, const as_user_body& body) {
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
        const int err = errno;
        ::close(fds[0]);
        ::close(fds[1]);
        throw_errno(err, "fork");
    }
    if (pid_ == 0) {
        ::close(fds[0]);
        run_child(who, body, fds[1], parent);
    }
    ::close(fds[1]);
    out_fd_ = fds[0];
    // Drained while waiting, so a child writing more than a pipe buffer does not block forever.
    ::fcntl(out_fd_, F_SETFL, ::fcntl(out_fd_, F_GETFL) | O_NONBLOCK);
}

user_process::~user_process() {
    if (!result_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int st = 0;
        while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
        }
    }
    if (out_fd_ >= 0) ::close(out_fd_);
}

void user_process::drain() {
    std::array<char, 4096> buf{};
    for (;;) {
        const ssize_t n = ::read(out_fd_, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // EOF, or nothing more for now (EAGAIN)
        output_.append(buf.data(), static_cast<std::size_t>(n));
    }
}

as_user_result user_process::wait(int timeout_ms) {
    if (result_) return *result_;
    int st = 0;
    bool exited = false;
    bool lost = false;
    eventually(
        [&] {
            drain();
            const pid_t r = ::waitpid(pid_, &st, WNOHANG);
            exited = r == pid_;
            lost = r < 0 && errno == ECHILD;  // reaped elsewhere (SIGCHLD ignored?)
            return exited || lost;
        },
        timeout_ms);
    as_user_result res;
    res.pid = pid_;
    if (exited) {
        res.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    } else if (lost) {
        output_ += "\n[as_user: child " + std::to_string(pid_) + " was reaped elsewhere, status unknown]";
    } else {
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
        }
        output_ += "\n[as_user: child timed out after " + std::to_string(timeout_ms) + " ms and was killed]";
    }
    drain();
    ::close(out_fd_);
    out_fd_ = -1;
    res.output = output_;
    result_ = res;
    return res;
}

as_user_result run_as_user(const user_identity& who, const as_user_body& body, int timeout_ms) {
    user_process child(who, body);
    return child.wait(timeout_ms);
}

// ---- shared_temp_dir ---------------------------------------------------------------------

shared_temp_dir::shared_temp_dir() {
    // TMPDIR may point into a private directory; the system /tmp is searchable by everyone.
    fs::path base = fs::temp_directory_path();
    if (!world_searchable(base)) base = "/tmp";
    std::string tmpl = (base / "thingmux-shared-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw_errno(errno, "mkdtemp " + tmpl);
    path_ = tmpl;
    // mkdtemp makes it 0700; explicit chmod because the umask must not narrow it.
    if (::chmod(path_.c_str(), 0755) != 0) {
        const int err = errno;
        std::error_code ec;
        fs::remove(path_, ec);
        throw_errno(err, "chmod 0755 " + path_.string());
    }
}

shared_temp_dir::~shared_temp_dir() {
    std::error_code ec;
    if (!keep_dirs()) fs::remove_all(path_, ec);
}

}  // namespace thingmux::test
