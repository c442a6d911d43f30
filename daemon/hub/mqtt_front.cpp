// The hub's MQTT face: local MQTT clients (mqtt_client) as sessions of a Thing's pipeline.
//
// - Which Thing: a client whose client id is the name of a configured Thing uses that Thing;
//   any other uses mqtt.thing (default: the first).
// - Who: the kernel's credentials of the peer, against the `apps:` rules, exactly as for IPC
//   clients; a peer no rule applies to is refused (CONNACK 0x87 / 3.1.1 return code 5). On a
//   Unix socket they come from SO_PEERCRED, on loopback TCP from the owner of the peer's socket
//   (peer_tcp.hpp). A CONNECT's username and password, when given and mqtt.passwords is set,
//   are checked on either (0x86 / return code 4 when wrong) and rules may then match the
//   username (mqtt_user). A TCP peer the kernel cannot place must give one: no anonymous access.
// - Client ids are local: they never reach the broker. An id equal to a Thing's name (what the
//   IoT policy forced apps to use) never takes over another connection and has no session beyond
//   its connection; any other id takes over the connection of the same uid and MQTT user with
//   the same id (MQTT's rule, never across users), and may keep its session (mqtt_session.hpp)
//   after the connection ends: Clean Start 0 resumes it, Clean Start 1 ends it.
// - A will is published through the pipeline, with the rights of the client that set it, when
//   its connection ends other than by a normal DISCONNECT.
#include "daemon/hub/hub.hpp"
#include "daemon/hub/mqtt_passwords.hpp"
#include "daemon/hub/one_shot.hpp"
#include "daemon/hub/peer_tcp.hpp"
#include "daemon/hub/session_storage.hpp"
#include "daemon/hub/thing_entry.hpp"
#include "daemon/logging.hpp"
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/spool_message.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include <sys/socket.h>

