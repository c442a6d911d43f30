#include "daemon/service.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <ctime>

namespace thingmux::service {

int activated_socket() {
    const int n = sd_listen_fds(1);  // 1: unset LISTEN_FDS so children do not inherit the claim
    if (n <= 0) return -1;
    if (n > 1) spdlog::warn("systemd passed {} sockets; using the first", n);
    if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, nullptr, 0) <= 0) {
        spdlog::error("the socket systemd passed is not a listening AF_UNIX stream socket; binding one instead");
        return -1;
    }
    return SD_LISTEN_FDS_START;
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
