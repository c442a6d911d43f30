#include "daemon/hub/hub.hpp"

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

// One filter of a SUBSCRIBE request that waits for the upstream SUBACK.
struct hub::waiter {
    std::shared_ptr<pending_request> request;
    std::size_t index = 0;
    std::uint8_t requested_qos = 0;
};

// One filter the hub holds upstream on behalf of its local holders.
struct hub::upstream_filter {
    std::uint64_t generation = 0;  // tells a stale SUBACK (filter dropped and re-added) from a current one
    bool acked = false;
    std::uint8_t granted = 0;
    std::vector<waiter> waiters;
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
        return fail(ipc::errc::payload_too_large, "message is larger than the broker's maximum packet size");
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

}  // namespace

hub::hub(asio::io_context& io, std::shared_ptr<uplink::uplink> link, hub_settings settings)
    : io_(io), link_(std::move(link)), settings_(std::move(settings)) {
    link_->on_message([this](const mqtt::publish& m, std::optional<mqtt::inbound_ticket> t) { on_uplink_message(m, t); });
    link_->on_subscription_lost([this](const std::string& f, std::uint8_t code) { on_subscription_lost(f, code); });
}

hub::~hub() {
    link_->on_message({});
    link_->on_subscription_lost({});
}

void hub::add_client(local_client::socket s) {
    const client_id id{next_client_++};
    auto peer = read_peer_credentials(s.native_handle());
    client_events& events = *this;
    auto c = std::make_shared<local_client>(std::move(s), id, std::move(peer), settings_.limits, events);
    clients_.emplace(id, c);
    c->start(settings_.hello_timeout);
    if (shutting_down_) {
        c->close_with_error(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down");
    } else if (clients_.size() > settings_.max_clients) {
        ++counters_.clients_refused;
        spdlog::warn("client {} ({}) refused: {} clients connected, limit {}", id.value, c->peer().describe(),
                     clients_.size() - 1, settings_.max_clients);
        c->close_with_error(ipc::errc::quota_exceeded,
                            "too many clients (limit " + std::to_string(settings_.max_clients) + ")");
    }
}

void hub::send(local_client& c, const ipc::daemon_message& m) {
    auto bytes = std::make_shared<std::vector<std::uint8_t>>();
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
    const auto& cfg = link_->config();
    if (!m.thing.empty() && m.thing != cfg.thing_name) {
        return c.close_with_error(ipc::errc::unknown_thing,
                                  "no Thing named '" + m.thing + "' here (this daemon serves '" + cfg.thing_name + "')");
    }
    c.greeted = true;
    c.app_name = std::move(m.app_name);
    ++counters_.clients_accepted;
    spdlog::info("client {} connected: app '{}', {}", c.id().value, c.app_name, c.peer().describe());
    const auto& l = settings_.limits;
    send(c, ipc::welcome{
                .version = ipc::protocol_version,
                .daemon_version = settings_.daemon_version,
                .thing = cfg.thing_name,
                .client_id = std::to_string(c.id().value),
                .limits = {.max_frame = static_cast<std::uint32_t>(l.max_frame),
                           .max_payload = static_cast<std::uint32_t>(settings_.max_payload),
                           .max_topic_length = static_cast<std::uint32_t>(settings_.max_topic_length),
                           .max_subscriptions = static_cast<std::uint16_t>(std::min<std::size_t>(l.max_subscriptions, 65535)),
                           .max_queue_bytes = l.max_queue_bytes,
                           .max_inflight = static_cast<std::uint16_t>(std::min<std::size_t>(l.max_pending_publishes, 65535))},
                .link = link_state_.link,
            });
    // The welcome has no room for the reason; an app that joins while the link is down learns it here.
    if (link_state_.link != ipc::link_state::connected) send(c, link_state_);
}

void hub::handle(local_client& c, ipc::publish&& m) {
    ++counters_.publishes;
    auto refuse = [&](ipc::errc code, std::string why) {
        send(c, ipc::publish_result{.request_id = m.request_id, .outcome = fail(code, std::move(why))});
    };
    if (shutting_down_) return refuse(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down");
    if (m.qos > 1) return refuse(ipc::errc::qos_not_supported, "QoS 2 is not supported (AWS IoT Core allows QoS 0 and 1)");
    if (const char* problem = mqtt::topic_name_problem(m.topic))
        return refuse(ipc::errc::invalid_topic, "topic '" + m.topic + "' " + problem);
    if (m.topic.size() > settings_.max_topic_length)
        return refuse(ipc::errc::invalid_topic, "topic is " + std::to_string(m.topic.size()) + " bytes, limit " +
                                                    std::to_string(settings_.max_topic_length));
    if (m.payload.size() > settings_.max_payload)
        return refuse(ipc::errc::payload_too_large, "payload is " + std::to_string(m.payload.size()) +
                                                        " bytes, limit " + std::to_string(settings_.max_payload));
    if (c.pending_publishes >= settings_.limits.max_pending_publishes)
        return refuse(ipc::errc::quota_exceeded, std::to_string(c.pending_publishes) +
                                                     " publishes already wait for their results (limit " +
                                                     std::to_string(settings_.limits.max_pending_publishes) + ")");

    ++c.pending_publishes;
    ++publishes_in_flight_;
    mqtt::publish p{.topic = std::move(m.topic),
                    .payload = std::move(m.payload),
                    .qos = static_cast<mqtt::qos>(m.qos),
                    .retain = m.retain,
                    .props = to_mqtt(std::move(m.props))};
    link_->publish(std::move(p), [this, id = c.id(), request = m.request_id](const mqtt::action::publish_done& d) {
        --publishes_in_flight_;
        if (auto it = clients_.find(id); it != clients_.end()) {
            --it->second->pending_publishes;
            send(*it->second, ipc::publish_result{.request_id = request, .outcome = publish_result(d)});
        }
        maybe_finish_shutdown();
    });
}

void hub::handle(local_client& c, ipc::subscribe&& m) {
    auto req = std::make_shared<pending_request>();
    req->client = c.id();
    req->request_id = m.request_id;
    req->results.resize(m.subscriptions.size());
    req->remaining = m.subscriptions.size();
    std::vector<mqtt::subscription> upstream;
    std::vector<std::uint64_t> generations;

    for (std::size_t i = 0; i < m.subscriptions.size(); ++i) {
        auto& f = m.subscriptions[i];
        auto answer = [&](ipc::result r) {
            req->results[i] = std::move(r);
            --req->remaining;
        };
        if (const char* problem = mqtt::topic_filter_problem(f.filter)) {
            answer(fail(ipc::errc::invalid_filter, "filter '" + f.filter + "' " + problem, mqtt::reason::topic_filter_invalid));
            continue;
        }
        if (!table_.holds(c.id(), f.filter) && table_.client_count(c.id()) >= settings_.limits.max_subscriptions) {
            answer(fail(ipc::errc::quota_exceeded, "client holds " + std::to_string(table_.client_count(c.id())) +
                                                       " subscriptions, limit " +
                                                       std::to_string(settings_.limits.max_subscriptions),
                        mqtt::reason::quota_exceeded));
            continue;
        }
        // The session never holds QoS 2; a QoS 2 request is granted QoS 1, as a broker would.
        const auto qos = static_cast<std::uint8_t>(std::min<unsigned>(f.max_qos, 1));
        if (table_.add(c.id(), f.filter, qos)) {
            auto& u = upstream_[f.filter];
            u = upstream_filter{.generation = next_generation_++};
            u.waiters.push_back({req, i, qos});
            upstream.push_back({.filter = f.filter, .max_qos = mqtt::qos::at_least_once});
            generations.push_back(u.generation);
            continue;
        }
        auto& u = upstream_.at(f.filter);
        if (u.acked) {
            answer(ok(std::min(u.granted, qos)));
        } else {
            u.waiters.push_back({req, i, qos});
        }
    }
    if (req->remaining == 0) send(c, ipc::subscribe_result{.request_id = req->request_id, .results = std::move(req->results)});
    if (upstream.empty()) return;
    std::vector<std::string> filters;
    for (const auto& s : upstream) filters.push_back(s.filter);
    link_->subscribe(std::move(upstream), [this, filters = std::move(filters), generations = std::move(generations)](
                                              const std::vector<std::uint8_t>& codes) {
        for (std::size_t k = 0; k < filters.size(); ++k)
            upstream_subscribed(filters[k], generations[k], k < codes.size() ? codes[k] : mqtt::reason::unspecified_error);
    });
}

void hub::upstream_subscribed(const std::string& filter, std::uint64_t generation, std::uint8_t code) {
    auto it = upstream_.find(filter);
    if (it == upstream_.end() || it->second.generation != generation) return;  // dropped meanwhile
    auto waiters = std::move(it->second.waiters);
    const bool granted = code < 0x80;
    if (granted) {
        it->second.acked = true;
        it->second.granted = code;
    } else {
        // Every holder is still waiting (nothing was granted), so every holder is a waiter.
        upstream_.erase(it);
        spdlog::warn("broker refused subscription to '{}': {}", filter, mqtt::reason_string(code));
    }
    for (auto& w : waiters) {
        if (!granted) table_.remove(w.request->client, filter);
        answer(w, granted ? ok(std::min(code, w.requested_qos))
                          : fail(ipc::errc::broker_refused,
                                 std::string("broker refused the subscription: ") + mqtt::reason_string(code), code));
    }
}

void hub::answer(waiter& w, ipc::result r) {
    w.request->results[w.index] = std::move(r);
    if (--w.request->remaining > 0) return;
    if (auto c = clients_.find(w.request->client); c != clients_.end()) {
        send(*c->second,
             ipc::subscribe_result{.request_id = w.request->request_id, .results = std::move(w.request->results)});
    }
}

void hub::release_upstream(std::vector<std::string> filters) {
    if (filters.empty()) return;
    for (const auto& f : filters) {
        auto it = upstream_.find(f);
        if (it == upstream_.end()) continue;
        // Unsubscribed before its SUBACK came: the request still gets its answer.
        for (auto& w : it->second.waiters) answer(w, ok(w.requested_qos));
        upstream_.erase(it);
    }
    link_->unsubscribe(std::move(filters), {});
}

void hub::handle(local_client& c, ipc::unsubscribe&& m) {
    ipc::unsubscribe_result r{.request_id = m.request_id, .results = {}};
    std::vector<std::string> orphans;
    for (auto& f : m.filters) {
        if (!table_.holds(c.id(), f)) {
            r.results.push_back(ok(mqtt::reason::no_subscription_existed));
            continue;
        }
        if (table_.remove(c.id(), f)) orphans.push_back(f);
        r.results.push_back(ok(mqtt::reason::success));
    }
    send(c, r);
    release_upstream(std::move(orphans));
}

void hub::handle(local_client& c, ipc::ping&& m) { send(c, ipc::pong{.token = m.token}); }

void hub::on_closed(local_client& c, const std::string& reason) {
    if (reason.starts_with(ipc::to_string(ipc::errc::queue_full))) ++counters_.clients_cut_off;
    auto orphans = table_.remove_client(c.id());
    const auto released = orphans.size();
    release_upstream(std::move(orphans));
    spdlog::info("client {} ('{}', {}) disconnected: {}; {} upstream filter(s) released", c.id().value, c.app_name,
                 c.peer().describe(), reason, released);
    // The client object may be the caller; let it unwind before the last reference goes.
    if (auto it = clients_.find(c.id()); it != clients_.end()) {
        asio::post(io_, [keep = std::move(it->second)] {});
        clients_.erase(it);
    }
    maybe_finish_shutdown();
}

void hub::on_uplink_message(const mqtt::publish& msg, std::optional<mqtt::inbound_ticket> ticket) {
    match_scratch_.clear();
    table_.match(msg.topic, match_scratch_);
    frame_ptr frames[2];  // encoded once per delivered QoS, shared by every recipient
    const auto props = match_scratch_.empty() ? ipc::message_properties{} : to_ipc(msg.props);
    for (const auto& d : match_scratch_) {
        auto it = clients_.find(d.client);
        if (it == clients_.end() || !it->second->open()) continue;
        const auto qos = std::min(static_cast<std::uint8_t>(msg.qos), d.max_qos);
        auto& frame = frames[qos];
        if (!frame) {
            auto bytes = std::make_shared<std::vector<std::uint8_t>>();
            ipc::encode_message_frame(msg.topic, msg.payload, qos, msg.retain, props, *bytes);
            frame = std::move(bytes);
        }
        if (it->second->send(frame)) {
            ++counters_.deliveries;
            ++it->second->messages_out;
        }
    }
    if (match_scratch_.empty()) ++counters_.unrouted;
    // Every recipient has it queued: only now may the broker forget it.
    if (ticket) link_->acknowledge(*ticket);
}

void hub::on_subscription_lost(const std::string& filter, std::uint8_t reason_code) {
    spdlog::warn("broker refused re-subscribing '{}' after reconnecting: {}; its local holders no longer receive it",
                 filter, mqtt::reason_string(reason_code));
    upstream_.erase(filter);
    for (auto& [id, c] : clients_) table_.remove(id, filter);
}

void hub::on_uplink_state(const uplink::state_event& ev) {
    link_state_ = ipc::state{.link = to_ipc(ev.state),
                             .reason = ev.reason,
                             .fatal = ev.fatal,
                             .retry_in_ms = static_cast<std::uint32_t>(ev.retry_in.count())};
    auto bytes = std::make_shared<std::vector<std::uint8_t>>();
    ipc::encode(ipc::daemon_message{link_state_}, *bytes);
    const frame_ptr frame = std::move(bytes);
    for (auto& [id, c] : clients_) {
        if (c->greeted) c->send(frame);
    }
}

void hub::shutdown(std::chrono::milliseconds grace, std::function<void()> done) {
    shutting_down_ = true;
    shutdown_done_ = std::move(done);
    shutdown_timer_ = std::make_unique<asio::steady_timer>(io_, grace);
    shutdown_timer_->async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        if (publishes_in_flight_ > 0)
            spdlog::warn("{} publish(es) still unacknowledged after the shutdown grace period", publishes_in_flight_);
        grace_expired_ = true;
        maybe_finish_shutdown();
    });
    maybe_finish_shutdown();
}

void hub::maybe_finish_shutdown() {
    if (!shutting_down_) return;
    if (draining_) {
        // Last step: every client got its error frame (or its linger ran out).
        if (clients_.empty() && shutdown_done_) asio::post(io_, std::exchange(shutdown_done_, {}));
        return;
    }
    if (publishes_in_flight_ > 0 && !grace_expired_) return;
    draining_ = true;
    shutdown_timer_->cancel();
    link_->stop([this] {
        auto clients = clients_;  // closing removes them from clients_
        for (auto& [id, c] : clients) c->close_with_error(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down");
        maybe_finish_shutdown();
    });
}

}  // namespace thingmux::hub
