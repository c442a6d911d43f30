#include "daemon/hub/hub.hpp"

#include "daemon/hub/copy_counter.hpp"
#include "daemon/hub/spool_message.hpp"
#include "daemon/logging.hpp"
#include "daemon/mqtt/topic.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

namespace thingmux::hub {

namespace asio = boost::asio;

// Everything one SUBSCRIBE request of a client waits for; answered when the last filter's
// result is known (at once, or when the upstream SUBACK arrives).
struct hub::pending_request {
    client_id client;
    std::uint32_t request_id = 0;
    std::vector<ipc::result> results;
    std::size_t remaining = 0;
};

// One filter of a SUBSCRIBE request that waits until an upstream filter serving it is
// acknowledged by the broker.
struct hub::waiter {
    std::shared_ptr<pending_request> request;
    std::size_t index = 0;
    std::uint8_t requested_qos = 0;
};

// A publish accepted from a client, waiting in the shaper for its turn under the rate limits.
struct hub::queued_publish {
    mqtt::publish msg;
    std::function<void(ipc::result)> done;  // the outcome, to whoever asked
};

// One configured Thing: its uplink, the local subscriptions to it and its outgoing shaper.
struct hub::thing_state {
    thing_state(asio::io_context& io, thing_setup s)
        : settings(std::move(s.settings)), fingerprint(std::move(s.fingerprint)),
          shaper(shaper_limits(settings.limits), std::chrono::steady_clock::now()), shaper_timer(io),
          filters(settings.limits.subscriptions_per_second, std::chrono::steady_clock::now()), filter_timer(io) {}

    static publish_shaper<queued_publish>::limits shaper_limits(const config::thing_limits& l) {
        return {.messages_per_second = l.publishes_per_second, .bytes_per_second = l.bytes_per_second};
    }

    config::thing settings;
    std::string fingerprint;
    std::shared_ptr<uplink::uplink> link;
    subscription_table table;  // local subscriptions and the filters held upstream for them
    std::map<std::string, std::vector<waiter>, std::less<>> waiting;  // by local filter
    copy_counter copies;  // of inbound messages, when the broker sends one per matching filter
    ipc::state link_state{.link = ipc::link_state::connecting, .reason = {}, .fatal = false, .retry_in_ms = 0};
    publish_shaper<queued_publish> shaper;
    asio::steady_timer shaper_timer;
    bool shaper_timer_armed = false;
    subscription_shaper filters;  // SUBSCRIBE / UNSUBSCRIBE waiting for the subscription rate
    std::map<std::string, std::uint64_t, std::less<>> subscribe_generations;  // of SUBSCRIBEs waiting in `filters`
    asio::steady_timer filter_timer;
    bool filter_timer_armed = false;
    std::size_t at_uplink = 0;  // publishes handed to the uplink, awaiting their result
    std::uint64_t connected_since_usec = 0;
    std::string last_error;
    std::int64_t spool_cursor = 0;  // highest spool id moved into the shaper
    std::size_t spool_loaded = 0;   // spooled messages in the shaper or at the uplink
    bool spool_draining = false;
    std::uint64_t spool_rejected = 0;   // publishes the spool refused (full, I/O error)
    std::uint64_t offline_dropped = 0;  // QoS 0 publishes refused while offline
};

namespace {

ipc::link_state to_ipc(uplink::link_state s) {
    switch (s) {
    case uplink::link_state::connecting: return ipc::link_state::connecting;
    case uplink::link_state::connected: return ipc::link_state::connected;
    case uplink::link_state::backing_off: return ipc::link_state::backing_off;
    case uplink::link_state::failed: return ipc::link_state::failed;
    case uplink::link_state::stopped: return ipc::link_state::stopped;
    }
    return ipc::link_state::failed;
}

ipc::result ok(std::uint8_t reason_code) { return {.code = ipc::errc::ok, .mqtt_reason_code = reason_code, .message = {}}; }

ipc::result fail(ipc::errc code, std::string message, std::uint8_t reason_code = mqtt::reason::unspecified_error) {
    return {.code = code, .mqtt_reason_code = reason_code, .message = std::move(message)};
}

mqtt::properties to_mqtt(ipc::message_properties&& p) {
    mqtt::properties m;
    m.payload_format_indicator = p.payload_format_indicator;
    m.message_expiry_interval = p.message_expiry_interval;
    m.content_type = std::move(p.content_type);
    m.response_topic = std::move(p.response_topic);
    m.correlation_data = std::move(p.correlation_data);
    m.user_properties.reserve(p.user_properties.size());
    for (auto& u : p.user_properties) m.user_properties.push_back({std::move(u.key), std::move(u.value)});
    return m;
}

ipc::message_properties to_ipc(const mqtt::properties& m) {
    ipc::message_properties p;
    p.payload_format_indicator = m.payload_format_indicator;
    p.message_expiry_interval = m.message_expiry_interval;
    p.content_type = m.content_type;
    p.response_topic = m.response_topic;
    p.correlation_data = m.correlation_data;
    for (const auto& u : m.user_properties) p.user_properties.push_back({u.key, u.value});
    return p;
}

ipc::result publish_result(const mqtt::action::publish_done& d) {
    using mqtt::local_error;
    switch (d.error) {
    case local_error::none: break;
    case local_error::not_connected:
        return fail(ipc::errc::not_connected, "the Thing's connection is down and QoS 0 messages are not queued");
    case local_error::packet_too_large:
        return fail(ipc::errc::payload_too_large,
                    "message is larger than the broker takes (" + d.reason_string +
                        "; the limit is the broker's Maximum Packet Size or limits.max_packet)");
    case local_error::refused_by_broker:
        return fail(ipc::errc::broker_refused,
                    "broker refused the message: " + d.reason_string +
                        ". MQTT 3.1.1 brokers, and AWS IoT Core when its IoT policy denies a topic, close the "
                        "connection instead of answering: check that the Thing's IoT policy allows publishing to "
                        "this topic and that the message fits the broker's packet limit (limits.max_packet)");
    case local_error::qos_not_supported:
        return fail(ipc::errc::qos_not_supported, "the broker does not support this QoS");
    case local_error::invalid_topic: return fail(ipc::errc::invalid_topic, "not a valid MQTT topic name");
    case local_error::retain_not_supported:
        return fail(ipc::errc::broker_refused, "the broker does not support retained messages",
                    mqtt::reason::retain_not_supported);
    case local_error::session_closed:
        return fail(ipc::errc::daemon_shutting_down, "the daemon stopped before the broker acknowledged the message");
    }
    if (d.reason_code >= 0x80) {
        std::string why = std::string("broker refused the message: ") + mqtt::reason_string(d.reason_code);
        if (!d.reason_string.empty()) why += " (" + d.reason_string + ")";
        return fail(ipc::errc::broker_refused, std::move(why), d.reason_code);
    }
    return ok(d.reason_code);
}



// Bytes a publish costs against the connection's byte rate: what dominates the PUBLISH packet.
std::size_t cost_of(const mqtt::publish& p) { return p.topic.size() + p.payload.size(); }

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
    return out;
}

// Slashes + 1: AWS IoT Core allows at most 7 slashes (8 levels) in a topic.
std::size_t levels_of(std::string_view topic) {
    return static_cast<std::size_t>(std::count(topic.begin(), topic.end(), '/')) + 1;
}

// Runs `then` after `wait` (nullopt: nothing to wait for), unless a wakeup is pending already.
template <class F>
void wake_after(asio::steady_timer& timer, bool& armed, std::optional<std::chrono::steady_clock::duration> wait, F then) {
    if (!wait || armed) return;
    armed = true;
    timer.expires_after(*wait);
    timer.async_wait([&armed, then = std::move(then)](boost::system::error_code ec) {
        if (ec == asio::error::operation_aborted) return;  // the timer may be gone with its Thing
        armed = false;
        then();
    });
}

// Subscription changes one app may have waiting for the Thing's subscription rate: a second's
// worth of the rate, and at least one full SUBSCRIBE packet (AWS IoT Core: 8 filters).
std::size_t subscription_backlog(std::uint32_t filters_per_second) {
    return std::max<std::size_t>(filters_per_second, 8);
}

}  // namespace