namespace thingmux::hub {

namespace asio = boost::asio;

mqtt::server_settings hub::mqtt_server_settings() const {
    const auto& m = config_->mqtt;
    mqtt::server_settings s;
    s.max_packet_size = m.max_packet;
    s.receive_maximum = m.receive_maximum;
    s.topic_alias_maximum = m.topic_aliases;
    s.max_outbound_topic_aliases = m.topic_aliases;
    s.max_inflight_deliveries = m.max_inflight;
    s.max_queued_bytes = m.client_queue;
    s.max_keep_alive = static_cast<std::uint16_t>(m.max_keep_alive.count());
    s.connect_timeout = m.connect_timeout;
    return s;
}

std::size_t hub::connection_count() const noexcept {
    return clients_.size() + static_cast<std::size_t>(std::count_if(mqtt_clients_.begin(), mqtt_clients_.end(),
                                                                    [](const auto& c) { return c.second->connected(); }));
}

hub::thing_entry* hub::thing_named(const std::string& name) {
    auto it = things_.find(name);
    return it == things_.end() ? nullptr : it->second.get();
}

void hub::add_mqtt_client(mqtt_client::socket s) {
    const client_id id{next_client_++};
    boost::system::error_code ec;
    const bool unix_socket = s.local_endpoint(ec).protocol().family() == AF_UNIX;
    auto peer =
        unix_socket || ec ? read_peer_credentials(s.native_handle()) : read_tcp_peer_credentials(s.native_handle());
    mqtt_events& events = *this;
    auto c = std::make_shared<mqtt_client>(std::move(s), id, std::move(peer), mqtt_server_settings(), events);
    mqtt_clients_.emplace(id, c);
    c->start();
    // Refused once its CONNECT arrives, so that the client reads why in a CONNACK.
    if (shutting_down_) {
        c->refusal = {mqtt::reason::server_unavailable, "thingmuxd is shutting down"};
    } else if (mqtt_clients_.size() > config_->mqtt.max_clients) {
        ++counters_.clients_refused;
        if (auto note = mqtt_refusal_log_.admit())
            spdlog::warn("MQTT client {} ({}) refused: {} MQTT clients connected, limit {} (mqtt.max_clients){}", id.value,
                         logging::escaped(c->peer().describe()), mqtt_clients_.size() - 1, config_->mqtt.max_clients, *note);
        c->refusal = {mqtt::reason::server_busy,
                      "too many MQTT clients (limit " + std::to_string(config_->mqtt.max_clients) + ", mqtt.max_clients)"};
    }
}

bool hub::authenticate(mqtt_client& c, const mqtt::connect& packet) {
    if (packet.username && mqtt_passwords_) {
        if (packet.password && check_password(*mqtt_passwords_, *packet.username, *packet.password)) {
            c.set_mqtt_user(*packet.username);
            return true;
        }
        ++counters_.clients_refused;
        if (auto note = auth_refusal_log_.admit())
            spdlog::warn("MQTT client {} ('{}', {}) refused: {} for MQTT user '{}' (mqtt.passwords){}", c.id().value,
                         logging::escaped(packet.client_id), logging::escaped(c.peer().describe()),
                         packet.password ? "wrong password" : "no password", logging::escaped(*packet.username), *note);
        c.refuse(mqtt::reason::bad_user_name_or_password, "bad user name or password");
        return false;
    }
    if (c.peer().source != identity_source::none) return true;
    ++counters_.clients_refused;
    if (auto note = auth_refusal_log_.admit())
        spdlog::warn("MQTT client {} ('{}', {}) refused: no kernel identity and no {}{}", c.id().value,
                     logging::escaped(packet.client_id), logging::escaped(c.peer().describe()),
                     mqtt_passwords_ ? "username and password" : "password file (mqtt.passwords) to check one against",
                     *note);
    c.refuse(mqtt::reason::not_authorized,
             "thingmuxd cannot tell who owns this connection (it comes from another network namespace): connect with "
             "a username and password from mqtt.passwords");
    return false;
}

void hub::on_connect(mqtt_client& c, const mqtt::connect& packet) {
    if (c.refusal) return c.refuse(c.refusal->first, c.refusal->second);
    if (shutting_down_) return c.refuse(mqtt::reason::server_unavailable, "thingmuxd is shutting down");
    if (!authenticate(c, packet)) return;
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
                            " on Thing " + name + "; add one that matches its unit, user, group, uid or mqtt_user");
    }
    const auto shared_rights = grants_.share(std::move(rights));
    std::optional<std::string> assigned;
    if (packet.client_id.empty() && packet.version == mqtt::protocol_version::v5)
        assigned = "thingmux-" + std::to_string(c.id().value);
    const bool own_id = !thing_id && !packet.client_id.empty();
    auto* t = thing_named(name);
    std::shared_ptr<mqtt_session> session;
    std::shared_ptr<mqtt_client> replaced;  // the connection of the same uid and client id, taken over
    if (own_id) {
        const auto key = mqtt_session_key{c.peer().uid, c.peer().mqtt_user, packet.client_id};
        if (auto it = mqtt_sessions_.find(key); it != mqtt_sessions_.end()) {
            auto old = it->second;
            replaced = old->connection();
            if (packet.clean_start || old->thing() != name) {
                mqtt_sessions_.erase(it);
                end_mqtt_session(old, "the client connected again with Clean Start 1");
            } else {
                session = old;  // resumed, with what waited for the client
                session->set_rights(shared_rights);
                (void)session->take_will();  // back within the Will Delay Interval
            }
        }
    }
    const bool present = session != nullptr;
    // MQTT 5: the Session Expiry Interval asked for (0xFFFFFFFF: never); MQTT 3.1.1: Clean
    // Session 0 keeps it. Either way at most mqtt.session_expiry, and only while fewer than
    // mqtt.max_sessions sessions are kept.
    const auto cap = config_->mqtt.sessions.expiry;
    const auto asked = packet.version == mqtt::protocol_version::v5
                           ? std::chrono::seconds{packet.props.session_expiry_interval.value_or(0)}
                           : (packet.clean_start ? std::chrono::seconds{0} : cap);
    const auto granted = own_id ? grant_expiry(asked, present && session->state().expiry.count() > 0, kept(mqtt_sessions_, c.peer()),
                                               config_->mqtt.sessions,
                                               "MQTT client " + std::to_string(c.id().value) + " ('" + packet.client_id +
                                                   "', " + c.peer().describe() + ")",
                                               "mqtt")
                                : std::chrono::seconds{0};
    if (!session) {
        session = std::make_shared<mqtt_session>(c.id(), name, assigned.value_or(packet.client_id), c.shared_peer(),
                                                 shared_rights, config_->mqtt.sessions.queue);
        if (own_id) mqtt_sessions_[{c.peer().uid, c.peer().mqtt_user, packet.client_id}] = session;
        t->pipe->attach(session);
    }
    if (own_id) keep_session(session->state(), *t->pipe, session->flow(), {name, "mqtt", session->client_id(), session->peer()}, granted);
    ++counters_.clients_accepted;
    spdlog::info("MQTT client {} connected: client id '{}', MQTT {}, {}, Thing {}, rules {}{}", c.id().value,
                 logging::escaped(assigned.value_or(packet.client_id)),
                 packet.version == mqtt::protocol_version::v5 ? "5" : "3.1.1", c.peer().describe(), name,
                 logging::escaped(join(session->rights().rules)),
                 present ? ", session resumed with " + std::to_string(session->state().waiting()) + " message(s) waiting" : "");
    c.accept(session, present, std::move(assigned), granted);
    session->bind(c.shared_from_this());
    if (replaced && replaced.get() != &c) {
        spdlog::info("MQTT client {} takes over client id '{}' of uid {} from MQTT client {}", c.id().value,
                     logging::escaped(packet.client_id), c.peer().uid, replaced->id().value);
        replaced->disconnect(mqtt::reason::session_taken_over,
                             "MQTT client " + std::to_string(c.id().value) + " connected with the same client id");
    }
}

