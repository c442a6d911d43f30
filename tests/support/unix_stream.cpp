#include "tests/support/unix_stream.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace thingmux::test {

int connect_stream(const std::filesystem::path& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        const int e = errno;
        ::close(fd);
        return -e;
    }
    return fd;
}

int connect_unix(const std::filesystem::path& path) {
    const int fd = connect_stream(path);
    if (fd < 0) throw std::runtime_error("cannot connect to " + path.string() + ": " + std::strerror(-fd));
    return fd;
}

bool hung_up(int fd, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        const int left = remaining_ms(deadline);
        if (left <= 0) return false;
        pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, left) <= 0) continue;
        char buf[4096];
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return true;
    }
}

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(left.count(), 0, std::numeric_limits<int>::max()));
}

unix_stream::~unix_stream() {
    if (fd_ >= 0) ::close(fd_);
}

bool unix_stream::write(std::span<const std::uint8_t> bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
        const auto n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            closed_ = true;
            return false;
        }
        off += static_cast<std::size_t>(n);
    }
    return true;
}

bool unix_stream::read_some(int timeout_ms) {
    if (read_done_) return false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        pollfd p{fd_, POLLIN, 0};
        const int ready = ::poll(&p, 1, remaining_ms(deadline));
        if (ready > 0) break;
        if (ready == 0 || errno != EINTR) return false;
    }
    std::uint8_t buf[65536];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
        closed_ = read_done_ = true;
        return false;
    }
    in_.insert(in_.end(), buf, buf + n);
    return true;
}

void unix_stream::consume(std::size_t n) {
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(std::min(n, in_.size())));
}

}  // namespace thingmux::test
