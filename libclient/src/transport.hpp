// The library's side of the daemon connection: the Unix socket, IPC framing (ipc/ codec) in both
// directions, and the file descriptors the loop waits on.
//
// One epoll fd (handed to apps by client::fd()) watches an eventfd (app threads wake the loop
// with it), a timerfd (reconnect delay and handshake timeout), a second timerfd (the deadlines of
// shadow and jobs requests) and the socket. Level-triggered:
// whatever a process() call leaves unread keeps the epoll fd readable.
//
// Threads: wake() and epoll_fd() from any thread; everything else from the loop only (the core's
// loop lock held). The transport has no lock of its own.
#pragma once

#include "thingmux/client.hpp"

#include "ipc/codec.hpp"
#include "unique_fd.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace thingmux::detail {

// What the one timer is armed for.
enum class timer_purpose : std::uint8_t { none, reconnect, handshake };

// Delays between connection attempts: doubling from reconnect_min to reconnect_max, each with
// jitter in [d/2, d] so apps that lost the daemon together do not all come back at once.
class reconnect_backoff {
public:
    reconnect_backoff(std::chrono::milliseconds min, std::chrono::milliseconds max);
    [[nodiscard]] std::chrono::milliseconds next();
    void reset() noexcept;  // after a welcome

private:
    std::chrono::milliseconds min_;
    std::chrono::milliseconds max_;
    std::chrono::milliseconds current_;
    std::minstd_rand rng_;
};

// One readiness event of the loop's epoll fd.
struct io_event {
    enum class source : std::uint8_t { timer, socket, deadline };
    source from = source::timer;
    std::uint32_t events = 0;      // epoll bits (socket)
    std::uint64_t connection = 0;  // the connection it was reported for (socket)
};

// What one receive() brought.
enum class receive_status : std::uint8_t {
    more,         // a full chunk: there may be more to read
    drained,      // less than a chunk: nothing more for now
    would_block,  // nothing
    closed,       // the daemon closed the connection
    failed,       // see receive_error()
};

class transport {
public:
    // Throws std::system_error when the descriptors cannot be created.
    transport();

    // Any thread.
    [[nodiscard]] int epoll_fd() const noexcept { return epoll_.get(); }
    void wake() const noexcept;

    // Loop only. Ready events, without blocking. Wake-ups are drained on the way and not
    // reported: they only make the loop run, and it takes the commands after the events.
    [[nodiscard]] std::size_t poll(std::span<io_event> out);
    // A socket event reported for a connection that has ended since is stale.
    [[nodiscard]] bool current(const io_event& e) const noexcept {
        return e.connection == connection_ && sock_.valid();
    }

    // Connects to `path` and starts a new connection (fresh buffers). The error text, for
    // people, on failure.
    [[nodiscard]] std::optional<std::string> open(const std::string& path);
    // Closes the socket; its unread and unsent bytes are dropped. Idempotent.
    void close();
    [[nodiscard]] bool is_open() const noexcept { return sock_.valid(); }
    // Changes on every open() and close(): tells a caller whether the connection it started
    // with is still the one there.
    [[nodiscard]] std::uint64_t connection() const noexcept { return connection_; }

    // The protocol version frames are encoded and decoded with: the version of the hello the
    // connection sent (IPC-9). Set it before queueing the hello.
    void set_version(ipc::wire_version v) noexcept { version_ = v; }
    [[nodiscard]] ipc::wire_version version() const noexcept { return version_; }

    // Sending: frames are encoded into the write buffer and leave with flush() (which also
    // asks epoll for writability while some are left).
    void queue(const ipc::client_message& m) { ipc::encode(m, wbuf_, version_); }
    [[nodiscard]] std::size_t unsent() const noexcept { return wbuf_.size() - woff_; }
    void flush();

    // Receiving: one recv() into the read buffer, then the frames it completed, one by one.
    [[nodiscard]] receive_status receive();
    [[nodiscard]] int receive_error() const noexcept { return receive_errno_; }
    using frame = std::variant<std::monostate, ipc::malformed, ipc::daemon_message>;
    // The next whole frame received (monostate: none yet), at most `max_frame` bytes long.
    [[nodiscard]] frame next_frame(std::size_t max_frame);

    void arm_timer(timer_purpose p, std::chrono::milliseconds delay);
    void disarm_timer() { arm_timer(timer_purpose::none, {}); }
    // The purpose of the timer that expired, or nothing when it was re-armed or disarmed since
    // its event was reported.
    [[nodiscard]] std::optional<timer_purpose> take_expired_timer();

    // The deadline timer, at an absolute time of std::chrono::steady_clock (CLOCK_MONOTONIC);
    // nothing disarms it. take_deadline() consumes its expiry.
    void arm_deadline(std::optional<std::chrono::steady_clock::time_point> at);
    void take_deadline();

private:
    void update_interest();

    unique_fd epoll_;
    unique_fd event_;
    unique_fd timer_;
    unique_fd deadline_;
    unique_fd sock_;
    std::uint32_t interest_ = 0;
    std::uint64_t connection_ = 0;
    timer_purpose timer_purpose_ = timer_purpose::none;

    std::vector<std::uint8_t> rbuf_;
    std::size_t rlen_ = 0;  // bytes of rbuf_ received
    std::size_t roff_ = 0;  // bytes of rbuf_ decoded
    int receive_errno_ = 0;
    std::vector<std::uint8_t> wbuf_;
    std::size_t woff_ = 0;
    ipc::wire_version version_ = ipc::wire_version::v1;
};

// The text an app sees when connecting to `path` failed with `e`, with what to check.
[[nodiscard]] std::string connect_failure_text(const std::string& path, int e);
[[nodiscard]] std::string errno_text(int e);

}  // namespace thingmux::detail
