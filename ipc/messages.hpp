// Messages of the thingmux IPC protocol (docs/ipc-protocol.md) as plain values.
//
// One struct per message, grouped into the two directions: a client (libthingmux, thingmuxctl)
// sends client_message values, the daemon sends daemon_message values. The structs are the
// protocol's own, independent of the MQTT codec, because the client library links this module
// without the daemon. Binary fields (payload, correlation data) are held in std::string: it is
// binary-safe and cheap to move. Comments name the IPC-n requirement that defines each part.
//
// This module is pure: no I/O, no Asio, no OpenSSL, no logging.
#pragma once

#include "common/link_state.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace thingmux::ipc {

// Protocol versions whose layout this code knows (IPC-9, IPC-39). Every frame except hello has
// the layout of the version its connection speaks; a hello's own version field selects its layout.
enum class wire_version : std::uint16_t {
    v1 = 1,  // docs/ipc-protocol.md sections 1-7
    v2 = 2,  // version 1 plus sessions (section 8): hello, welcome and message gain fields, ack
    v3 = 3,  // version 2 plus subscribe flags (IPC-60): a subscribe answered at registration
};

// The layout a hello of this version has, or nullopt when this code does not know the version.
[[nodiscard]] constexpr std::optional<wire_version> known_version(std::uint16_t v) noexcept {
    if (v >= static_cast<std::uint16_t>(wire_version::v1) && v <= static_cast<std::uint16_t>(wire_version::v3)) {
        return static_cast<wire_version>(v);
    }
    return std::nullopt;
}

// The version thingmuxd and libthingmux speak. The codec encodes and decodes version 2 as well;
// the daemon and the library take it up together with their support of sessions.
inline constexpr std::uint16_t protocol_version = static_cast<std::uint16_t>(wire_version::v1);

// Longest hello.session_name in bytes (IPC-43); a longer one makes the hello malformed.
inline constexpr std::size_t max_session_name = 256;

// Default socket path (IPC-1).
inline constexpr std::string_view default_socket_path = "/run/thingmux/thingmux.sock";

// Largest frame, length prefix included, accepted before the welcome announces the daemon's
// limit: 256 KiB of payload plus 4 KiB for the other fields (IPC-5).
inline constexpr std::size_t default_max_frame = 256 * 1024 + 4 * 1024;

// Length prefix (4) + message type (1): the smallest frame (IPC-3).
inline constexpr std::size_t frame_header_size = 5;

// Status of a request, reason for an error frame (IPC-12). Values are stable; new ones may be
// appended without a protocol version bump, so receivers must accept values they do not know
// and treat them as failures (to_string() gives "unknown").
enum class errc : std::uint16_t {
    ok = 0,                     // done: the broker accepted (QoS 1) or the daemon passed it on (QoS 0)
    broker_refused = 1,         // the broker answered with a reason code >= 0x80
    not_connected = 2,          // uplink offline and QoS 0, or offline with the fail-fast policy
    invalid_topic = 3,          // topic name not valid (syntax, length, depth, reserved)
    invalid_filter = 4,         // topic filter not valid
    payload_too_large = 5,      // payload longer than limits.max_payload
    qos_not_supported = 6,      // QoS above what the daemon forwards (AWS IoT: 1)
    not_authorized = 7,         // the local policy denies this client the topic/filter/Thing
    quota_exceeded = 8,         // too many subscriptions, requests in flight or clients
    queue_full = 9,             // the client did not read its frames fast enough (cut off)
    rate_limited = 10,          // the shared session's rate limits refused this request
    spool_full = 11,            // offline and the durable spool cannot take the message
    session_closed = 12,        // the connection to the daemon closed before a result came
    unsupported_version = 13,   // hello.version is not spoken by the daemon
    unknown_thing = 14,         // hello.thing names no configured Thing
    malformed_frame = 15,       // a frame breaks the byte layout
    protocol_violation = 16,    // a well-formed frame at the wrong time or in the wrong direction
    frame_too_large = 17,       // a frame's length exceeds limits.max_frame
    daemon_shutting_down = 18,  // the daemon stops; no further results will come
    internal_error = 19,        // a daemon fault; details in the message text
    spooled = 20,               // accepted into the durable spool while offline; sent later
    session_taken_over = 21,    // another connection resumed this connection's session (IPC-43)
    invalid_payload = 22,       // a service request's payload is not a JSON object with an optional string clientToken of at most 64 bytes
    invalid_configuration = 23,  // a reload (IPC-49) found problems in the configuration file; the old one stays in force
};

// Stable snake_case name ("queue_full"), "unknown" for a value this code does not know.
[[nodiscard]] const char* to_string(errc code) noexcept;
// Short human text ("the client read too slowly and was cut off").
[[nodiscard]] const char* describe(errc code) noexcept;
// Whether a request with this outcome was taken: ok or spooled (IPC-12).
[[nodiscard]] constexpr bool accepted(errc code) noexcept {
    return code == errc::ok || code == errc::spooled;
}

