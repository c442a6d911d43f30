#include "daemon/hub/mqtt_session.hpp"

#include "daemon/hub/mqtt_client.hpp"
#include "daemon/logging.hpp"
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/spool_message.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace thingmux::hub {

namespace {
// Request ids toward the pipeline: the connection's generation above its packet id. Generations
// stay below 0x8000, so no request id is ever mqtt_session::no_request.
constexpr std::uint32_t generations = 0x8000;

// The message as a local client gets it: its message properties (those the IPC schema carries
// too), nothing of the broker's connection (its topic alias, the subscription identifiers of
// thingmuxd's own upstream subscriptions).
mqtt::publish for_client(const mqtt::publish& in) {
    mqtt::publish out;
    out.topic = in.topic;
    out.payload = in.payload;
    out.retain = in.retain;
    out.props = thing::to_mqtt(thing::to_ipc(in.props));
    return out;
}

std::size_t bytes_of(const mqtt::publish& m) { return m.topic.size() + m.payload.size(); }
}  // namespace

mqtt_session::mqtt_session(thing::session_id flow, std::string thing, std::string client_id,
                           std::shared_ptr<const peer_credentials> peer, config::grants rights,
                           std::size_t max_queued_bytes)
    : flow_(flow), thing_(std::move(thing)), client_id_(std::move(client_id)), peer_(std::move(peer)),
      rights_(std::move(rights)), max_queued_bytes_(max_queued_bytes) {}

std::string mqtt_session::describe() const {
    if (connection_) return connection_->describe();
    return "MQTT session '" + client_id_ + "' (" + peer_->describe() + ", no connection)";
}

std::uint32_t mqtt_session::request_id(std::uint16_t packet_id) const noexcept {
    return (std::uint32_t{generation_} << 16) | packet_id;
}

mqtt_client* mqtt_session::connection_for(std::uint32_t request_id) const noexcept {
    if (!connection_ || request_id == no_request || (request_id >> 16) != generation_) return nullptr;
    return connection_.get();
}

void mqtt_session::bind(const std::shared_ptr<mqtt_client>& connection) {
    if (connection_) unbind(*connection_);
    connection_ = connection;
    generation_ = static_cast<std::uint16_t>((generation_ + 1) % generations);
    // What waited goes first, in order; the connection's own window and queue hold it back.
    auto waiting = std::exchange(waiting_, {});
    waiting_bytes_ = 0;
    for (auto& h : waiting) {
        const auto tag = ++next_tag_;
        const auto r = connection_->deliver(h.msg, h.qos, tag);
        if (r == mqtt::delivery::sent || r == mqtt::delivery::queued) {
            if (h.qos > 0) unacknowledged_.emplace(tag, std::move(h));
        } else if (r == mqtt::delivery::too_large) {
            forget(h);
        } else {
            hold(std::move(h));  // the connection went away meanwhile
        }
    }
}

void mqtt_session::unbind(const mqtt_client& connection) {
    if (connection_.get() != &connection) return;
    connection_.reset();
    // Sent and never acknowledged: they go again, ahead of what arrives from now on (and of
    // anything that waited already, which is younger).
    auto younger = std::exchange(waiting_, {});
    waiting_bytes_ = 0;
    auto sent = std::exchange(unacknowledged_, {});
    for (auto& [tag, h] : sent) hold(std::move(h));
    for (auto& h : younger) hold(std::move(h));
}

void mqtt_session::acknowledged(std::uint64_t tag) {
    const auto it = unacknowledged_.find(tag);
    if (it == unacknowledged_.end()) return;
    forget(it->second);
    unacknowledged_.erase(it);
}

bool mqtt_session::hold(held h) {
    const auto bytes = bytes_of(h.msg);
    if (h.qos == 0 || waiting_bytes_ + bytes > max_queued_bytes_) {
        ++dropped_;
        forget(h);
        if (h.qos > 0) {
            if (auto note = denials_.admit())
                spdlog::warn("{}: a message on '{}' is not kept for the client: {} bytes already wait for it "
                             "(mqtt.session_queue){}",
                             logging::escaped(describe()), logging::escaped(h.msg.topic), waiting_bytes_, *note);
        }
        return false;
    }
    waiting_bytes_ += bytes;
    store(h);
    waiting_.push_back(std::move(h));
    return true;
}

void mqtt_session::store(held& h) {
    if (row_ == 0 || h.row != 0 || h.qos == 0) return;
    auto m = thing::to_spool_message(thing::to_ipc(mqtt::publish{h.msg}));
    m.qos = h.qos;  // the QoS of its delivery (the message's own is the broker's)
    h.row = journal_->add_message(row_, m);
}

void mqtt_session::forget(const held& h) {
    if (h.row != 0 && journal_ != nullptr) journal_->remove_message(h.row);
}

void mqtt_session::store_held() {
    for (auto& [tag, h] : unacknowledged_) store(h);
    for (auto& h : waiting_) store(h);
    subscriptions_changed();
}

void mqtt_session::restore(mqtt::publish msg, std::int64_t row) {
    const auto qos = static_cast<std::uint8_t>(msg.qos);
    hold({std::move(msg), qos, {}, row});
}

// Kept only for sessions that outlive their connection (the others are never stored), so that an
// idle client with a clean session pays nothing for it.
void mqtt_session::subscribing(std::uint32_t request_id, std::vector<spool::format::subscription> asked) {
    if (expiry.count() > 0) subscribing_[request_id] = std::move(asked);
}

void mqtt_session::unsubscribing(std::uint32_t request_id, std::vector<std::string> filters) {
    if (expiry.count() > 0) unsubscribing_[request_id] = std::move(filters);
}

void mqtt_session::subscriptions_changed() {
    if (row_ != 0) journal_->set_subscriptions(row_, subscriptions_);
}

std::vector<thing::shared_leftover> mqtt_session::take_shared_leftovers() {
    std::vector<thing::shared_leftover> out;
    const auto take = [&](held& h) {
        if (h.share.empty()) return false;
        forget(h);  // the member that gets it stores it, if its session is stored
        h.msg.qos = static_cast<mqtt::qos>(h.qos);
        out.push_back({std::move(h.share), std::move(h.msg)});
        return true;
    };
    // Sent to a connection that never acknowledged them (oldest first), then those that waited.
    for (auto it = unacknowledged_.begin(); it != unacknowledged_.end();)
        it = take(it->second) ? unacknowledged_.erase(it) : std::next(it);
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (!take(*it)) {
            ++it;
            continue;
        }
        waiting_bytes_ -= bytes_of(out.back().msg);
        it = waiting_.erase(it);
    }
    return out;
}

