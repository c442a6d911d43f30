#include "daemon/hub/hub.hpp"

#include "daemon/hub/one_shot.hpp"
#include "daemon/hub/thing_entry.hpp"
#include "daemon/logging.hpp"
#include "daemon/thing/outcome.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

namespace thingmux::hub {

namespace asio = boost::asio;

std::string hub::join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
    return out;
}

hub::hub(asio::io_context& io, std::string daemon_version, std::unique_ptr<spool::store> spool)
    : io_(io),
      daemon_version_(std::move(daemon_version)),
      journal_(io, spool ? &spool->sessions() : nullptr),
      spool_(std::move(spool)) {}

hub::~hub() {
    journal_.commit();
    for (auto& [name, t] : things_) {
        t->link->on_message({});
        t->link->on_subscription_lost({});
        t->link->on_state({});
    }
}

thing::session_rules hub::session_rules() const {
    return {.max_subscriptions = limits_.max_subscriptions,
            .max_pending_publishes = limits_.max_pending_publishes,
            .offline_qos0 = config_->spool.qos0};
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
        t.pipe->reconfigure(std::move(setup.settings), session_rules());
        t.identity->reconfigure(t.pipe->settings(), setup.link);
        reconfigure_jobs(t);
        // While it is provisioned its connection has not started: changes apply at the next reload.
        if (t.fingerprint != setup.fingerprint && !t.identity->provisioning()) {
            t.fingerprint = std::move(setup.fingerprint);
            spdlog::info("thing {}: connection settings or credentials changed; reconnecting", t.pipe->settings().name);
            t.link->reconnect("the configuration changed", std::move(setup.link));
        }
    }
    if (!reload) return;
    // Rules apply to every request from now on; what a client already holds stays, but what it
    // receives is checked against its new rights message by message.
    for (auto& [id, c] : clients_) {
        if (c->greeted) c->set_rights(grants_.share(config::grants_for(*config_, c->peer().identity(), c->thing)));
    }
    for (auto& [id, c] : mqtt_clients_) {
        if (c->connected())
            c->session()->set_rights(grants_.share(config::grants_for(*config_, c->peer().identity(), c->session()->thing())));
    }
    for (auto& [key, s] : mqtt_sessions_) {
        if (!s->bound()) s->set_rights(grants_.share(config::grants_for(*config_, s->peer().identity(), s->thing())));
    }
    for (auto& [key, s] : ipc_sessions_)
        s->set_rights(grants_.share(config::grants_for(*config_, s->peer().identity(), s->thing())));
}

