#include "metrics_command.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

namespace thingmux::ctl {

namespace {

constexpr std::size_t max_answer = 64 * 1024 * 1024;  // far above any scrape; a bound on a broken daemon

std::string percent_encode(const std::string& s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4U];
            out += hex[c & 15U];
        }
    }
    return out;
}

struct fd_closer {
    int fd;
    ~fd_closer() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

std::string metrics_socket_path(const common_options& common, const metrics_options& m, std::string* origin) {
    auto say = [&](const char* from) {
        if (origin != nullptr) *origin = from;
    };
    if (!m.socket.empty()) {
        say("--metrics-socket");
        return m.socket;
    }
    if (const char* env = std::getenv("THINGMUX_METRICS_SOCKET"); env != nullptr && *env != '\0') {
        say("THINGMUX_METRICS_SOCKET");
        return env;
    }
    // As thingmuxd places it when metrics.socket is not written: next to the IPC socket.
    std::string ipc = common.socket;
    if (ipc.empty()) {
        if (const char* env = std::getenv("THINGMUX_SOCKET"); env != nullptr && *env != '\0') ipc = env;
    }
    if (!ipc.empty()) {
        say("next to the IPC socket");
        return (std::filesystem::path(ipc).parent_path() / "metrics.sock").string();
    }
    say("the default");
    return "/run/thingmux/metrics.sock";
}

int run_metrics(const common_options& common, const metrics_options& m) {
    std::string origin;
    const auto path = metrics_socket_path(common, m, &origin);
    const auto fail = [&](const std::string& what, int code) {
        complain("metrics") << what << '\n';
        return code;
    };
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return fail("socket path " + printable(path) + " is too long", exit_usage);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd_closer s{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (s.fd < 0) return fail(std::string("cannot make a socket: ") + std::strerror(errno), exit_unavailable);
    if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        const int e = errno;
        std::string hint;
        if (e == ENOENT || e == ECONNREFUSED)
            hint = "is thingmuxd running (systemctl status thingmuxd), with metrics on (metrics.enabled, metrics.socket "
                   "in /etc/thingmux/thingmux.yaml)? Name another socket with --metrics-socket or THINGMUX_METRICS_SOCKET";
        else if (e == EACCES || e == EPERM)
            hint = "the socket is for root and the thingmux group (metrics.mode, metrics.group): run as root, or add "
                   "your user to the group (usermod -aG thingmux USER, then log in again)";
        return fail("cannot connect to the metrics socket " + printable(path) + " (" + origin + "): " + std::strerror(e) +
                        (hint.empty() ? "" : "; " + hint),
                    exit_unavailable);
    }
    std::string request = "GET /metrics";
    if (!common.thing.empty()) request += "?thing=" + percent_encode(common.thing);
    request += " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: thingmuxctl\r\n";
    request += m.format == "prometheus" ? "Accept: text/plain; version=0.0.4\r\n"
                                        : "Accept: application/openmetrics-text; version=1.0.0\r\n";
    request += "Connection: close\r\n\r\n";
    for (std::size_t sent = 0; sent < request.size();) {
        const auto n = ::send(s.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("cannot send the request on " + printable(path) + ": " + std::strerror(errno), exit_unavailable);
        }
        sent += static_cast<std::size_t>(n);
    }
    std::string answer;
    const auto deadline = std::chrono::steady_clock::now() + to_ms(m.timeout_s);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return fail("thingmuxd did not answer on " + printable(path) + " in time", exit_timeout);
        pollfd p{};
        p.fd = s.fd;
        p.events = POLLIN;
        const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return fail("thingmuxd did not answer on " + printable(path) + " in time", exit_timeout);
        char buf[65536];
        const auto n = ::recv(s.fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail("cannot read the answer on " + printable(path) + ": " + std::strerror(errno), exit_unavailable);
        }
        if (n == 0) break;
        answer.append(buf, static_cast<std::size_t>(n));
        if (answer.size() > max_answer) return fail("the answer on " + printable(path) + " is too large", exit_unavailable);
    }
    const auto head_end = answer.find("\r\n\r\n");
    if (!answer.starts_with("HTTP/1.") || head_end == std::string::npos || answer.size() < 12)
        return fail("the answer on " + printable(path) + " is not HTTP: is it thingmuxd's metrics socket?", exit_unavailable);
    const auto status = answer.substr(9, 3);
    const auto body = answer.substr(head_end + 4);
    if (status != "200") {
        const auto line_end = answer.find("\r\n");
        return fail("thingmuxd answered " + printable(answer.substr(9, line_end - 9)) + ": " + printable(body), exit_refused);
    }
    std::cout << body << std::flush;
    return std::cout ? exit_ok : exit_unavailable;
}

}  // namespace thingmux::ctl
