// The daemon-wide sections of the configuration: ipc:, spool: and log: (docs/config.md).
#include "config/parser.hpp"

#include <algorithm>

namespace thingmux::config::detail {
namespace {

constexpr std::array<std::string_view, 14> ipc_keys{
    "socket",          "mode",          "group",          "max_clients",    "max_clients_per_uid",
    "client_queue",    "client_queue_total", "client_subscriptions", "client_inflight", "hello_timeout",
    "session_expiry",  "session_queue", "max_sessions", "max_sessions_per_uid"};
constexpr std::array<std::string_view, 5> spool_keys{"path", "max_bytes", "max_messages", "overflow", "offline_qos0"};
constexpr std::array<std::string_view, 2> log_keys{"level", "target"};

}  // namespace

void parser::parse_ipc(const YAML::Node& node, ipc_settings& s) {
    const auto f = mapping(node, "ipc", ipc_keys);
    if (!f) return;
    if (const auto* x = find(*f, "socket")) {
        if (auto v = socket_path(x->value, "ipc.socket")) s.socket = *v;
    }
    socket_access(*f, "ipc", s.mode, s.group);
    if (const auto* x = find(*f, "max_clients")) {
        if (auto v = integer(x->value, "ipc.max_clients", 1, 65535)) s.max_clients = static_cast<std::size_t>(*v);
    }
    if (const auto* x = find(*f, "max_clients_per_uid")) {
        if (auto v = integer(x->value, "ipc.max_clients_per_uid", 1, 65535)) s.max_clients_per_uid = static_cast<std::size_t>(*v);
    }
    const auto* queue = find(*f, "client_queue");
    if (queue != nullptr) {
        if (auto v = size(queue->value, "ipc.client_queue", 64 * 1024, std::uint64_t{1} << 30U, false); v && *v) {
            s.client_queue = static_cast<std::size_t>(**v);
        }
    }
    const auto* total = find(*f, "client_queue_total");
    if (total != nullptr) {
        if (auto v = size(total->value, "ipc.client_queue_total", 1024 * 1024, std::uint64_t{1} << 36U, false); v && *v) {
            s.client_queue_total = static_cast<std::size_t>(**v);
        }
    }
    if (s.client_queue_total < s.client_queue) {
        // Reported where the operator wrote a value: the total when written, else the per-client size.
        const auto* at = total != nullptr ? total : queue;
        error(at->value, total != nullptr ? "ipc.client_queue_total" : "ipc.client_queue",
              "the queues of all clients together (client_queue_total, " + std::to_string(s.client_queue_total) +
                  " bytes) must hold at least one client's queue (client_queue, " + std::to_string(s.client_queue) + " bytes)",
              "raise ipc.client_queue_total or lower ipc.client_queue");
    }
    if (const auto* x = find(*f, "client_subscriptions")) {
        if (auto v = integer(x->value, "ipc.client_subscriptions", 1, 1'000'000)) s.client_subscriptions = static_cast<std::size_t>(*v);
    }
    if (const auto* x = find(*f, "client_inflight")) {
        if (auto v = integer(x->value, "ipc.client_inflight", 1, 1'000'000)) s.client_inflight = static_cast<std::size_t>(*v);
    }
    if (const auto* x = find(*f, "hello_timeout")) {
        if (auto v = time(x->value, "ipc.hello_timeout", duration{100}, std::chrono::minutes{10})) s.hello_timeout = *v;
    }
    parse_sessions(*f, "ipc", s.sessions);
}

void parser::parse_sessions(const fields& f, const std::string& section, session_limits& s) {
    if (const auto* x = find(f, "session_expiry")) {
        if (auto v = whole_seconds(x->value, section + ".session_expiry", std::chrono::seconds{30 * 24 * 3600})) s.expiry = *v;
    }
    if (const auto* x = find(f, "session_queue")) {
        if (auto v = size(x->value, section + ".session_queue", 0, std::uint64_t{1} << 30U, false); v && *v)
            s.queue = static_cast<std::size_t>(**v);
    }
    if (const auto* x = find(f, "max_sessions")) {
        if (auto v = integer(x->value, section + ".max_sessions", 0, 65535)) s.max = static_cast<std::size_t>(*v);
    }
    if (const auto* x = find(f, "max_sessions_per_uid")) {
        if (auto v = integer(x->value, section + ".max_sessions_per_uid", 0, 65535))
            s.max_per_uid = static_cast<std::size_t>(*v);
    }
}

void parser::parse_spool(const YAML::Node& node, spool_settings& s) {
    const auto f = mapping(node, "spool", spool_keys);
    if (!f) return;
    if (const auto* x = find(*f, "path")) {
        if (auto v = absolute_path(x->value, "spool.path")) s.path = *v;
    }
    if (const auto* x = find(*f, "max_bytes")) {
        if (auto v = size(x->value, "spool.max_bytes", 64 * 1024, std::uint64_t{1} << 50U, true)) s.max_bytes = *v;
    }
    if (const auto* x = find(*f, "max_messages")) {
        if (auto v = count(x->value, "spool.max_messages", 1, std::uint64_t{1} << 40U, true)) s.max_messages = *v;
    }
    if (const auto* x = find(*f, "overflow")) {
        static constexpr std::array<choice<spool_overflow>, 2> choices{
            {{"reject", spool_overflow::reject}, {"drop_oldest_qos0", spool_overflow::drop_oldest_qos0}}};
        if (auto v = enumeration(x->value, "spool.overflow", choices)) s.overflow = *v;
    }
    if (const auto* x = find(*f, "offline_qos0")) {
        static constexpr std::array<choice<offline_qos0>, 2> choices{{{"drop", offline_qos0::drop}, {"queue", offline_qos0::queue}}};
        if (auto v = enumeration(x->value, "spool.offline_qos0", choices)) s.qos0 = *v;
    }
}

void parser::parse_log(const YAML::Node& node, log_settings& s) {
    const auto f = mapping(node, "log", log_keys);
    if (!f) return;
    if (const auto* x = find(*f, "level")) {
        static constexpr std::array<choice<log_level>, 5> choices{{{"trace", log_level::trace},
                                                                   {"debug", log_level::debug},
                                                                   {"info", log_level::info},
                                                                   {"warn", log_level::warn},
                                                                   {"error", log_level::error}}};
        if (auto v = enumeration(x->value, "log.level", choices)) s.level = *v;
    }
    if (const auto* x = find(*f, "target")) {
        static constexpr std::array<choice<log_target>, 3> choices{
            {{"auto", log_target::automatic}, {"journal", log_target::journal}, {"stderr", log_target::stderr_stream}}};
        if (auto v = enumeration(x->value, "log.target", choices)) s.target = *v;
    }
}

}  // namespace thingmux::config::detail
