#include "daemon/thing/spool_message.hpp"

#include <utility>

namespace thingmux::thing {

spool::message to_spool_message(const ipc::publish& p) {
    spool::message m{.topic = p.topic,
                     .payload = p.payload,
                     .qos = p.qos,
                     .retain = p.retain,
                     .payload_format_indicator = p.props.payload_format_indicator,
                     .message_expiry_interval = p.props.message_expiry_interval,
                     .content_type = p.props.content_type,
                     .response_topic = p.props.response_topic,
                     .correlation_data = p.props.correlation_data,
                     .user_properties = {}};
    m.user_properties.reserve(p.props.user_properties.size());
    for (const auto& u : p.props.user_properties) m.user_properties.push_back({u.key, u.value});
    return m;
}

ipc::publish from_spool_message(spool::message&& m) {
    ipc::publish p{.request_id = 0,
                   .topic = std::move(m.topic),
                   .payload = std::move(m.payload),
                   .qos = m.qos,
                   .retain = m.retain,
                   .props = {}};
    p.props.payload_format_indicator = m.payload_format_indicator;
    p.props.message_expiry_interval = m.message_expiry_interval;
    p.props.content_type = std::move(m.content_type);
    p.props.response_topic = std::move(m.response_topic);
    p.props.correlation_data = std::move(m.correlation_data);
    p.props.user_properties.reserve(m.user_properties.size());
    for (auto& u : m.user_properties) p.props.user_properties.push_back({std::move(u.key), std::move(u.value)});
    return p;
}

}  // namespace thingmux::thing
