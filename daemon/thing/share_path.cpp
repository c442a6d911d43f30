// Shared subscriptions of a Thing's pipeline ("$share/NAME/FILTER", MQTT 5 section 4.8.2): each
// message matching a group's filter goes to exactly one of its members, next to every plain
// subscriber. Members take turns (round robin); a member that cannot take a message (deliver()
// false: cut off, gone, a kept session that keeps no QoS 0) is skipped for the next one; a
// member whose app is away (connected() false: a kept session) gets one only when no member
// that is there takes it. A message no member can take is dropped, counted and logged. What a
// member took and its app never acknowledged goes to the other members when its session ends.
#include "daemon/thing/pipeline.hpp"

#include <spdlog/spdlog.h>

namespace thingmux::thing {

bool pipeline::deliver_shared(session_id group, inbound_message& m) {
    const auto* g = groups_.find(group);
    if (g == nullptr) return false;
    const auto msg_qos = static_cast<std::uint8_t>(m.msg.qos);
    std::size_t refused_rights = 0;
    const std::string share = g->share;  // a member that cannot take it may end, and its group with it
    m.share = share;
    const auto taker = groups_.offer(group, [&](const share_groups::member& member, bool present) {
        const auto it = sessions_.find(member.session);
        if (it == sessions_.end() || it->second->connected() != present) return false;
        auto& s = *it->second;
        if (!config::allowed(s.rights(), config::action::receive, m.msg.topic)) {
            ++refused_rights;
            return false;
        }
        return s.deliver(m, std::min(msg_qos, member.max_qos));
    });
    m.share = {};
    shared_.counters.denied += refused_rights;
    if (taker) {
        ++shared_.counters.deliveries;
        return true;
    }
    ++shared_dropped_;
    if (auto note = shared_drop_log_.admit(clock_.now()))
        spdlog::warn("thing {}: a message on '{}' for shared subscription '{}' is dropped: no member could take it "
                     "(cut off, not allowed to receive it, or away and the message is QoS 0){}",
                     settings_.name, logging::escaped(m.msg.topic), logging::escaped(share), *note);
    return false;
}

void pipeline::hand_on(std::vector<shared_leftover> leftovers) {
    for (auto& l : leftovers) {
        if (const auto group = groups_.group_of(l.share)) {
            inbound_message m(l.msg);
            deliver_shared(*group, m);  // which counts and logs it if no member takes it
            continue;
        }
        ++shared_dropped_;
        if (auto note = shared_drop_log_.admit(clock_.now()))
            spdlog::warn("thing {}: a message on '{}' that a member of shared subscription '{}' never acknowledged "
                         "is dropped: the group has no other member{}",
                         settings_.name, logging::escaped(l.msg.topic), logging::escaped(l.share), *note);
    }
}

void pipeline::release_groups(const std::vector<share_groups::left>& left) {
    for (const auto& l : left) {
        if (!l.emptied) continue;
        (local_only(l.filter) ? local_table_ : table_).remove(l.group, l.filter);
    }
}

}  // namespace thingmux::thing
