#include "daemon/hub/mqtt_session.hpp"

#include "daemon/hub/mqtt_client.hpp"
#include "daemon/logging.hpp"
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/spool_message.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <utility>

namespace thingmux::hub {

namespace {
// Request ids toward the pipeline: the connection's generation above its packet id. Generations
// stay below 0x8000, so no request id is ever mqtt_session::no_request.
constexpr std::uint32_t generations = 0x8000;
}  // namespace

mqtt_session::mqtt_session(thing::session_id flow, std::string thing, std::string client_id,
                           std::shared_ptr<const peer_credentials> peer, config::shared_grants rights,
                           std::size_t max_queued_bytes)
    : flow_(flow), thing_(std::move(thing)), client_id_(std::move(client_id)), peer_(std::move(peer)),
      rights_(std::move(rights)), state_(*this, max_queued_bytes, "mqtt.session_queue") {}

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
    for (auto& h : state_.take_waiting()) {
        const auto tag = ++next_tag_;
        const auto r = connection_->deliver(h.msg, h.qos, tag);
        if (r == mqtt::delivery::sent || r == mqtt::delivery::queued) {
            state_.sent(tag, std::move(h));
        } else if (r == mqtt::delivery::too_large) {
            state_.forget(h);
        } else {
            state_.hold(std::move(h));  // the connection went away meanwhile
        }
    }
}

void mqtt_session::unbind(const mqtt_client& connection) {
    if (connection_.get() != &connection) return;
    connection_.reset();
    state_.connection_ended();
}

void mqtt_session::acknowledged(std::uint64_t tag) { (void)state_.acknowledged(tag); }

std::vector<thing::shared_leftover> mqtt_session::take_shared_leftovers() { return state_.take_shared_leftovers(); }

void mqtt_session::publish_done(std::uint32_t request_id, ipc::result outcome) {
    if (auto* c = connection_for(request_id)) c->publish_done(static_cast<std::uint16_t>(request_id & 0xFFFF), outcome);
}

void mqtt_session::subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) {
    state_.subscribe_done(request_id, outcomes);
    if (auto* c = connection_for(request_id)) c->subscribe_done(static_cast<std::uint16_t>(request_id & 0xFFFF), outcomes);
}

void mqtt_session::unsubscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) {
    state_.unsubscribe_done(request_id);
    if (auto* c = connection_for(request_id)) c->unsubscribe_done(static_cast<std::uint16_t>(request_id & 0xFFFF), outcomes);
}

bool mqtt_session::deliver(thing::inbound_message& m, std::uint8_t qos) {
    if (!connection_) return state_.hold({for_client(m.msg), qos, std::string(m.share), 0});
    const auto tag = ++next_tag_;
    auto msg = for_client(m.msg);
    switch (connection_->deliver(msg, qos, tag)) {
    case mqtt::delivery::sent:
    case mqtt::delivery::queued:
        if (qos > 0) state_.sent(tag, {std::move(msg), qos, std::string(m.share), 0});
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

ipc::publish to_publish(mqtt::will_message w) {
    return {.request_id = 0,
            .topic = std::move(w.topic),
            .payload = std::move(w.payload),
            .qos = static_cast<std::uint8_t>(std::min<int>(static_cast<int>(w.qos), 1)),
            .retain = w.retain,
            .props = thing::to_ipc(w.props)};
}

void mqtt_session::delay_will(mqtt::will_message w, std::chrono::seconds delay) {
    (void)take_will();
    const auto due = std::time(nullptr) + delay.count();
    will_row_ = state_.store_will(thing::to_spool_message(to_publish(w)), due);
    pending_will_ = std::make_unique<mqtt::will_message>(std::move(w));
    will_due_ = std::chrono::steady_clock::now() + delay;
}

void mqtt_session::restore_will(spool::session_message stored) {
    auto p = thing::from_spool_message(std::move(stored.message));
    pending_will_ = std::make_unique<mqtt::will_message>(mqtt::will_message{.topic = std::move(p.topic),
                                                                            .payload = std::move(p.payload),
                                                                            .qos = static_cast<mqtt::qos>(p.qos),
                                                                            .retain = p.retain,
                                                                            .props = thing::to_mqtt(std::move(p.props))});
    // The file is ours, but a value from it must not overflow the clock: a Will Delay Interval is
    // at most a u32 of seconds.
    const auto left = std::clamp<std::int64_t>(stored.will_due.value_or(0) - std::time(nullptr), 0, 0xFFFF'FFFF);
    will_due_ = std::chrono::steady_clock::now() + std::chrono::seconds{left};
    will_row_ = stored.id;
}

std::unique_ptr<mqtt::will_message> mqtt_session::take_will() {
    state_.forget_row(std::exchange(will_row_, 0));
    return std::move(pending_will_);
}

}  // namespace thingmux::hub
