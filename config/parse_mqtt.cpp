// The mqtt: section: the local MQTT broker face (docs/config.md "mqtt"). Parsed after things:
// and ipc:, because its defaults follow them: the socket sits next to ipc.socket with ipc's
// mode and group, and clients use the first Thing.
#include "config/ip_endpoint.hpp"
#include "config/parser.hpp"

#include <algorithm>
#include <variant>

namespace thingmux::config::detail {
namespace {

constexpr std::array<std::string_view, 19> mqtt_keys{
    "enabled",    "socket",          "mode",          "group",         "max_clients",    "client_queue",
    "max_packet", "receive_maximum", "max_inflight",  "topic_aliases", "max_keep_alive", "connect_timeout",
    "thing",      "session_expiry",  "session_queue", "max_sessions",  "tcp",            "passwords",
    "max_sessions_per_uid"};

constexpr std::string_view loopback_only =
    "the MQTT face has no TLS and trusts the kernel's word on who owns a connection, which holds only for "
    "connections from this machine: use 127.0.0.1 (any of 127.0.0.0/8) or [::1]";

// "127.0.0.1:1883" or "[::1]:1883" -> the address, or what is wrong with it.
std::variant<tcp_address, std::string> loopback_address(std::string_view text) {
    auto parsed = detail::parse_ip_endpoint(text, "127.0.0.1:1883");
    if (auto* problem = std::get_if<std::string>(&parsed)) {
        if (problem->ends_with("(host names are not resolved)")) *problem += ": " + std::string(loopback_only);
        return std::move(*problem);
    }
    const auto& e = std::get<detail::ip_endpoint>(parsed);
    if (!e.loopback) return "is not a loopback address: " + std::string(loopback_only);
    return e.address;
}

}  // namespace

void parser::parse_mqtt_tcp(const YAML::Node& node, mqtt_settings& s) {
    const auto items = sequence(node, "mqtt.tcp", "[\"127.0.0.1:1883\"]");
    if (!items) return;
    for (std::size_t i = 0; i < items->size(); ++i) {
        const auto path = "mqtt.tcp[" + std::to_string(i) + "]";
        const auto text = string((*items)[i], path);
        if (!text) continue;
        auto parsed = loopback_address(*text);
        if (auto* why = std::get_if<std::string>(&parsed)) {
            error((*items)[i], path, "'" + *text + "' " + *why);
            continue;
        }
        auto& a = std::get<tcp_address>(parsed);
        if (std::any_of(s.tcp.begin(), s.tcp.end(),
                        [&](const tcp_address& b) { return b.host == a.host && b.port == a.port; })) {
            error((*items)[i], path, "'" + *text + "' is listed twice");
            continue;
        }
        s.tcp.push_back(std::move(a));
    }
}

namespace {

// The largest packet MQTT can frame: a 4-byte remaining length of 268435455, plus the fixed header.
constexpr std::uint64_t mqtt_packet_limit = 268'435'460;

}  // namespace

void parser::parse_mqtt(const YAML::Node& node, const YAML::Node& ipc, configuration& c) {
    auto& s = c.mqtt;
    // The same access as the IPC socket unless said otherwise: a configuration that opened or
    // restricted ipc: (or has no thingmux group: group "") keeps working with the MQTT face on.
    s.socket = c.ipc.socket.parent_path() / "mqtt.sock";
    s.mode = c.ipc.mode;
    s.group = c.ipc.group;
    if (!c.things.empty()) s.thing = c.things.front().name;
    const auto f = mapping(node, "mqtt", mqtt_keys);
    if (!f) return;
    if (const auto* x = find(*f, "enabled")) {
        if (auto v = boolean(x->value, "mqtt.enabled")) s.enabled = *v;
    }
    const auto* socket = find(*f, "socket");
    bool socket_valid = true;
    if (socket != nullptr) {
        const auto v = socket_path(socket->value, "mqtt.socket");
        socket_valid = v.has_value();
        if (v) s.socket = *v;
    }
    socket_access(*f, "mqtt", s.mode, s.group);
    if (const auto* x = find(*f, "max_clients")) {
        if (auto v = integer(x->value, "mqtt.max_clients", 1, 65535)) s.max_clients = static_cast<std::size_t>(*v);
    }
    if (const auto* x = find(*f, "client_queue")) {
        if (auto v = size(x->value, "mqtt.client_queue", 64 * 1024, std::uint64_t{1} << 30U, false); v && *v)
            s.client_queue = static_cast<std::size_t>(**v);
    }
    if (const auto* x = find(*f, "max_packet")) {
        if (auto v = size(x->value, "mqtt.max_packet", 1024, mqtt_packet_limit, false); v && *v)
            s.max_packet = static_cast<std::size_t>(**v);
    }
    if (const auto* x = find(*f, "receive_maximum")) {
        if (auto v = integer(x->value, "mqtt.receive_maximum", 1, 65535))
            s.receive_maximum = static_cast<std::uint16_t>(*v);
    }
    if (const auto* x = find(*f, "max_inflight")) {
        if (auto v = integer(x->value, "mqtt.max_inflight", 1, 65535)) s.max_inflight = static_cast<std::uint16_t>(*v);
    }
    if (const auto* x = find(*f, "topic_aliases")) {
        if (auto v = integer(x->value, "mqtt.topic_aliases", 0, 65535))
            s.topic_aliases = static_cast<std::uint16_t>(*v);
    }
    if (const auto* x = find(*f, "max_keep_alive")) {
        if (auto v = whole_seconds(x->value, "mqtt.max_keep_alive", std::chrono::seconds{65535})) s.max_keep_alive = *v;
    }
    if (const auto* x = find(*f, "connect_timeout")) {
        if (auto v = time(x->value, "mqtt.connect_timeout", duration{100}, std::chrono::minutes{10}))
            s.connect_timeout = *v;
    }
    parse_sessions(*f, "mqtt", s.sessions);
    if (const auto* x = find(*f, "thing")) {
        if (auto v = thing_name(x->value, "mqtt.thing", c.things)) s.thing = std::move(*v);
    }
    if (const auto* x = find(*f, "tcp")) parse_mqtt_tcp(x->value, s);
    if (const auto* x = find(*f, "passwords")) {
        s.passwords_where = location_of(x->value);
        if (auto v = absolute_path(x->value, "mqtt.passwords")) s.passwords = std::move(*v);
    }
    // A socket that is not used cannot clash; an invalid one was reported already.
    if (!s.enabled || !socket_valid) return;
    // Where the derived default comes from, for messages about it: ipc.socket as written.
    const YAML::Node ipc_socket = ipc.IsMap() ? ipc["socket"] : YAML::Node{};
    if (socket != nullptr) {
        if (s.socket == c.ipc.socket)
            error(socket->value, "mqtt.socket", "is the IPC socket's path (ipc.socket)",
                  "give the MQTT socket a path of its own");
    } else if (s.socket == c.ipc.socket) {
        error(ipc_socket, "mqtt.socket", "defaults to mqtt.sock next to ipc.socket, which is ipc.socket itself",
              "set mqtt.socket, or give ipc.socket another file name");
    } else if (s.socket.native().size() >= max_socket_path) {
        error(ipc_socket, "mqtt.socket",
              "defaults to mqtt.sock next to ipc.socket, " + std::to_string(s.socket.native().size()) + " bytes long",
              "a Unix socket path must be shorter than 108 bytes: set mqtt.socket");
    }
}

}  // namespace thingmux::config::detail
