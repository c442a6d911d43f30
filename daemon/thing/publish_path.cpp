// The publish path of a Thing's pipeline: checks, the publish shaper, the upstream, the result.
#include "common/topic.hpp"
#include "daemon/mqtt/topic.hpp"
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/pipeline.hpp"

#include <spdlog/spdlog.h>

namespace thingmux::thing {

namespace {
// Bytes a publish costs against the connection's byte rate: what dominates the PUBLISH packet.
std::size_t cost_of(const mqtt::publish& p) { return p.topic.size() + p.payload.size(); }
}  // namespace

void pipeline::publish(const std::shared_ptr<local_session>& s, std::uint32_t request_id, ipc::publish m) {
    ++shared_.counters.publishes;
    const auto bytes = m.topic.size() + m.payload.size();
    if (auto refusal = check_publish(*s, m)) {
        observe(*s, *refusal, bytes);
        return s->publish_done(request_id, std::move(*refusal));
    }
    if (local_only(m.topic)) return publish_locally(s, request_id, std::move(m));
    if (service_request(m.topic)) return publish_request(s, request_id, std::move(m));
    if (auto spooled = maybe_spool(m)) {
        if (ipc::accepted(spooled->code)) spooled_by(*s, m);
        observe(*s, *spooled, bytes);
        s->publish_done(request_id, std::move(*spooled));
        return release_publishes();  // online behind earlier rows: the new one follows them out
    }
    ++pending_[s->flow()];
    auto msg = to_mqtt(std::move(m));
    publish_owner owner{.session = s, .flow = s->flow(), .request_id = request_id, .spool_id = 0,
                        .retained = retained_copy(msg), .echo = expect_echo(*s, msg), .request_token = {}, .bytes = bytes};
    enqueue({.msg = std::move(msg), .owner = std::move(owner)});
    // Handed straight upstream with nothing waiting (the common case): nothing to release or time.
    if (shaper_.queued_total() > 0) release_publishes();
}

ipc::result pipeline::deny(local_session& s, config::refused what, const std::string& topic) {
    ++shared_.counters.denied;
    std::string why = config::denial(s.rights(), what, topic, settings_.name, s.peer_description());
    if (auto note = s.denials().admit()) spdlog::warn("{}: {}{}", logging::escaped(s.describe()), logging::escaped(why), *note);
    return fail(ipc::errc::not_authorized, std::move(why), mqtt::reason::not_authorized);
}

std::optional<ipc::result> pipeline::check_publish(local_session& s, ipc::publish& m) {
    auto refuse = [&](ipc::errc code, std::string why) {
        ++shared_.counters.refused;
        return fail(code, std::move(why));
    };
    if (stopping_) return refuse(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down");
    const auto& l = settings_.limits;
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
    if (l.max_topic_levels && topic::level_count(m.topic) > *l.max_topic_levels)
        return refuse(ipc::errc::invalid_topic, "topic '" + m.topic + "' has " + n(topic::level_count(m.topic)) + " levels, limit " +
                                                    n(*l.max_topic_levels) + " (limits.max_topic_levels)");
    // A service request's own bound comes first: its refusal says what AWS IoT takes.
    if (m.payload.size() > services::max_request_payload && service_request(m.topic))
        return refuse(ipc::errc::invalid_payload, "payload is " + n(m.payload.size()) + " bytes; an AWS IoT service request takes a JSON " +
                                                      "object of at most " + n(services::max_request_payload) + " bytes");
    if (l.max_payload && m.payload.size() > *l.max_payload)
        return refuse(ipc::errc::payload_too_large,
                      "payload is " + n(m.payload.size()) + " bytes, limit " + n(*l.max_payload) + " (limits.max_payload)");
    if (m.retain && l.retain == config::retain_policy::refuse)
        return refuse(ipc::errc::not_authorized, "retained messages are refused for Thing " + settings_.name + " (limits.retain)");
    // A wildcard or malformed Response Topic is a protocol error the broker would answer by
    // dropping the shared session.
    if (m.props.response_topic) {
        if (const char* problem = mqtt::topic_name_problem(*m.props.response_topic))
            return refuse(ipc::errc::invalid_topic, "response topic '" + *m.props.response_topic + "' " + problem);
    }
    // Whatever the rules grant: an app must not pass for one of thingmuxd's services.
    if (is_daemon_topic(m.topic)) {
        ++shared_.counters.denied;
        return fail(ipc::errc::not_authorized,
                    "topic '" + m.topic + "' is thingmuxd's own: apps may subscribe to $thingmux/ topics, only thingmuxd's "
                    "services publish there",
                    mqtt::reason::not_authorized);
    }
    if (!config::allowed(s.rights(), config::action::publish, m.topic)) return deny(s, config::refused::publish, m.topic);
    // A responder publishes its answer there on the app's behalf: only where the app may listen.
    if (m.props.response_topic && !config::allowed_response_topic(s.rights(), *m.props.response_topic))
        return deny(s, config::refused::response_topic, *m.props.response_topic);
    // Local topics never wait for the link, the spool or the shaper.
    if (local_only(m.topic)) return std::nullopt;
    // Service requests are never queued: publish_request() refuses them offline, whatever the QoS.
    if (m.qos == 0 && !online() && rules_.offline_qos0 == config::offline_qos0::drop && !service_request(m.topic)) {
        ++offline_dropped_;
        return refuse(ipc::errc::not_connected, "Thing " + settings_.name +
                                                    " is offline and QoS 0 messages are not queued (use QoS 1, or "
                                                    "spool.offline_qos0: queue to hold them in memory)");
    }
    if (const auto pending = pending_publishes(s.flow()); pending >= rules_.max_pending_publishes) {
        // Back-pressure, not loss: the app learns its queue is full and retries after results come.
        const bool shaped = online() && shaper_.queued(s.flow()) > 0;
        return refuse(shaped ? ipc::errc::rate_limited : ipc::errc::quota_exceeded,
                      n(pending) + " publishes already wait for their results (limit " + n(rules_.max_pending_publishes) +
                          ", ipc.client_inflight)" +
                          (shaped ? "; the Thing's rate limit (limits.publishes_per_second, limits.bytes_per_second) "
                                    "is shared by all apps: wait for results before sending more"
                                  : online() ? "" : "; Thing " + settings_.name + " is offline"));
    }
    return std::nullopt;
}

void pipeline::enqueue(queued_publish&& p) {
    const auto bytes = cost_of(p.msg);
    // Mostly nothing waits and the limits allow it: then the queue would hand it straight back.
    if (releasing() && shaper_.pass(bytes, clock_.now()))
        send_upstream(std::move(p));
    else {
        // A wait for the rate limits (not for the link: offline, everything waits).
        if (releasing()) {
            ++throttle_waits_;
            if (shared_.observer != nullptr && p.owner.session) shared_.observer->throttled(settings_.name, *p.owner.session);
        }
        shaper_.push(p.owner.flow, std::move(p), bytes);
    }
}

void pipeline::release_publishes() {
    // A result the upstream answers at once (a refusal) comes back inside send_upstream() and
    // may ask for another release: the running one goes round once more instead.
    if (releasing_publishes_) {
        release_again_ = true;
        return;
    }
    if (!releasing()) return;
    releasing_publishes_ = true;
    do {
        release_again_ = false;
        const auto now = clock_.now();
        while (auto next = shaper_.pop(now)) send_upstream(std::move(next->item));
        drain_spool();
    } while (release_again_);
    releasing_publishes_ = false;
    schedule(clock_.now());
}

void pipeline::send_upstream(queued_publish&& p) {
    // QoS 1: the time to its PUBACK, for the round-trip histogram.
    const auto sent = p.msg.qos == mqtt::qos::at_least_once ? std::optional(clock_.now()) : std::nullopt;
    const auto tag = at_upstream_.put({.owner = std::move(p.owner), .sent = sent});
    up_.publish(std::move(p.msg), tag);
}

void pipeline::on_published(const mqtt::action::publish_done& d) {
    auto p = at_upstream_.take(d.tag);
    if (!p) return;  // not one of ours (anything else is a bug of the upstream)
    if (p->sent && d.error == mqtt::local_error::none) round_trip_.record(clock_.now() - *p->sent);
    const bool spooled = p->owner.spool_id > 0;
    complete(p->owner, publish_outcome(d));
    if (spooled) release_publishes();  // room for the next spooled rows
}

void pipeline::complete(publish_owner& owner, ipc::result r) {
    if (ipc::accepted(r.code)) {
        if (owner.retained) retained_.put(*owner.retained, clock_.now());
    } else {
        if (owner.echo != 0) echoes_.cancel(owner.flow, owner.echo);
        // A request that did not reach AWS gets no answer: the app has its result instead.
        if (!owner.request_token.empty()) (void)requests_.take(owner.request_token);
    }
    if (owner.spool_id > 0) {
        spooled_done(owner.spool_id, r);
    } else {
        // The entry stays at zero until its session detaches: no allocation per publish.
        if (auto it = pending_.find(owner.flow); it != pending_.end() && it->second > 0) --it->second;
        observe(*owner.session, r, owner.bytes);
        owner.session->publish_done(owner.request_id, std::move(r));
    }
    // Spooled messages too: a shutdown that waits for the last one in flight must hear of it.
    if (shared_.publish_settled) shared_.publish_settled();
}

void pipeline::observe(const local_session& s, const ipc::result& r, std::size_t bytes) const {
    if (shared_.observer != nullptr) shared_.observer->publish_result(settings_.name, s, r, bytes);
}

std::size_t pipeline::pending_publishes(session_id flow) const {
    const auto it = pending_.find(flow);
    return it == pending_.end() ? 0 : it->second;
}

std::size_t pipeline::unfinished() const noexcept { return at_upstream_.size() + shaper_.queued_total(); }

void pipeline::abandon_waiting() {
    std::vector<session_id> flows;
    for (const auto& [flow, n] : pending_) flows.push_back(flow);
    flows.push_back(spool_flow);
    for (const auto flow : flows) {
        for (auto& p : shaper_.remove_client(flow))
            complete(p.owner, fail(ipc::errc::daemon_shutting_down, "thingmuxd stopped before this message could be sent"));
    }
}

}  // namespace thingmux::thing
