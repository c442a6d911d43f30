// The snapshot a scrape shows: the hub's Things, apps and counters, the per-app counters and the
// link failures counted since start, written as OpenMetrics or Prometheus text
// (openmetrics.hpp). Every metric is listed in docs/metrics.md.
#pragma once

#include "config/config.hpp"
#include "daemon/hub/hub.hpp"
#include "daemon/metrics/app_counters.hpp"
#include "daemon/metrics/openmetrics.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace thingmux::metrics {

class collector {
public:
    using config_source = std::function<std::shared_ptr<const config::configuration>()>;

    // `version`: thingmuxd's, for thingmux_build_info. Registers itself with the hub: give it
    // before the hub's first apply() (the pipelines take the per-app observer then).
    collector(hub::hub& h, std::string version, config_source config);
    collector(const collector&) = delete;
    collector& operator=(const collector&) = delete;

    // The text of a scrape; `thing` non-empty: only that Thing's series (and the daemon's own).
    [[nodiscard]] std::string scrape(format f, std::string_view thing = {}) const;

    [[nodiscard]] const app_counters& apps() const noexcept { return apps_; }

private:
    void on_link(const std::string& thing, const uplink::state_event& ev);

    hub::hub& hub_;
    std::string version_;
    config_source config_;
    app_counters apps_;
    // Link failures by (Thing, reason); the reason from link_failure_reasons.
    std::map<std::pair<std::string, std::string_view>, std::uint64_t> link_failures_;
};

}  // namespace thingmux::metrics
