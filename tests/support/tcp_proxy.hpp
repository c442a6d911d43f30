// A TCP proxy between thingmuxd and the broker that the test can turn into a faulty network:
// black-hole (keep every connection open, forward nothing: a dead link, not a closed one) or
// garbage (new connections get bytes that are not TLS). One thread, poll(); for fault tests.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

namespace thingmux::test {

class tcp_proxy {
public:
    enum class mode : std::uint8_t { forward, black_hole, garbage };

    // Listens on a free loopback port and forwards to 127.0.0.1:`target_port`.
    explicit tcp_proxy(std::uint16_t target_port);
    ~tcp_proxy();
    tcp_proxy(const tcp_proxy&) = delete;
    tcp_proxy& operator=(const tcp_proxy&) = delete;

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    void set_mode(mode m) noexcept { mode_ = m; }
    [[nodiscard]] std::uint64_t connections() const noexcept { return connections_; }  // accepted so far

private:
    void run();

    std::uint16_t target_;
    std::uint16_t port_ = 0;
    int listener_ = -1;
    int wake_[2] = {-1, -1};
    std::atomic<mode> mode_{mode::forward};
    std::atomic<std::uint64_t> connections_{0};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace thingmux::test
