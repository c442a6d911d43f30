#include "daemon/thing/outcome.hpp"

namespace thingmux::thing {

ipc::result ok(std::uint8_t reason_code) { return {.code = ipc::errc::ok, .mqtt_reason_code = reason_code, .message = {}}; }

ipc::result fail(ipc::errc code, std::string message, std::uint8_t reason_code) {
    return {.code = code, .mqtt_reason_code = reason_code, .message = std::move(message)};
}

ipc::result publish_outcome(const mqtt::action::publish_done& d) {
    using mqtt::local_error;
    switch (d.error) {
    case local_error::none: break;
    case local_error::not_connected:
        return fail(ipc::errc::not_connected, "the Thing's connection is down and QoS 0 messages are not queued");
    case local_error::packet_too_large:
        return fail(ipc::errc::payload_too_large,
                    "message is larger than the broker takes (" + d.reason_string +
                        "; the limit is the broker's Maximum Packet Size or limits.max_packet)");
    case local_error::refused_by_broker:
        return fail(ipc::errc::broker_refused,
                    "broker refused the message: " + d.reason_string +
                        ". MQTT 3.1.1 brokers, and AWS IoT Core when its IoT policy denies a topic, close the "
                        "connection instead of answering: check that the Thing's IoT policy allows publishing to "
                        "this topic and that the message fits the broker's packet limit (limits.max_packet)");
    case local_error::qos_not_supported:
        return fail(ipc::errc::qos_not_supported, "the broker does not support this QoS");
    case local_error::invalid_topic: return fail(ipc::errc::invalid_topic, "not a valid MQTT topic name");
    case local_error::retain_not_supported:
        return fail(ipc::errc::broker_refused, "the broker does not support retained messages",
                    mqtt::reason::retain_not_supported);
    case local_error::session_closed:
        return fail(ipc::errc::daemon_shutting_down, "the daemon stopped before the broker acknowledged the message");
    }
    if (d.reason_code >= 0x80) {
        std::string why = std::string("broker refused the message: ") + mqtt::reason_string(d.reason_code);
        if (!d.reason_string.empty()) why += " (" + d.reason_string + ")";
        return fail(ipc::errc::broker_refused, std::move(why), d.reason_code);
    }
    return ok(d.reason_code);
}

mqtt::properties to_mqtt(ipc::message_properties&& p) {
    mqtt::properties m;
    m.payload_format_indicator = p.payload_format_indicator;
    m.message_expiry_interval = p.message_expiry_interval;
    m.content_type = std::move(p.content_type);
    m.response_topic = std::move(p.response_topic);
    m.correlation_data = std::move(p.correlation_data);
    m.user_properties.reserve(p.user_properties.size());
    for (auto& u : p.user_properties) m.user_properties.push_back({std::move(u.key), std::move(u.value)});
    return m;
}

ipc::message_properties to_ipc(const mqtt::properties& m) {
    ipc::message_properties p;
    p.payload_format_indicator = m.payload_format_indicator;
    p.message_expiry_interval = m.message_expiry_interval;
    p.content_type = m.content_type;
    p.response_topic = m.response_topic;
    p.correlation_data = m.correlation_data;
    for (const auto& u : m.user_properties) p.user_properties.push_back({u.key, u.value});
    return p;
}

mqtt::publish to_mqtt(ipc::publish&& m) {
    return mqtt::publish{.topic = std::move(m.topic),
                         .payload = std::move(m.payload),
                         .qos = static_cast<mqtt::qos>(m.qos),
                         .retain = m.retain,
                         .props = to_mqtt(std::move(m.props))};
}

ipc::publish to_ipc(mqtt::publish&& m) {
    return {.request_id = 0,
            .topic = std::move(m.topic),
            .payload = std::move(m.payload),
            .qos = static_cast<std::uint8_t>(m.qos),
            .retain = m.retain,
            .props = to_ipc(m.props)};
}

std::uint8_t mqtt_reason_for(const ipc::result& r, mqtt::packet_type answer) {
    namespace reason = mqtt::reason;
    const bool filters = answer == mqtt::packet_type::suback || answer == mqtt::packet_type::unsuback;
    const std::uint8_t code = [&]() -> std::uint8_t {
        switch (r.code) {
        case ipc::errc::ok:
        case ipc::errc::broker_refused: return r.mqtt_reason_code;
        case ipc::errc::spooled: return reason::success;
        case ipc::errc::not_authorized: return reason::not_authorized;
        case ipc::errc::invalid_topic: return filters ? reason::topic_filter_invalid : reason::topic_name_invalid;
        case ipc::errc::invalid_filter: return reason::topic_filter_invalid;
        case ipc::errc::quota_exceeded:
        case ipc::errc::rate_limited:
        case ipc::errc::spool_full:
        case ipc::errc::payload_too_large: return reason::quota_exceeded;
        case ipc::errc::qos_not_supported: return reason::implementation_specific_error;
        case ipc::errc::invalid_payload: return reason::payload_format_invalid;
        default: return reason::unspecified_error;
        }
    }();
    if (mqtt::reason_code_allowed(answer, code)) return code;
    return ipc::accepted(r.code) ? reason::success : reason::unspecified_error;
}

}  // namespace thingmux::thing