void hub::on_publish(mqtt_client& c, mqtt::publish&& msg) {
    // QoS 2 is exactly once between the client and thingmuxd (the server session), at least once
    // upstream: AWS IoT Core has no QoS 2.
    const auto& session = c.session();
    const std::uint32_t request = msg.qos == mqtt::qos::at_most_once ? mqtt_session::no_request : session->request_id(msg.packet_id);
    auto m = thing::to_ipc(std::move(msg));
    if (m.qos > 1) m.qos = 1;
    if (auto* t = thing_named(session->thing())) return t->pipe->publish(session, request, std::move(m));
    ++counters_.publishes;
    session->publish_done(request, thing::fail(ipc::errc::daemon_shutting_down, "the client's Thing is gone"));
}

void hub::on_subscribe(mqtt_client& c, mqtt::subscribe&& packet) {
    const auto& session = c.session();
    subscribe_mqtt(session, session->request_id(packet.packet_id), std::move(packet.subscriptions));
}

void hub::subscribe_mqtt(const std::shared_ptr<mqtt_session>& session, std::uint32_t request,
                         std::vector<mqtt::subscription> subscriptions) {
    std::vector<ipc::subscription> filters;
    std::vector<thing::subscription_options> options;  // MQTT 5's; MQTT 3.1.1 packets carry the defaults
    std::vector<spool::format::subscription> kept;
    filters.reserve(subscriptions.size());
    options.reserve(subscriptions.size());
    kept.reserve(subscriptions.size());
    for (auto& s : subscriptions) {
        const auto qos = static_cast<std::uint8_t>(std::min<int>(static_cast<int>(s.max_qos), 1));
        kept.push_back({.filter = s.filter,
                        .max_qos = qos,
                        .options = static_cast<std::uint8_t>((s.no_local ? 0x04 : 0) | (s.retain_as_published ? 0x08 : 0) |
                                                             ((s.retain_handling & 0x03) << 4))});
        options.push_back(
            {.no_local = s.no_local, .retain_as_published = s.retain_as_published, .retain_handling = s.retain_handling});
        filters.push_back({std::move(s.filter), qos});
    }
    if (request != mqtt_session::no_request) session->state().subscribing(request, std::move(kept));
    if (auto* t = thing_named(session->thing()))
        return t->pipe->subscribe(session, request, std::move(filters), std::move(options));
    session->subscribe_done(request, std::vector<ipc::result>(filters.size(), thing::fail(ipc::errc::daemon_shutting_down,
                                                                                          "the client's Thing is gone")));
}

void hub::on_unsubscribe(mqtt_client& c, mqtt::unsubscribe&& packet) {
    const auto& session = c.session();
    const auto request = session->request_id(packet.packet_id);
    session->state().unsubscribing(request, packet.filters);
    if (auto* t = thing_named(session->thing())) return t->pipe->unsubscribe(session, request, packet.filters);
    session->unsubscribe_done(request,
                              std::vector<ipc::result>(packet.filters.size(), thing::ok(mqtt::reason::no_subscription_existed)));
}

void hub::publish_will(mqtt::will_message w, const mqtt_session& s) {
    auto* t = thing_named(s.thing());
    if (t == nullptr) return;
    auto m = to_publish(std::move(w));
    const std::string who = "will of " + s.describe();
    const auto topic = m.topic;
    auto call = std::make_shared<one_shot_publish>(who, s.peer().describe(), s.rights(), will_denials_,
                                                   [who, topic](const ipc::result& r) {
                                                       if (ipc::accepted(r.code)) return;
                                                       spdlog::warn("{} on '{}' was not published: {}", logging::escaped(who),
                                                                    logging::escaped(topic), logging::escaped(r.message));
                                                   });
    call->set_owner(s.owner());
    t->pipe->publish(call, 0, std::move(m));
}

