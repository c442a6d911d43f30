// The session's outbound side: packet ids, the publish queue and in-flight window, SUBSCRIBE and
// UNSUBSCRIBE requests split into packets, retransmission (session.hpp).
#include "daemon/mqtt/session.hpp"

#include <algorithm>
#include <iterator>
#include <set>
#include <string_view>

namespace thingmux::mqtt {
namespace {

// A full in-flight window is refilled in batches of 1/8 of it (see send_queued_publishes()): 11 of
// AWS IoT Core's 100, so at least ~7/8 of the window stays in use.
constexpr std::size_t refill_batch_divisor = 8;
// Nodes of acknowledged publishes kept for the next ones: more than a refill batch of AWS IoT
// Core's window, since PUBACKs come a read's worth at a time.
constexpr std::size_t max_spare_nodes = 16;

}  // namespace

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
    if (actions_.empty() || !std::holds_alternative<action::send>(actions_.back()))
        actions_.emplace_back(action::send{std::exchange(spare_send_, {})});
    last_sent_ = now_;
    return std::get<action::send>(actions_.back()).bytes;
}

void session::send(const packet& p) { encode(p, cfg_.version, send_buffer()); }

void session::send(const mqtt::publish& p) { encode(p, cfg_.version, send_buffer()); }

// Sends `msg` unless the broker would refuse it, else completes `id` with the reason: a refused
// PUBLISH costs the shared connection, so it is caught here.
bool session::send_or_refuse(op_id id, std::uint64_t tag, const mqtt::publish& msg) {
    const std::size_t size = encoded_size(msg, cfg_.version);
    const local_error e = refusal(msg, size);
    if (e == local_error::none) {
        send(msg);
        return true;
    }
    complete_local(id, tag, e,
                   e == local_error::packet_too_large
                       ? "the PUBLISH packet is " + std::to_string(size) + " bytes, the broker takes at most " +
                             std::to_string(packet_limit())
                       : std::string{});
    return false;
}

void session::complete_local(op_id id, std::uint64_t tag, local_error e, std::string text) {
    emit(action::publish_done{id, reason::unspecified_error, e, std::move(text), tag});
}

void session::send_publish(op_id id, std::uint64_t tag, mqtt::publish&& msg, std::uint16_t packet_id) {
    msg.packet_id = packet_id;
    if (!send_or_refuse(id, tag, msg)) return;
    inflight_entry entry{next_seq_++, id, tag, std::move(msg), connection_, 0};
    if (spare_nodes_.empty()) {
        inflight_.emplace(packet_id, std::move(entry));
        return;
    }
    auto node = std::move(spare_nodes_.back());
    spare_nodes_.pop_back();
    node.key() = packet_id;
    node.mapped() = std::move(entry);
    inflight_.insert(std::move(node));
}

void session::release_inflight(std::map<std::uint16_t, inflight_entry>::iterator it) {
    auto node = inflight_.extract(it);
    if (inflight_.empty() && queue_.empty()) {  // the flow stopped: nothing is kept for it
        spare_nodes_.clear();
        return;
    }
    if (spare_nodes_.size() >= max_spare_nodes) return;
    // A kept node holds no message: its topic and payload go now, not at its reuse.
    std::string().swap(node.mapped().msg.topic);
    std::string().swap(node.mapped().msg.payload);
    spare_nodes_.push_back(std::move(node));
}

bool session::window_open() const noexcept {
    return state_ == session_state::online && !isolating_ && inflight_.size() < window_;
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
            if (!send_or_refuse(entry.id, entry.tag, entry.msg)) {
                inflight_.erase(it);
            } else {
                entry.sent_on = connection_;
                ++sent;
            }
        } else {  // a smaller Receive Maximum: back to the queue, ahead of newer publishes
            entry.msg.packet_id = 0;
            entry.msg.dup = false;
            requeue.push_back({entry.id, entry.tag, std::move(entry.msg)});
            inflight_.erase(it);
        }
    }
    queue_.insert(queue_.begin(), std::make_move_iterator(requeue.begin()), std::make_move_iterator(requeue.end()));
}

void session::send_queued() {
    send_queued_ops();
    send_queued_publishes();
}

void session::send_queued_ops() {
    if (state_ != session_state::online) return;
    for (auto& [key, op] : ops_)
        if (!send_unsent_chunks(key, op)) return;  // out of packet ids: keep request order, retry later
}

void session::send_queued_publishes() {
    // A full window refills a batch at a time: while PUBACKs are still due, waiting until a
    // batch of slots is free puts the next publishes into one write (one TLS record, one send)
    // instead of one per PUBACK. Otherwise a saturated window settles into one publish per
    // PUBACK, and every stage behind it (the broker's reads, an app's results) runs one message
    // per system call. Nothing waits when nothing is in flight or fewer than a batch are queued.
    if (isolating_) return;  // nothing joins a publish sent alone
    const std::size_t batch = std::min(std::max<std::size_t>(window_ / refill_batch_divisor, 1), queue_.size());
    if (!inflight_.empty() && inflight_.size() + batch > window_) return;
    while (window_open() && !queue_.empty()) {
        const auto id = allocate_packet_id();
        if (!id) return;  // retried when an acknowledgement frees one
        outbound next = std::move(queue_.front());
        queue_.pop_front();
        send_publish(next.id, next.tag, std::move(next.msg), *id);
    }
}

}  // namespace thingmux::mqtt
