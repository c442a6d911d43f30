// The hub's MQTT face: local MQTT clients (mqtt_client) as sessions of a Thing's pipeline.
//
// - Which Thing: a client whose client id is the name of a configured Thing uses that Thing;
//   any other uses mqtt.thing (default: the first).
// - Who: the kernel's credentials of the peer, against the `apps:` rules, exactly as for IPC
//   clients; a peer no rule applies to is refused (CONNACK 0x87 / 3.1.1 return code 5).
// - Client ids are local: they never reach the broker. An id equal to a Thing's name (what the
//   IoT policy forced apps to use) never takes over another connection; any other id takes over
//   the connection of the same uid with the same id (MQTT's rule, never across users).
// - A will is published through the pipeline, with the rights of the client that set it, when
//   its connection ends other than by a normal DISCONNECT.
#include "daemon/hub/hub.hpp"
#include "daemon/hub/one_shot.hpp"
#include "daemon/hub/thing_entry.hpp"
#include "daemon/logging.hpp"
#include "daemon/thing/outcome.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

namespace thingmux::hub {

namespace asio = boost::asio;

mqtt::server_settings hub::mqtt_server_settings() const {
    const auto& m = config_->mqtt;
    mqtt::server_settings s;
    s.max_packet_size = m.max_packet;
    s.receive_maximum = m.receive_maximum;
    s.topic_alias_maximum = m.topic_aliases;
    s.max_inflight_deliveries = m.max_inflight;
    s.max_queued_bytes = m.client_queue;
    s.max_keep_alive = static_cast<std::uint16_t>(m.max_keep_alive.count());
    s.connect_timeout = m.connect_timeout;
    return s;
}

hub::thing_entry* hub::thing_named(const std::string& name) {
    auto it = things_.find(name);
    return it == things_.end() ? nullptr : it->second.get();
}

void hub::add_mqtt_client(mqtt_client::socket s) {
    const client_id id{next_client_++};
    auto peer = read_peer_credentials(s.native_handle());
    mqtt_events& events = *this;
    auto c = std::make_shared<mqtt_client>(std::move(s), id, std::move(peer), mqtt_server_settings(), events);
    mqtt_clients_.emplace(id, c);
    c->start();
    if (shutting_down_) return c->refuse(mqtt::reason::server_unavailable, "thingmuxd is shutting down");
    if (mqtt_clients_.size() > config_->mqtt.max_clients) {
        ++counters_.clients_refused;
        spdlog::warn("MQTT client {} ({}) refused: {} MQTT clients connected, limit {} (mqtt.max_clients)", id.value,
                     logging::escaped(c->peer().describe()), mqtt_clients_.size() - 1, config_->mqtt.max_clients);
        c->refuse(mqtt::reason::server_busy,
                  "too many MQTT clients (limit " + std::to_string(config_->mqtt.max_clients) + ", mqtt.max_clients)");
    }
}

void hub::on_connect(mqtt_client& c, const mqtt::connect& packet) {
    if (shutting_down_) return c.refuse(mqtt::reason::server_unavailable, "thingmuxd is shutting down");
    const bool thing_id = things_.contains(packet.client_id);
    const std::string name = thing_id                      ? packet.client_id
                             : !config_->mqtt.thing.empty() ? config_->mqtt.thing
                                                            : default_thing_;
    if (thing_named(name) == nullptr) {
        return c.refuse(mqtt::reason::server_unavailable, "no Thing named '" + name + "' here (configured: " + join(order_) + ")");
    }
    auto rights = config::grants_for(*config_, c.peer().identity(), name);
    if (rights.rules.empty()) {
        ++counters_.clients_refused;
        spdlog::warn("MQTT client {} ('{}', {}) refused: no rule under apps: applies to it on Thing {}", c.id().value,
                     logging::escaped(packet.client_id), logging::escaped(c.peer().describe()), name);
        return c.refuse(mqtt::reason::not_authorized,
                        "no rule under apps: in the thingmuxd configuration applies to " + c.peer().describe() +
                            " on Thing " + name + "; add one that matches its unit, user, group or uid");
    }
    std::optional<std::string> assigned;
    if (packet.client_id.empty() && packet.version == mqtt::protocol_version::v5)
        assigned = "thingmux-" + std::to_string(c.id().value);
    // MQTT's takeover among one user's clients; the Thing's name is shared by all who use it.
    if (!thing_id && !packet.client_id.empty()) {
        const auto key = std::make_pair(c.peer().uid, packet.client_id);
        if (auto it = mqtt_sessions_.find(key); it != mqtt_sessions_.end() && it->second != c.id()) {
            if (auto old = mqtt_clients_.find(it->second); old != mqtt_clients_.end()) {
                spdlog::info("MQTT client {} takes over client id '{}' of uid {} from MQTT client {}", c.id().value,
                             logging::escaped(packet.client_id), c.peer().uid, it->second.value);
                old->second->disconnect(mqtt::reason::session_taken_over,
                                        "MQTT client " + std::to_string(c.id().value) + " connected with the same client id");
            }
        }
        mqtt_sessions_[key] = c.id();
    }
    ++counters_.clients_accepted;
    spdlog::info("MQTT client {} connected: client id '{}', MQTT {}, {}, Thing {}, rules {}", c.id().value,
                 logging::escaped(assigned.value_or(packet.client_id)),
                 packet.version == mqtt::protocol_version::v5 ? "5" : "3.1.1", c.peer().describe(), name,
                 logging::escaped(join(rights.rules)));
    c.accept(name, std::move(rights), std::move(assigned));
    if (auto* t = thing_named(name)) t->pipe->attach(c.shared_from_this());
}

void hub::on_publish(mqtt_client& c, mqtt::publish&& msg) {
    // QoS 2 is exactly once between the client and thingmuxd (the server session), at least once
    // upstream: AWS IoT Core has no QoS 2.
    const std::uint32_t request = msg.qos == mqtt::qos::at_most_once ? mqtt_client::no_request : msg.packet_id;
    auto m = thing::to_ipc(std::move(msg));
    if (m.qos > 1) m.qos = 1;
    if (auto* t = thing_named(c.thing())) return t->pipe->publish(c.shared_from_this(), request, std::move(m));
    ++counters_.publishes;
    c.publish_done(request, thing::fail(ipc::errc::daemon_shutting_down, "the client's Thing is gone"));
}

void hub::on_subscribe(mqtt_client& c, mqtt::subscribe&& packet) {
    std::vector<ipc::subscription> filters;
    filters.reserve(packet.subscriptions.size());
    for (auto& s : packet.subscriptions)
        filters.push_back({std::move(s.filter), static_cast<std::uint8_t>(std::min<int>(static_cast<int>(s.max_qos), 1))});
    if (auto* t = thing_named(c.thing())) return t->pipe->subscribe(c.shared_from_this(), packet.packet_id, std::move(filters));
    c.subscribe_done(packet.packet_id, std::vector<ipc::result>(filters.size(), thing::fail(ipc::errc::daemon_shutting_down,
                                                                                            "the client's Thing is gone")));
}

void hub::on_unsubscribe(mqtt_client& c, mqtt::unsubscribe&& packet) {
    if (auto* t = thing_named(c.thing())) return t->pipe->unsubscribe(c.shared_from_this(), packet.packet_id, packet.filters);
    c.unsubscribe_done(packet.packet_id,
                       std::vector<ipc::result>(packet.filters.size(), thing::ok(mqtt::reason::no_subscription_existed)));
}

void hub::publish_will(mqtt_client& c, const std::string& name) {
    auto* t = thing_named(name);
    if (t == nullptr || !c.will) return;
    auto w = std::move(*c.will);
    c.will.reset();
    ipc::publish m{.request_id = 0,
                   .topic = std::move(w.topic),
                   .payload = std::move(w.payload),
                   .qos = static_cast<std::uint8_t>(std::min<int>(static_cast<int>(w.qos), 1)),
                   .retain = w.retain,
                   .props = thing::to_ipc(w.props)};
    const std::string who = "will of " + c.describe();
    const auto topic = m.topic;
    auto call = std::make_shared<one_shot_publish>(who, c.peer().describe(), c.rights(), will_denials_,
                                                   [who, topic](const ipc::result& r) {
                                                       if (ipc::accepted(r.code)) return;
                                                       spdlog::warn("{} on '{}' was not published: {}", logging::escaped(who),
                                                                    logging::escaped(topic), logging::escaped(r.message));
                                                   });
    t->pipe->publish(call, 0, std::move(m));
}

void hub::on_ended(mqtt_client& c, const mqtt::server_action::ended& how) {
    thing::pipeline::detached gone;
    const bool was_connected = !c.thing().empty();
    if (was_connected) {
        if (auto* t = thing_named(c.thing())) gone = t->pipe->detach(c.id());
        if (how.publish_will && !shutting_down_) publish_will(c, c.thing());
    }
    const auto level = how.cause == mqtt::server_end::client_disconnect ? spdlog::level::info : spdlog::level::warn;
    spdlog::log(was_connected ? level : spdlog::level::info, "MQTT client {} ('{}', {}) {}: {}{}{}{}; {} upstream filter(s) released{}",
                c.id().value, logging::escaped(c.client_id()), logging::escaped(c.peer().describe()),
                was_connected ? "disconnected" : "closed before it was connected", mqtt::to_string(how.cause),
                how.reason.empty() ? "" : " (", logging::escaped(how.reason), how.reason.empty() ? "" : ")", gone.released,
                gone.dropped ? ", " + std::to_string(gone.dropped) + " unsent publish(es) dropped" : std::string{});
    if (auto it = mqtt_sessions_.find({c.peer().uid, c.client_id()}); it != mqtt_sessions_.end() && it->second == c.id())
        mqtt_sessions_.erase(it);
    // The client object may be the caller; let it unwind before the last reference goes.
    if (auto it = mqtt_clients_.find(c.id()); it != mqtt_clients_.end()) {
        asio::post(io_, [keep = std::move(it->second)] {});
        mqtt_clients_.erase(it);
    }
    maybe_finish_shutdown();
}

}  // namespace thingmux::hub
