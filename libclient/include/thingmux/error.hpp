// Outcome of a libthingmux request: an error code (the IPC protocol's status values plus a few of
// the library's own) and the broker's MQTT reason code.
#pragma once

#include "thingmux/export.hpp"

#include <cstdint>
#include <string>

namespace thingmux {

// Values 0-999 mirror the IPC protocol's status codes (docs/ipc-protocol.md, IPC-12) with the
// same numbers, so a value a newer daemon sends still round-trips; values from 1000 up are the
// library's own. Receivers must accept values they do not know and treat them as failures.
enum class error_code : std::uint16_t {
    ok = 0,                     // done: the broker accepted (QoS 1) or the daemon passed it on (QoS 0)
    broker_refused = 1,         // the broker answered with a reason code >= 0x80 (see result::reason_code)
    not_connected = 2,          // no connection to thingmuxd, or the daemon's uplink is offline
    invalid_topic = 3,          // topic name not valid (syntax, length, depth, reserved)
    invalid_filter = 4,         // topic filter not valid
    payload_too_large = 5,      // payload longer than the daemon's max_payload
    qos_not_supported = 6,      // QoS above what the daemon forwards (AWS IoT: 1)
    not_authorized = 7,         // the daemon's local policy denies this app the topic/filter/Thing
    quota_exceeded = 8,         // too many subscriptions, requests in flight or clients
    queue_full = 9,             // the app read too slowly and the daemon cut it off
    rate_limited = 10,          // the shared session's rate limits refused this request
    spool_full = 11,            // offline and the daemon's durable spool cannot take the message
    session_closed = 12,        // the connection to thingmuxd closed before the result came
    unsupported_version = 13,   // the daemon does not speak this library's protocol version
    unknown_thing = 14,         // options::thing names no Thing the daemon serves
    malformed_frame = 15,       // a frame broke the byte layout (a bug on one side)
    protocol_violation = 16,    // a frame at the wrong time (a bug on one side)
    frame_too_large = 17,       // the request does not fit in the daemon's max_frame
    daemon_shutting_down = 18,  // thingmuxd is stopping
    internal_error = 19,        // a fault in thingmuxd; details in result::message
    spooled = 20,               // accepted into the daemon's durable spool while offline; sent later
    session_taken_over = 21,    // another connection resumed this app's session
    invalid_payload = 22,  // a service request's payload is not a JSON object with an optional string clientToken of at most 64 bytes
    invalid_configuration = 23,  // a reload over IPC found problems in the configuration file (thingmuxctl reload)

    daemon_unavailable = 1000,  // cannot reach thingmuxd (not running, socket missing, permission)
    closed = 1001,              // client::close() was called before the request completed
    backlog_full = 1002,        // the library's bounded queue of waiting requests is full
    invalid_argument = 1003,    // a request the library refuses before sending (see the message)
    timed_out = 1004,           // the request's timeout (request_options::timeout) expired first
    cancelled = 1005,           // the app cancelled the request (request_handle::cancel, request_options::cancel)
};

// Stable snake_case name ("not_connected"); "unknown" for a value this library does not know.
[[nodiscard]] THINGMUX_API const char* to_string(error_code code) noexcept;

// Short human text ("no connection to thingmuxd or to the broker").
[[nodiscard]] THINGMUX_API const char* describe(error_code code) noexcept;

// The outcome of one publish, subscribe, unsubscribe or connect.
struct result {
    error_code code = error_code::ok;
    // With ok or broker_refused: the broker's PUBACK/SUBACK/UNSUBACK reason code (for a
    // subscribe: the granted QoS). 0 otherwise, and always 0 for QoS 0 publishes.
    std::uint8_t reason_code = 0;
    // Human text for people and logs; may be empty for ok.
    std::string message{};

    // The request was taken: ok, or spooled (the daemon stored it durably and sends it later).
    [[nodiscard]] bool ok() const noexcept { return code == error_code::ok || code == error_code::spooled; }
    explicit operator bool() const noexcept { return ok(); }
};

}  // namespace thingmux