// State of the daemon's MQTT session for the client's Thing (IPC-22): the one definition in
// common/, whose numbers are the wire values.
using thingmux::last_link_state;
using thingmux::link_state;

// The protocol's name of the state ("backing_off"): link_state_name().
[[nodiscard]] inline const char* to_string(link_state s) noexcept { return link_state_name(s); }

// Message type byte (IPC-4). Client -> daemon types have the high bit clear, daemon -> client
// types have it set, so a frame sent the wrong way is told apart from an unknown one.
enum class message_type : std::uint8_t {
    hello = 0x01,
    publish = 0x02,
    subscribe = 0x03,
    unsubscribe = 0x04,
    ping = 0x05,
    ack = 0x06,  // version 2
    admin = 0x07,  // management (section 9), both versions
    welcome = 0x81,
    publish_result = 0x82,
    subscribe_result = 0x83,
    unsubscribe_result = 0x84,
    message = 0x85,
    state = 0x86,
    pong = 0x87,
    error = 0x88,
    admin_result = 0x89,  // management (section 9), both versions
};

// "publish_result"; "unknown" for other values.
[[nodiscard]] const char* to_string(message_type t) noexcept;

struct user_property {
    std::string key;
    std::string value;
    friend bool operator==(const user_property&, const user_property&) = default;
};

// MQTT 5 message properties, passed through when the uplink speaks MQTT 5 and dropped for
// MQTT 3.1.1 (IPC-11). Absent = not on the wire.
struct message_properties {
    std::optional<std::uint8_t> payload_format_indicator;  // 0 = bytes, 1 = UTF-8
    std::optional<std::uint32_t> message_expiry_interval;  // seconds
    std::optional<std::string> content_type;
    std::optional<std::string> response_topic;
    std::optional<std::string> correlation_data;  // binary
    std::vector<user_property> user_properties;   // order kept
    friend bool operator==(const message_properties&, const message_properties&) = default;
};

// Outcome of one publish, or of one filter of a subscribe/unsubscribe (IPC-12).
struct result {
    errc code = errc::ok;
    // With ok or broker_refused: the broker's PUBACK/SUBACK/UNSUBACK reason code (SUBACK: the
    // granted QoS). 0 otherwise.
    std::uint8_t mqtt_reason_code = 0;
    std::string message;  // human text for local errors; may be empty
    friend bool operator==(const result&, const result&) = default;
};

// ---------------------------------------------------------------------------------------------
// Client -> daemon

// First frame of every connection (IPC-8, IPC-13).
struct hello {
    std::uint16_t version = protocol_version;
    std::string app_name;  // for logs and D-Bus; not an identity (the daemon uses SO_PEERCRED)
    std::string thing;     // empty = the daemon's default Thing
    // Version 2 (IPC-43): the session to resume or start, empty = none; at most max_session_name
    // bytes. session_expiry: seconds the session may outlive the connection; 0 without a name.
    std::string session_name;
    std::uint32_t session_expiry = 0;
    friend bool operator==(const hello&, const hello&) = default;
};

struct publish {
    std::uint32_t request_id = 0;
    std::string topic;
    std::string payload;  // binary
    std::uint8_t qos = 0;
    bool retain = false;
    message_properties props;
    friend bool operator==(const publish&, const publish&) = default;
};

struct subscription {
    std::string filter;
    std::uint8_t max_qos = 1;
    friend bool operator==(const subscription&, const subscription&) = default;
};

// subscribe.flags (version 3, IPC-60). Other bits are reserved: set, they make the frame malformed.
inline constexpr std::uint8_t subscribe_answer_at_registration = 0x01;  // IPC-61
inline constexpr std::uint8_t known_subscribe_flags = subscribe_answer_at_registration;

struct subscribe {
    std::uint32_t request_id = 0;
    std::vector<subscription> subscriptions;  // at least one
    // Version 3, on the wire between request_id and subscriptions (IPC-60); 0 in versions 1 and
    // 2. Last here so that {id, {filters}} still builds a frame without flags.
    std::uint8_t flags = 0;
    friend bool operator==(const subscribe&, const subscribe&) = default;
};

struct unsubscribe {
    std::uint32_t request_id = 0;
    std::vector<std::string> filters;  // at least one
    friend bool operator==(const unsubscribe&, const unsubscribe&) = default;
};

struct ping {
    std::uint32_t token = 0;
    friend bool operator==(const ping&, const ping&) = default;
};

// Version 2: the client handled the delivery with this id (IPC-44). Never 0.
struct ack {
    std::uint32_t delivery_id = 0;
    friend bool operator==(const ack&, const ack&) = default;
};

// Management (section 9, IPC-47): a request of an administrator's tool. Commands this code does
// not know decode as they are (the daemon answers them with a result, IPC-48).
enum class admin_command : std::uint8_t {
    list_clients = 1,  // IPC-50: the connected apps, as JSON (ipc/admin_clients.hpp)
    reload = 2,        // IPC-49: read the configuration file again
};
// "list_clients"; "unknown" for other values.
[[nodiscard]] const char* to_string(admin_command c) noexcept;

