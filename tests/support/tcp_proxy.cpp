#include "tests/support/tcp_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

namespace thingmux::test {

namespace {

int connect_to(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
    if (fd >= 0) ::close(fd);
    return -1;
}

struct pair_of {
    int client = -1;
    int upstream = -1;  // -1 for a garbage connection
};

}  // namespace

tcp_proxy::tcp_proxy(std::uint16_t target_port) : target_(target_port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener_, 16) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len) != 0 || ::pipe2(wake_, O_CLOEXEC) != 0)
        throw std::runtime_error("tcp_proxy: cannot listen");
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
}

tcp_proxy::~tcp_proxy() {
    stop_ = true;
    const char b = 0;
    (void)!::write(wake_[1], &b, 1);
    thread_.join();
    ::close(listener_);
    ::close(wake_[0]);
    ::close(wake_[1]);
}

void tcp_proxy::run() {
    std::vector<pair_of> pairs;
    std::vector<char> buf(64 * 1024);
    while (!stop_) {
        std::vector<pollfd> fds{{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
        // A black hole reads nothing, so the kernel buffers fill and the peers see silence.
        const bool forwarding = mode_ != mode::black_hole;
        for (const auto& p : pairs) {
            fds.push_back({p.client, static_cast<short>(forwarding ? POLLIN : 0), 0});
            fds.push_back({p.upstream, static_cast<short>(forwarding && p.upstream >= 0 ? POLLIN : 0), 0});
        }
        const std::size_t polled = pairs.size();  // accept() below may add pairs not in fds
        if (::poll(fds.data(), fds.size(), 100) < 0) continue;
        if ((fds[0].revents & POLLIN) != 0) {
            const int c = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c >= 0) {
                ++connections_;
                if (mode_ == mode::garbage) {
                    static const char junk[] = "HTTP/1.0 400 this is not an MQTT broker\r\n\r\n";
                    (void)!::write(c, junk, sizeof junk - 1);
                    pairs.push_back({c, -1});
                } else {
                    const int u = connect_to(target_);
                    if (u < 0) ::close(c);
                    else pairs.push_back({c, u});
                }
            }
        }
        std::vector<std::size_t> dead;
        for (std::size_t i = 0; i < polled; ++i) {
            auto& p = pairs[i];
            for (const auto& [from, to, rev] : {std::tuple{p.client, p.upstream, fds[2 + 2 * i].revents},
                                                std::tuple{p.upstream, p.client, fds[3 + 2 * i].revents}}) {
                if (from < 0 || (rev & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
                const auto n = ::read(from, buf.data(), buf.size());
                if (n <= 0 || to < 0 || ::send(to, buf.data(), static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) {
                    dead.push_back(i);
                    break;
                }
            }
        }
        for (auto it = dead.rbegin(); it != dead.rend(); ++it) {
            ::close(pairs[*it].client);
            if (pairs[*it].upstream >= 0) ::close(pairs[*it].upstream);
            pairs.erase(pairs.begin() + static_cast<std::ptrdiff_t>(*it));
        }
    }
    for (auto& p : pairs) {
        ::close(p.client);
        if (p.upstream >= 0) ::close(p.upstream);
    }
}

}  // namespace thingmux::test
