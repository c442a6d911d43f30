#include "ipc/messages.hpp"

namespace thingmux::ipc {

const char* to_string(errc code) noexcept {
    switch (code) {
        case errc::ok: return "ok";
        case errc::broker_refused: return "broker_refused";
        case errc::not_connected: return "not_connected";
        case errc::invalid_topic: return "invalid_topic";
        case errc::invalid_filter: return "invalid_filter";
        case errc::payload_too_large: return "payload_too_large";
        case errc::qos_not_supported: return "qos_not_supported";
        case errc::not_authorized: return "not_authorized";
        case errc::quota_exceeded: return "quota_exceeded";
        case errc::queue_full: return "queue_full";
        case errc::rate_limited: return "rate_limited";
        case errc::spool_full: return "spool_full";
        case errc::session_closed: return "session_closed";
        case errc::unsupported_version: return "unsupported_version";
        case errc::unknown_thing: return "unknown_thing";
        case errc::malformed_frame: return "malformed_frame";
        case errc::protocol_violation: return "protocol_violation";
        case errc::frame_too_large: return "frame_too_large";
        case errc::daemon_shutting_down: return "daemon_shutting_down";
        case errc::internal_error: return "internal_error";
        case errc::spooled: return "spooled";
        case errc::session_taken_over: return "session_taken_over";
        case errc::invalid_payload: return "invalid_payload";
        case errc::invalid_configuration: return "invalid_configuration";
    }
    return "unknown";  // a value from a newer peer (IPC-12)
}

const char* describe(errc code) noexcept {
    switch (code) {
        case errc::ok: return "success";
        case errc::broker_refused: return "the broker refused the request";
        case errc::not_connected: return "not connected to the broker";
        case errc::invalid_topic: return "invalid topic name";
        case errc::invalid_filter: return "invalid topic filter";
        case errc::payload_too_large: return "payload too large";
        case errc::qos_not_supported: return "QoS not supported";
        case errc::not_authorized: return "not authorized by the local policy";
        case errc::quota_exceeded: return "quota exceeded";
        case errc::queue_full: return "the client read too slowly and was cut off";
        case errc::rate_limited: return "rate limit reached";
        case errc::spool_full: return "the offline spool is full";
        case errc::session_closed: return "the connection to the daemon was closed";
        case errc::unsupported_version: return "unsupported protocol version";
        case errc::unknown_thing: return "unknown Thing";
        case errc::malformed_frame: return "malformed frame";
        case errc::protocol_violation: return "protocol violation";
        case errc::frame_too_large: return "frame too large";
        case errc::daemon_shutting_down: return "the daemon is shutting down";
        case errc::internal_error: return "internal error in the daemon";
        case errc::spooled: return "stored in the offline spool, to be published when connected";
        case errc::session_taken_over: return "another connection took over the session";
        case errc::invalid_payload:
            return "a service request's payload is not a JSON object with an optional string clientToken of at most 64 bytes";
        case errc::invalid_configuration: return "the configuration file has problems; the one in force stays";
    }
    return "unknown error code";
}

const char* to_string(message_type t) noexcept {
    switch (t) {
        case message_type::hello: return "hello";
        case message_type::publish: return "publish";
        case message_type::subscribe: return "subscribe";
        case message_type::unsubscribe: return "unsubscribe";
        case message_type::ping: return "ping";
        case message_type::ack: return "ack";
        case message_type::admin: return "admin";
        case message_type::welcome: return "welcome";
        case message_type::publish_result: return "publish_result";
        case message_type::subscribe_result: return "subscribe_result";
        case message_type::unsubscribe_result: return "unsubscribe_result";
        case message_type::message: return "message";
        case message_type::state: return "state";
        case message_type::pong: return "pong";
        case message_type::error: return "error";
        case message_type::admin_result: return "admin_result";
    }
    return "unknown";
}

const char* to_string(admin_command c) noexcept {
    switch (c) {
        case admin_command::list_clients: return "list_clients";
        case admin_command::reload: return "reload";
    }
    return "unknown";
}

// The variants list their alternatives in message-type order (IPC-4).
message_type type_of(const client_message& m) noexcept {
    return static_cast<message_type>(0x01 + m.index());
}

message_type type_of(const daemon_message& m) noexcept {
    return static_cast<message_type>(0x81 + m.index());
}

}  // namespace thingmux::ipc
