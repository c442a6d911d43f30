#include "daemon/mqtt/session.hpp"

#include "daemon/mqtt/topic.hpp"

#include <algorithm>
#include <string_view>

// The session's events and commands. Its other parts: session_connection.cpp (packets from the
// broker, the end of a connection), session_outbound.cpp (packet ids, queues, sending).

namespace thingmux::mqtt {
namespace {

using namespace std::chrono_literals;

// "90 s", "67.5 s".
std::string seconds_text(std::chrono::milliseconds d) {
    std::string s = std::to_string(d.count() / 1000);
    if (const auto frac = d.count() % 1000; frac != 0) {
        std::string digits = std::to_string(1000 + frac).substr(1);
        while (digits.back() == '0') digits.pop_back();
        s += '.' + digits;
    }
    return s + " s";
}

}  // namespace

session::session(session_config config) { reconfigure(std::move(config)); }

void session::reconfigure(session_config config) {
    cfg_ = std::move(config);
    // Zero would stall every QoS 1 publish or never finish splitting filters; the wire fields for
    // keep-alive (16 bits) and Maximum Packet Size (> 0, at most what MQTT can express) are bounded.
    cfg_.max_inflight = std::max<std::uint16_t>(cfg_.max_inflight, 1);
    cfg_.max_filters_per_packet = std::max<std::size_t>(cfg_.max_filters_per_packet, 1);
    cfg_.keep_alive = std::clamp(cfg_.keep_alive, std::chrono::seconds{0}, std::chrono::seconds{65535});
    cfg_.max_packet_size = std::clamp<std::size_t>(cfg_.max_packet_size, 1, max_mqtt_packet_size);
    cfg_.max_publish_attempts = std::max(cfg_.max_publish_attempts, 2U);
}

// --- transport events ---

void session::on_transport_open(time_point now) {
    now_ = now;
    go_offline();  // tolerate a missing on_transport_closed(): start from a clean connection
    ++connection_;
    end_reported_ = false;
    state_ = session_state::awaiting_connack;
    connack_deadline_ = now + cfg_.connack_timeout;
    last_received_ = now;

    connect c;
    c.version = cfg_.version;
    c.client_id = cfg_.client_id;
    c.clean_start = cfg_.clean_start;
    c.keep_alive = static_cast<std::uint16_t>(cfg_.keep_alive.count());
    c.username = cfg_.username;
    c.password = cfg_.password;
    if (cfg_.version == protocol_version::v5) {
        c.props.session_expiry_interval = cfg_.session_expiry;
        c.props.receive_maximum = cfg_.max_inflight;
        c.props.maximum_packet_size = static_cast<std::uint32_t>(cfg_.max_packet_size);
        // Topic Alias Maximum stays absent (= 0): the broker must send full topic names.
    }
    send(c);
}

void session::on_bytes(std::span<const std::uint8_t> bytes, time_point now) {
    now_ = now;
    if (state_ == session_state::offline) return;  // late bytes of a connection being closed
    rx_.insert(rx_.end(), bytes.begin(), bytes.end());
    std::size_t used = 0;
    while (state_ != session_state::offline) {
        auto result = decode(std::span<const std::uint8_t>{rx_}.subspan(used), cfg_.version, cfg_.max_packet_size);
        if (std::holds_alternative<need_more>(result)) break;
        if (const auto* bad = std::get_if<malformed>(&result)) {
            const auto code =
                bad->code == decode_error::packet_too_large ? reason::packet_too_large : reason::malformed_packet;
            return protocol_failure(code, "malformed packet from broker: " + bad->reason);
        }
        auto& d = std::get<decoded>(result);
        used += d.consumed;
        last_received_ = now;
        handle(d.packet);
    }
    // go_offline() already emptied the buffer if a handler closed the connection.
    if (state_ != session_state::offline) rx_.erase(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(used));
}

void session::on_tick(time_point now) {
    now_ = now;
    if (state_ == session_state::awaiting_connack && now >= connack_deadline_)
        return end_connection("no CONNACK within " + seconds_text(cfg_.connack_timeout), action::end_cause::dead_link);
    if (state_ != session_state::online || keep_alive_ == 0s) return;
    if (now >= last_received_ + dead_after())
        return end_connection("no packet from broker for " + seconds_text(dead_after()) + " (keep-alive " +
                              seconds_text(keep_alive_) + ")",
                              action::end_cause::dead_link);
    if (now >= last_sent_ + keep_alive_ || (!ping_outstanding_ && now >= last_received_ + keep_alive_)) {
        send(pingreq{});
        ping_outstanding_ = true;
    }
}

std::optional<time_point> session::next_deadline() const {
    if (state_ == session_state::awaiting_connack) return connack_deadline_;
    if (state_ != session_state::online || keep_alive_ == 0s) return std::nullopt;
    time_point t = std::min(last_sent_ + keep_alive_, last_received_ + dead_after());
    if (!ping_outstanding_) t = std::min(t, last_received_ + keep_alive_);
    return t;
}

// --- commands ---

op_id session::publish(mqtt::publish msg, time_point now, std::uint64_t tag) {
    now_ = now;
    const op_id id = next_op();
    // The session owns packet ids and DUP; a client must not send Subscription Identifiers, and
    // topic aliases were never negotiated.
    msg.packet_id = 0;
    msg.dup = false;
    msg.props.topic_alias.reset();
    msg.props.subscription_identifiers.clear();

    if (!valid_topic_name(msg.topic)) {
        complete_local(id, tag, local_error::invalid_topic);
    } else if (msg.qos == qos::exactly_once) {
        complete_local(id, tag, local_error::qos_not_supported);
    } else if (msg.qos == qos::at_least_once) {
        // Nothing waits and the window has room (the common case): it goes out now, as
        // send_queued_publishes() would send it, without a stop in the queue.
        const auto packet_id = queue_.empty() && window_open() ? allocate_packet_id() : std::nullopt;
        if (packet_id) {
            send_publish(id, tag, std::move(msg), *packet_id);
        } else {
            queue_.push_back({id, tag, std::move(msg)});
            send_queued_publishes();
        }
    } else if (state_ != session_state::online) {
        complete_local(id, tag, local_error::not_connected);
    } else if (send_or_refuse(id, tag, msg)) {
        emit(action::publish_done{id, reason::success, local_error::none, {}, tag});
    }
    return id;
}

op_id session::subscribe(std::vector<subscription> subs, time_point now) {
    now_ = now;
    filter_op op{next_op(), false, std::move(subs), {}, {}, {}};
    op.codes.assign(op.subs.size(), reason::success);
    for (std::size_t i = 0; i < op.subs.size(); ++i) {
        const auto& s = op.subs[i];
        if (!valid_topic_filter(s.filter)) {
            op.codes[i] = reason::topic_filter_invalid;
        } else if (s.max_qos == qos::exactly_once) {  // QoS 2 is never used upstream
            op.codes[i] = reason::qos_not_supported;
        } else {
            live_.insert_or_assign(s.filter, s);
            op.wire.push_back(i);
        }
    }
    const op_id id = start_op(std::move(op));
    if (state_ == session_state::online) send_queued_ops();
    return id;
}

op_id session::unsubscribe(std::vector<std::string> filters, time_point now) {
    now_ = now;
    filter_op op{next_op(), true, {}, {}, {}, {}};
    op.codes.assign(filters.size(), reason::success);
    for (std::size_t i = 0; i < filters.size(); ++i) {
        if (!valid_topic_filter(filters[i])) {
            op.codes[i] = reason::topic_filter_invalid;
        } else {
            live_.erase(filters[i]);
            op.wire.push_back(i);
        }
        op.subs.emplace_back().filter = std::move(filters[i]);
    }
    // Not online with clean start: the next session starts empty, so there is nothing to remove,
    // unless an earlier pending op would subscribe it there (order must hold, so queue behind it).
    if (state_ != session_state::online && cfg_.clean_start && ops_.empty()) op.wire.clear();
    const op_id id = start_op(std::move(op));
    if (state_ == session_state::online) send_queued_ops();
    return id;
}

void session::acknowledge(inbound_ticket ticket, time_point now) {
    now_ = now;
    // A ticket from an earlier connection is dropped: the broker redelivers the message.
    if (state_ != session_state::online || ticket.connection != connection_) return;
    send(puback{ticket.packet_id, reason::success, {}});
}

void session::disconnect(time_point now) {
    now_ = now;
    if (state_ == session_state::online) send(mqtt::disconnect{reason::success, {}});
    if (state_ != session_state::offline) end_connection("shutting down", action::end_cause::local);
}

void session::abandon() {
    isolating_ = false;
    for (auto it : inflight_in_send_order()) complete_local(it->second.id, it->second.tag, local_error::session_closed);
    for (const auto& q : queue_) complete_local(q.id, q.tag, local_error::session_closed);
    inflight_.clear();
    queue_.clear();

    // Filters still waiting for a SUBACK/UNSUBACK fail; answers already received stand.
    for (auto it = ops_.begin(); it != ops_.end(); ++it) {
        auto& op = it->second;
        for (const std::size_t i : unacked(op)) {
            op.codes[i] = reason::unspecified_error;
            if (!op.unsubscribe && op.id.value != 0) drop_refused(it, op.subs[i].filter, reason::unspecified_error);
        }
        emit_done(op);
    }
    ops_.clear();
    ack_waits_.clear();
}

std::vector<session_action> session::drain_actions() { return std::exchange(actions_, {}); }

void session::drain_actions(std::vector<session_action>& out) {
    out.clear();
    out.swap(actions_);
}

void session::recycle(std::vector<std::uint8_t>&& bytes) noexcept {
    spare_send_ = std::move(bytes);
    spare_send_.clear();
}

// --- inspection ---

session_state session::state() const noexcept { return state_; }
std::size_t session::inflight_count() const noexcept { return inflight_.size(); }
std::size_t session::queued_count() const noexcept { return queue_.size(); }
const std::map<std::string, subscription>& session::live_subscriptions() const noexcept { return live_; }
const session_config& session::config() const noexcept { return cfg_; }
const properties& session::broker_properties() const noexcept { return broker_props_; }
std::uint64_t session::unknown_ack_count() const noexcept { return unknown_acks_; }

}  // namespace thingmux::mqtt
