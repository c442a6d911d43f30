#include "transport.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

namespace thingmux::detail {

namespace {

// epoll tags: the low 2 bits say which fd, the rest is the connection number (socket only).
constexpr std::uint64_t tag_event = 0;
constexpr std::uint64_t tag_timer = 1;
constexpr std::uint64_t tag_socket = 2;
constexpr std::uint64_t tag_deadline = 3;
constexpr std::uint64_t tag_mask = 3;

constexpr std::size_t read_chunk = 64 * 1024;
constexpr int max_events = 16;

std::system_error sys_error(const char* what) {
    return {errno, std::generic_category(), what};
}

}  // namespace

std::string errno_text(int e) {
    return std::strerror(e);  // only called on the loop thread
}

std::string connect_failure_text(const std::string& path, int e) {
    std::string text = "cannot connect to " + path + ": " + errno_text(e);
    switch (e) {
        case ENOENT:
        case ECONNREFUSED:
        case ENOTDIR:
            text += " \u2014 is thingmuxd running? (systemctl start thingmuxd)";
            break;
        case EACCES:
        case EPERM:
            text += " \u2014 is this user in group thingmux? (usermod -aG thingmux USER, then log in again)";
            break;
        case EAGAIN:
            text += " \u2014 thingmuxd is busy accepting connections";
            break;
        default:
            break;
    }
    return text;
}

// ---------------------------------------------------------------------------------------------
// reconnect_backoff

reconnect_backoff::reconnect_backoff(std::chrono::milliseconds min, std::chrono::milliseconds max)
    : min_(std::max(min, std::chrono::milliseconds{1})),
      max_(std::max(max, std::chrono::milliseconds{1})),
      current_(min_) {
    try {
        std::random_device rd;
        rng_.seed(rd());
    } catch (...) {
        rng_.seed(static_cast<std::minstd_rand::result_type>(::getpid()));
    }
}

std::chrono::milliseconds reconnect_backoff::next() {
    const auto d = std::min(current_, max_);
    current_ = std::min(d * 2, max_);
    const auto half = d.count() / 2;
    std::uniform_int_distribution<std::int64_t> dist(0, std::max<std::int64_t>(half, 0));
    return std::chrono::milliseconds{d.count() - half + dist(rng_)};
}

void reconnect_backoff::reset() noexcept {
    current_ = min_;
}

// ---------------------------------------------------------------------------------------------
// transport

transport::transport() {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) {
        throw sys_error("thingmux: epoll_create1");
    }
    event_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!event_.valid()) {
        throw sys_error("thingmux: eventfd");
    }
    timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer_.valid()) {
        throw sys_error("thingmux: timerfd_create");
    }
    deadline_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!deadline_.valid()) {
        throw sys_error("thingmux: timerfd_create");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag_event;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, event_.get(), &ev) != 0) {
        throw sys_error("thingmux: epoll_ctl");
    }
    ev.data.u64 = tag_timer;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, timer_.get(), &ev) != 0) {
        throw sys_error("thingmux: epoll_ctl");
    }
    ev.data.u64 = tag_deadline;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, deadline_.get(), &ev) != 0) {
        throw sys_error("thingmux: epoll_ctl");
    }
}

void transport::wake() const noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(event_.get(), &one, sizeof one);  // EAGAIN: already awake
}

std::size_t transport::poll(std::span<io_event> out) {
    epoll_event events[max_events];
    const int n =
        ::epoll_wait(epoll_.get(), events, static_cast<int>(std::min<std::size_t>(out.size(), max_events)), 0);
    std::size_t count = 0;
    for (int i = 0; i < n; ++i) {
        const std::uint64_t tag = events[i].data.u64;
        switch (tag & tag_mask) {
            case tag_event: {
                std::uint64_t wakes = 0;
                [[maybe_unused]] const auto r = ::read(event_.get(), &wakes, sizeof wakes);
                break;
            }
            case tag_timer:
                out[count++] = {io_event::source::timer, events[i].events, 0};
                break;
            case tag_socket:
                out[count++] = {io_event::source::socket, events[i].events, tag >> 2U};
                break;
            case tag_deadline:
                out[count++] = {io_event::source::deadline, events[i].events, 0};
                break;
            default:
                break;
        }
    }
    return count;
}

std::optional<std::string> transport::open(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        return "cannot connect to " + path + ": the path is longer than " + std::to_string(sizeof addr.sun_path - 1) +
               " bytes";
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        return "cannot create a socket: " + errno_text(errno);
    }
    int rc = 0;
    do {
        rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        return connect_failure_text(path, errno);
    }
    close();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = (connection_ << 2U) | tag_socket;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
        return "cannot watch the socket: " + errno_text(errno);
    }
    sock_ = std::move(fd);
    interest_ = ev.events;
    return std::nullopt;
}

