#include "daemon/mqtt/session.hpp"

#include "daemon/mqtt/topic.hpp"
#include "common/printable.hpp"

#include <algorithm>
#include <iterator>
#include <set>
#include <string_view>

namespace thingmux::mqtt {
namespace {

using namespace std::chrono_literals;

// MQTT 5 §3.2.2.3.3: an absent Receive Maximum means 65,535.
constexpr std::uint16_t default_receive_maximum = 65535;

// A full in-flight window is refilled in batches of 1/8 of it (see pump_publishes()): 11 of
// AWS IoT Core's 100, so at least ~7/8 of the window stays in use.
constexpr std::size_t refill_batch_divisor = 8;

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

const char* to_string(local_error e) noexcept {
    switch (e) {
    case local_error::none: return "no error";
    case local_error::not_connected: return "not connected to the broker";
    case local_error::packet_too_large: return "packet larger than the broker's Maximum Packet Size";
    case local_error::qos_not_supported: return "QoS not supported by the broker";
    case local_error::invalid_topic: return "invalid topic";
    case local_error::session_closed: return "session closed";
    case local_error::retain_not_supported: return "retain not supported by the broker";
    case local_error::refused_by_broker: return "the broker closed the connection each time this message was sent";
    }
    return "unknown error";
}

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

void session::on_transport_closed(time_point now, std::string reason) {
    now_ = now;
    if (!end_reported_) {
        end_reported_ = true;
        auto suspect = blame_oldest_publish();
        emit(action::disconnected{with_suspect(reason, suspect), std::nullopt, action::end_cause::closed, std::move(suspect)});
    }
    go_offline();
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

op_id session::publish(mqtt::publish msg, time_point now) {
    now_ = now;
    const op_id id = next_op();
    // The session owns packet ids and DUP; a client must not send Subscription Identifiers, and
    // topic aliases were never negotiated.
    msg.packet_id = 0;
    msg.dup = false;
    msg.props.topic_alias.reset();
    msg.props.subscription_identifiers.clear();

    if (!valid_topic_name(msg.topic)) {
        complete_local(id, local_error::invalid_topic);
    } else if (msg.qos == qos::exactly_once) {
        complete_local(id, local_error::qos_not_supported);
    } else if (msg.qos == qos::at_least_once) {
        queue_.push_back({id, std::move(msg)});
        pump_publishes();
    } else if (state_ != session_state::online) {
        complete_local(id, local_error::not_connected);
    } else if (send_or_refuse(id, msg)) {
        emit(action::publish_done{id, reason::success, local_error::none, {}});
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
    if (state_ == session_state::online) pump_ops();
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
    if (state_ == session_state::online) pump_ops();
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
    for (auto it : inflight_in_send_order()) complete_local(it->second.id, local_error::session_closed);
    for (const auto& q : queue_) complete_local(q.id, local_error::session_closed);
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

// --- inspection ---

session_state session::state() const noexcept { return state_; }
std::size_t session::inflight_count() const noexcept { return inflight_.size(); }
std::size_t session::queued_count() const noexcept { return queue_.size(); }
const std::map<std::string, subscription>& session::live_subscriptions() const noexcept { return live_; }
const session_config& session::config() const noexcept { return cfg_; }
const properties& session::broker_properties() const noexcept { return broker_props_; }
std::uint64_t session::unknown_ack_count() const noexcept { return unknown_acks_; }

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
    pump_ops();
    retransmit();
    pump_publishes();
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
    emit(action::publish_done{it->second.id, ack.reason_code, local_error::none, ack.props.reason_string.value_or("")});
    inflight_.erase(it);
    if (isolating_) {  // the publish sent alone got through: the others follow
        isolating_ = false;
        retransmit();
    }
    pump();
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
    pump();
}

void session::on_broker_disconnect(const mqtt::disconnect& d) {
    std::string text = "broker sent DISCONNECT: " + describe(d.reason_code);
    // Broker-supplied text ends up in log lines, IPC state frames and D-Bus: short and escaped.
    if (d.props.reason_string) text += ": " + text::printable(*d.props.reason_string, 200);
    end_connection(std::move(text), action::end_cause::broker_disconnect, d.reason_code);
}

// --- helpers ---

op_id session::next_op() noexcept { return op_id{next_op_++}; }

std::optional<std::uint16_t> session::allocate_packet_id() noexcept {
    for (std::uint32_t tries = 0; tries < 65535; ++tries) {
        last_packet_id_ = last_packet_id_ == 65535 ? 1 : static_cast<std::uint16_t>(last_packet_id_ + 1);
        if (!inflight_.contains(last_packet_id_) && !ack_waits_.contains(last_packet_id_)) return last_packet_id_;
    }
    return std::nullopt;  // all 65,535 in use: callers retry when an acknowledgement frees one
}

// Why the broker of the current connection would refuse `msg` of `size` bytes on the wire.
local_error session::refusal(const mqtt::publish& msg, std::size_t size) const {
    if (size > packet_limit()) return local_error::packet_too_large;
    if (msg.qos == qos::at_least_once && broker_props_.maximum_qos == 0) return local_error::qos_not_supported;
    if (msg.retain && broker_props_.retain_available == 0) return local_error::retain_not_supported;
    return local_error::none;
}

std::size_t session::packet_limit() const noexcept {
    std::size_t limit = max_mqtt_packet_size;
    if (broker_props_.maximum_packet_size) limit = std::min<std::size_t>(limit, *broker_props_.maximum_packet_size);
    if (cfg_.broker_max_packet) limit = std::min(limit, *cfg_.broker_max_packet);
    return limit;
}

std::pair<std::size_t, std::size_t> session::chunk_range(const filter_op& op, std::size_t k) const noexcept {
    const std::size_t first = k * cfg_.max_filters_per_packet;
    return {first, std::min(op.wire.size(), first + cfg_.max_filters_per_packet)};
}

std::chrono::milliseconds session::dead_after() const noexcept {
    return std::chrono::milliseconds{keep_alive_} * 3 / 2;
}

void session::emit(session_action a) { actions_.push_back(std::move(a)); }

std::vector<std::uint8_t>& session::send_buffer() {
    // Consecutive packets share one send action: one write for a burst after CONNACK.
    if (actions_.empty() || !std::holds_alternative<action::send>(actions_.back())) actions_.emplace_back(action::send{});
    last_sent_ = now_;
    return std::get<action::send>(actions_.back()).bytes;
}

void session::send(const packet& p) { encode(p, cfg_.version, send_buffer()); }

void session::send(const mqtt::publish& p) { encode(p, cfg_.version, send_buffer()); }

// Sends `msg` unless the broker would refuse it, else completes `id` with the reason: a refused
// PUBLISH costs the shared connection, so it is caught here.
bool session::send_or_refuse(op_id id, const mqtt::publish& msg) {
    const std::size_t size = encoded_size(msg, cfg_.version);
    const local_error e = refusal(msg, size);
    if (e == local_error::none) {
        send(msg);
        return true;
    }
    complete_local(id, e,
                   e == local_error::packet_too_large
                       ? "the PUBLISH packet is " + std::to_string(size) + " bytes, the broker takes at most " +
                             std::to_string(packet_limit())
                       : std::string{});
    return false;
}

void session::complete_local(op_id id, local_error e, std::string text) {
    emit(action::publish_done{id, reason::unspecified_error, e, std::move(text)});
}

op_id session::start_op(filter_op op) {
    const op_id id = op.id;
    const std::size_t n = cfg_.max_filters_per_packet;
    op.chunks.resize((op.wire.size() + n - 1) / n);
    if (op.chunks.empty())
        emit_done(op);  // nothing goes to the broker: the outcome is known now
    else
        ops_.emplace(next_op_key_++, std::move(op));
    return id;
}

bool session::send_unsent_chunks(std::uint64_t key, filter_op& op) {
    for (std::size_t k = 0; k < op.chunks.size(); ++k) {
        auto& c = op.chunks[k];
        if (c.acked || c.packet_id != 0) continue;
        const auto id = allocate_packet_id();
        if (!id) return false;
        c.packet_id = *id;
        ack_waits_.insert_or_assign(*id, ack_wait{key, k});
        const auto [first, last] = chunk_range(op, k);
        if (op.unsubscribe) {
            mqtt::unsubscribe u{*id, {}, {}};
            for (std::size_t i = first; i < last; ++i) u.filters.push_back(op.subs[op.wire[i]].filter);
            send(u);
        } else {
            mqtt::subscribe s{*id, {}, {}};
            for (std::size_t i = first; i < last; ++i) s.subscriptions.push_back(op.subs[op.wire[i]]);
            send(s);
        }
    }
    return true;
}

void session::emit_done(filter_op& op) {
    if (op.id.value == 0) return;  // internal re-subscribe: nobody waits for it
    if (op.unsubscribe)
        emit(action::unsubscribe_done{op.id, std::move(op.codes)});
    else
        emit(action::subscribe_done{op.id, std::move(op.codes)});
}

std::vector<std::size_t> session::unacked(const filter_op& op) const {
    std::vector<std::size_t> out;
    for (std::size_t k = 0; k < op.chunks.size(); ++k) {
        if (op.chunks[k].acked) continue;
        const auto [first, last] = chunk_range(op, k);
        for (std::size_t i = first; i < last; ++i) out.push_back(op.wire[i]);
    }
    return out;
}

std::vector<std::map<std::uint16_t, session::inflight_entry>::iterator> session::inflight_in_send_order() {
    std::vector<std::map<std::uint16_t, inflight_entry>::iterator> order;
    for (auto it = inflight_.begin(); it != inflight_.end(); ++it) order.push_back(it);
    std::sort(order.begin(), order.end(), [](auto a, auto b) { return a->second.seq < b->second.seq; });
    return order;
}

// The broker refused `filter`: it leaves the live set, unless a later pending subscribe asks for
// it again (that op decides).
void session::drop_refused(std::map<std::uint64_t, filter_op>::iterator it, const std::string& filter,
                           std::uint8_t code) {
    for (auto later = std::next(it); later != ops_.end(); ++later) {
        const auto& subs = later->second.subs;
        if (!later->second.unsubscribe &&
            std::any_of(subs.begin(), subs.end(), [&](const subscription& s) { return s.filter == filter; }))
            return;
    }
    if (live_.erase(filter) != 0 && it->second.id.value == 0) emit(action::subscription_lost{filter, code});
}

// After a CONNACK without session: every live filter must be subscribed again, except those a
// pending subscribe op still has to send (they would go twice).
void session::resubscribe_live() {
    std::erase_if(ops_, [](const auto& entry) { return entry.second.id.value == 0; });  // superseded
    std::set<std::string_view> covered;
    for (const auto& [key, op] : ops_)
        if (!op.unsubscribe)
            for (const std::size_t i : unacked(op)) covered.insert(op.subs[i].filter);
    filter_op op{op_id{0}, false, {}, {}, {}, {}};
    for (const auto& [filter, sub] : live_) {
        if (covered.contains(filter)) continue;
        op.wire.push_back(op.subs.size());
        op.subs.push_back(sub);
    }
    op.codes.assign(op.subs.size(), reason::success);
    static_cast<void>(start_op(std::move(op)));
}

// MQTT 3.1.1 §4.4 / MQTT 5 §4.4: unacknowledged PUBLISHes are sent again, in order, with DUP and
// their packet ids. Whatever no longer fits the new window (or the new broker limits) is handled
// here too, so the window invariant holds from the first packet.
//
// While isolating, only the oldest goes; the others stay in flight, unsent on this connection,
// until its PUBACK calls this again.
void session::retransmit() {
    std::deque<outbound> requeue;
    std::size_t sent = 0;
    for (auto it : inflight_in_send_order()) {
        auto& entry = it->second;
        if (entry.sent_on == connection_) {  // already sent on this connection (alone, before its PUBACK)
            ++sent;
            continue;
        }
        if (isolating_ && sent > 0) continue;
        if (sent < window_) {
            entry.msg.dup = true;
            if (!send_or_refuse(entry.id, entry.msg)) {
                inflight_.erase(it);
            } else {
                entry.sent_on = connection_;
                ++sent;
            }
        } else {  // a smaller Receive Maximum: back to the queue, ahead of newer publishes
            entry.msg.packet_id = 0;
            entry.msg.dup = false;
            requeue.push_back({entry.id, std::move(entry.msg)});
            inflight_.erase(it);
        }
    }
    queue_.insert(queue_.begin(), std::make_move_iterator(requeue.begin()), std::make_move_iterator(requeue.end()));
}

void session::pump() {
    pump_ops();
    pump_publishes();
}

void session::pump_ops() {
    if (state_ != session_state::online) return;
    for (auto& [key, op] : ops_)
        if (!send_unsent_chunks(key, op)) return;  // out of packet ids: keep request order, retry later
}

void session::pump_publishes() {
    // A full window refills a batch at a time: while PUBACKs are still due, waiting until a
    // batch of slots is free puts the next publishes into one write (one TLS record, one send)
    // instead of one per PUBACK. Otherwise a saturated window settles into one publish per
    // PUBACK, and every stage behind it (the broker's reads, an app's results) runs one message
    // per system call. Nothing waits when nothing is in flight or fewer than a batch are queued.
    if (isolating_) return;  // nothing joins a publish sent alone
    const std::size_t batch = std::min(std::max<std::size_t>(window_ / refill_batch_divisor, 1), queue_.size());
    if (!inflight_.empty() && inflight_.size() + batch > window_) return;
    while (state_ == session_state::online && inflight_.size() < window_ && !queue_.empty()) {
        const auto id = allocate_packet_id();
        if (!id) return;  // retried when an acknowledgement frees one
        outbound next = std::move(queue_.front());
        queue_.pop_front();
        next.msg.packet_id = *id;
        if (send_or_refuse(next.id, next.msg))
            inflight_.emplace(*id, inflight_entry{next_seq_++, next.id, std::move(next.msg), connection_, 0});
    }
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
        complete_local(oldest.id, local_error::refused_by_broker,
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
