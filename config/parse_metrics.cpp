// The metrics: section (docs/config.md "metrics", docs/metrics.md): where thingmuxd serves its
// OpenMetrics text. Parsed after ipc:, because its defaults follow it: the socket sits next to
// ipc.socket with ipc's mode and group.
#include "config/ip_endpoint.hpp"
#include "config/parser.hpp"

#include <variant>

namespace thingmux::config::detail {
namespace {

constexpr std::array<std::string_view, 6> metrics_keys{"enabled", "socket", "mode", "group", "listen", "allow_remote"};

// "127.0.0.1:9465" or "[::1]:9465" -> the address, or what is wrong with it. `remote`: any IP
// address may be named, not only a loopback one.
std::variant<tcp_address, std::string> listen_address(std::string_view text, bool remote) {
    auto parsed = detail::parse_ip_endpoint(text, "127.0.0.1:9465");
    if (auto* problem = std::get_if<std::string>(&parsed)) return std::move(*problem);
    const auto& e = std::get<detail::ip_endpoint>(parsed);
    // The metrics name the apps, units and users of the machine: other hosts see them only when
    // the operator said so.
    if (!e.loopback && !remote)
        return std::string(
            "is not a loopback address: the metrics name this machine's apps, units and users, so other hosts "
            "may scrape them only with metrics.allow_remote: true (or use 127.0.0.1, any of 127.0.0.0/8, or [::1])");
    return e.address;
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