void transport::close() {
    if (sock_.valid()) {
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, sock_.get(), nullptr);
        sock_.reset();
    }
    ++connection_;
    interest_ = 0;
    rbuf_ = {};
    rlen_ = 0;
    roff_ = 0;
    wbuf_ = {};
    woff_ = 0;
}

void transport::flush() {
    if (!sock_.valid()) {
        return;
    }
    while (woff_ < wbuf_.size()) {
        const auto n = ::send(sock_.get(), wbuf_.data() + woff_, wbuf_.size() - woff_, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            woff_ += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        // A broken socket also shows as EPOLLERR/EPOLLHUP, and the read path then ends the
        // connection with the reason; nothing more can be written meanwhile.
        wbuf_.clear();
        woff_ = 0;
        break;
    }
    if (woff_ == wbuf_.size()) {
        wbuf_.clear();
        woff_ = 0;
    } else if (woff_ >= read_chunk && woff_ * 2 >= wbuf_.size()) {
        wbuf_.erase(wbuf_.begin(), wbuf_.begin() + static_cast<std::ptrdiff_t>(woff_));
        woff_ = 0;
    }
    update_interest();
}

void transport::update_interest() {
    const std::uint32_t want = EPOLLIN | EPOLLRDHUP | (woff_ < wbuf_.size() ? EPOLLOUT : 0U);
    if (want == interest_) {
        return;
    }
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = (connection_ << 2U) | tag_socket;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, sock_.get(), &ev);
    interest_ = want;
}

receive_status transport::receive() {
    // Keep the undecoded tail (part of a frame) at the front.
    if (roff_ > 0) {
        std::memmove(rbuf_.data(), rbuf_.data() + roff_, rlen_ - roff_);
        rlen_ -= roff_;
        roff_ = 0;
    }
    // The buffer keeps its size between reads: resizing it for each read would zero a whole
    // chunk per system call.
    if (rbuf_.size() < rlen_ + read_chunk) {
        rbuf_.resize(rlen_ + read_chunk);
    }
    for (;;) {
        const auto n = ::recv(sock_.get(), rbuf_.data() + rlen_, read_chunk, MSG_DONTWAIT);
        if (n > 0) {
            rlen_ += static_cast<std::size_t>(n);
            return static_cast<std::size_t>(n) < read_chunk ? receive_status::drained : receive_status::more;
        }
        if (n == 0) {
            return receive_status::closed;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return receive_status::would_block;
        }
        receive_errno_ = errno;
        return receive_status::failed;
    }
}

transport::frame transport::next_frame(std::size_t max_frame) {
    if (roff_ == rlen_) {
        roff_ = rlen_ = 0;
        return std::monostate{};
    }
    auto decoded = ipc::decode_daemon_message({rbuf_.data() + roff_, rlen_ - roff_}, max_frame, version_);
    if (std::holds_alternative<ipc::need_more>(decoded)) {
        return std::monostate{};
    }
    if (auto* bad = std::get_if<ipc::malformed>(&decoded)) {
        return std::move(*bad);
    }
    auto& d = std::get<ipc::decoded<ipc::daemon_message>>(decoded);
    roff_ += d.consumed;
    return std::move(d.message);
}

void transport::arm_timer(timer_purpose p, std::chrono::milliseconds delay) {
    timer_purpose_ = p;
    itimerspec spec{};
    if (p != timer_purpose::none) {
        const auto ms = std::max<std::int64_t>(delay.count(), 1);
        spec.it_value.tv_sec = static_cast<time_t>(ms / 1000);
        spec.it_value.tv_nsec = static_cast<long>((ms % 1000) * 1'000'000);
    }
    ::timerfd_settime(timer_.get(), 0, &spec, nullptr);
}

std::optional<timer_purpose> transport::take_expired_timer() {
    std::uint64_t expirations = 0;
    if (::read(timer_.get(), &expirations, sizeof expirations) != static_cast<ssize_t>(sizeof expirations)) {
        return std::nullopt;
    }
    return std::exchange(timer_purpose_, timer_purpose::none);
}

void transport::arm_deadline(std::optional<std::chrono::steady_clock::time_point> at) {
    itimerspec spec{};
    if (at) {
        const auto ns = std::max<std::int64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(at->time_since_epoch()).count(), 1);
        spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    }
    ::timerfd_settime(deadline_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
}

void transport::take_deadline() {
    std::uint64_t expirations = 0;
    [[maybe_unused]] const auto n = ::read(deadline_.get(), &expirations, sizeof expirations);
}

}  // namespace thingmux::detail
