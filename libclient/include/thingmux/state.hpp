// Connection state as the library reports it: the link to thingmuxd and, through it, the
// daemon's MQTT session for the app's Thing (the "uplink").
#pragma once

#include "thingmux/export.hpp"

#include <chrono>
#include <cstdint>
#include <string>

namespace thingmux {

// The library's connection to thingmuxd.
enum class daemon_state : std::uint8_t {
    idle = 0,         // connect() not called yet
    connecting = 1,   // socket connect + handshake in progress
    connected = 2,    // the daemon welcomed us; requests flow
    unavailable = 3,  // not connected; retrying after state::daemon_retry_in (see daemon_reason)
    closed = 4,       // close() was called
};

// The daemon's MQTT session for the Thing. Same numbers as the IPC protocol's link states.
enum class uplink_state : std::uint8_t {
    connecting = 0,
    connected = 1,
    backing_off = 2,  // waiting state::uplink_retry_in before the next attempt
    failed = 3,       // see state::uplink_fatal
    stopped = 4,
    unknown = 255,    // not connected to the daemon, so nothing is known
};

[[nodiscard]] THINGMUX_API const char* to_string(daemon_state s) noexcept;
[[nodiscard]] THINGMUX_API const char* to_string(uplink_state s) noexcept;

// A snapshot, passed to the state handler whenever any part changes.
struct state {
    daemon_state daemon = daemon_state::idle;
    // Why the daemon is unavailable, for people: e.g. "cannot connect to
    // /run/thingmux/thingmux.sock: No such file or directory — is thingmuxd running?
    // (systemctl start thingmuxd)". Empty while connected.
    std::string daemon_reason{};
    std::chrono::milliseconds daemon_retry_in{0};  // unavailable: delay before the next attempt

    uplink_state uplink = uplink_state::unknown;
    std::string uplink_reason{};  // from the daemon; empty when connected
    bool uplink_fatal = false;  // retrying cannot help until a setting, a file or the broker's side changes (thingmuxd goes on trying, with back-off)
    std::chrono::milliseconds uplink_retry_in{0};  // backing_off: delay before the next attempt
};

// Limits the daemon enforces for this connection (announced in its welcome).
struct daemon_limits {
    std::uint32_t max_frame = 0;          // bytes per IPC frame, both directions
    std::uint32_t max_payload = 0;        // bytes per publish payload
    std::uint32_t max_topic_length = 0;   // bytes per topic name or filter
    std::uint16_t max_subscriptions = 0;  // filters this app may hold
    std::uint64_t max_queue_bytes = 0;    // bytes the daemon queues towards this app
    std::uint16_t max_inflight = 0;       // requests awaiting their result
};

// Who the library is talking to, from the daemon's welcome.
struct daemon_info {
    std::string daemon_version{};  // e.g. "0.1.0"
    std::string thing{};           // the Thing this connection is bound to
    std::string client_id{};       // the daemon's name for this connection, as in its logs and D-Bus
    std::uint16_t protocol_version = 0;
    daemon_limits limits{};
    // With options::session_name (protocol version 2): whether the daemon resumed a session it
    // kept, and how long it keeps the session after this connection ends (0: not beyond it).
    bool session_present = false;
    std::chrono::seconds session_expiry{0};
};

}  // namespace thingmux
