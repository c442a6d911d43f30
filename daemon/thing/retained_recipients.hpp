// Which local sessions a retained message from the broker is for.
//
// The broker sends retained messages only in answer to a SUBSCRIBE (with the retain flag set:
// thingmuxd's upstream subscriptions keep Retain As Published 0, so a live message never has
// it). thingmuxd's upstream SUBSCRIBEs serve many local sessions, most of which already hold a
// matching subscription and had those messages: only the sessions whose new subscription waited
// for that SUBSCRIBE are to get them. They join the upstream filter while its SUBSCRIBE is
// unanswered; a retained message whose topic an upstream filter matches goes to its joiners.
//
// A group closes when nothing more can come for it: its filter left upstream or was refused, the
// connection changed after the broker granted it (what the broker sends again after a reconnect
// is for nobody), or the broker granted a later SUBSCRIBE of an overlapping filter (a broker
// answers one connection's packets in order, so every retained message of the earlier SUBSCRIBE
// has arrived by then). Pure: no I/O.
#pragma once

#include "daemon/thing/subscription_table.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

namespace thingmux::thing {

class retained_recipients {
public:
    // `client`'s new subscription gets its retained messages from the broker's answer to the
    // SUBSCRIBE of `upstream_filter`, which the broker has not answered yet.
    void join(std::string_view upstream_filter, session_id client);
    // The SUBSCRIBE of `upstream_filter` went to the broker.
    void sent(std::string_view upstream_filter);
    // The broker granted it: its retained messages follow.
    void granted(std::string_view upstream_filter);
    // It was refused, or left upstream: nothing comes for it any more.
    void drop(std::string_view upstream_filter);
    // The session is gone.
    void forget(session_id client);
    // The connection changed: granted groups close; those still waiting for their SUBACK stay.
    void reset() noexcept;
    // Whether a retained message on `topic` from the broker is for `client`.
    [[nodiscard]] bool awaits(session_id client, std::string_view topic) const;
    [[nodiscard]] bool empty() const noexcept { return groups_.empty(); }

private:
    struct group {
        std::set<session_id> clients;
        std::uint64_t granted = 0;  // when the broker granted it (0: not yet)
    };
    std::map<std::string, group, std::less<>> groups_;        // by upstream filter
    std::map<std::string, std::uint64_t, std::less<>> sent_;  // upstream filter -> when its SUBSCRIBE went
    std::uint64_t events_ = 0;                                // orders sent() and granted()
};

}  // namespace thingmux::thing
