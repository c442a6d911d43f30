// The body of an admin_result to list_clients (docs/ipc-protocol.md IPC-50): the connected apps
// as a JSON array, with the fields of D-Bus ListClients. The daemon writes it, thingmuxctl reads
// it; one definition keeps the two sides, and the two management paths, alike.
//
// This module is pure: no I/O, no logging.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::ipc {

// One connected app, as D-Bus ListClients shows it (docs/dbus.md).
struct client_entry {
    std::uint64_t id = 0;   // the daemon's number for the connection
    std::uint32_t pid = 0;  // 0 when unknown (a TCP peer)
    std::uint32_t uid = 0xFFFF'FFFFU;
    std::string user;       // name of uid; empty when unknown
    std::string unit;       // systemd unit; empty when none
    std::string app_name;
    std::string thing;
    std::vector<std::string> subscriptions;
    std::uint64_t queued_bytes = 0;
    std::uint64_t messages_in = 0;
    std::uint64_t messages_out = 0;
    friend bool operator==(const client_entry&, const client_entry&) = default;
};

struct clients_json {
    std::string text;        // a JSON array, valid UTF-8, at most the bytes asked for
    std::size_t listed = 0;  // entries in it: the first `listed` of those given
};

// The JSON array of `clients`, in their order, cut after the last entry that fits in
// `max_bytes` (the array's brackets included; at least 2). Text that is not UTF-8 (a user or unit
// name from NSS, say) is shown escaped as \xNN, so the array is always valid UTF-8.
[[nodiscard]] clients_json write_clients_json(std::span<const client_entry> clients, std::size_t max_bytes);

// The entries of such an array; nullopt with the reason in `why` when `body` is not one (every
// member is required, with its JSON type; unknown members are ignored, for later fields).
[[nodiscard]] std::optional<std::vector<client_entry>> read_clients_json(std::string_view body, std::string& why);

}  // namespace thingmux::ipc
