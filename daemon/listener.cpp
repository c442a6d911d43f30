#include "daemon/listener.hpp"

#include "common/regular_file.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <stdexcept>
#include <vector>

namespace thingmux {

namespace asio = boost::asio;
using unix_socket = asio::local::stream_protocol;

namespace {

constexpr auto first_backoff = std::chrono::milliseconds(10);
constexpr auto max_backoff = std::chrono::milliseconds(1000);

// Descriptors kept for everything but clients: stdio, the event loop (epoll, eventfd,
// timerfd, signal pipe), the acceptors (IPC, MQTT), the spool (database, WAL, shared memory), D-Bus, the
// journal, sd_notify, and short-lived ones (configuration and certificate files, NSS lookups
// and /proc reads for each new peer, DNS). Plus per Thing its TLS socket and a resolver's.
constexpr std::size_t reserved_descriptors = 64;
constexpr std::size_t descriptors_per_thing = 4;

// Where a symbolic link points, for messages ("?" when it cannot be read).
std::string link_target(const std::filesystem::path& link) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(link, ec);
    return ec ? std::string("?") : target.string();
}

// "a symbolic link to /etc/shadow", "a regular file", ...: what is at `path` per lstat().
std::string what_is(const std::filesystem::path& path, const struct stat& st) {
    if (S_ISLNK(st.st_mode)) return "a symbolic link to " + link_target(path);
    return files::file_type_name(st.st_mode);
}

// Who besides thingmuxd's user may replace files in `dir` (rename, unlink, create): "" when
// nobody. The sticky bit stops them from touching files they do not own.
std::string others_who_can_write(const struct stat& dir) {
    if ((dir.st_mode & S_ISVTX) != 0) return {};
    if ((dir.st_mode & S_IWOTH) != 0) return "every user";
    if ((dir.st_mode & S_IWGRP) != 0 && dir.st_gid != 0) return "group " + std::to_string(dir.st_gid);
    if (dir.st_uid != 0 && dir.st_uid != ::geteuid()) return "its owner, uid " + std::to_string(dir.st_uid);
    return {};
}

}  // namespace

gid_t socket_group_id(const std::string& name, std::string_view setting) {
    group g{};
    group* found = nullptr;
    std::vector<char> buf(4096);
    int rc = 0;
    while ((rc = ::getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found)) == ERANGE) buf.resize(buf.size() * 2);
    if (rc != 0 || found == nullptr)
        throw std::runtime_error(std::string(setting) + " '" + name +
                                 "' does not exist: create it (the package's sysusers.d file does) "
                                 "or set " +
                                 std::string(setting) + ": \"\" in the configuration");
    return g.gr_gid;
}

rlim_t raise_open_file_limit() {
    rlimit l{};
    if (::getrlimit(RLIMIT_NOFILE, &l) != 0) return 1024;
    if (l.rlim_cur < l.rlim_max) {
        const rlim_t before = l.rlim_cur;
        l.rlim_cur = l.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &l) == 0) {
            spdlog::debug("open-file limit raised from {} to {}", before, l.rlim_cur);
        } else {
            spdlog::debug("cannot raise the open-file limit from {} to {}: {}", before, l.rlim_max,
                          files::error_text(errno));
            l.rlim_cur = before;
        }
    }
    return l.rlim_cur;
}

std::size_t client_capacity(rlim_t open_files, std::size_t things) noexcept {
    const std::size_t reserved = reserved_descriptors + descriptors_per_thing * things;
    if (open_files == RLIM_INFINITY) return std::numeric_limits<std::size_t>::max();
    return open_files > reserved ? static_cast<std::size_t>(open_files) - reserved : 1;
}

listener::endpoint ipc_endpoint(const config::ipc_settings& ipc) {
    return {.path = ipc.socket, .mode = ipc.mode, .group = ipc.group, .name = "IPC", .section = "ipc"};
}

listener::endpoint mqtt_endpoint(const config::mqtt_settings& mqtt) {
    return {.path = mqtt.socket, .mode = mqtt.mode, .group = mqtt.group, .name = "MQTT", .section = "mqtt"};
}

