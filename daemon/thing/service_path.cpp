// AWS IoT's Device Shadow and Jobs requests in a Thing's pipeline (docs/services.md).
//
// - A publish on one of the Thing's request topics (service_requests.hpp) from any local session
//   is checked (invalid_payload), never spooled (offline: not_connected, or a shadow get answered
//   from the shadow cache), bounded per session (services.max_pending_per_session:
//   quota_exceeded), and sent with the daemon's clientToken in place of the app's.
// - What the broker sends carrying one of the daemon's tokens has the app's token put back (or
//   the member removed) before any session sees it. An answer on the request's …/accepted or
//   …/rejected goes only to the requester, at the QoS of its matching subscription or 0 (AWS sends
//   Jobs answers without one), if its rights let it receive it; the request ends.
// - A request unanswered after services.request_timeout ends with a rejected answer the daemon
//   makes (code 504); an answer that comes later, or after its session left, is unrouted.
// - Unrouted inbound messages are counted and logged, rate-limited, with their topic escaped.
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/pipeline.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

namespace thingmux::thing {

bool pipeline::service_request(std::string_view topic) const noexcept {
    return topic.starts_with("$aws/things/") && services::classify_request(settings_.name, topic).has_value();
}

void pipeline::publish_request(const std::shared_ptr<local_session>& s, std::uint32_t request_id, ipc::publish m) {
    const auto& cfg = settings_.services;
    const auto bytes = m.topic.size() + m.payload.size();
    const auto refuse = [&](ipc::errc code, std::string why) {
        ++shared_.counters.refused;
        auto r = fail(code, std::move(why));
        observe(*s, r, bytes);
        s->publish_done(request_id, std::move(r));
    };
    const auto what = services::classify_request(settings_.name, m.topic);
    const auto checked = services::check_request(m.payload);
    if (!checked.problem.empty())
        return refuse(ipc::errc::invalid_payload, std::string(services::to_string(what->kind)) + " request on '" + m.topic +
                                                      "' refused: " + checked.problem +
                                                      " (AWS IoT takes a JSON object with an optional string clientToken "
                                                      "of at most 64 bytes)");
    std::optional<std::string> original;
    if (checked.token)
        original = m.payload.substr(checked.token->value_begin, checked.token->value_end - checked.token->value_begin);
    if (!online()) {
        const bool get = what->kind == services::request_kind::shadow_get;
        if (get && cfg.shadow_cache) {
            if (auto document = shadows_.answer(std::string(what->shadow), original)) {
                // As AWS would: the request is taken, the answer follows on …/get/accepted.
                const auto done = ok(mqtt::reason::success);
                observe(*s, done, bytes);
                s->publish_done(request_id, done);
                deliver_answer(*s, mqtt::publish{.topic = m.topic + "/accepted", .payload = std::move(*document),
                                                 .qos = mqtt::qos::at_most_once});
                return;
            }
        }
        return refuse(ipc::errc::not_connected,
                      "Thing " + settings_.name + " is offline and AWS IoT service requests are not queued (their answer " +
                          "would come too late to matter)" +
                          (get && cfg.shadow_cache ? "; the shadow cache holds no document of this shadow" : ""));
    }
    if (const auto n = requests_.pending(s->flow()); n >= cfg.max_pending_per_session)
        return refuse(ipc::errc::quota_exceeded, std::to_string(n) + " service requests of this session await AWS IoT's answer (limit " +
                                                     std::to_string(cfg.max_pending_per_session) +
                                                     ", services.max_pending_per_session)");
    const auto now = clock_.now();
    auto token = requests_.add({.session = s->flow(), .original = std::move(original), .request_topic = m.topic,
                                .deadline = now + cfg.request_timeout});
    m.payload = services::with_token(m.payload, checked, token);
    ++pending_[s->flow()];
    auto msg = to_mqtt(std::move(m));
    publish_owner owner{.session = s, .flow = s->flow(), .request_id = request_id, .spool_id = 0,
                        .retained = nullptr, .echo = expect_echo(*s, msg), .request_token = std::move(token), .bytes = bytes};
    enqueue({.msg = std::move(msg), .owner = std::move(owner)});
    if (shaper_.queued_total() > 0) release_publishes();
    schedule(clock_.now());  // its deadline
}

bool pipeline::from_service(const mqtt::publish& msg, std::optional<mqtt::publish>& restored) {
    if (!msg.topic.starts_with("$aws/things/")) return false;
    const auto response = services::classify_response(settings_.name, msg.topic);
    const auto token = services::find_daemon_token(msg.payload);
    std::optional<services::pending_request> answered;
    bool ours = false;  // the token is one the daemon gave (pending, or ended lately)
    if (token) {
        std::optional<std::string> original;
        if (const auto* p = requests_.find(token->token)) {
            ours = true;
            original = p->original;
            if (response && response->request == p->request_topic) answered = requests_.take(token->token);
        } else if (const auto* e = requests_.ended(token->token)) {
            ours = true;
            original = *e;
        }
        if (ours) {
            restored.emplace(msg);
            restored->payload = services::restore_token(msg.payload, token->where, original);
        }
    }
    const auto& m = restored ? *restored : msg;
    if (settings_.services.shadow_cache) feed_shadow_cache(m, response);
    if (answered) {
        const auto it = sessions_.find(answered->session);
        if (it == sessions_.end()) {
            count_unrouted(m, "the app that asked is gone");
        } else {
            deliver_answer(*it->second, m);
        }
        return true;
    }
    // Ours on an answer topic but no longer awaited: it came after the 504, or its app left.
    if (ours && response) {
        count_unrouted(m, "an answer to a request that timed out or whose app left");
        return true;
    }
    return false;
}

void pipeline::feed_shadow_cache(const mqtt::publish& m, const std::optional<services::response_topic>& response) {
    if (response) {
        if (!response->accepted) return;
        const std::string shadow(response->what.shadow);
        if (response->what.kind == services::request_kind::shadow_get) shadows_.from_get_accepted(shadow, m.payload);
        if (response->what.kind == services::request_kind::shadow_delete) shadows_.erase(shadow);
        return;
    }
    if (const auto d = services::classify_documents(settings_.name, m.topic)) shadows_.from_documents(std::string(d->shadow), m.payload);
}

void pipeline::deliver_answer(local_session& s, const mqtt::publish& answer) {
    if (!config::allowed(s.rights(), config::action::receive, answer.topic)) {
        ++shared_.counters.denied;
        if (auto note = s.denials().admit(clock_.now()))
            spdlog::warn("{}: the answer on '{}' to its request is not delivered: the app rules do not let it receive that topic{}",
                         logging::escaped(s.describe()), logging::escaped(answer.topic), *note);
        return;
    }
    std::uint8_t qos = 0;  // AWS sends Jobs answers to a session that need not subscribe to them
    std::vector<delivery> matched;
    table_.match(answer.topic, matched);
    for (const auto& d : matched)
        if (d.client == s.flow()) qos = std::min(static_cast<std::uint8_t>(answer.qos), d.max_qos);
    inbound_message m(answer);
    if (s.deliver(m, qos)) ++shared_.counters.deliveries;
}

void pipeline::expire_requests() {
    if (!requests_.next_deadline()) return;
    const auto expired = requests_.expire(clock_.now());
    if (expired.empty()) return;
    const auto unix_now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    for (const auto& e : expired) {
        ++service_timeouts_;
        const auto it = sessions_.find(e.request.session);
        if (it == sessions_.end()) continue;
        deliver_answer(*it->second,
                       mqtt::publish{.topic = e.request.request_topic + "/rejected",
                                     .payload = services::timeout_payload(settings_.services.request_timeout, unix_now,
                                                                          e.request.original),
                                     .qos = mqtt::qos::at_most_once});
    }
}

void pipeline::count_unrouted(const mqtt::publish& msg, std::string_view why) {
    ++shared_.counters.unrouted;
    if (auto note = unrouted_log_.admit(clock_.now()))
        spdlog::warn("thing {}: a message from the broker on '{}' ({} bytes) went to no app: {}{}", settings_.name,
                     logging::escaped(msg.topic), msg.payload.size(), why, *note);
}

}  // namespace thingmux::thing
