// The metrics: section (docs/config.md "metrics", docs/metrics.md): where thingmuxd serves its
// OpenMetrics text. Parsed after ipc:, because its defaults follow it: the socket sits next to
// ipc.socket with ipc's mode and group.
#include "config/parser.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <variant>

namespace thingmux::config::detail {
namespace {

constexpr std::array<std::string_view, 6> metrics_keys{"enabled", "socket", "mode", "group", "listen", "allow_remote"};

// "127.0.0.1:9465" or "[::1]:9465" -> the address, or what is wrong with it. `remote`: any IP
// address may be named, not only a loopback one.
std::variant<tcp_address, std::string> listen_address(std::string_view text, bool remote) {
    std::string_view host;
    std::string_view port;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::string("is not HOST:PORT (an IPv6 address goes in brackets: [::1]:9465)");
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return std::string("is not HOST:PORT (e.g. 127.0.0.1:9465)");
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos)
            return std::string("is not HOST:PORT (an IPv6 address goes in brackets: [::1]:9465)");
    }
    tcp_address a;
    a.host = std::string(host);
    unsigned value = 0;
    const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || ptr != port.data() + port.size() || value == 0 || value > 65535)
        return "has port '" + std::string(port) + "': a port is a number from 1 to 65535";
    a.port = static_cast<std::uint16_t>(value);
    in_addr v4{};
    in6_addr v6{};
    bool loopback = false;
    if (::inet_pton(AF_INET, a.host.c_str(), &v4) == 1) {
        loopback = (ntohl(v4.s_addr) >> 24U) == 127U;
    } else if (::inet_pton(AF_INET6, a.host.c_str(), &v6) == 1) {
        loopback = IN6_IS_ADDR_LOOPBACK(&v6);
    } else {
        return "'" + a.host + "' is not an IP address (host names are not resolved; e.g. 127.0.0.1:9465)";
    }
    // The metrics name the apps, units and users of the machine: other hosts see them only when
    // the operator said so.
    if (!loopback && !remote)
        return std::string(
            "is not a loopback address: the metrics name this machine's apps, units and users, so other hosts "
            "may scrape them only with metrics.allow_remote: true (or use 127.0.0.1, any of 127.0.0.0/8, or [::1])");
    return a;
}

}  // namespace

void parse_metrics(parser& p, const YAML::Node& node, configuration& c) {
    auto& s = c.metrics;
    s.socket = c.ipc.socket.parent_path() / "metrics.sock";
    s.mode = c.ipc.mode;
    s.group = c.ipc.group;
    const auto f = p.mapping(node, "metrics", metrics_keys);
    if (!f) return;
    if (const auto* x = find(*f, "enabled")) {
        if (auto v = p.boolean(x->value, "metrics.enabled")) s.enabled = *v;
    }
    if (const auto* x = find(*f, "socket")) {
        if (auto v = p.socket_path(x->value, "metrics.socket")) s.socket = *v;
    }
    p.socket_access(*f, "metrics", s.mode, s.group);
    if (const auto* x = find(*f, "allow_remote")) {
        if (auto v = p.boolean(x->value, "metrics.allow_remote")) s.allow_remote = *v;
    }
    if (const auto* x = find(*f, "listen")) {
        if (auto text = p.string(x->value, "metrics.listen")) {
            auto parsed = listen_address(*text, s.allow_remote);
            if (auto* why = std::get_if<std::string>(&parsed))
                p.error(x->value, "metrics.listen", "'" + *text + "' " + *why);
            else
                s.listen = std::get<tcp_address>(std::move(parsed));
        }
    }
    if (s.socket == c.ipc.socket || (c.mqtt.enabled && s.socket == c.mqtt.socket)) {
        const auto* x = find(*f, "socket");
        p.error(x != nullptr ? x->value : node, "metrics.socket",
                "'" + s.socket.string() + "' is already the " + (s.socket == c.ipc.socket ? "IPC" : "MQTT") + " socket",
                "give the metrics socket a path of its own, e.g. /run/thingmux/metrics.sock");
    }
}

}  // namespace thingmux::config::detail
