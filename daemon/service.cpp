#include "daemon/service.hpp"

#include "daemon/logging.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <string>

namespace thingmux::service {

namespace {

// The path a listening socket is bound to: "" when it is not an AF_UNIX stream socket that
// listens, or has no path (abstract or unnamed).
std::string bound_path(int fd) {
    if (sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0) <= 0) return {};
    sockaddr_un addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return {};
    const auto offset = offsetof(sockaddr_un, sun_path);
    if (len <= offset || addr.sun_path[0] == '\0') return {};
    return std::string(addr.sun_path, ::strnlen(addr.sun_path, len - offset));
}

}  // namespace

activated activated_sockets(const std::filesystem::path& ipc, const std::filesystem::path& mqtt) {
    activated out;
    const int n = sd_listen_fds(1);  // 1: unset LISTEN_FDS so children do not inherit the claim
    for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + std::max(n, 0); ++fd) {
        const auto path = bound_path(fd);
        const auto normal = std::filesystem::path(path).lexically_normal();
        if (!path.empty() && out.ipc < 0 && normal == ipc.lexically_normal()) {
            out.ipc = fd;
        } else if (!path.empty() && out.mqtt < 0 && normal == mqtt.lexically_normal()) {
            out.mqtt = fd;
        } else {
            if (path.empty())
                spdlog::warn(
                    "systemd passed socket {} that is not a listening AF_UNIX stream socket with a path; closing it",
                    fd - SD_LISTEN_FDS_START + 1);
            else
                spdlog::warn(
                    "systemd passed a socket on {}, which is neither ipc.socket ({}) nor mqtt.socket ({}); "
                    "closing it (make ListenStream= in thingmuxd.socket and the configuration agree)",
                    logging::escaped(path), logging::escaped(ipc.string()), logging::escaped(mqtt.string()));
            ::close(fd);
        }
    }
    return out;
}

notifier::notifier(boost::asio::io_context& io) : timer_(io) {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
}

void notifier::ready(const std::string& status) {
    const std::string msg = "READY=1\nSTATUS=" + status;
    sd_notify(0, msg.c_str());
    if (watchdog_.count() > 0 && timer_.expiry() == boost::asio::steady_timer::time_point{}) ping();
}

void notifier::status(const std::string& status) { sd_notify(0, ("STATUS=" + status).c_str()); }

void notifier::reloading() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1'000'000ULL + static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration", usec);
}

void notifier::stopping() {
    timer_.cancel();
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing in-flight messages");
}

// Pinged from the event loop itself, so a stuck loop stops the pings and systemd restarts us.
void notifier::ping() {
    sd_notify(0, "WATCHDOG=1");
    timer_.expires_after(watchdog_ / 2);
    timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) ping();
    });
}

}  // namespace thingmux::service
