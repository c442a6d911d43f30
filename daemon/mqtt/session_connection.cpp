// The session's connection: what the broker sends, and how a connection ends (session.hpp).
#include "daemon/mqtt/session.hpp"

#include "common/printable.hpp"
#include "daemon/mqtt/topic.hpp"

#include <algorithm>
#include <string_view>

namespace thingmux::mqtt {
namespace {

// MQTT 5 §3.2.2.3.3: an absent Receive Maximum means 65,535.
constexpr std::uint16_t default_receive_maximum = 65535;

// CONNACK refusals that a retry without a configuration change cannot fix.
bool fatal_connack(std::uint8_t code) noexcept {
    switch (code) {
    case reason::unsupported_protocol_version:
    case reason::client_identifier_not_valid:
    case reason::bad_user_name_or_password:
    case reason::not_authorized:
    case reason::banned:
    case reason::bad_authentication_method: return true;
    default: return false;
    }
}

std::string hex(std::uint8_t code) {
    constexpr std::string_view digits = "0123456789ABCDEF";
    return {'0', 'x', digits[static_cast<std::size_t>(code / 16)], digits[static_cast<std::size_t>(code % 16)]};
}

// "not authorized (reason 0x87)": the reason code as it reads in a log line.
std::string describe(std::uint8_t code) {
    std::string s = reason_string(code);
    if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
    return s + " (reason " + hex(code) + ")";
}

// DISCONNECT reasons that may be about a packet we sent (as opposed to the broker's own state:
// shutting down, session taken over, busy, keep-alive, moved).
bool about_a_sent_packet(std::uint8_t code) noexcept {
    switch (code) {
    case reason::unspecified_error:
    case reason::malformed_packet:
    case reason::protocol_error:
    case reason::implementation_specific_error:
    case reason::not_authorized:
    case reason::topic_name_invalid:
    case reason::packet_too_large:
    case reason::payload_format_invalid:
    case reason::retain_not_supported:
    case reason::qos_not_supported: return true;
    default: return false;
    }
}

// The end of a connection as the log and the apps read it, with the publish it is blamed on.
std::string with_suspect(std::string reason, const std::optional<action::refused_publish>& s) {
    if (!s) return reason;
    reason += "; the only unacknowledged message was a " + std::to_string(s->bytes) + "-byte PUBLISH to '" +
              text::printable(s->topic, 200) + "', sent alone (attempt " + std::to_string(s->attempt) + " of " +
              std::to_string(s->max_attempts) + ")";
    if (s->attempt >= s->max_attempts) reason += ": it is failed as refused by the broker and the others go on";
    return reason;
}

}  // namespace

void session::on_transport_closed(time_point now, std::string reason) {
    now_ = now;
    if (!end_reported_) {
        end_reported_ = true;
        auto suspect = blame_oldest_publish();
        emit(action::disconnected{with_suspect(std::move(reason), suspect), std::nullopt, action::end_cause::closed, std::move(suspect)});
    }
    go_offline();
}

// --- inbound packets ---

void session::handle(packet& p) {
    const packet_type type = type_of(p);
    if (state_ == session_state::awaiting_connack && type != packet_type::connack && type != packet_type::disconnect)
        return protocol_failure(reason::protocol_error, std::string{"protocol error: "} + to_string(type) + " before CONNACK");
    switch (type) {
    case packet_type::connack: return on_connack(std::get<connack>(p));
    case packet_type::publish: return on_publish(std::get<mqtt::publish>(p));
    case packet_type::puback: return on_puback(std::get<puback>(p));
    case packet_type::suback: {
        const auto& a = std::get<suback>(p);
        return on_filter_ack(a.packet_id, false, a.reason_codes);
    }
    case packet_type::unsuback: {
        const auto& a = std::get<unsuback>(p);
        return on_filter_ack(a.packet_id, true, a.reason_codes);
    }
    case packet_type::pingresp: ping_outstanding_ = false; return;
    case packet_type::disconnect:
        if (cfg_.version == protocol_version::v5) return on_broker_disconnect(std::get<mqtt::disconnect>(p));
        break;  // a 3.1.1 server never sends DISCONNECT
    default: break;  // CONNECT, SUBSCRIBE, ...: client-to-server only; PUBREC/PUBREL/PUBCOMP: QoS 2 is never used
    }
    protocol_failure(reason::protocol_error, std::string{"protocol error: broker sent "} + to_string(type));
}

void session::on_connack(const connack& c) {
    if (state_ != session_state::awaiting_connack)
        return protocol_failure(reason::protocol_error, "protocol error: second CONNACK");
    if (c.reason_code != reason::success) {
        const std::uint8_t code = connack_reason_v5(cfg_.version, c.reason_code);
        std::string text = describe(code);
        end_reported_ = true;
        emit(action::connect_failed{code, fatal_connack(code), text});
        emit(action::close{std::move(text)});
        return go_offline();
    }
    // MQTT 3.1.1 §3.2.2.2 / 5 §3.2.2.1.1: a client that asked for a clean session must not accept one.
    if (c.session_present && cfg_.clean_start)
        return protocol_failure(reason::protocol_error, "protocol error: session present after clean start");

    broker_props_ = c.props;
    state_ = session_state::online;
    keep_alive_ = c.props.server_keep_alive ? std::chrono::seconds{*c.props.server_keep_alive} : cfg_.keep_alive;
    window_ = std::min(cfg_.max_inflight, c.props.receive_maximum.value_or(default_receive_maximum));
    emit(action::connected{c.session_present, c.props});

    // Pending ops go first, in request order, then the live filters they do not cover: a pending
    // UNSUBSCRIBE must never land after a later re-SUBSCRIBE of the same filter.
    if (!c.session_present) resubscribe_live();
    send_queued_ops();
    retransmit();
    send_queued_publishes();
}

void session::on_publish(mqtt::publish& msg) {
    if (msg.qos == qos::exactly_once)
        return protocol_failure(reason::protocol_error, "protocol error: PUBLISH with QoS 2 (never subscribed with QoS 2)");
    if (msg.props.topic_alias)
        return protocol_failure(reason::topic_alias_invalid, "protocol error: PUBLISH with a topic alias (Topic Alias Maximum is 0)");
    if (!valid_topic_name(msg.topic))
        return protocol_failure(reason::protocol_error, "protocol error: PUBLISH without a valid topic name");
    std::optional<inbound_ticket> ticket;
    if (msg.qos == qos::at_least_once) ticket = inbound_ticket{connection_, msg.packet_id};
    emit(action::message{std::move(msg), ticket});
}

void session::on_puback(const puback& ack) {
    const auto it = inflight_.find(ack.packet_id);
    if (it == inflight_.end()) {
        ++unknown_acks_;
        return;
    }
    emit(action::publish_done{it->second.id, ack.reason_code, local_error::none, ack.props.reason_string.value_or(""),
                              it->second.tag});
    release_inflight(it);
    if (isolating_) {  // the publish sent alone got through: the others follow
        isolating_ = false;
        retransmit();
    }
    send_queued();
}

void session::on_filter_ack(std::uint16_t packet_id, bool unsubscribe_ack, const std::vector<std::uint8_t>& codes) {
    const auto wait = ack_waits_.find(packet_id);
    if (wait == ack_waits_.end()) {
        ++unknown_acks_;
        return;
    }
    const auto it = ops_.find(wait->second.op_key);
    auto& op = it->second;
    const std::size_t k = wait->second.chunk;
    const char* name = unsubscribe_ack ? "UNSUBACK" : "SUBACK";
    if (op.unsubscribe != unsubscribe_ack)
        return protocol_failure(reason::protocol_error, std::string{"protocol error: "} + name + " for the wrong request type");
    const auto [first, last] = chunk_range(op, k);
    // A 3.1.1 UNSUBACK carries no codes: it means success for every filter.
    const bool codeless = unsubscribe_ack && cfg_.version == protocol_version::v311;
    if (!codeless && codes.size() != last - first)
        return protocol_failure(reason::protocol_error, std::string{"protocol error: "} + name + " with " +
                                                            std::to_string(codes.size()) + " reason codes for " +
                                                            std::to_string(last - first) + " filters");
    for (std::size_t i = first; i < last; ++i) {
        const std::uint8_t code = codeless ? reason::success : codes[i - first];
        op.codes[op.wire[i]] = code;
        if (!op.unsubscribe && code >= reason::unspecified_error) drop_refused(it, op.subs[op.wire[i]].filter, code);
    }
    op.chunks[k].acked = true;
    ack_waits_.erase(wait);
    if (std::all_of(op.chunks.begin(), op.chunks.end(), [](const chunk& c) { return c.acked; })) {
        emit_done(op);
        ops_.erase(it);
    }
    send_queued();
}

void session::on_broker_disconnect(const mqtt::disconnect& d) {
    std::string text = "broker sent DISCONNECT: " + describe(d.reason_code);
    // Broker-supplied text ends up in log lines, IPC state frames and D-Bus: short and escaped.
    if (d.props.reason_string) text += ": " + text::printable(*d.props.reason_string, 200);
    end_connection(std::move(text), action::end_cause::broker_disconnect, d.reason_code);
}

void session::protocol_failure(std::uint8_t v5_reason, std::string text) {
    if (cfg_.version == protocol_version::v5) send(mqtt::disconnect{v5_reason, {}});
    end_connection(std::move(text), action::end_cause::protocol_error);
}

void session::end_connection(std::string reason, action::end_cause cause, std::optional<std::uint8_t> reason_code) {
    if (!end_reported_) {
        end_reported_ = true;
        std::optional<action::refused_publish> suspect;
        if (cause == action::end_cause::broker_disconnect && reason_code && about_a_sent_packet(*reason_code))
            suspect = blame_oldest_publish();
        emit(action::disconnected{with_suspect(reason, suspect), reason_code, cause, std::move(suspect)});
    }
    emit(action::close{std::move(reason)});
    go_offline();
}

std::optional<action::refused_publish> session::blame_oldest_publish() {
    if (state_ != session_state::online || inflight_.empty()) return std::nullopt;
    const auto order = inflight_in_send_order();
    auto& oldest = order.front()->second;
    // Alone: sent by itself on this connection (after an earlier such end), with no other publish
    // or SUBSCRIBE/UNSUBSCRIBE of ours unacknowledged that the broker could have objected to.
    const bool alone = isolating_ && oldest.sent_on == connection_ && ack_waits_.empty() &&
                       std::none_of(order.begin() + 1, order.end(), [&](auto it) { return it->second.sent_on == connection_; });
    isolating_ = true;
    if (!alone) return std::nullopt;
    ++oldest.refusals;
    action::refused_publish r{oldest.msg.topic, encoded_size(oldest.msg, cfg_.version), oldest.refusals + 1,
                              cfg_.max_publish_attempts};
    if (r.attempt >= r.max_attempts) {
        complete_local(oldest.id, oldest.tag, local_error::refused_by_broker,
                       "the broker closed the connection each of the " + std::to_string(r.attempt) +
                           " times this message (a " + std::to_string(r.bytes) + "-byte PUBLISH) was sent");
        inflight_.erase(order.front());
        isolating_ = false;
    }
    return r;
}

void session::go_offline() noexcept {
    state_ = session_state::offline;
    rx_.clear();
    ping_outstanding_ = false;
    // SUBACK/UNSUBACK of a closed connection never come: those packets are sent again.
    ack_waits_.clear();
    for (auto& [key, op] : ops_)
        for (auto& c : op.chunks) c.packet_id = 0;
}

}  // namespace thingmux::mqtt
