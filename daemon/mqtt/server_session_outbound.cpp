// The server session's outbound side: deliveries to the client, its QoS 1 window and the queue
// behind it (server_session.hpp).
#include "daemon/mqtt/server_session.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace thingmux::mqtt {
namespace {

// MQTT 5 §3.1.2.11.3: an absent Receive Maximum means 65,535.
constexpr std::uint16_t default_receive_maximum = 65535;

}  // namespace

delivery server_session::deliver(const mqtt::publish& msg, std::uint8_t qos_level, std::uint64_t tag, time_point now) {
    now_ = now;
    if (state_ != server_state::online) return delivery::not_online;
    mqtt::publish out = msg;
    out.qos = qos_level == 0 ? qos::at_most_once : qos::at_least_once;  // the server never starts QoS 2
    out.dup = false;
    out.packet_id = out.qos == qos::at_most_once ? 0 : 1;  // sized with an id; the real one is set when sent
    out.props.topic_alias.reset();
    const std::size_t size = encoded_size(out, version_);
    if (size > client_packet_limit()) return delivery::too_large;  // spec 3.1.2.25: discarded
    // QoS 0 too waits behind queued QoS 1, so messages keep their order.
    if (outbound_queue_.empty() && (out.qos == qos::at_most_once || outbound_inflight_.size() < window()) &&
        send_delivery(out, tag))
        return delivery::sent;
    if (queued_bytes_ + size > settings_.max_queued_bytes) return delivery::queue_full;
    queued_bytes_ += size;
    outbound_queue_.push_back({std::move(out), tag, size});
    return delivery::queued;
}

void server_session::on_puback(const puback& a) {
    const auto it = outbound_inflight_.find(a.packet_id);
    if (it == outbound_inflight_.end()) {
        ++unknown_acks_;  // e.g. a PUBACK sent twice; nothing to do
        return;
    }
    // A negative MQTT 5 PUBACK still ends the delivery: the client has decided about it.
    const auto tag = it->second.tag;
    outbound_inflight_.erase(it);
    emit(server_action::delivered{tag});
    send_queued();
}

void server_session::send_queued() {
    while (!outbound_queue_.empty()) {
        auto& next = outbound_queue_.front();
        if (next.msg.qos == qos::at_least_once && outbound_inflight_.size() >= window()) return;
        if (!send_delivery(next.msg, next.tag)) return;
        queued_bytes_ -= next.bytes;
        outbound_queue_.pop_front();
    }
}

// Sends `msg` with a packet identifier of its own (QoS 1); false when none is free.
bool server_session::send_delivery(mqtt::publish& msg, std::uint64_t tag) {
    msg.packet_id = 0;
    if (msg.qos == qos::at_least_once) {
        const auto id = allocate_packet_id();
        if (!id) return false;
        msg.packet_id = *id;
        outbound_inflight_.emplace(*id, inflight_delivery{next_seq_++, tag});
    }
    send_with_topic_alias(msg);
    return true;
}

// Spec 3.3.2.3.4: a topic the client holds an alias for goes as an empty topic name with the
// alias; any other with its topic name and the alias it has from now on. Where the alias's 3
// bytes would make the packet too large for the client (deliver() checked it without), it goes
// with its topic name and no alias. `msg` is consumed (its topic may be emptied).
void server_session::send_with_topic_alias(mqtt::publish& msg) {
    if (outbound_aliases_.maximum() == 0) return send(msg);
    const auto known = outbound_aliases_.known(msg.topic);
    std::string topic = known ? std::exchange(msg.topic, {}) : std::string{};
    msg.props.topic_alias = known.value_or(1);  // every alias takes the same room
    if (encoded_size(msg, version_) > client_packet_limit()) {
        if (known) msg.topic = std::move(topic);
        msg.props.topic_alias.reset();
    } else if (!known) {
        msg.props.topic_alias = outbound_aliases_.assign(msg.topic);
    }
    send(msg);
}

std::optional<std::uint16_t> server_session::allocate_packet_id() noexcept {
    for (std::uint32_t tries = 0; tries < 65535; ++tries) {
        last_packet_id_ = last_packet_id_ == 65535 ? 1 : static_cast<std::uint16_t>(last_packet_id_ + 1);
        if (!outbound_inflight_.contains(last_packet_id_)) return last_packet_id_;
    }
    return std::nullopt;  // unreachable while the window is at most 65,535
}

std::size_t server_session::window() const noexcept {
    const std::uint16_t client = version_ == protocol_version::v5
                                     ? client_props_.receive_maximum.value_or(default_receive_maximum)
                                     : default_receive_maximum;
    return std::min(settings_.max_inflight_deliveries, client);
}

std::size_t server_session::client_packet_limit() const noexcept {
    if (version_ != protocol_version::v5 || !client_props_.maximum_packet_size) return max_mqtt_packet_size;
    return std::min<std::size_t>(*client_props_.maximum_packet_size, max_mqtt_packet_size);
}

std::vector<std::uint64_t> server_session::unacknowledged() const {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> inflight;  // seq, tag
    inflight.reserve(outbound_inflight_.size());
    for (const auto& [id, d] : outbound_inflight_) inflight.emplace_back(d.seq, d.tag);
    std::ranges::sort(inflight);
    std::vector<std::uint64_t> tags;
    for (const auto& [seq, tag] : inflight) tags.push_back(tag);
    for (const auto& q : outbound_queue_)
        if (q.msg.qos == qos::at_least_once) tags.push_back(q.tag);
    return tags;
}

}  // namespace thingmux::mqtt
