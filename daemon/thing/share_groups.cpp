#include "daemon/thing/share_groups.hpp"

#include "common/topic.hpp"

#include <algorithm>

namespace thingmux::thing {

namespace {
constexpr std::uint64_t group_base = std::uint64_t{1} << 62U;
}  // namespace

std::string_view filter_of(std::string_view subscription) noexcept {
    const auto shared = topic::split_shared(subscription);
    return shared ? shared->filter : subscription;
}

share_groups::joined share_groups::join(session_id session, std::string_view share, std::uint8_t max_qos) {
    joined out;
    if (const auto known = by_share_.find(share); known != by_share_.end()) {
        out.group = known->second;
    } else {
        out.group = session_id{group_base + next_id_++};
        out.created = true;
        groups_.emplace(
            out.group,
            share_group{
                .share = std::string(share), .filter = std::string(filter_of(share)), .members = {}, .next = 0});
        by_share_.emplace(std::string(share), out.group);
    }
    auto& members = groups_.at(out.group).members;
    const auto m = std::find_if(members.begin(), members.end(), [&](const member& x) { return x.session == session; });
    if (m != members.end()) {
        m->max_qos = max_qos;  // subscribing again only changes the QoS
        return out;
    }
    members.push_back({session, max_qos});
    by_session_[session].emplace(std::string(share), out.group);
    return out;
}

std::optional<share_groups::left> share_groups::leave(session_id session, std::string_view share) {
    const auto s = by_session_.find(session);
    if (s == by_session_.end()) return std::nullopt;
    const auto entry = s->second.find(share);
    if (entry == s->second.end()) return std::nullopt;
    const auto id = entry->second;
    s->second.erase(entry);
    if (s->second.empty()) by_session_.erase(s);
    auto g = groups_.find(id);
    left out{.group = id, .filter = g->second.filter, .emptied = false};
    auto& members = g->second.members;
    const auto at = static_cast<std::size_t>(
        std::find_if(members.begin(), members.end(), [&](const member& x) { return x.session == session; }) -
        members.begin());
    members.erase(members.begin() + static_cast<std::ptrdiff_t>(at));
    // The member whose turn came next keeps it.
    if (at < g->second.next) --g->second.next;
    if (!members.empty()) {
        g->second.next %= members.size();
        return out;
    }
    by_share_.erase(g->second.share);
    groups_.erase(g);
    out.emptied = true;
    return out;
}

std::vector<share_groups::left> share_groups::leave_all(session_id session) {
    std::vector<left> out;
    for (const auto& share : shares_of(session)) {
        if (auto l = leave(session, share)) out.push_back(std::move(*l));
    }
    return out;
}

std::vector<session_id> share_groups::dissolve(session_id group) {
    std::vector<session_id> out;
    const auto g = groups_.find(group);
    if (g == groups_.end()) return out;
    for (const auto& m : g->second.members) {
        out.push_back(m.session);
        if (const auto s = by_session_.find(m.session); s != by_session_.end()) {
            s->second.erase(g->second.share);
            if (s->second.empty()) by_session_.erase(s);
        }
    }
    by_share_.erase(g->second.share);
    groups_.erase(g);
    return out;
}

const share_groups::share_group* share_groups::find(session_id group) const {
    const auto g = groups_.find(group);
    return g == groups_.end() ? nullptr : &g->second;
}

std::optional<session_id> share_groups::group_of(std::string_view share) const {
    const auto g = by_share_.find(share);
    return g == by_share_.end() ? std::nullopt : std::optional<session_id>{g->second};
}

bool share_groups::is_member(session_id session, std::string_view share) const {
    const auto s = by_session_.find(session);
    return s != by_session_.end() && s->second.contains(share);
}

std::size_t share_groups::memberships(session_id session) const {
    const auto s = by_session_.find(session);
    return s == by_session_.end() ? 0 : s->second.size();
}

std::vector<std::string> share_groups::shares_of(session_id session) const {
    std::vector<std::string> out;
    if (const auto s = by_session_.find(session); s != by_session_.end()) {
        for (const auto& [share, id] : s->second) out.push_back(share);
    }
    return out;
}

}  // namespace thingmux::thing
