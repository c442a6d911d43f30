// A connected Unix stream socket for the tests' raw protocol clients (IPC and MQTT): blocking
// writes of whole buffers, reads with a timeout into a buffer the client decodes from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <chrono>
#include <filesystem>
#include <span>
#include <vector>

namespace thingmux::test {

// A stream connection to a Unix socket: the descriptor, or -errno when connect() fails.
[[nodiscard]] int connect_stream(const std::filesystem::path& path);
// The same, throwing std::runtime_error when nothing listens.
[[nodiscard]] int connect_unix(const std::filesystem::path& path);
// Whether the other end closes `fd` within `timeout_ms` (whatever it sends first). A listening
// socket nobody accepts from never does: the connection waits in its backlog.
[[nodiscard]] bool hung_up(int fd, int timeout_ms);

class unix_stream {
public:
    explicit unix_stream(const std::filesystem::path& socket) : fd_(connect_unix(socket)) {}
    // Takes over a socket connected by other means (e.g. by another process).
    explicit unix_stream(int connected_fd) : fd_(connected_fd) {}
    ~unix_stream();
    unix_stream(const unix_stream&) = delete;
    unix_stream& operator=(const unix_stream&) = delete;

    // Writes all of `bytes`; false (and closed() from then on) when the peer is gone. What the
    // peer sent before it closed can still be read: a daemon that refuses a connection writes
    // its reason and closes, possibly before this end wrote anything.
    bool write(std::span<const std::uint8_t> bytes);
    // Waits up to `timeout_ms` for bytes and appends what arrived to buffer(). Looks at the
    // socket once even with a zero timeout. False on timeout, or once everything the peer sent
    // before it closed was read (closed()).
    bool read_some(int timeout_ms);

    // Bytes read and not yet consumed.
    [[nodiscard]] const std::vector<std::uint8_t>& buffer() const noexcept { return in_; }
    void consume(std::size_t n);
    [[nodiscard]] bool closed() const noexcept { return closed_; }
    // Ends the connection for this end: nothing more is read.
    void mark_closed() noexcept { closed_ = read_done_ = true; }
    [[nodiscard]] int fd() const noexcept { return fd_; }

private:
    int fd_ = -1;
    bool closed_ = false;     // the peer is gone, as a write or a read found, or marked so
    bool read_done_ = false;  // nothing more to read: end of stream, a read error, or marked
    std::vector<std::uint8_t> in_;
};

// Milliseconds left until `deadline`, never negative.
[[nodiscard]] int remaining_ms(std::chrono::steady_clock::time_point deadline);

}  // namespace thingmux::test
