// thingmuxd and its service manager (systemd): socket activation, readiness and status
// notifications, and the watchdog kept alive from the event loop. Everything here is a no-op
// when thingmuxd does not run under systemd (no LISTEN_FDS, NOTIFY_SOCKET or WATCHDOG_USEC).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace thingmux::service {

// The listening AF_UNIX stream socket systemd passed (thingmuxd.socket), or -1 when none was.
[[nodiscard]] int activated_socket();

// Talks to the service manager through NOTIFY_SOCKET.
class notifier {
public:
    explicit notifier(boost::asio::io_context& io);

    // READY=1 with a status line: the configuration is loaded and the IPC socket listens (the
    // broker may still be unreachable). Also starts the watchdog pings when WatchdogSec= is set.
    void ready(const std::string& status);
    void status(const std::string& status);
    void reloading();  // then ready() again
    void stopping();
    [[nodiscard]] std::chrono::microseconds watchdog_interval() const noexcept { return watchdog_; }

private:
    void ping();

    boost::asio::steady_timer timer_;
    std::chrono::microseconds watchdog_{0};
};

}  // namespace thingmux::service
