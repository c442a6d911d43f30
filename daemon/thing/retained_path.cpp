// Retained messages and No Local in a Thing's pipeline.
//
// - The retained cache (retained_cache.hpp) is fed by the broker's retained messages, by the
//   retained publishes of local sessions once the broker acknowledged them or the spool took
//   them, and by retained publishes on local topics as they are routed. A message from the broker
//   without the retain flag that differs from the cached one on its topic deletes the entry: the
//   broker clears the flag of live messages (Retain As Published 0 upstream), so it may be a
//   retained message that replaced the cached one.
// - A new local subscription is served retained messages once, after its answer, as its Retain
//   Handling says: by the broker when its SUBSCRIBE brings them (an upstream filter serving it is
//   not acknowledged yet: the session joins it, retained_recipients.hpp), else from the cache.
// - The broker's retained messages go only to the sessions that joined; everyone else holds a
//   subscription that had them already.
// - No Local: a local topic's publish is never routed back to its publisher's No Local
//   subscriptions; an upstream one's echo is recognized by echo_table.hpp.
#include "common/topic.hpp"
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/pipeline.hpp"

#include <algorithm>

namespace thingmux::thing {

std::shared_ptr<const mqtt::publish> pipeline::retained_copy(const mqtt::publish& m) {
    // AWS IoT Core keeps no retained messages on its reserved topics.
    if (!m.retain || m.topic.starts_with("$aws/")) return nullptr;
    return std::make_shared<const mqtt::publish>(m);
}

void pipeline::spooled_by(local_session& s, const ipc::publish& m) {
    if (!m.retain && !no_local_sessions_.contains(s.flow())) return;
    const auto msg = to_mqtt(ipc::publish(m));
    if (const auto r = retained_copy(msg)) retained_.put(*r, clock_.now());
    // The broker sends it back when the spool hands it over: an echo like any other.
    (void)expect_echo(s, msg);
}

std::uint64_t pipeline::expect_echo(local_session& s, const mqtt::publish& m) {
    const auto flow = s.flow();
    if (!no_local_sessions_.contains(flow)) return 0;
    std::vector<delivery> matched;
    table_.match(m.topic, matched);
    const auto own = std::find_if(matched.begin(), matched.end(), [&](const delivery& d) { return d.client == flow; });
    if (own == matched.end() || !own->no_local) return 0;
    const auto content = content_fingerprint(m);
    echoes_.expect(flow, content);
    return content;
}

void pipeline::from_broker(const mqtt::publish& msg) {
    // Local topics are the Thing's own: what the broker says about them is not their state.
    const bool local = local_only(msg.topic);
    if (msg.retain) {
        // The broker's answer to a SUBSCRIBE: for the sessions whose subscription waited for it.
        if (!local) retained_.put(msg, clock_.now());
        if (!retained_recipients_.empty()) route(msg, {&table_}, {.publisher = std::nullopt, .subscribe_answer = true});
        return;
    }
    if (!local) retained_.forget_if_different(msg);
    // An answer to a local request goes to its requester only; the daemon's tokens never reach an app.
    std::optional<mqtt::publish> restored;
    if (from_service(msg, restored)) return;
    routing how;
    // The echo of a request went out with the daemon's token: it is recognized by what the broker sent.
    if (!echoes_.empty()) how.publisher = echoes_.take(content_fingerprint(msg));
    const auto& m = restored ? *restored : msg;
    if (route(m, {&table_}, how) == 0) count_unrouted(m, "no local subscription matches it");
}

void pipeline::wants_retained(subscribe_request& req, std::size_t index, session_id flow, const std::string& filter) {
    // A shared subscription gets no retained messages (as at mosquitto and in MQTT 5).
    if (topic::is_shared(filter)) return;
    if (local_only(filter)) {
        req.from_cache.emplace_back(index, filter);
        return;
    }
    // The broker sends retained messages once it answers a SUBSCRIBE; for a filter that only
    // acknowledged upstream filters serve, it sends none.
    const auto awaited = table_.awaiting_suback(filter);
    if (awaited.empty()) req.from_cache.emplace_back(index, filter);
    for (const auto& u : awaited) retained_recipients_.join(u, flow);
}

void pipeline::serve_retained(local_session& s, const std::vector<std::pair<std::string, std::uint8_t>>& filters) {
    const auto flow = s.flow();
    std::set<std::string, std::less<>> served;  // each topic once, whichever of the filters matches it
    for (const auto& [filter, qos] : filters) {
        if (!(local_only(filter) ? local_table_ : table_).holds(flow, filter)) continue;  // unsubscribed meanwhile
        for (const auto& msg : retained_.matching(filter, clock_.now())) {
            if (!served.insert(msg.topic).second) continue;
            if (!config::allowed(s.rights(), config::action::receive, msg.topic)) {
                ++shared_.counters.denied;
                continue;
            }
            inbound_message m(msg);
            if (s.deliver(m, std::min(static_cast<std::uint8_t>(msg.qos), qos))) ++shared_.counters.deliveries;
        }
    }
}

void pipeline::finish(subscribe_request& req) {
    // The answer first, then the retained messages, as a broker sends them.
    std::vector<std::pair<std::string, std::uint8_t>> serve;
    for (auto& [index, filter] : req.from_cache) {
        const auto& r = req.results[index];
        if (ipc::accepted(r.code)) serve.emplace_back(std::move(filter), r.mqtt_reason_code);
    }
    req.owner->subscribe_done(req.request_id, std::move(req.results));
    if (!serve.empty()) serve_retained(*req.owner, serve);
}

}  // namespace thingmux::thing