void hub::end_mqtt_session(const std::shared_ptr<mqtt_session>& s, const char* why) {
    // A will still delayed goes now: its session ends (MQTT 5, 3.1.3.2.2).
    if (s->will_pending() && !shutting_down_) publish_will(std::move(*s->take_will()), *s);
    journal_.remove_session(s->state().row());
    s->state().unstore();
    thing::pipeline::detached gone;
    if (auto* t = thing_named(s->thing())) gone = t->pipe->detach(s->flow());
    if (s->bound()) return;  // its connection reports it when it ends
    spdlog::info("{} ended: {}; {} upstream filter(s) released, {} waiting message(s) dropped", logging::escaped(s->describe()),
                 why, gone.released, s->state().waiting());
}

void hub::on_ended(mqtt_client& c, const mqtt::server_action::ended& how) {
    const auto session = c.session();
    const bool was_connected = session != nullptr;
    // What ending the session released (said only when it ended: a kept session released nothing).
    std::string released;
    const char* after = "";
    if (was_connected) {
        session->unbind(c);
        // MQTT 5: a DISCONNECT's Session Expiry Interval replaces the CONNECT's (the server
        // session refused one that would turn 0 into more).
        if (how.session_expiry && c.session_expiry().count() > 0 && !session->bound()) {
            c.set_session_expiry(std::min(std::chrono::seconds{*how.session_expiry}, config_->mqtt.sessions.expiry));
            session->state().expiry = c.session_expiry();
        }
        const auto key = mqtt_session_key{c.peer().uid, c.peer().mqtt_user, c.client_id()};
        const auto it = mqtt_sessions_.find(key);
        const bool registered = it != mqtt_sessions_.end() && it->second == session;
        const bool kept = !session->bound() && registered && c.session_expiry().count() > 0 && !shutting_down_;
        if (how.publish_will && c.will && !shutting_down_) {
            // MQTT 5 Will Delay Interval: held while the session is kept, dropped if the client
            // comes back in time (its session resumed), published at the latest when it ends.
            const std::chrono::seconds delay{c.will->props.will_delay_interval.value_or(0)};
            if (kept && delay.count() > 0) {
                session->delay_will(std::move(*c.will), delay);
            } else {
                publish_will(std::move(*c.will), *session);
            }
            c.will.reset();
        }
        if (session->bound()) {
            after = "; its session went on with the new connection";
        } else if (kept) {
            session->state().expires = std::chrono::steady_clock::now() + c.session_expiry();
            journal_.set_ended(session->state().row(), std::time(nullptr), static_cast<std::uint32_t>(c.session_expiry().count()));
            after = session->state().stored() ? "; its session is kept for the next connection, also across restarts"
                                      : "; its session is kept for the next connection";
            expire_sessions();
        } else if (shutting_down_ && session->state().stored()) {
            // Kept in the spool's file for the next start of thingmuxd, subscriptions included:
            // not detached, so that its filters stay subscribed upstream.
            // Still stored: what arrives for it until the end is kept too.
            journal_.set_ended(session->state().row(), std::time(nullptr), static_cast<std::uint32_t>(c.session_expiry().count()));
            after = "; its session is kept for the next start of thingmuxd";
        } else {
            if (registered) mqtt_sessions_.erase(it);
            journal_.remove_session(session->state().row());
            session->state().unstore();
            thing::pipeline::detached gone;
            if (auto* t = thing_named(session->thing())) gone = t->pipe->detach(session->flow());
            released = "; " + std::to_string(gone.released) + " upstream filter(s) released";
            if (gone.dropped) released += ", " + std::to_string(gone.dropped) + " unsent publish(es) dropped";
        }
    }
    const auto level = how.cause == mqtt::server_end::client_disconnect ? spdlog::level::info : spdlog::level::warn;
    spdlog::log(was_connected ? level : spdlog::level::info, "MQTT client {} ('{}', {}) {}: {}{}{}{}{}{}", c.id().value,
                logging::escaped(c.client_id()), logging::escaped(c.peer().describe()),
                was_connected ? "disconnected" : "closed before it was connected", mqtt::to_string(how.cause),
                how.reason.empty() ? "" : " (", logging::escaped(how.reason), how.reason.empty() ? "" : ")", released,
                after);
    // The client object may be the caller; let it unwind before the last reference goes.
    if (auto it = mqtt_clients_.find(c.id()); it != mqtt_clients_.end()) {
        asio::post(io_, [keep = std::move(it->second)] {});
        mqtt_clients_.erase(it);
    }
    maybe_finish_shutdown();
}

}  // namespace thingmux::hub