void hub::add_thing(thing_setup setup) {
    auto t = std::make_unique<thing_entry>(io_, uplink::uplink::create(io_, std::move(setup.link)), std::move(setup.fingerprint),
                                           journal_);
    auto* raw = t.get();
    const auto name = setup.settings.name;
    t->pipe = std::make_shared<thing::pipeline>(
        std::move(setup.settings), session_rules(),
        thing::shared_parts{.counters = counters_,
                            .spool = spool_.get(),
                            .spool_error_log = spool_error_log_,
                            .publish_settled = [this] { maybe_finish_shutdown(); },
                            .observer = publish_observer_},
        t->port, t->clock);
    if (shutting_down_) t->pipe->stop_accepting();
    t->link->on_message([raw](const mqtt::publish& m, std::optional<mqtt::inbound_ticket> k) { raw->pipe->on_message(m, k); });
    // A result that comes after the Thing was removed finds no pipeline: its sessions are gone too.
    t->link->on_publish_done([weak = std::weak_ptr(t->pipe)](const mqtt::action::publish_done& d) {
        if (const auto pipe = weak.lock()) pipe->on_published(d);
    });
    t->link->on_subscription_lost([raw](const std::string& f, std::uint8_t code) { raw->pipe->on_subscription_lost(f, code); });
    t->link->on_state([this, raw](const uplink::state_event& ev) { on_uplink_state(*raw, ev); });
    t->identity = std::make_unique<identity::thing_identity>(
        io_, t->pipe->settings(), t->link->config(), t->pipe,
        identity::thing_identity::hooks{.provisioned = [this, raw] { if (!shutting_down_) raw->link->start(); },
                                        .rotated = [raw](const std::string& why) { raw->link->reconnect(why); },
                                        .show_state = [this, raw](const uplink::state_event& ev) { show_link_state(*raw, ev); },
                                        .new_flow = [this] { return thing::session_id{next_client_++}; }});
    things_.emplace(name, std::move(t));
    // Before the uplink: what the broker sends at once must find the sessions' filters.
    restore_sessions(*raw);
    reconfigure_jobs(*raw);
    ++uplinks_running_;
    // A Thing without its certificate yet is provisioned first (thing_identity.hpp).
    if (raw->identity->start()) raw->link->start();
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
    auto mqtt_clients = mqtt_clients_;
    for (auto& [id, c] : mqtt_clients) {
        if (c->connected() && c->session()->thing() == name)
            c->disconnect(mqtt::reason::administrative_action, "Thing '" + name + "' was removed from the configuration");
    }
    const auto forget = [&](const auto& entry) {
        if (entry.second->thing() != name) return false;
        journal_.remove_session(entry.second->state().row());
        return true;
    };
    std::erase_if(mqtt_sessions_, forget);
    std::erase_if(ipc_sessions_, forget);
    // Its clients are closed: nobody waits for what is still in its pipeline.
    t.clock.cancel();
    if (t.services) t.services->close();
    t.identity->stop({});
    if (t.jobs) t.jobs->close();
    t.link->on_message({});
    t.link->on_subscription_lost({});
    t.link->on_state({});
    // The uplink object lives until its DISCONNECT is written.
    t.link->stop([link = t.link] {});
    --uplinks_running_;
    things_.erase(it);
}

// The jobs service follows the Thing's jobs: block: started when it appears, given new settings
// when it changes, closed when it goes.
void hub::reconfigure_jobs(thing_entry& t) {
    const auto& settings = t.pipe->settings().jobs;
    if (!settings) {
        if (t.jobs) t.jobs->close();
        t.jobs.reset();
        return;
    }
    if (t.jobs) return t.jobs->reconfigure(*settings);
    t.jobs = services::jobs_service::create(io_, t.pipe, thing::session_id{next_client_++}, *settings);
    t.jobs->start();
}

hub::thing_entry* hub::thing_of(const local_client& c) { return thing_named(c.thing); }

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

void hub::on_message(local_client& c, ipc::client_message&& m) {
    // IPC-8, IPC-47: a management tool may send admin requests without a hello.
    if (!c.greeted && !std::holds_alternative<ipc::hello>(m) && !std::holds_alternative<ipc::admin>(m)) {
        return c.close_with_error(ipc::errc::protocol_violation, "the first frame must be hello (or admin)");
    }
    std::visit([this, &c](auto&& msg) { handle(c, std::move(msg)); }, std::move(m));
}