struct admin {
    std::uint32_t request_id = 0;
    admin_command command = admin_command::list_clients;
    friend bool operator==(const admin&, const admin&) = default;
};

// Index i of the variant has message type 0x01 + i.
using client_message = std::variant<hello, publish, subscribe, unsubscribe, ping, ack, admin>;

// ---------------------------------------------------------------------------------------------
// Daemon -> client

// Per-client limits the daemon enforces (IPC-18).
struct limits {
    std::uint32_t max_frame = default_max_frame;  // bytes, length prefix included, both directions
    std::uint32_t max_payload = 256 * 1024;       // publish payload bytes
    std::uint32_t max_topic_length = 256;         // topic/filter bytes (<= 65535)
    std::uint16_t max_subscriptions = 50;         // filters this client may hold
    std::uint64_t max_queue_bytes = 8 * 1024 * 1024;  // frames queued towards this client
    std::uint16_t max_inflight = 100;             // publish requests awaiting their result
    friend bool operator==(const limits&, const limits&) = default;
};

struct welcome {
    std::uint16_t version = protocol_version;
    std::string daemon_version;  // e.g. "0.1.0"
    std::string thing;           // the Thing this connection is bound to (default resolved)
    std::string connection_id;   // the daemon's number for this connection (decimal), as in its logs and on D-Bus
    ipc::limits limits;
    link_state link = link_state::connecting;
    // Version 2 (IPC-43): whether a kept session was resumed, and the seconds the daemon keeps
    // it after this connection ends (0: it ends with the connection, and always without a name).
    bool session_present = false;
    std::uint32_t session_expiry = 0;
    friend bool operator==(const welcome&, const welcome&) = default;
};

struct publish_result {
    std::uint32_t request_id = 0;
    result outcome;
    friend bool operator==(const publish_result&, const publish_result&) = default;
};

struct subscribe_result {
    std::uint32_t request_id = 0;
    std::vector<result> results;  // one per filter, in request order
    friend bool operator==(const subscribe_result&, const subscribe_result&) = default;
};

struct unsubscribe_result {
    std::uint32_t request_id = 0;
    std::vector<result> results;  // one per filter, in request order
    friend bool operator==(const unsubscribe_result&, const unsubscribe_result&) = default;
};

// A broker message matching one of the client's subscriptions (IPC-21, IPC-31).
struct message {
    std::string topic;
    std::string payload;  // binary
    std::uint8_t qos = 0;
    bool retain = false;
    message_properties props;
    // Version 2, first on the wire (IPC-44): the id the client acknowledges once it handled a
    // QoS 1 delivery to its session; 0 = nothing to acknowledge.
    std::uint32_t delivery_id = 0;
    friend bool operator==(const message&, const message&) = default;
};

// The link changed state (IPC-22, IPC-32).
struct state {
    link_state link = link_state::connecting;
    std::string reason;  // why, for people; empty for connected
    bool fatal = false;  // retrying cannot help until a setting, a file or the broker's side changes (attempts go on, with back-off)
    std::uint32_t retry_in_ms = 0;  // backing_off: delay before the next attempt
    friend bool operator==(const state&, const state&) = default;
};

struct pong {
    std::uint32_t token = 0;
    friend bool operator==(const pong&, const pong&) = default;
};

// Last frame before the daemon closes the connection (IPC-24, IPC-34).
struct error {
    errc code = errc::internal_error;
    std::string message;
    friend bool operator==(const error&, const error&) = default;
};

// Longest admin_result.body in bytes (IPC-51); a longer one makes the frame malformed.
inline constexpr std::size_t max_admin_body = 4 * 1024 * 1024;
// Largest admin_result frame, length prefix included: the one frame that may exceed
// limits.max_frame (IPC-51), since only a client that asked for it ever gets one.
inline constexpr std::size_t max_admin_result_frame = max_admin_body + 4 * 1024;

// The answer to one admin request (IPC-48).
struct admin_result {
    std::uint32_t request_id = 0;
    result outcome;
    // list_clients: a JSON array of the clients (IPC-50); reload refused: the problems found,
    // one per line; otherwise empty. UTF-8, at most max_admin_body bytes.
    std::string body;
    bool truncated = false;  // list_clients: more clients than fit in max_admin_body
    friend bool operator==(const admin_result&, const admin_result&) = default;
};

// Index i of the variant has message type 0x81 + i.
using daemon_message =
    std::variant<welcome, publish_result, subscribe_result, unsubscribe_result, message, state, pong, error, admin_result>;

[[nodiscard]] message_type type_of(const client_message& m) noexcept;
[[nodiscard]] message_type type_of(const daemon_message& m) noexcept;

}  // namespace thingmux::ipc
