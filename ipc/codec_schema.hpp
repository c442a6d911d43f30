// Internal to the IPC codec (ipc/codec.cpp): the wire layout of every message, both versions
// (docs/ipc-protocol.md, IPC-11 .. IPC-24, IPC-43, IPC-44).
#pragma once

#include "ipc/codec_io.hpp"

namespace thingmux::ipc::wire {

template <class IO, class M>
void fields(IO& io, M& m) {
    if constexpr (is<M, hello>) {
        io.uint(m.version, "version");
        const auto layout = io.hello_layout(m.version);
        if (layout) {
            io.str(m.app_name, "app name");
            io.str(m.thing, "thing");
        }
        if (layout && *layout >= wire_version::v2) {
            io.str(m.session_name, "session name");
            io.check(m.session_name.size() <= max_session_name, "session name is ", m.session_name.size(),
                     " bytes, longer than ", max_session_name);
            io.uint(m.session_expiry, "session expiry");
            io.check(!m.session_name.empty() || m.session_expiry == 0, "session expiry without a session name");
        } else if (layout) {
            io.check(m.session_name.empty() && m.session_expiry == 0,
                     "session name and session expiry need protocol version 2");
        }
    } else if constexpr (is<M, ack>) {
        io.uint(m.delivery_id, "delivery id");
        io.check(m.delivery_id != 0, "delivery id 0 acknowledges nothing");
    } else if constexpr (is<M, publish, message, message_view>) {
        if constexpr (is<M, publish>) {
            io.uint(m.request_id, "request id");
        } else if (io.version() >= wire_version::v2) {
            io.uint(m.delivery_id, "delivery id");
        } else {
            io.check(m.delivery_id == 0, "delivery id needs protocol version 2");
        }
        io.str(m.topic, "topic");
        io.blob(m.payload, "payload");
        io.qos(m.qos, "qos");
        io.boolean(m.retain, "retain");
        fields(io, m.props);
    } else if constexpr (is<M, message_properties>) {
        std::uint8_t mask = presence_mask(m);  // the reader overwrites it with the wire value
        io.uint(mask, "property presence mask");
        io.check((mask & ~known_property_bits) == 0, "property presence mask ", mask, " has reserved bits set");
        io.opt(m.payload_format_indicator, (mask & has_payload_format_indicator) != 0, [&io](auto& v) {
            io.uint(v, "payload format indicator");
            io.check(v <= 1, "payload format indicator is ", v, ", not 0 or 1");
        });
        io.opt(m.message_expiry_interval, (mask & has_message_expiry_interval) != 0,
               [&io](auto& v) { io.uint(v, "message expiry interval"); });
        io.opt(m.content_type, (mask & has_content_type) != 0, [&io](auto& v) { io.str(v, "content type"); });
        io.opt(m.response_topic, (mask & has_response_topic) != 0, [&io](auto& v) { io.str(v, "response topic"); });
        io.opt(m.correlation_data, (mask & has_correlation_data) != 0,
               [&io](auto& v) { io.blob(v, "correlation data"); });
        io.list(m.user_properties, "user properties", 0);
    } else if constexpr (is<M, user_property>) {
        io.str(m.key, "user property key");
        io.str(m.value, "user property value");
    } else if constexpr (is<M, subscribe>) {
        io.uint(m.request_id, "request id");
        if (io.version() >= wire_version::v3) {
            io.uint(m.flags, "subscribe flags");
            io.check((m.flags & ~known_subscribe_flags) == 0, "subscribe flags ", static_cast<unsigned>(m.flags), " have reserved bits set");
        } else {
            io.check(m.flags == 0, "subscribe flags need protocol version 3");
        }
        io.list(m.subscriptions, "subscriptions", 1);
    } else if constexpr (is<M, subscription>) {
        io.str(m.filter, "filter");
        io.qos(m.max_qos, "max qos");
    } else if constexpr (is<M, unsubscribe>) {
        io.uint(m.request_id, "request id");
        io.list(m.filters, "filters", 1);
    } else if constexpr (is<M, ping, pong>) {
        io.uint(m.token, "token");
    } else if constexpr (is<M, welcome>) {
        io.uint(m.version, "version");
        io.str(m.daemon_version, "daemon version");
        io.str(m.thing, "thing");
        io.str(m.connection_id, "connection id");
        fields(io, m.limits);
        io.enumeration(m.link, "link state");
        if (io.version() >= wire_version::v2) {
            io.boolean(m.session_present, "session present");
            io.uint(m.session_expiry, "session expiry");
        } else {
            io.check(!m.session_present && m.session_expiry == 0,
                     "session present and session expiry need protocol version 2");
        }
    } else if constexpr (is<M, limits>) {
        io.uint(m.max_frame, "max frame");
        io.uint(m.max_payload, "max payload");
        io.uint(m.max_topic_length, "max topic length");
        io.uint(m.max_subscriptions, "max subscriptions");
        io.uint(m.max_queue_bytes, "max queue bytes");
        io.uint(m.max_inflight, "max inflight");
    } else if constexpr (is<M, publish_result>) {
        io.uint(m.request_id, "request id");
        fields(io, m.outcome);
    } else if constexpr (is<M, subscribe_result, unsubscribe_result>) {
        io.uint(m.request_id, "request id");
        io.list(m.results, "results", 1);
    } else if constexpr (is<M, result>) {
        io.enumeration(m.code, "result code");
        io.uint(m.mqtt_reason_code, "mqtt reason code");
        io.str(m.message, "result message");
    } else if constexpr (is<M, state>) {
        io.enumeration(m.link, "link state");
        io.str(m.reason, "reason");
        io.boolean(m.fatal, "fatal");
        io.uint(m.retry_in_ms, "retry in ms");
    } else if constexpr (is<M, error>) {
        io.enumeration(m.code, "error code");
        io.str(m.message, "error message");
    } else if constexpr (is<M, admin>) {
        io.uint(m.request_id, "request id");
        io.enumeration(m.command, "command");  // any value: an unknown one is answered (IPC-48)
    } else if constexpr (is<M, admin_result>) {
        io.uint(m.request_id, "request id");
        fields(io, m.outcome);
        // Text that may exceed a string's 65535 bytes: a blob's u32 length, a string's rules (IPC-51).
        io.blob(m.body, "body");
        io.check(m.body.size() <= max_admin_body, "body is ", m.body.size(), " bytes, longer than ", max_admin_body);
        io.check(valid_utf8(m.body), "body is not valid UTF-8 or contains U+0000");
        io.boolean(m.truncated, "truncated");
    } else {
        static_assert(sizeof(M) == 0, "no wire layout for this type");
    }
}

}  // namespace thingmux::ipc::wire