void mqtt_session::publish_done(std::uint32_t request_id, ipc::result outcome) {
    if (auto* c = connection_for(request_id)) c->publish_done(static_cast<std::uint16_t>(request_id & 0xFFFF), outcome);
}

void mqtt_session::subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) {
    if (auto it = subscribing_.find(request_id); it != subscribing_.end()) {
        auto asked = std::move(it->second);
        subscribing_.erase(it);
        for (std::size_t i = 0; i < asked.size() && i < outcomes.size(); ++i) {
            if (!ipc::accepted(outcomes[i].code)) continue;
            auto same = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                                     [&](const auto& s) { return s.filter == asked[i].filter; });
            if (same == subscriptions_.end()) {
                subscriptions_.push_back(std::move(asked[i]));
            } else {
                *same = std::move(asked[i]);
            }
        }
        subscriptions_changed();
    }
    if (auto* c = connection_for(request_id)) c->subscribe_done(static_cast<std::uint16_t>(request_id & 0xFFFF), outcomes);
}

void mqtt_session::unsubscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) {
    if (auto it = unsubscribing_.find(request_id); it != unsubscribing_.end()) {
        for (const auto& f : it->second)
            std::erase_if(subscriptions_, [&](const auto& s) { return s.filter == f; });
        unsubscribing_.erase(it);
        subscriptions_changed();
    }
    if (auto* c = connection_for(request_id)) c->unsubscribe_done(static_cast<std::uint16_t>(request_id & 0xFFFF), outcomes);
}

bool mqtt_session::deliver(thing::inbound_message& m, std::uint8_t qos) {
    if (!connection_) return hold({for_client(m.msg), qos, std::string(m.share), 0});
    const auto tag = ++next_tag_;
    auto msg = for_client(m.msg);
    switch (connection_->deliver(msg, qos, tag)) {
    case mqtt::delivery::sent:
    case mqtt::delivery::queued:
        if (qos > 0) store(unacknowledged_.emplace(tag, held{std::move(msg), qos, std::string(m.share), 0}).first->second);
        return true;
    case mqtt::delivery::too_large:
        // MQTT forbids sending it (the client's Maximum Packet Size); the client is told nothing.
        if (auto note = denials_.admit())
            spdlog::warn("{}: a message on '{}' ({} bytes) is larger than the client's Maximum Packet Size: not "
                         "delivered, as MQTT requires{}",
                         logging::escaped(describe()), logging::escaped(m.msg.topic), m.msg.payload.size(), *note);
        return true;
    case mqtt::delivery::queue_full:  // the connection is being cut off; a session that stays keeps it
    case mqtt::delivery::not_online: return false;
    }
    return false;
}

}  // namespace thingmux::hub