void hub::handle(local_client& c, ipc::hello&& m) {
    if (c.greeted) return c.close_with_error(ipc::errc::protocol_violation, "hello sent twice");
    // IPC-9, IPC-46, IPC-60: versions 1 to 3; a hello of a later version decodes as version 1
    // (its fields before the version's own).
    if (!ipc::known_version(m.version)) {
        return c.close_with_error(ipc::errc::unsupported_version, "client speaks IPC version " + std::to_string(m.version) +
                                                                      ", thingmuxd speaks 1, 2 and 3");
    }
    const auto name = m.thing.empty() ? default_thing_ : m.thing;
    auto it = things_.find(name);
    if (it == things_.end()) {
        return c.close_with_error(ipc::errc::unknown_thing,
                                  "no Thing named '" + m.thing + "' here (configured: " + join(order_) + ")");
    }
    auto& pipe = *it->second->pipe;
    auto rights = config::grants_for(*config_, c.peer().identity(), name);
    if (rights.rules.empty()) {
        ++counters_.clients_refused;
        spdlog::warn("client {} ('{}', {}) refused: no rule under apps: applies to it on Thing {}", c.id().value,
                     logging::escaped(m.app_name), logging::escaped(c.peer().describe()), name);
        return c.close_with_error(ipc::errc::not_authorized,
                                  "no rule under apps: in the thingmuxd configuration applies to " + c.peer().describe() +
                                      " on Thing " + name + "; add one that matches its unit, user, group or uid");
    }
    c.greet();
    c.set_version(static_cast<ipc::wire_version>(m.version));  // IPC-9: answered in its own version
    c.thing = name;
    c.set_rights(grants_.share(std::move(rights)));
    session_granted session;
    if (!m.session_name.empty()) session = open_ipc_session(c, m, *it->second, c.shared_rights());
    c.app_name = std::move(m.app_name);
    ++counters_.clients_accepted;
    std::string session_note;
    if (c.session)
        session_note = fmt::format(", {} session '{}' (kept {} s after the connection, {} message(s) waiting)",
                                   session.present ? "resumed" : "new", logging::escaped(m.session_name),
                                   session.expiry.count(), c.session->state().waiting());
    spdlog::info("client {} connected: app '{}', {}, Thing {}, rules {}{}", c.id().value, logging::escaped(c.app_name),
                 c.peer().describe(), name, logging::escaped(join(c.rights().rules)), session_note);
    const auto& l = limits_;
    const auto& tl = pipe.settings().limits;
    c.send(ipc::welcome{
        .version = static_cast<std::uint16_t>(c.version()),
        .daemon_version = daemon_version_,
        .thing = name,
        .connection_id = std::to_string(c.id().value),
        .limits = {.max_frame = static_cast<std::uint32_t>(l.max_frame),
                   .max_payload = static_cast<std::uint32_t>(std::min(tl.max_payload.value_or(l.max_frame), l.max_frame)),
                   .max_topic_length = static_cast<std::uint32_t>(tl.max_topic_length.value_or(65535)),
                   .max_subscriptions = static_cast<std::uint16_t>(std::min<std::size_t>(l.max_subscriptions, 65535)),
                   .max_queue_bytes = l.max_queue_bytes,
                   .max_inflight = static_cast<std::uint16_t>(std::min<std::size_t>(l.max_pending_publishes, 65535))},
        .link = pipe.link().link,
        .session_present = session.present,
        .session_expiry = static_cast<std::uint32_t>(session.expiry.count()),
    });
    // The welcome has no room for the reason; an app that joins while the link is down learns it here.
    if (!pipe.online()) c.send(pipe.link());
    pipe.attach(c.shared_from_this());
    // After the welcome: what waited in the session follows it (IPC-43).
    if (c.session) c.session->bind(c.shared_from_this());
}

