// Shapes the SUBSCRIBE and UNSUBSCRIBE traffic of one broker connection and shares it fairly
// among local apps.
//
// AWS IoT Core counts subscriptions per second (each topic filter of a SUBSCRIBE counts), and
// every filter an app adds or drops upstream is work for the broker: one app churning filters
// must neither spend the quota nor hold up the other apps' subscriptions. Each filter that has to
// go upstream (the SUBSCRIBE for its first local holder, the UNSUBSCRIBE after its last) costs
// one token of the connection's filter budget, and the apps take turns (publish_shaper's deficit
// round robin, one filter per turn).
//
// At most one operation per filter waits at any time, so the SUBSCRIBE and UNSUBSCRIBE of one
// filter can never overtake each other even when different apps queued them: a SUBSCRIBE still
// waiting when the filter's last holder leaves is withdrawn (nothing goes upstream, unless the
// broker still has the filter: then the UNSUBSCRIBE takes its place), and an UNSUBSCRIBE still
// waiting when a new holder comes is replaced by the new SUBSCRIBE.
//
// Pure: time is passed in, as for publish_shaper.
#pragma once

#include "daemon/thing/shaper.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace thingmux::thing {

class subscription_shaper {
public:
    using clock = std::chrono::steady_clock;

    enum class kind : std::uint8_t { subscribe, unsubscribe };

    struct operation {
        kind what = kind::subscribe;
        std::string filter;
    };

    // `filters_per_second`: nullopt for unlimited, else > 0. The burst is a tenth of a second's
    // worth, at least one filter (as for publishes).
    subscription_shaper(std::optional<std::uint32_t> filters_per_second, clock::time_point now);

    // Configuration reload: waiting operations and the turn order are kept.
    void set_rate(std::optional<std::uint32_t> filters_per_second, clock::time_point now);

    // Queues the SUBSCRIBE of `filter` in `client`'s turn. An UNSUBSCRIBE of it still waiting is
    // withdrawn: the broker still holds the filter, and the SUBSCRIBE takes its place.
    void subscribe(session_id client, const std::string& filter);
    // Queues the UNSUBSCRIBE of `filter` in `client`'s turn and returns true; when the filter's
    // SUBSCRIBE is still waiting and the broker never had the filter, withdraws it instead and
    // returns false.
    bool unsubscribe(session_id client, const std::string& filter);

    // The next operation the budget allows at `now`; nullopt when none waits or the budget needs
    // time first (see next_ready()).
    [[nodiscard]] std::optional<operation> pop(clock::time_point now);
    // nullopt when nothing waits; otherwise how long after `now` pop() will succeed.
    [[nodiscard]] std::optional<clock::duration> next_ready(clock::time_point now) const;

    // The operation waiting for `filter`, if any.
    [[nodiscard]] std::optional<kind> waiting(std::string_view filter) const;
    // Operations waiting in `client`'s turn.
    [[nodiscard]] std::size_t queued(session_id client) const { return queue_.queued(client); }
    [[nodiscard]] std::size_t queued_total() const noexcept { return queue_.queued_total(); }
    // Filters whose UNSUBSCRIBE waits: the broker still counts them against the connection's quota.
    [[nodiscard]] std::size_t queued_unsubscribes() const noexcept { return unsubscribes_; }

private:
    struct pending {
        session_id client;
        kind what;
        bool held_upstream = false;  // a SUBSCRIBE that replaced an UNSUBSCRIBE: the broker has the filter
    };

    void withdraw(std::map<std::string, pending, std::less<>>::iterator it);

    publish_shaper<operation> queue_;
    std::map<std::string, pending, std::less<>> waiting_;  // one entry per operation in queue_
    std::size_t unsubscribes_ = 0;
};

}  // namespace thingmux::thing
