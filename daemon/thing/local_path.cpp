// Local topics of a Thing's pipeline (things[].local_topics): messages between the Thing's local
// sessions (MQTT clients, libthingmux apps, D-Bus callers) that never go to the broker, under the
// same app rules. A filter that only local topics can match is held in a table of its own and
// never subscribed upstream; a wider filter (say "#") is held upstream as usual and also
// receives the local messages it matches. "$thingmux/..." topics are local too (no wildcard
// filter of an app's reaches them: '#' and '+' never match a '$' topic's first level), and only
// thingmuxd's services send on them (deliver_local()).
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/pipeline.hpp"

#include <algorithm>

namespace thingmux::thing {

bool is_daemon_topic(std::string_view topic_or_filter) noexcept {
    return topic_or_filter.starts_with(daemon_topic_prefix) || topic_or_filter == "$thingmux";
}

bool pipeline::local_only(std::string_view topic_or_filter) const noexcept {
    if (is_daemon_topic(topic_or_filter)) return true;
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

std::size_t pipeline::route(const mqtt::publish& msg, std::initializer_list<const subscription_table*> tables,
                            routing how) {
    // A delivery may run route() again (a session cut off in deliver() ends and its will goes to
    // a local topic): this call works on its own vector, which keeps the scratch's capacity.
    std::vector<delivery> matches;
    matches.swap(match_scratch_);
    matches.clear();
    for (const auto* t : tables) t->match(msg.topic, matches);
    // A session with matching filters in both tables gets the message once.
    if (tables.size() > 1) merge_by_client(matches);
    struct give_back {
        std::vector<delivery>& from;
        std::vector<delivery>& to;
        ~give_back() {
            if (to.capacity() < from.capacity()) to.swap(from);
        }
    } keep_capacity{matches, match_scratch_};
    inbound_message m(msg);
    // A live message keeps its retain flag only for Retain As Published subscriptions.
    std::optional<mqtt::publish> unretained;
    std::optional<inbound_message> live;
    std::size_t routed = 0;
    for (const auto& d : matches) {
        if (how.publisher && d.no_local && d.client == *how.publisher) continue;
        if (how.subscribe_answer && !retained_recipients_.awaits(d.client, msg.topic)) continue;
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
        auto* target = &m;
        if (msg.retain && !how.subscribe_answer && !d.retain_as_published) {
            if (!live) {
                unretained.emplace(msg);
                unretained->retain = false;
                live.emplace(*unretained);
            }
            target = &*live;
        }
        if (s.deliver(*target, std::min(static_cast<std::uint8_t>(msg.qos), d.max_qos))) ++shared_.counters.deliveries;
    }
    return routed;
}

std::size_t pipeline::deliver_local(std::string topic, std::string payload) {
    const mqtt::publish msg{.topic = std::move(topic), .payload = std::move(payload), .qos = mqtt::qos::at_least_once};
    return route(msg, {&local_table_});
}

bool pipeline::has_local_subscriber(std::string_view topic) const {
    std::vector<delivery> matches;
    local_table_.match(topic, matches);
    return std::any_of(matches.begin(), matches.end(), [&](const delivery& d) {
        const auto it = sessions_.find(d.client);
        return it != sessions_.end() && config::allowed(it->second->rights(), config::action::receive, topic);
    });
}

std::vector<std::string> pipeline::local_filters(std::string_view prefix) const {
    auto all = local_table_.filters();
    std::erase_if(all, [&](const std::string& f) { return !f.starts_with(prefix); });
    return all;
}

void pipeline::publish_locally(const std::shared_ptr<local_session>& s, std::uint32_t request_id, ipc::publish m) {
    const auto bytes = m.topic.size() + m.payload.size();
    const auto msg = to_mqtt(std::move(m));
    if (msg.retain) retained_.put(msg, clock_.now());
    // Done once every session it matched has it; MQTT 5's "no matching subscribers" otherwise.
    const auto routed = route(msg, {&table_, &local_table_}, {.publisher = s->flow(), .subscribe_answer = false});
    if (routed == 0) ++shared_.counters.unrouted;
    const auto done = ok(routed > 0 ? mqtt::reason::success : mqtt::reason::no_matching_subscribers);
    observe(*s, done, bytes);
    s->publish_done(request_id, done);
}

}  // namespace thingmux::thing