hub::hub(asio::io_context& io, std::string daemon_version, std::unique_ptr<spool::store> spool)
    : io_(io), daemon_version_(std::move(daemon_version)), spool_(std::move(spool)) {}

hub::~hub() {
    for (auto& [name, t] : things_) {
        t->link->on_message({});
        t->link->on_subscription_lost({});
        t->link->on_state({});
    }
}

void hub::apply(std::shared_ptr<const config::configuration> config, std::vector<thing_setup> things) {
    const bool reload = config_ != nullptr;
    config_ = std::move(config);
    const auto& ipc = config_->ipc;
    limits_.max_queue_bytes = ipc.client_queue;
    limits_.max_total_queue_bytes = ipc.client_queue_total;
    limits_.max_subscriptions = ipc.client_subscriptions;
    limits_.max_pending_publishes = ipc.client_inflight;
    default_thing_ = things.empty() ? std::string{} : things.front().settings.name;
    if (spool_) spool_->set_limits({.max_bytes = config_->spool.max_bytes, .max_messages = config_->spool.max_messages});
    order_.clear();
    for (const auto& setup : things) order_.push_back(setup.settings.name);

    std::vector<std::string> gone;
    for (const auto& [name, t] : things_) {
        if (std::none_of(things.begin(), things.end(), [&](const thing_setup& s) { return s.settings.name == name; }))
            gone.push_back(name);
    }
    for (const auto& name : gone) remove_thing(name);
    for (auto& setup : things) {
        auto it = things_.find(setup.settings.name);
        if (it == things_.end()) {
            add_thing(std::move(setup));
            continue;
        }
        auto& t = *it->second;
        t.settings = std::move(setup.settings);
        t.shaper.set_limits(thing_state::shaper_limits(t.settings.limits), std::chrono::steady_clock::now());
        t.filters.set_rate(t.settings.limits.subscriptions_per_second, std::chrono::steady_clock::now());
        if (t.fingerprint != setup.fingerprint) {
            t.fingerprint = std::move(setup.fingerprint);
            spdlog::info("thing {}: connection settings or credentials changed; reconnecting", t.settings.name);
            t.link->reconnect("the configuration changed", std::move(setup.link));
        }
        pump(t);
        pump_filters(t);
    }
    if (!reload) return;
    // Rules apply to every request from now on; what a client already holds stays, but what it
    // receives is checked against its new rights message by message.
    for (auto& [id, c] : clients_) {
        if (c->greeted) c->rights = config::grants_for(*config_, c->peer().identity(), c->thing);
    }
}

void hub::add_thing(thing_setup setup) {
    auto t = std::make_unique<thing_state>(io_, setup);
    auto* raw = t.get();
    t->link = uplink::uplink::create(io_, std::move(setup.link));
    t->link->on_message([this, raw](const mqtt::publish& m, std::optional<mqtt::inbound_ticket> k) {
        on_uplink_message(*raw, m, k);
    });
    t->link->on_subscription_lost([this, raw](const std::string& f, std::uint8_t code) { on_subscription_lost(*raw, f, code); });
    t->link->on_state([this, raw](const uplink::state_event& ev) { on_uplink_state(*raw, ev); });
    const auto name = t->settings.name;
    things_.emplace(name, std::move(t));
    ++uplinks_running_;
    raw->link->start();
}

void hub::remove_thing(const std::string& name) {
    auto it = things_.find(name);
    auto& t = *it->second;
    spdlog::info("thing {}: removed from the configuration; disconnecting it and its clients", name);
    auto clients = clients_;
    for (auto& [id, c] : clients) {
        if (c->thing == name)
            c->close_with_error(ipc::errc::unknown_thing, "Thing '" + name + "' was removed from the configuration");
    }
    // Its clients are closed: nobody waits for what is still in its shaper.
    t.shaper_timer.cancel();
    t.filter_timer.cancel();
    t.link->on_message({});
    t.link->on_subscription_lost({});
    t.link->on_state({});
    // The uplink object lives until its DISCONNECT is written.
    t.link->stop([link = t.link] {});
    --uplinks_running_;
    things_.erase(it);
}

hub::thing_state* hub::thing_of(const local_client& c) {
    auto it = things_.find(c.thing);
    return it == things_.end() ? nullptr : it->second.get();
}

