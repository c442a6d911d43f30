// Per-app counters of the publishes thingmuxd answered, kept beyond the apps' connections: what a
// fleet's scrape shows per app. An app is its Thing, the app rule that applied to it (the first
// in file order; "-" when none did, e.g. a refused peer or thingmuxd's own services), its
// systemd unit and its uid, as the kernel told them.
//
// Cardinality is bounded: at most max_series (app, unit, uid) sets; later ones are counted
// together under unit "other" and uid "other" of their Thing and rule, so that a host starting
// units without end (transient units, one per job) cannot grow the scrape without end. The
// result label takes the fixed names of ipc::errc.
//
// Pure: no I/O, no logging. Called on the daemon's one thread.
#pragma once

#include "daemon/thing/ports.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>

namespace thingmux::metrics {

struct app_key {
    std::string thing;
    std::string app;   // the app rule's name, or "-"
    std::string unit;  // "" when not in a unit; "other" past the cap
    std::string uid;   // decimal; "" when unknown; "other" past the cap
    friend auto operator<=>(const app_key&, const app_key&) = default;
};

struct app_traffic {
    struct by_result {
        std::uint64_t publishes = 0;
        std::uint64_t bytes = 0;  // topic + payload
    };
    std::map<std::string, by_result, std::less<>> results;  // by ipc::errc name
    std::uint64_t throttle_waits = 0;
};

class app_counters final : public thing::publish_observer {
public:
    static constexpr std::size_t default_max_series = 256;
    explicit app_counters(std::size_t max_series = default_max_series) : max_series_(max_series) {}

    // The app an owner and its rights count under (the cap applied).
    [[nodiscard]] app_key key_of(std::string_view thing, const config::grants& rights, const thing::session_owner& owner) const;

    void publish_result(std::string_view thing, const thing::local_session& s, const ipc::result& result,
                        std::size_t bytes) override;
    void throttled(std::string_view thing, const thing::local_session& s) override;

    [[nodiscard]] const std::map<app_key, app_traffic>& all() const noexcept { return apps_; }
    // The (app, unit, uid) sets counted past the cap, under "other".
    [[nodiscard]] std::uint64_t overflowed() const noexcept { return overflowed_; }

private:
    app_traffic& entry(std::string_view thing, const thing::local_session& s);

    // The entry of the session counted last. A session's app does not change while it lives
    // except by a reload (its rule), so a run of its results needs no key built and no lookup.
    // Found by the session and its flow, which no later session reuses (one at the same address
    // has another); D-Bus callers share one flow and are not kept.
    struct last_counted {
        const thing::local_session* session = nullptr;
        thing::session_id flow;
        std::string thing;
        std::string app;
        app_traffic* traffic = nullptr;  // entries of apps_ are never removed
    };
    last_counted last_;

    std::size_t max_series_;
    std::map<app_key, app_traffic> apps_;
    std::size_t own_series_ = 0;  // entries that are not "other"
    std::uint64_t overflowed_ = 0;
};

// The app rule name an app counts under: the first rule that applied, else "-".
[[nodiscard]] std::string app_name_of(const config::grants& rights);

}  // namespace thingmux::metrics