listener::listener(asio::io_context& io, endpoint where, int activated)
    : where_(std::move(where)), acceptor_(io), retry_(io) {
    if (activated < 0) {
        bind();
        return;
    }
    boost::system::error_code ec;
    acceptor_.assign(unix_socket(), activated, ec);
    if (ec) throw std::runtime_error("cannot use the socket systemd passed: " + ec.message());
}

listener::~listener() {
    if (pinned_ >= 0) ::close(pinned_);
}

// A socket file left by a crashed daemon is replaced; one that a live program still answers on
// is not (two daemons would fight over the Things' client IDs). Nothing else is ever removed.
void listener::bind() {
    const auto& path = where_.path;
    const auto set_socket = " set " + where_.section + ".socket";
    const auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
    std::error_code fs_ec;
    if (!std::filesystem::exists(dir, fs_ec)) {
        std::filesystem::create_directories(dir, fs_ec);
        if (fs_ec)
            throw std::runtime_error("cannot create directory " + dir.string() + " for the " + where_.name +
                                     " socket: " + fs_ec.message());
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw std::runtime_error(path.string() + " is " + what_is(path, st) +
                                     ", not a socket: thingmuxd neither follows nor replaces it; remove it, or" +
                                     set_socket);
        unix_socket::socket probe(acceptor_.get_executor());
        boost::system::error_code ec;
        probe.connect(unix_socket::endpoint(path.string()), ec);
        if (!ec)
            throw std::runtime_error("another program is already listening on " + path.string() +
                                     " (another thingmuxd, or thingmuxd.socket): stop it first, or" + set_socket);
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            throw std::runtime_error("cannot remove the stale socket " + path.string() + ": " +
                                     files::error_text(errno));
    } else if (errno != ENOENT) {
        throw std::runtime_error("cannot inspect " + path.string() + ": " + files::error_text(errno));
    }
    if (struct stat d{}; ::stat(dir.c_str(), &d) == 0) {
        if (const auto who = others_who_can_write(d); !who.empty())
            spdlog::warn(
                "the directory {} of the {} socket is writable by {}: they can replace the socket with "
                "another file or a link; thingmuxd will then refuse to change its mode or group, but clients "
                "may connect to an impostor. Use a directory only thingmuxd's user can write, such as "
                "/run/thingmux ({}.socket)",
                logging::escaped(dir.string()), where_.name, who, where_.section);
    }

    boost::system::error_code ec;
    acceptor_.open(unix_socket(), ec);
    if (!ec) {
        // The file is born with the mode's permission bits: never looser, not even until chmod.
        const mode_t previous = ::umask(~static_cast<mode_t>(where_.mode) & 0777);
        acceptor_.bind(unix_socket::endpoint(path.string()), ec);
        ::umask(previous);
    }
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on " + path.string() + ": " + ec.message());

    // From here on the file is known by its descriptor, never by its path alone.
    pinned_ = ::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (pinned_ < 0)
        throw std::runtime_error("cannot open " + path.string() + " after binding it: " + files::error_text(errno));
    if (::fstat(pinned_, &st) != 0 || !S_ISSOCK(st.st_mode))
        throw std::runtime_error(path.string() + " was replaced right after thingmuxd bound it; its directory " +
                                 dir.string() + " is writable by others");
    device_ = st.st_dev;
    inode_ = st.st_ino;
    path_ = path;
    if (auto problem = apply_access(where_); !problem.empty()) throw std::runtime_error(problem);
}

std::string listener::replaced() const {
    struct stat st {};
    if (::lstat(path_.c_str(), &st) != 0)
        return errno == ENOENT ? path_.string() + " no longer exists (removed by someone else)"
                               : "cannot inspect " + path_.string() + ": " + files::error_text(errno);
    if (st.st_dev == device_ && st.st_ino == inode_) return {};
    return path_.string() + " is now " + what_is(path_, st) + ", no longer the socket thingmuxd bound";
}