void hub::add_client(local_client::socket s) {
    const client_id id{next_client_++};
    auto peer = read_peer_credentials(s.native_handle());
    client_events& events = *this;
    auto c = std::make_shared<local_client>(std::move(s), id, std::move(peer), limits_, queue_totals_, events);
    clients_.emplace(id, c);
    c->start(config_->ipc.hello_timeout);
    if (shutting_down_) {
        c->close_with_error(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down");
    } else if (const auto same_uid = std::count_if(clients_.begin(), clients_.end(),
                                                   [&](const auto& other) { return other.second->peer().uid == c->peer().uid; });
               static_cast<std::size_t>(same_uid) > config_->ipc.max_clients_per_uid) {
        ++counters_.clients_refused;
        spdlog::warn("client {} ({}) refused: uid {} already has {} connections, limit {} (ipc.max_clients_per_uid)", id.value,
                     logging::escaped(c->peer().describe()), c->peer().uid, same_uid - 1, config_->ipc.max_clients_per_uid);
        c->close_with_error(ipc::errc::quota_exceeded, "too many connections from uid " + std::to_string(c->peer().uid) +
                                                           " (limit " + std::to_string(config_->ipc.max_clients_per_uid) +
                                                           ", ipc.max_clients_per_uid)");
    } else if (clients_.size() > config_->ipc.max_clients) {
        ++counters_.clients_refused;
        spdlog::warn("client {} ({}) refused: {} clients connected, limit {} (ipc.max_clients)", id.value,
                     logging::escaped(c->peer().describe()), clients_.size() - 1, config_->ipc.max_clients);
        c->close_with_error(ipc::errc::quota_exceeded,
                            "too many clients (limit " + std::to_string(config_->ipc.max_clients) + ", ipc.max_clients)");
    }
}

void hub::send(local_client& c, const ipc::daemon_message& m) {
    auto bytes = std::make_shared<shared_frame>();
    ipc::encode(m, *bytes);
    c.send(std::move(bytes));
}

void hub::on_message(local_client& c, ipc::client_message&& m) {
    if (!c.greeted && !std::holds_alternative<ipc::hello>(m)) {
        return c.close_with_error(ipc::errc::protocol_violation, "the first frame must be hello");
    }
    std::visit([this, &c](auto&& msg) { handle(c, std::move(msg)); }, std::move(m));
}

void hub::handle(local_client& c, ipc::hello&& m) {
    if (c.greeted) return c.close_with_error(ipc::errc::protocol_violation, "hello sent twice");
    if (m.version != ipc::protocol_version) {
        return c.close_with_error(ipc::errc::unsupported_version,
                                  "client speaks IPC version " + std::to_string(m.version) + ", thingmuxd speaks " +
                                      std::to_string(ipc::protocol_version));
    }
    const auto name = m.thing.empty() ? default_thing_ : m.thing;
    auto it = things_.find(name);
    if (it == things_.end()) {
        return c.close_with_error(ipc::errc::unknown_thing,
                                  "no Thing named '" + m.thing + "' here (configured: " + join(order_) + ")");
    }
    auto& t = *it->second;
    const auto identity = c.peer().identity();
    auto rights = config::grants_for(*config_, identity, name);
    if (rights.rules.empty()) {
        ++counters_.clients_refused;
        spdlog::warn("client {} ('{}', {}) refused: no rule under apps: applies to it on Thing {}", c.id().value,
                     logging::escaped(m.app_name), logging::escaped(c.peer().describe()), name);
        return c.close_with_error(ipc::errc::not_authorized,
                                  "no rule under apps: in the thingmuxd configuration applies to " + c.peer().describe() +
                                      " on Thing " + name + "; add one that matches its unit, user, group or uid");
    }
    c.greeted = true;
    c.app_name = std::move(m.app_name);
    c.thing = name;
    c.rights = std::move(rights);
    ++counters_.clients_accepted;
    spdlog::info("client {} connected: app '{}', {}, Thing {}, rules {}", c.id().value, logging::escaped(c.app_name),
                 c.peer().describe(), name, logging::escaped(join(c.rights.rules)));
    const auto& l = limits_;
    const auto& tl = t.settings.limits;
    send(c, ipc::welcome{
                .version = ipc::protocol_version,
                .daemon_version = daemon_version_,
                .thing = name,
                .client_id = std::to_string(c.id().value),
                .limits = {.max_frame = static_cast<std::uint32_t>(l.max_frame),
                           .max_payload = static_cast<std::uint32_t>(std::min(tl.max_payload.value_or(l.max_frame), l.max_frame)),
                           .max_topic_length = static_cast<std::uint32_t>(tl.max_topic_length.value_or(65535)),
                           .max_subscriptions = static_cast<std::uint16_t>(std::min<std::size_t>(l.max_subscriptions, 65535)),
                           .max_queue_bytes = l.max_queue_bytes,
                           .max_inflight = static_cast<std::uint16_t>(std::min<std::size_t>(l.max_pending_publishes, 65535))},
                .link = t.link_state.link,
            });
    // The welcome has no room for the reason; an app that joins while the link is down learns it here.
    if (t.link_state.link != ipc::link_state::connected) send(c, t.link_state);
}

ipc::result hub::deny(const requester& r, const std::string& thing, config::refused what, const std::string& topic) {
    ++counters_.denied;
    std::string why = config::denial(r.rights, what, topic, thing, r.peer.describe());
    if (auto note = r.log.admit()) spdlog::warn("{}: {}{}", logging::escaped(r.who()), logging::escaped(why), *note);
    return fail(ipc::errc::not_authorized, std::move(why), mqtt::reason::not_authorized);
}

std::optional<ipc::result> hub::check_publish(thing_state& t, const requester& r, ipc::publish& m) {
    auto refuse = [&](ipc::errc code, std::string why) {
        ++counters_.refused;
        return fail(code, std::move(why));
    };
    if (shutting_down_) return refuse(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down");
    const auto& l = t.settings.limits;
    const auto n = [](std::size_t v) { return std::to_string(v); };
    if (m.qos > 1) {
        if (l.qos2 == config::qos2_policy::refuse)
            return refuse(ipc::errc::qos_not_supported,
                          "QoS 2 is not supported (AWS IoT Core allows QoS 0 and 1; limits.qos2: downgrade sends it as QoS 1)");
        m.qos = 1;
    }
    if (const char* problem = mqtt::topic_name_problem(m.topic))
        return refuse(ipc::errc::invalid_topic, "topic '" + m.topic + "' " + problem);
    if (l.max_topic_length && m.topic.size() > *l.max_topic_length)
        return refuse(ipc::errc::invalid_topic,
                      "topic is " + n(m.topic.size()) + " bytes, limit " + n(*l.max_topic_length) + " (limits.max_topic_length)");
    if (l.max_topic_levels && levels_of(m.topic) > *l.max_topic_levels)
        return refuse(ipc::errc::invalid_topic, "topic '" + m.topic + "' has " + n(levels_of(m.topic)) + " levels, limit " +
                                                    n(*l.max_topic_levels) + " (limits.max_topic_levels)");
    if (l.max_payload && m.payload.size() > *l.max_payload)
        return refuse(ipc::errc::payload_too_large,
                      "payload is " + n(m.payload.size()) + " bytes, limit " + n(*l.max_payload) + " (limits.max_payload)");
    if (m.retain && l.retain == config::retain_policy::refuse)
        return refuse(ipc::errc::not_authorized,
                      "retained messages are refused for Thing " + t.settings.name + " (limits.retain)");
    // A wildcard or malformed Response Topic is a protocol error the broker would answer by
    // dropping the shared session.
    if (m.props.response_topic) {
        if (const char* problem = mqtt::topic_name_problem(*m.props.response_topic))
            return refuse(ipc::errc::invalid_topic, "response topic '" + *m.props.response_topic + "' " + problem);
    }
    if (!config::allowed(r.rights, config::action::publish, m.topic))
        return deny(r, t.settings.name, config::refused::publish, m.topic);
    // A responder publishes its answer there on the app's behalf: only where the app may listen.
    if (m.props.response_topic && !config::allowed_response_topic(r.rights, *m.props.response_topic))
        return deny(r, t.settings.name, config::refused::response_topic, *m.props.response_topic);
    const bool online = t.link_state.link == ipc::link_state::connected;
    if (m.qos == 0 && !online && config_->spool.qos0 == config::offline_qos0::drop) {
        ++t.offline_dropped;
        return refuse(ipc::errc::not_connected, "Thing " + t.settings.name +
                                                    " is offline and QoS 0 messages are not queued (use QoS 1, or "
                                                    "spool.offline_qos0: queue to hold them in memory)");
    }
    if (r.pending >= limits_.max_pending_publishes) {
        // Back-pressure, not loss: the app learns its queue is full and retries after results come.
        const bool shaped = online && t.shaper.queued(r.flow) > 0;
        return refuse(shaped ? ipc::errc::rate_limited : ipc::errc::quota_exceeded,
                      n(r.pending) + " publishes already wait for their results (limit " +
                          n(limits_.max_pending_publishes) + ", ipc.client_inflight)" +
                          (shaped ? "; the Thing's rate limit (limits.publishes_per_second, limits.bytes_per_second) "
                                    "is shared by all apps: wait for results before sending more"
                                  : online ? "" : "; Thing " + t.settings.name + " is offline"));
    }
    return std::nullopt;
}

void hub::enqueue(thing_state& t, client_id flow, ipc::publish&& m, std::function<void(ipc::result)> done) {
    queued_publish p{.msg = mqtt::publish{.topic = std::move(m.topic),
                                          .payload = std::move(m.payload),
                                          .qos = static_cast<mqtt::qos>(m.qos),
                                          .retain = m.retain,
                                          .props = to_mqtt(std::move(m.props))},
                     .done = std::move(done)};
    const auto bytes = cost_of(p.msg);
    // Mostly nothing waits and the limits allow it: then the queue would hand it straight back.
    if (releasing(t) && t.shaper.pass(bytes, std::chrono::steady_clock::now()))
        send_upstream(t, std::move(p));
    else
        t.shaper.push(flow, std::move(p), bytes);
    pump(t);
}

std::string hub::describe(const local_client& c) {
    return "client " + std::to_string(c.id().value) + " ('" + c.app_name + "', " + c.peer().describe() + ")";
}

void hub::handle(local_client& c, ipc::publish&& m) {
    ++counters_.publishes;
    const auto request = m.request_id;
    auto* t = thing_of(c);
    const requester r{.who = [&c] { return describe(c); }, .peer = c.peer(), .rights = c.rights, .log = c.denials,
                      .flow = c.id(), .pending = c.pending_publishes};
    auto refusal = t == nullptr ? fail(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down") : check_publish(*t, r, m);
    if (refusal) return send(c, ipc::publish_result{.request_id = request, .outcome = std::move(*refusal)});
    if (auto spooled = maybe_spool(*t, m)) return send(c, ipc::publish_result{.request_id = request, .outcome = std::move(*spooled)});
    ++c.pending_publishes;
    enqueue(*t, c.id(), std::move(m), [this, id = c.id(), request](ipc::result res) {
        if (auto it = clients_.find(id); it != clients_.end()) {
            --it->second->pending_publishes;
            send(*it->second, ipc::publish_result{.request_id = request, .outcome = std::move(res)});
        }
    });
}

void hub::publish(const std::string& thing, ipc::publish m, const peer_credentials& caller,
                  std::function<void(ipc::result)> done) {
    ++counters_.publishes;
    auto it = things_.find(thing.empty() ? default_thing_ : thing);
    if (it == things_.end())
        return done(fail(ipc::errc::unknown_thing, "no Thing named '" + thing + "' here (configured: " + join(order_) + ")"));
    auto& t = *it->second;
    const auto rights = config::grants_for(*config_, caller.identity(), t.settings.name);
    const requester r{.who = [&caller] { return "D-Bus caller (" + caller.describe() + ")"; }, .peer = caller, .rights = rights,
                      .log = bus_denials_, .flow = bus_flow, .pending = bus_pending_};
    if (auto refusal = check_publish(t, r, m)) return done(std::move(*refusal));
    if (auto spooled = maybe_spool(t, m)) return done(std::move(*spooled));
    ++bus_pending_;
    enqueue(t, bus_flow, std::move(m), [this, done = std::move(done)](ipc::result res) {
        --bus_pending_;
        done(std::move(res));
    });
}

std::optional<ipc::result> hub::maybe_spool(thing_state& t, const ipc::publish& m) {
    if (!spool_ || m.qos != 1) return std::nullopt;
    const bool online = t.link_state.link == ipc::link_state::connected;
    if (online && spool_->count(t.settings.name) == 0) return std::nullopt;
    const auto r = spool_->append(t.settings.name, to_spool_message(m), m.topic.size() + m.payload.size());
    if (r.error == spool::failure::none) {
        ++counters_.spooled;
        if (online) drain_spool(t);
        return ipc::result{.code = ipc::errc::spooled, .mqtt_reason_code = 0, .message = {}};
    }
    ++counters_.spool_refused;
    ++t.spool_rejected;
    if (r.error == spool::failure::full) return fail(ipc::errc::spool_full, r.message);
    // A full disk fails every append: one line per 10 s, with how many failed meanwhile.
    if (auto note = spool_error_log_.admit())
        spdlog::error("thing {}: cannot write the spool: {}{}", t.settings.name, r.message, *note);
    return fail(ipc::errc::spool_full, "the durable spool could not store the message: " + r.message);
}

void hub::drain_spool(thing_state& t) {
    constexpr std::size_t batch = 64;  // spooled messages held in memory at once per Thing
    if (!spool_ || shutting_down_ || t.link_state.link != ipc::link_state::connected || t.spool_loaded >= batch / 2) return;
    // Called on every pump: the in-memory count spares a query when every row is already loaded.
    if (spool_->count(t.settings.name) <= t.spool_loaded) return;
    // Publishes accepted before the spool began (held in the shaper while the link was down) go
    // first: every later publish of the same app was spooled behind them.
    if (t.shaper.queued_total() > t.shaper.queued(spool_flow) || t.spool_draining) return;
    // enqueue() pumps, and pump() calls back here: one load at a time, or rows would be queued twice.
    t.spool_draining = true;
    auto loaded = spool_->load(t.settings.name, t.spool_cursor, batch - t.spool_loaded);
    if (!loaded.error.empty()) spdlog::error("thing {}: cannot read the spool: {}", t.settings.name, loaded.error);
    for (auto& row : loaded.rows) {
        t.spool_cursor = row.id;
        ++t.spool_loaded;
        enqueue(t, spool_flow, from_spool_message(std::move(row.message)), [this, name = t.settings.name, id = row.id](ipc::result res) {
            auto it = things_.find(name);
            if (it != things_.end()) --it->second->spool_loaded;
            // Kept only when the daemon stopped before the broker answered: sent again after restart.
            if (res.code == ipc::errc::daemon_shutting_down) return;
            if (!ipc::accepted(res.code))
                spdlog::warn("thing {}: spooled message {} refused: {}; dropping it", name, id,
                             logging::escaped(res.message));
            std::string err;
            if (!spool_->remove(id, err)) spdlog::error("thing {}: cannot delete spooled message {}: {}", name, id, err);
            if (it != things_.end()) drain_spool(*it->second);
        });
    }
    t.spool_draining = false;
}

bool hub::releasing(const thing_state& t) const {
    // While the link is down the shaper holds the queue: releasing it into the session would
    // send it in one burst on reconnect, past the broker's rate limit.
    return t.link_state.link == ipc::link_state::connected || shutting_down_;
}

void hub::pump(thing_state& t) {
    if (!releasing(t)) return;
    const auto now = std::chrono::steady_clock::now();
    while (auto next = t.shaper.pop(now)) send_upstream(t, std::move(next->item));
    if (spool_ && t.spool_loaded < 32) drain_spool(t);
    wake_after(t.shaper_timer, t.shaper_timer_armed, t.shaper.next_ready(now), [this, &t] { pump(t); });
}

void hub::pump_filters(thing_state& t) {
    if (!releasing(t)) return;
    const auto now = std::chrono::steady_clock::now();
    std::vector<mqtt::subscription> subscribe;
    std::vector<std::string> filters;
    std::vector<std::uint64_t> generations;
    std::vector<std::string> unsubscribe;
    while (auto op = t.filters.pop(now)) {
        if (op->what == subscription_shaper::kind::unsubscribe) {
            unsubscribe.push_back(std::move(op->filter));
            continue;
        }
        const auto it = t.subscribe_generations.find(op->filter);
        if (it == t.subscribe_generations.end()) continue;  // not expected: dropping a filter withdraws its SUBSCRIBE
        generations.push_back(it->second);
        t.subscribe_generations.erase(it);
        filters.push_back(op->filter);
        subscribe.push_back({.filter = std::move(op->filter), .max_qos = mqtt::qos::at_least_once});
    }
    // One operation per filter waits at a time, so these lists never share a filter.
    if (!unsubscribe.empty()) t.link->unsubscribe(std::move(unsubscribe), {});
    if (!subscribe.empty()) {
        t.link->subscribe(std::move(subscribe), [this, name = t.settings.name, filters = std::move(filters),
                                                 generations = std::move(generations)](const std::vector<std::uint8_t>& codes) {
            auto it = things_.find(name);
            if (it == things_.end()) return;
            for (std::size_t k = 0; k < filters.size(); ++k)
                upstream_subscribed(*it->second, filters[k], generations[k],
                                    k < codes.size() ? codes[k] : mqtt::reason::unspecified_error);
        });
    }
    wake_after(t.filter_timer, t.filter_timer_armed, t.filters.next_ready(now), [this, &t] { pump_filters(t); });
}

std::optional<ipc::result> hub::check_subscription_rate(const thing_state& t, client_id client, const std::string& filter) const {
    const auto& l = t.settings.limits;
    // Unlimited, nothing waits. A filter whose UNSUBSCRIBE waits is still held at the broker:
    // subscribing again only withdraws the UNSUBSCRIBE.
    if (!l.subscriptions_per_second || t.filters.waiting(filter) == subscription_shaper::kind::unsubscribe)
        return std::nullopt;
    const auto n = [](std::size_t v) { return std::to_string(v); };
    const auto rate = n(*l.subscriptions_per_second);
    if (const auto waiting = t.filters.queued(client); waiting >= subscription_backlog(*l.subscriptions_per_second)) {
        return fail(ipc::errc::rate_limited,
                    n(waiting) + " subscription changes of this client already wait for Thing " + t.settings.name +
                        "'s subscription rate (limits.subscriptions_per_second: " + rate +
                        "), which all apps share: wait for the results of earlier subscribes before sending more",
                    mqtt::reason::quota_exceeded);
    }
    if (l.subscriptions && t.table.upstream_count() + t.filters.queued_unsubscribes() >= *l.subscriptions) {
        return fail(ipc::errc::rate_limited,
                    "Thing " + t.settings.name + " still holds " + n(t.filters.queued_unsubscribes()) +
                        " filter(s) upstream that no app holds any more, until their UNSUBSCRIBE gets its turn "
                        "(limits.subscriptions_per_second: " + rate + "); with them the connection's limit (limits.subscriptions: " +
                        n(*l.subscriptions) + ") is reached: try again shortly",
                    mqtt::reason::quota_exceeded);
    }
    return std::nullopt;
}

void hub::send_upstream(thing_state& t, queued_publish&& p) {
    ++t.at_uplink;
    t.link->publish(std::move(p.msg), [this, name = t.settings.name, done = std::move(p.done)](const mqtt::action::publish_done& d) {
        if (auto it = things_.find(name); it != things_.end()) --it->second->at_uplink;
        done(publish_result(d));
        maybe_finish_shutdown();
    });
}

void hub::handle(local_client& c, ipc::subscribe&& m) {
    auto* t = thing_of(c);
    auto req = std::make_shared<pending_request>();
    req->client = c.id();
    req->request_id = m.request_id;
    req->results.resize(m.subscriptions.size());
    req->remaining = m.subscriptions.size();
    upstream_plan upstream;

    for (std::size_t i = 0; i < m.subscriptions.size(); ++i) {
        auto& f = m.subscriptions[i];
        auto answer = [&](ipc::result r) {
            req->results[i] = std::move(r);
            --req->remaining;
        };
        if (t == nullptr) {
            answer(fail(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down"));
            continue;
        }
        if (const char* problem = mqtt::topic_filter_problem(f.filter)) {
            answer(fail(ipc::errc::invalid_filter, "filter '" + f.filter + "' " + problem, mqtt::reason::topic_filter_invalid));
            continue;
        }
        const auto& l = t->settings.limits;
        if (l.max_topic_length && f.filter.size() > *l.max_topic_length) {
            ++counters_.refused;
            answer(fail(ipc::errc::invalid_filter,
                        "filter is " + std::to_string(f.filter.size()) + " bytes, limit " +
                            std::to_string(*l.max_topic_length) + " (limits.max_topic_length)",
                        mqtt::reason::topic_filter_invalid));
            continue;
        }
        if (l.max_topic_levels && levels_of(f.filter) > *l.max_topic_levels) {
            ++counters_.refused;
            answer(fail(ipc::errc::invalid_filter,
                        "filter '" + f.filter + "' has " + std::to_string(levels_of(f.filter)) + " levels, limit " +
                            std::to_string(*l.max_topic_levels) + " (limits.max_topic_levels)",
                        mqtt::reason::topic_filter_invalid));
            continue;
        }
        if (!config::allowed(c.rights, config::action::subscribe, f.filter)) {
            answer(deny({.who = [&c] { return describe(c); }, .peer = c.peer(), .rights = c.rights, .log = c.denials,
                         .flow = c.id(), .pending = 0},
                        c.thing, config::refused::subscribe, f.filter));
            continue;
        }
        auto& table = t->table;
        const bool held = table.holds(c.id(), f.filter);
        if (!held && table.client_count(c.id()) >= limits_.max_subscriptions) {
            ++counters_.refused;
            answer(fail(ipc::errc::quota_exceeded,
                        "client holds " + std::to_string(table.client_count(c.id())) + " subscriptions, limit " +
                            std::to_string(limits_.max_subscriptions) + " (ipc.client_subscriptions)",
                        mqtt::reason::quota_exceeded));
            continue;
        }
        if (!held && !table.fits(f.filter, l.subscriptions)) {
            ++counters_.refused;
            answer(fail(ipc::errc::quota_exceeded,
                        "Thing " + c.thing + " already holds " + std::to_string(table.upstream_count()) +
                            " subscriptions upstream, the connection's limit (limits.subscriptions; AWS IoT "
                            "Core allows 50): share a filter another app holds (or one it covers), or unsubscribe one",
                        mqtt::reason::quota_exceeded));
            continue;
        }
        // A filter nobody holds yet may need a SUBSCRIBE of its own (unless a held one covers it).
        if (table.holder_count(f.filter) == 0) {
            if (auto refusal = check_subscription_rate(*t, c.id(), f.filter)) {
                ++counters_.refused;
                answer(std::move(*refusal));
                continue;
            }
        }
        // The session never holds QoS 2; a QoS 2 request is granted QoS 1, as a broker would.
        const auto qos = static_cast<std::uint8_t>(std::min<unsigned>(f.max_qos, 1));
        table.add(c.id(), f.filter, qos);
        upstream.append(table.plan(l.subscriptions));
        if (const auto granted = table.granted_qos(f.filter)) {
            answer(ok(std::min(*granted, qos)));
        } else {
            t->waiting[f.filter].push_back({req, i, qos});
        }
    }
    if (req->remaining == 0) send(c, ipc::subscribe_result{.request_id = req->request_id, .results = std::move(req->results)});
    if (t != nullptr) sync_upstream(*t, c.id(), std::move(upstream));
}

std::size_t hub::sync_upstream(thing_state& t, client_id flow, upstream_plan first) {
    std::size_t released = 0;
    auto plan = std::move(first);
    for (;;) {
        plan.append(t.table.plan(t.settings.limits.subscriptions));
        released += plan.unsubscribe.size();
        send_plan(t, flow, std::move(plan));
        plan = {};
        // Requests whose filters an acknowledged upstream filter now serves.
        for (auto it = t.waiting.begin(); it != t.waiting.end();) {
            const auto granted = t.table.granted_qos(it->first);
            if (!granted) {
                ++it;
                continue;
            }
            auto waiters = std::move(it->second);
            it = t.waiting.erase(it);
            for (auto& w : waiters) answer(w, ok(std::min(*granted, w.requested_qos)));
        }
        // Filters nothing serves or will serve: the broker refused them, or the quota is full.
        const auto lost = t.table.unserved();
        if (lost.empty()) return released;
        for (const auto& u : lost) {
            const auto why =
                u.refused
                    ? fail(ipc::errc::broker_refused,
                           std::string("broker refused the subscription: ") + mqtt::reason_string(*u.refused),
                           *u.refused)
                    : fail(ipc::errc::quota_exceeded,
                           "Thing " + t.settings.name + " already holds " + std::to_string(t.table.upstream_count()) +
                               " subscriptions upstream, the connection's limit (limits.subscriptions)",
                           mqtt::reason::quota_exceeded);
            std::vector<waiter> waiters;
            if (auto w = t.waiting.find(u.filter); w != t.waiting.end()) {
                waiters = std::move(w->second);
                t.waiting.erase(w);
            }
            const auto holders = t.table.holders(u.filter);
            for (const auto id : holders) t.table.remove(id, u.filter);
            // Holders answered earlier (served by a wider filter until now) are not waiting.
            const auto answered =
                static_cast<std::size_t>(std::count_if(holders.begin(), holders.end(), [&](client_id id) {
                    return std::none_of(waiters.begin(), waiters.end(),
                                        [&](const waiter& w) { return w.request->client == id; });
                }));
            if (answered > 0)
                spdlog::warn(
                    "thing {}: '{}' is no longer held upstream ({}); {} app(s) holding it no longer receive it",
                    t.settings.name, logging::escaped(u.filter), logging::escaped(why.message), answered);
            for (auto& w : waiters) answer(w, why);
        }
    }
}

void hub::send_plan(thing_state& t, client_id flow, upstream_plan plan) {
    // Queued in `flow`'s turn of the subscription shaper; pump_filters() sends them. At most one
    // change per filter waits there: an UNSUBSCRIBE withdraws a SUBSCRIBE that has not gone out
    // (the broker never had the filter), a SUBSCRIBE replaces a waiting UNSUBSCRIBE.
    for (auto& s : plan.subscribe) {
        t.filters.subscribe(flow, s.filter);
        t.subscribe_generations.insert_or_assign(std::move(s.filter), s.generation);
    }
    // What these replace is unsubscribed only once they are acknowledged, so anything here is
    // already served by acknowledged filters: its order against the SUBSCRIBEs does not matter.
    for (const auto& f : plan.unsubscribe)
        if (!t.filters.unsubscribe(flow, f)) t.subscribe_generations.erase(f);
    pump_filters(t);
}

void hub::upstream_subscribed(thing_state& t, const std::string& filter, std::uint64_t generation, std::uint8_t code) {
    const auto outcome = t.table.subscribed(filter, generation, code);
    if (outcome == subscription_table::suback::stale) return;  // unsubscribed meanwhile
    if (outcome == subscription_table::suback::refused)
        spdlog::warn("thing {}: broker refused subscription to '{}': {}", t.settings.name, logging::escaped(filter),
                     mqtt::reason_string(code));
    sync_upstream(t, table_flow);
}

void hub::answer(waiter& w, ipc::result r) {
    w.request->results[w.index] = std::move(r);
    if (--w.request->remaining > 0) return;
    if (auto c = clients_.find(w.request->client); c != clients_.end()) {
        send(*c->second,
             ipc::subscribe_result{.request_id = w.request->request_id, .results = std::move(w.request->results)});
    }
}

void hub::handle(local_client& c, ipc::unsubscribe&& m) {
    auto* t = thing_of(c);
    ipc::unsubscribe_result r{.request_id = m.request_id, .results = {}};
    std::vector<waiter> unanswered;
    for (auto& f : m.filters) {
        if (t == nullptr || !t->table.holds(c.id(), f)) {
            r.results.push_back(ok(mqtt::reason::no_subscription_existed));
            continue;
        }
        t->table.remove(c.id(), f);
        if (auto w = t->waiting.find(f); w != t->waiting.end()) {
            std::erase_if(w->second, [&](waiter& x) {
                if (x.request->client != c.id()) return false;
                unanswered.push_back(std::move(x));
                return true;
            });
            if (w->second.empty()) t->waiting.erase(w);
        }
        r.results.push_back(ok(mqtt::reason::success));
    }
    send(c, r);
    // Unsubscribed before an upstream filter served it: the request still gets its answer.
    for (auto& w : unanswered) answer(w, ok(w.requested_qos));
    if (t != nullptr) sync_upstream(*t, c.id());
}

void hub::handle(local_client& c, ipc::ping&& m) { send(c, ipc::pong{.token = m.token}); }

void hub::on_closed(local_client& c, const std::string& reason) {
    if (reason.starts_with(ipc::to_string(ipc::errc::queue_full))) ++counters_.clients_cut_off;
    std::size_t released = 0;
    std::size_t dropped = 0;
    if (auto* t = thing_of(c)) {
        // Publishes still waiting for their turn: the app is gone and gets no result, so it has
        // no reason to believe they were sent (at-least-once stays with the app).
        dropped = t->shaper.remove_client(c.id()).size();
        t->table.remove_client(c.id());
        for (auto it = t->waiting.begin(); it != t->waiting.end();) {
            std::erase_if(it->second, [&](const waiter& w) { return w.request->client == c.id(); });
            it = it->second.empty() ? t->waiting.erase(it) : std::next(it);
        }
        released = sync_upstream(*t, c.id());
    }
    spdlog::info("client {} ('{}', {}) disconnected: {}; {} upstream filter(s) released{}", c.id().value,
                 logging::escaped(c.app_name), logging::escaped(c.peer().describe()), logging::escaped(reason), released,
                 dropped ? ", " + std::to_string(dropped) + " unsent publish(es) dropped" : std::string{});
    // The client object may be the caller; let it unwind before the last reference goes.
    if (auto it = clients_.find(c.id()); it != clients_.end()) {
        asio::post(io_, [keep = std::move(it->second)] {});
        clients_.erase(it);
    }
    maybe_finish_shutdown();
}

void hub::on_uplink_message(thing_state& t, const mqtt::publish& msg, std::optional<mqtt::inbound_ticket> ticket) {
    // A broker that sends a copy per matching subscription sends one for each upstream filter
    // that matches: the clients already have the first.
    if (t.settings.limits.overlap == config::overlap_copies::per_subscription &&
        t.copies.is_copy(msg, t.table.upstream_copies(msg.topic))) {
        if (ticket) t.link->acknowledge(*ticket);
        return;
    }
    match_scratch_.clear();
    t.table.match(msg.topic, match_scratch_);
    frame_ptr frames[2];  // encoded once per delivered QoS, shared by every recipient
    const auto props = match_scratch_.empty() ? ipc::message_properties{} : to_ipc(msg.props);
    bool routed = false;
    for (const auto& d : match_scratch_) {
        auto it = clients_.find(d.client);
        if (it == clients_.end() || !it->second->open()) continue;
        auto& c = *it->second;
        if (!config::allowed(c.rights, config::action::receive, msg.topic)) {
            ++counters_.denied;
            continue;
        }
        routed = true;
        const auto qos = std::min(static_cast<std::uint8_t>(msg.qos), d.max_qos);
        auto& frame = frames[qos];
        if (!frame) {
            auto bytes = std::make_shared<shared_frame>();
            ipc::encode_message_frame(msg.topic, msg.payload, qos, msg.retain, props, *bytes);
            frame = std::move(bytes);
        }
        if (c.send(frame)) {
            ++counters_.deliveries;
            ++c.messages_out;
        }
    }
    if (!routed) ++counters_.unrouted;
    // Every recipient has it queued: only now may the broker forget it.
    if (ticket) t.link->acknowledge(*ticket);
}

void hub::on_subscription_lost(thing_state& t, const std::string& filter, std::uint8_t reason_code) {
    spdlog::warn("thing {}: broker refused re-subscribing '{}' after reconnecting: {}", t.settings.name,
                 logging::escaped(filter), mqtt::reason_string(reason_code));
    // What it served is served by others, or subscribed again on its own, or dropped (logged).
    t.table.lost(filter, reason_code);
    sync_upstream(t, table_flow);
}

void hub::on_uplink_state(thing_state& t, const uplink::state_event& ev) {
    const auto& c = t.link->config();
    switch (ev.state) {
    case uplink::link_state::connecting:
        spdlog::info("thing {}: connecting to {}:{}", c.thing_name, c.host, c.port);
        break;
    case uplink::link_state::connected:
        spdlog::info("thing {}: connected as {} (session {})", c.thing_name, logging::escaped(c.session.client_id),
                     ev.session_present ? "resumed" : "new");
        break;
    case uplink::link_state::backing_off:
    case uplink::link_state::failed:
        spdlog::log(ev.fatal || ev.takeover ? spdlog::level::err : spdlog::level::warn, "thing {}: {}; retrying in {} ms{}",
                    c.thing_name, logging::escaped(ev.reason), ev.retry_in.count(),
                    ev.fatal ? " (needs a configuration change)" : "");
        break;
    case uplink::link_state::stopped:
        spdlog::info("thing {}: disconnected ({})", c.thing_name, logging::escaped(ev.reason));
        break;
    }
    t.copies.reset();  // copies still due of a message from the last connection will not come
    t.link_state = ipc::state{.link = to_ipc(ev.state),
                              .reason = ev.reason,
                              .fatal = ev.fatal,
                              .retry_in_ms = static_cast<std::uint32_t>(ev.retry_in.count())};
    auto bytes = std::make_shared<shared_frame>();
    ipc::encode(ipc::daemon_message{t.link_state}, *bytes);
    const frame_ptr frame = std::move(bytes);
    for (auto& [id, client] : clients_) {
        if (client->greeted && client->thing == t.settings.name) client->send(frame);
    }
    if (ev.state == uplink::link_state::connected) {
        t.connected_since_usec = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    } else {
        t.connected_since_usec = 0;
        if (!ev.reason.empty() && ev.state != uplink::link_state::stopped && ev.state != uplink::link_state::connecting)
            t.last_error = ev.reason;
    }
    for (const auto& observer : on_thing_state_) observer(t.settings.name, ev);
    if (ev.state == uplink::link_state::connected) {
        drain_spool(t);
        pump(t);
        pump_filters(t);
    }
}

bool hub::reconnect(const std::string& thing) {
    auto it = things_.find(thing);
    if (it == things_.end()) return false;
    spdlog::info("thing {}: reconnect requested", thing);
    it->second->link->reconnect("an operator asked for it");
    return true;
}

std::vector<std::string> hub::thing_names() const { return order_; }

std::optional<thing_status> hub::status_of(const std::string& thing) const {
    auto it = things_.find(thing);
    if (it == things_.end()) return std::nullopt;
    const auto& t = *it->second;
    const auto& cfg = t.link->config();
    const auto& session = t.link->session();
    thing_status s;
    s.name = t.settings.name;
    s.endpoint = cfg.host + ":" + std::to_string(cfg.port);
    s.client_id = cfg.session.client_id;
    s.protocol = config::to_string(t.settings.protocol);
    s.state = t.link->state();
    s.reason = t.link_state.reason;
    s.connected_since_usec = t.connected_since_usec;
    s.counters = t.link->counters();
    s.reconnects = s.counters.connects > 0 ? s.counters.connects - 1 : 0;
    s.upstream_filters = t.table.upstream_filters();
    s.in_flight = session.inflight_count();
    s.waiting = t.shaper.queued_total() + session.queued_count();
    std::size_t bytes = 0;
    for (const auto& [id, c] : clients_) bytes += t.shaper.queued_bytes(id);
    s.waiting_bytes = bytes + t.shaper.queued_bytes(bus_flow);
    if (spool_) {
        // Spool rows count until the broker acknowledged them; those already in the shaper once.
        s.waiting = t.shaper.queued_total() - t.shaper.queued(spool_flow) + spool_->count(t.settings.name);
        s.waiting_bytes += spool_->bytes(t.settings.name);
    }
    s.last_error = t.last_error;
    s.spool_rejected = t.spool_rejected;
    s.offline_dropped = t.offline_dropped;
    return s;
}

std::vector<client_status> hub::clients() const {
    std::vector<client_status> out;
    for (const auto& [id, c] : clients_) {
        if (!c->greeted) continue;
        const auto t = things_.find(c->thing);
        out.push_back({.id = id.value,
                       .peer = c->peer(),
                       .app_name = c->app_name,
                       .thing = c->thing,
                       .subscriptions = t == things_.end() ? std::vector<std::string>{} : t->second->table.client_filters(id),
                       .queued_bytes = c->queued_bytes(),
                       .messages_in = c->messages_in,
                       .messages_out = c->messages_out,
                       .pending_publishes = c->pending_publishes});
    }
    return out;
}

std::size_t hub::publishes_in_flight() const {
    std::size_t n = 0;
    for (const auto& [name, t] : things_) n += t->at_uplink + t->shaper.queued_total();
    return n;
}

void hub::shutdown(std::chrono::milliseconds grace, std::function<void()> done) {
    shutting_down_ = true;
    shutdown_done_ = std::move(done);
    shutdown_timer_ = std::make_unique<asio::steady_timer>(io_, grace);
    shutdown_timer_->async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        if (const auto n = publishes_in_flight(); n > 0)
            spdlog::warn("{} publish(es) still unacknowledged after the shutdown grace period", n);
        grace_expired_ = true;
        maybe_finish_shutdown();
    });
    maybe_finish_shutdown();
}

void hub::maybe_finish_shutdown() {
    if (!shutting_down_) return;
    if (draining_) {
        // Last step: every uplink said goodbye and every client got its error frame (or its
        // linger ran out).
        if (clients_.empty() && uplinks_running_ == 0 && shutdown_done_) asio::post(io_, std::exchange(shutdown_done_, {}));
        return;
    }
    if (publishes_in_flight() > 0 && !grace_expired_) return;
    draining_ = true;
    shutdown_timer_->cancel();
    for (auto& [name, t] : things_) {
        std::vector<client_id> flows{bus_flow, spool_flow};
        for (const auto& [id, c] : clients_) flows.push_back(id);
        for (const auto flow : flows) {
            for (auto& p : t->shaper.remove_client(flow))
                p.done(fail(ipc::errc::daemon_shutting_down, "thingmuxd stopped before this message could be sent"));
        }
        t->shaper_timer.cancel();
        t->link->stop([this] {
            --uplinks_running_;
            if (uplinks_running_ > 0) return;
            auto clients = clients_;  // closing removes them from clients_
            for (auto& [id, c] : clients) c->close_with_error(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down");
            maybe_finish_shutdown();
        });
    }
}

}  // namespace thingmux::hub
