// thingmuxd and its service manager (systemd): socket activation, readiness and status
// notifications, and the watchdog kept alive from the event loop. Everything here is a no-op
// when thingmuxd does not run under systemd (no LISTEN_FDS, NOTIFY_SOCKET or WATCHDOG_USEC).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace thingmux::service {

// The sockets systemd passed (thingmuxd.socket), matched to the configured paths by the path
// each is bound to; -1 where none was passed. A passed socket that is not a listening AF_UNIX
// stream socket, or whose path is neither, is closed with a warning naming it.
struct activated {
    int ipc = -1;
    int mqtt = -1;
};
[[nodiscard]] activated activated_sockets(const std::filesystem::path& ipc, const std::filesystem::path& mqtt);

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
