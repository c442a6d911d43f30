// Local topics of a Thing's pipeline (things[].local_topics): messages between the Thing's local
// sessions (MQTT clients, libthingmux apps, D-Bus callers) that never go to the broker, under the
// same app rules. A filter that only local topics can match is held in a table of its own and
// never subscribed upstream; a wider filter (say "#") is held upstream as usual and also
// receives the local messages it matches.
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/pipeline.hpp"

#include <algorithm>

namespace thingmux::thing {

bool pipeline::local_only(std::string_view topic_or_filter) const noexcept {
    return std::any_of(settings_.local_topics.begin(), settings_.local_topics.end(),
                       [&](const std::string& local) { return covers(local, topic_or_filter); });
}

std::vector<std::string> pipeline::filters_of(session_id id) const {
    auto all = table_.client_filters(id);
    for (auto& f : local_table_.client_filters(id)) all.push_back(std::move(f));
    for (auto& f : groups_.shares_of(id)) all.push_back(std::move(f));
    std::sort(all.begin(), all.end());
    return all;
}

std::size_t pipeline::route(const mqtt::publish& msg, std::initializer_list<const subscription_table*> tables) {
    match_scratch_.clear();
    for (const auto* t : tables) t->match(msg.topic, match_scratch_);
    if (tables.size() > 1) {
        // A session with matching filters in both tables gets the message once, at the higher QoS.
        std::sort(match_scratch_.begin(), match_scratch_.end(), [](const delivery& a, const delivery& b) {
            return a.client < b.client || (a.client == b.client && a.max_qos > b.max_qos);
        });
        match_scratch_.erase(std::unique(match_scratch_.begin(), match_scratch_.end(),
                                         [](const delivery& a, const delivery& b) { return a.client == b.client; }),
                             match_scratch_.end());
    }
    inbound_message m(msg);
    std::size_t routed = 0;
    for (const auto& d : match_scratch_) {
        if (share_groups::is_group(d.client)) {
            if (deliver_shared(d.client, m)) ++routed;
            continue;
        }
        auto it = sessions_.find(d.client);
        if (it == sessions_.end()) continue;
        auto& s = *it->second;
        if (!config::allowed(s.rights(), config::action::receive, msg.topic)) {
            ++shared_.counters.denied;
            continue;
        }
        ++routed;
        if (s.deliver(m, std::min(static_cast<std::uint8_t>(msg.qos), d.max_qos))) ++shared_.counters.deliveries;
    }
    return routed;
}

void pipeline::publish_locally(const std::shared_ptr<local_session>& s, std::uint32_t request_id, ipc::publish m) {
    const auto msg = to_mqtt(std::move(m));
    // Done once every session it matched has it; MQTT 5's "no matching subscribers" otherwise.
    const auto routed = route(msg, {&table_, &local_table_});
    if (routed == 0) ++shared_.counters.unrouted;
    s->publish_done(request_id, ok(routed > 0 ? mqtt::reason::success : mqtt::reason::no_matching_subscribers));
}

}  // namespace thingmux::thing