void hub::handle(local_client& c, ipc::publish&& m) {
    const auto request = m.request_id;
    if (auto* t = thing_of(c)) return t->pipe->publish(c.shared_from_this(), request, std::move(m));
    ++counters_.publishes;
    c.publish_done(request, thing::fail(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down"));
}

void hub::publish(const std::string& thing, ipc::publish m, const peer_credentials& caller,
                  std::function<void(ipc::result)> done) {
    auto it = things_.find(thing.empty() ? default_thing_ : thing);
    if (it == things_.end()) {
        ++counters_.publishes;
        return done(thing::fail(ipc::errc::unknown_thing, "no Thing named '" + thing + "' here (configured: " + join(order_) + ")"));
    }
    auto& pipe = *it->second->pipe;
    auto call = std::make_shared<one_shot_publish>("D-Bus caller (" + caller.describe() + ")", caller.describe(),
                                                   config::grants_for(*config_, caller.identity(), pipe.settings().name),
                                                   bus_denials_, std::move(done));
    call->set_owner({.uid = caller.known_uid(), .unit = caller.unit});
    pipe.publish(call, 0, std::move(m));
}

// A client's subscriptions are its session's when it has one (IPC-43), under the session's own
// request id; else the connection's.
void hub::handle(local_client& c, ipc::subscribe&& m) {
    const bool registered = (m.flags & ipc::subscribe_answer_at_registration) != 0;  // version 3 (IPC-61)
    if (auto* t = thing_of(c); t && c.session) {
        const auto request = c.session->request_id(m.request_id);
        std::vector<spool::format::subscription> kept;
        for (const auto& s : m.subscriptions) kept.push_back({.filter = s.filter, .max_qos = s.max_qos, .options = 0});
        c.session->state().subscribing(request, std::move(kept));
        return t->pipe->subscribe(c.session, request, std::move(m.subscriptions), {}, registered);
    } else if (t) {
        return t->pipe->subscribe(c.shared_from_this(), m.request_id, std::move(m.subscriptions), {}, registered);
    }
    const std::vector<ipc::result> stopping(m.subscriptions.size(),
                                            thing::fail(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down"));
    if (registered) c.subscribe_registered(m.request_id, stopping);  // IPC-62: always two answers
    c.subscribe_done(m.request_id, stopping);
}

void hub::handle(local_client& c, ipc::unsubscribe&& m) {
    if (auto* t = thing_of(c); t && c.session) {
        const auto request = c.session->request_id(m.request_id);
        c.session->state().unsubscribing(request, m.filters);
        return t->pipe->unsubscribe(c.session, request, m.filters);
    } else if (t) {
        return t->pipe->unsubscribe(c.shared_from_this(), m.request_id, m.filters);
    }
    c.unsubscribe_done(m.request_id, std::vector<ipc::result>(m.filters.size(), thing::ok(mqtt::reason::no_subscription_existed)));
}

void hub::handle(local_client& c, ipc::ping&& m) { c.send(ipc::pong{.token = m.token}); }

void hub::on_closed(local_client& c, const std::string& reason) {
    if (c.close_error() == ipc::errc::queue_full) ++counters_.clients_cut_off;
    thing::pipeline::detached gone;
    if (auto* t = thing_of(c); t != nullptr && c.greeted) gone = t->pipe->detach(c.id());
    release_ipc_session(c);
    spdlog::info("client {} ('{}', {}) disconnected: {}; {} upstream filter(s) released{}", c.id().value,
                 logging::escaped(c.app_name), logging::escaped(c.peer().describe()), logging::escaped(reason), gone.released,
                 gone.dropped ? ", " + std::to_string(gone.dropped) + " unsent publish(es) dropped" : std::string{});
    // The client object may be the caller; let it unwind before the last reference goes.
    if (auto it = clients_.find(c.id()); it != clients_.end()) {
        asio::post(io_, [keep = std::move(it->second)] {});
        clients_.erase(it);
    }
    maybe_finish_shutdown();
}

void hub::on_uplink_state(thing_entry& t, const uplink::state_event& ev) {
    const auto& c = t.link->config();
    switch (ev.state) {
    case uplink::link_state::connecting:
        spdlog::info("thing {}: connecting to {}:{}{}", c.thing_name, c.host, c.port,
                     c.proxy ? " through proxy " + uplink::describe(*c.proxy) : std::string());
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
    show_link_state(t, ev);
    t.identity->on_link(ev);
}

void hub::show_link_state(thing_entry& t, const uplink::state_event& ev) {
    if (ev.state == uplink::link_state::connected) {
        t.connected_since_usec = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    } else {
        t.connected_since_usec = 0;
        if (!ev.reason.empty() && ev.state != uplink::link_state::stopped && ev.state != uplink::link_state::connecting)
            t.last_error = ev.reason;
    }
    t.pipe->on_link(ipc::state{.link = ev.state,
                               .reason = ev.reason,
                               .fatal = ev.fatal,
                               .retry_in_ms = static_cast<std::uint32_t>(ev.retry_in.count())});
    // After the pipeline: observers read the Thing's status, which must show this state.
    for (const auto& observer : on_thing_state_) observer(t.pipe->settings().name, ev);
}

bool hub::rotate_certificate(const std::string& thing, identity::thing_identity::rotate_done done) {
    auto it = things_.find(thing);
    if (it == things_.end()) return false;
    spdlog::info("thing {}: certificate rotation requested", thing);
    it->second->identity->rotate(std::move(done));
    return true;
}

namespace {

// AWS IoT's shadow names: letters, digits, ':', '_' and '-', 1 to 64 of them.
bool valid_shadow_name(std::string_view name) {
    return name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' || c == '_' || c == '-';
    });
}

}  // namespace

void hub::shadow_request(const std::string& thing, std::string_view operation, const std::string& shadow,
                         std::string document, const peer_credentials& caller, service_caller::done_fn done) {
    const auto refuse = [&](ipc::errc code, std::string why) {
        done({.outcome = thing::fail(code, std::move(why)), .topic = {}, .payload = {}});
    };
    auto it = things_.find(thing.empty() ? default_thing_ : thing);
    if (it == things_.end())
        return refuse(ipc::errc::unknown_thing, "no Thing named '" + thing + "' here (configured: " + join(order_) + ")");
    if (!valid_shadow_name(shadow))
        return refuse(ipc::errc::invalid_topic, "a shadow name has 1 to 64 letters, digits, ':', '_' or '-' (empty: the classic shadow)");
    auto& t = *it->second;
    const auto& name = t.pipe->settings().name;
    const auto topic = "$aws/things/" + name + "/shadow/" + (shadow.empty() ? "" : "name/" + shadow + "/") + std::string(operation);
    const auto rights = config::grants_for(*config_, caller.identity(), name);
    if (!config::allowed(rights, config::action::publish, topic) ||
        !config::allowed(rights, config::action::receive, topic + "/accepted") ||
        !config::allowed(rights, config::action::receive, topic + "/rejected")) {
        spdlog::warn("thing {}: D-Bus caller ({}) may not request {} (it needs publish on it and receive on its /accepted "
                     "and /rejected in the app rules)", name, caller.describe(), topic);
        return refuse(ipc::errc::not_authorized, "the app rules do not let this caller publish to " + topic +
                                                     " and receive its /accepted and /rejected answers (grant both to its"
                                                     " user, group or unit under apps: in the configuration)");
    }
    if (!t.services)
        t.services = std::make_unique<service_caller>(io_, t.pipe, thing::session_id{next_client_++}, name);
    t.services->request(topic, std::move(document), std::move(done));
}

bool hub::reconnect(const std::string& thing) {
    auto it = things_.find(thing);
    if (it == things_.end()) return false;
    if (it->second->identity->provisioning()) {
        spdlog::info("thing {}: reconnect requested while it is provisioned: its connection starts once that is done", thing);
        return true;
    }
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
    const auto& pipe = *t.pipe;
    const auto p = pipe.status();
    thing_status s;
    s.name = pipe.settings().name;
    s.endpoint = cfg.host + ":" + std::to_string(cfg.port);
    if (cfg.proxy) s.proxy = proxy::to_string(cfg.proxy->url);
    s.auth = config::describe_auth(pipe.settings());
    s.transport = config::to_string(pipe.settings().transport);
    s.client_id = cfg.session.client_id;
    s.protocol = config::to_string(pipe.settings().protocol);
    // While it is provisioned, the Thing's own link has not started: the state is provisioning's.
    s.state = t.identity->provisioning() ? pipe.link().link : t.link->state();
    s.reason = pipe.link().reason;
    s.connected_since_usec = t.connected_since_usec;
    s.counters = t.link->counters();
    s.reconnects = s.counters.connects > 0 ? s.counters.connects - 1 : 0;
    s.upstream_filters = p.upstream_filters;
    s.in_flight = t.link->session().inflight_count();
    // Without a spool, what the session still queues waits too; with one, spool rows count instead.
    s.waiting = p.waiting + (spool_ ? 0 : t.link->session().queued_count());
    s.waiting_bytes = p.waiting_bytes;
    s.last_error = t.last_error;
    s.spool_rejected = p.spool_rejected;
    s.offline_dropped = p.offline_dropped;
    s.shared_dropped = p.shared_dropped;
    s.retained_messages = p.retained_messages;
    s.retained_bytes = p.retained_bytes;
    s.retained_dropped = p.retained_dropped;
    s.service_requests = p.service_requests;
    s.service_timeouts = p.service_timeouts;
    s.cached_shadows = p.cached_shadows;
    s.identity = t.identity->status();
    s.pipeline = p;
    if (t.jobs)
        s.jobs = t.jobs->status();
    else
        s.jobs.state = "off";
    return s;
}

std::vector<client_status> hub::clients() const {
    std::vector<client_status> out;
    for (const auto& [id, c] : clients_) {
        if (!c->greeted) continue;
        const auto t = things_.find(c->thing);
        const auto* pipe = t == things_.end() ? nullptr : t->second->pipe.get();
        out.push_back({.id = id.value,
                       .peer = c->peer(),
                       .app_name = c->app_name,
                       .thing = c->thing,
                       // A session's filters are its own (IPC-43), the connection's are those of no session.
                       .subscriptions = pipe ? pipe->filters_of(c->session ? c->session->flow() : id) : std::vector<std::string>{},
                       .queued_bytes = c->queued_bytes(),
                       .messages_in = c->messages_in,
                       .messages_out = c->messages_out,
                       .pending_publishes = pipe ? pipe->pending_publishes(id) : 0});
    }
    for (const auto& [id, c] : mqtt_clients_) {
        if (!c->connected()) continue;
        const auto& session = *c->session();
        const auto t = things_.find(session.thing());
        const auto* pipe = t == things_.end() ? nullptr : t->second->pipe.get();
        out.push_back({.id = id.value,
                       .peer = c->peer(),
                       .app_name = std::string(c->version() == mqtt::protocol_version::v5 ? "mqtt5:" : "mqtt311:") +
                                   c->client_id(),
                       .thing = session.thing(),
                       .subscriptions = pipe ? pipe->filters_of(session.flow()) : std::vector<std::string>{},
                       .queued_bytes = c->queued_bytes(),
                       .messages_in = c->messages_in(),
                       .messages_out = c->messages_out(),
                       .pending_publishes = pipe ? pipe->pending_publishes(session.flow()) : 0});
    }
    std::sort(out.begin(), out.end(), [](const client_status& a, const client_status& b) { return a.id < b.id; });
    return out;
}

std::size_t hub::publishes_in_flight() const {
    std::size_t n = 0;
    for (const auto& [name, t] : things_) n += t->pipe->unfinished();
    return n;
}

void hub::shutdown(std::chrono::milliseconds grace, std::function<void()> done) {
    shutting_down_ = true;
    shutdown_done_ = std::move(done);
    for (auto& [name, t] : things_) t->pipe->stop_accepting();
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
        if (clients_.empty() && mqtt_clients_.empty() && uplinks_running_ == 0 && shutdown_done_)
            asio::post(io_, std::exchange(shutdown_done_, {}));
        return;
    }
    if (publishes_in_flight() > 0 && !grace_expired_) return;
    draining_ = true;
    shutdown_timer_->cancel();
    for (auto& [name, t] : things_) {
        t->pipe->abandon_waiting();
        t->clock.cancel();
        if (t->services) t->services->close();
        t->identity->stop({});
        if (t->jobs) t->jobs->close();
        t->link->stop([this] {
            --uplinks_running_;
            if (uplinks_running_ > 0) return;
            auto clients = clients_;  // closing removes them from clients_
            for (auto& [id, c] : clients) c->close_with_error(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down");
            auto mqtt_clients = mqtt_clients_;
            for (auto& [id, c] : mqtt_clients) c->disconnect(mqtt::reason::server_shutting_down, "thingmuxd is shutting down");
            maybe_finish_shutdown();
        });
    }
}

}  // namespace thingmux::hub
