#include "convert.hpp"

#include <cstdio>
#include <utility>

namespace thingmux::detail {

ipc::message_properties to_ipc_properties(message& m) {
    ipc::message_properties p;
    p.payload_format_indicator = m.payload_format_indicator;
    p.message_expiry_interval = m.message_expiry_seconds;
    p.content_type = std::move(m.content_type);
    p.response_topic = std::move(m.response_topic);
    p.correlation_data = std::move(m.correlation_data);
    p.user_properties.reserve(m.user_properties.size());
    for (auto& up : m.user_properties) {
        p.user_properties.push_back({std::move(up.key), std::move(up.value)});
    }
    return p;
}

message from_ipc(ipc::message&& m) {
    message out;
    out.topic = std::move(m.topic);
    out.payload = std::move(m.payload);
    out.qos = m.qos;
    out.retain = m.retain;
    out.payload_format_indicator = m.props.payload_format_indicator;
    out.message_expiry_seconds = m.props.message_expiry_interval;
    out.content_type = std::move(m.props.content_type);
    out.response_topic = std::move(m.props.response_topic);
    out.correlation_data = std::move(m.props.correlation_data);
    out.user_properties.reserve(m.props.user_properties.size());
    for (auto& up : m.props.user_properties) {
        out.user_properties.push_back({std::move(up.key), std::move(up.value)});
    }
    return out;
}

result from_ipc(ipc::result&& r) {
    result out;
    out.code = static_cast<error_code>(static_cast<std::uint16_t>(r.code));
    out.reason_code = r.mqtt_reason_code;
    out.message = std::move(r.message);
    if (out.message.empty() && !out.ok()) {
        out.message = describe(out.code);
        if (out.code == error_code::broker_refused) {
            char buf[64];
            std::snprintf(buf, sizeof buf, " (reason code 0x%02x)", static_cast<unsigned>(out.reason_code));
            out.message += buf;
        }
    }
    return out;
}

daemon_info from_ipc(const ipc::welcome& w) {
    daemon_info info;
    info.daemon_version = w.daemon_version;
    info.thing = w.thing;
    info.client_id = w.connection_id;
    info.protocol_version = w.version;
    info.limits.max_frame = w.limits.max_frame;
    info.limits.max_payload = w.limits.max_payload;
    info.limits.max_topic_length = w.limits.max_topic_length;
    info.limits.max_subscriptions = w.limits.max_subscriptions;
    info.limits.max_queue_bytes = w.limits.max_queue_bytes;
    info.limits.max_inflight = w.limits.max_inflight;
    info.session_present = w.session_present;
    info.session_expiry = std::chrono::seconds{w.session_expiry};
    return info;
}

uplink_state from_ipc(ipc::link_state s) noexcept {
    // Same numbers (checked in error.cpp).
    return s <= ipc::last_link_state ? static_cast<uplink_state>(s) : uplink_state::unknown;
}

}  // namespace thingmux::detail
