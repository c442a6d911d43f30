// The shared subscriptions of a Thing's local sessions ("$share/NAME/FILTER", MQTT 5 section
// 4.8.2; MQTT 3.1.1 clients use the same form): the groups, their members and whose turn it is.
//
// A group is one share name on one filter. To the subscription table it is one holder of its
// filter, under an id of its own (is_group()): a message matching the filter reaches the group
// once, and the pipeline hands it to one member, taking turns (offer()). So N members of a group
// on "cmd/#", next to plain subscribers of "cmd/#", still make one upstream subscription. Pure:
// no I/O.
#pragma once

#include "daemon/thing/subscription_table.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::thing {

// The filter a subscription matches topics with: FILTER of "$share/NAME/FILTER", else itself.
[[nodiscard]] std::string_view filter_of(std::string_view subscription) noexcept;

class share_groups {
public:
    struct member {
        session_id session;
        std::uint8_t max_qos = 0;
    };
    struct share_group {
        std::string share;            // "$share/NAME/FILTER", as the members subscribed
        std::string filter;           // FILTER: what the subscription table holds for the group
        std::vector<member> members;  // in the order they joined
        std::size_t next = 0;         // whose turn it is
    };

    // Group ids, as subscription table holders, never meet session ids: those count from 0 (the
    // daemon's clients) or down from the top (the pipeline's own flows).
    [[nodiscard]] static bool is_group(session_id id) noexcept { return (id.value >> 62U) == 1; }

    struct joined {
        session_id group;
        bool created = false;  // the first member: the group must start holding its filter
    };
    // `session` joins the group of `share` (a valid shared subscription), or changes its QoS there.
    joined join(session_id session, std::string_view share, std::uint8_t max_qos);
    struct left {
        session_id group;
        std::string filter;
        bool emptied = false;  // the last member left: the group is gone, its filter must be released
    };
    // `session` leaves the group of `share`; nullopt when it was no member.
    std::optional<left> leave(session_id session, std::string_view share);
    // `session` leaves every group (it is gone).
    std::vector<left> leave_all(session_id session);
    // The group is gone with all its members (its filter is no longer served); their ids.
    std::vector<session_id> dissolve(session_id group);

    [[nodiscard]] const share_group* find(session_id group) const;
    [[nodiscard]] std::optional<session_id> group_of(std::string_view share) const;
    [[nodiscard]] bool is_member(session_id session, std::string_view share) const;
    [[nodiscard]] std::size_t memberships(session_id session) const;
    [[nodiscard]] std::vector<std::string> shares_of(session_id session) const;  // sorted
    [[nodiscard]] std::size_t group_count() const noexcept { return groups_.size(); }

    // Offers a message of `group` to its members in turn, from the one whose turn it is:
    // first to each member for which take(m, true) is true (members that are there now), then,
    // if none took it, take(m, false) (members that are away). The turn passes to the member
    // after the one that took it. Returns who took it; nullopt when nobody did. `take` may
    // change the groups (a member that cannot take a message may end): the members are
    // offered as they were when the offer began.
    template <typename Take>
    std::optional<session_id> offer(session_id group, Take&& take);

private:
    std::map<session_id, share_group> groups_;
    std::map<std::string, session_id, std::less<>> by_share_;
    std::map<session_id, std::map<std::string, session_id, std::less<>>> by_session_;  // session -> share -> group
    std::uint64_t next_id_ = 0;
};

template <typename Take>
std::optional<session_id> share_groups::offer(session_id group, Take&& take) {
    const auto it = groups_.find(group);
    if (it == groups_.end() || it->second.members.empty()) return std::nullopt;
    const std::vector<member> members = it->second.members;
    const std::size_t start = it->second.next % members.size();
    for (const bool present : {true, false}) {
        for (std::size_t i = 0; i < members.size(); ++i) {
            const auto& m = members[(start + i) % members.size()];
            if (!take(m, present)) continue;
            // The group (or its order) may have changed meanwhile: the turn passes after `m`
            // if it is still there.
            if (const auto g = groups_.find(group); g != groups_.end() && !g->second.members.empty()) {
                auto& now = g->second.members;
                std::size_t at = 0;
                while (at < now.size() && now[at].session != m.session) ++at;
                g->second.next = at < now.size() ? (at + 1) % now.size() : g->second.next % now.size();
            }
            return m.session;
        }
    }
    return std::nullopt;
}

}  // namespace thingmux::thing