std::string listener::apply_access(const endpoint& access) {
    if (path_.empty()) return {};
    if (auto why = replaced(); !why.empty())
        return "not applying " + where_.section + ".mode and " + where_.section + ".group: " + why +
               "; someone who may write to its directory replaced it. Remove what is there and restart thingmuxd "
               "(clients cannot reach it meanwhile), and keep the socket in a directory only thingmuxd's user can "
               "write";
    // The pinned descriptor: whatever is at the path by now, only the bound file is changed.
    if (!access.group.empty()) {
        gid_t gid = 0;
        try {
            gid = socket_group_id(access.group, where_.section + ".group");
        } catch (const std::exception& e) {
            return e.what();
        }
        // Not when it has that group already (born with thingmuxd's own): chown() may be
        // forbidden (a system call filter) even where it would change nothing.
        struct stat st {};
        const bool has_it = ::fstat(pinned_, &st) == 0 && st.st_gid == gid;
        if (!has_it && ::fchownat(pinned_, "", static_cast<uid_t>(-1), gid, AT_EMPTY_PATH) != 0)
            return "cannot give " + path_.string() + " to group " + access.group + ": " + files::error_text(errno);
    }
    // chmod() through /proc follows the descriptor's magic link, i.e. to the pinned file itself
    // (fchmod() does not work on O_PATH descriptors).
    const auto by_descriptor = "/proc/self/fd/" + std::to_string(pinned_);
    if (::chmod(by_descriptor.c_str(), static_cast<mode_t>(access.mode)) != 0)
        return "cannot set mode of " + path_.string() + ": " + files::error_text(errno) +
               (errno == ENOENT ? " (/proc is not mounted)" : "");
    return {};
}

void listener::start(std::function<void(socket)> on_client) {
    on_client_ = std::move(on_client);
    accept();
}

void listener::close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    retry_.cancel();
    if (!path_.empty() && replaced().empty()) ::unlink(path_.c_str());
}

namespace {

// Whether `ec` is the system error `err`. Compared by category and value: no error_condition
// round trip through the categories' virtual equivalent().
bool is_errno(const boost::system::error_code& ec, int err) noexcept {
    return ec.category() == boost::system::system_category() && ec.value() == err;
}

}  // namespace

void listener::accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, socket s) {
        if (closed_ || ec == asio::error::operation_aborted) return;
        if (!ec) {
            if (failed_attempts_ > 0 && pause_logged_)
                spdlog::info("accepting {} clients again, after {} failed attempt(s)", where_.name, failed_attempts_);
            failed_attempts_ = 0;
            pause_logged_ = false;
            backoff_ = {};
            on_client_(std::move(s));
        } else if (ec != asio::error::connection_aborted && ec != asio::error::interrupted && !is_errno(ec, EPROTO)) {
            // Out of descriptors or memory, or something unexpected: retrying at once would
            // fail the same way, in a loop that starves everything else.
            return pause(ec);
        }
        // (A client that gave up while waiting in the backlog: nothing to wait for.)
        accept();
    });
}

void listener::pause(const boost::system::error_code& ec) {
    backoff_ = backoff_.count() == 0 ? first_backoff : std::min(backoff_ * 2, max_backoff);
    if (failed_attempts_++ == 0) {
        if (auto note = pause_log_.admit()) {
            pause_logged_ = true;
            std::string why = ec.message();
            if (ec == asio::error::no_descriptors) {
                rlimit l{};
                ::getrlimit(RLIMIT_NOFILE, &l);
                why += " (the open-file limit is " + std::to_string(l.rlim_cur) +
                       ": raise LimitNOFILE= in thingmuxd.service, or lower " + where_.section + ".max_clients)";
            } else if (is_errno(ec, ENFILE)) {
                why += " (the system's open-file table is full: fs.file-max)";
            }
            spdlog::warn("cannot accept {} clients: {}; pausing, then retrying with a back-off of up to {} ms{}",
                         where_.name, why, max_backoff.count(), *note);
        }
    }
    retry_.expires_after(backoff_);
    retry_.async_wait([this](const boost::system::error_code& wait_ec) {
        if (!wait_ec && !closed_) accept();
    });
}

}  // namespace thingmux
