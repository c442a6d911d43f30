#include "daemon/thing/retained_recipients.hpp"

#include "common/topic.hpp"

#include <algorithm>
#include <iterator>

namespace thingmux::thing {

void retained_recipients::join(std::string_view upstream_filter, session_id client) {
    auto it = groups_.find(upstream_filter);
    if (it == groups_.end()) it = groups_.emplace(std::string(upstream_filter), group{}).first;
    it->second.clients.insert(client);
}

void retained_recipients::sent(std::string_view upstream_filter) {
    sent_.insert_or_assign(std::string(upstream_filter), ++events_);
}

void retained_recipients::granted(std::string_view upstream_filter) {
    std::uint64_t went = 0;
    if (const auto s = sent_.find(upstream_filter); s != sent_.end()) {
        went = s->second;
        sent_.erase(s);
    }
    // Groups granted before this SUBSCRIBE went out have had all their retained messages.
    std::erase_if(groups_, [&](const auto& g) {
        return g.first != upstream_filter && g.second.granted != 0 && g.second.granted < went &&
               overlap(g.first, upstream_filter);
    });
    if (const auto it = groups_.find(upstream_filter); it != groups_.end()) it->second.granted = ++events_;
}

void retained_recipients::drop(std::string_view upstream_filter) {
    if (const auto it = groups_.find(upstream_filter); it != groups_.end()) groups_.erase(it);
    if (const auto it = sent_.find(upstream_filter); it != sent_.end()) sent_.erase(it);
}

void retained_recipients::forget(session_id client) {
    for (auto it = groups_.begin(); it != groups_.end();) {
        it->second.clients.erase(client);
        it = it->second.clients.empty() ? groups_.erase(it) : std::next(it);
    }
}

void retained_recipients::reset() noexcept {
    // A SUBSCRIBE not answered yet is sent again on the next connection and answered there.
    std::erase_if(groups_, [](const auto& g) { return g.second.granted != 0; });
    sent_.clear();
}

bool retained_recipients::awaits(session_id client, std::string_view topic) const {
    return std::any_of(groups_.begin(), groups_.end(), [&](const auto& g) {
        return g.second.clients.contains(client) && topic::matches(g.first, topic);
    });
}

}  // namespace thingmux::thing
