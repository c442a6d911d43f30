// thingmuxctl metrics: prints thingmuxd's metrics, read from its metrics socket (docs/metrics.md).
#pragma once

#include "commands.hpp"

#include <string>

namespace thingmux::ctl {

struct metrics_options {
    std::string format = "openmetrics";  // or "prometheus" (text format 0.0.4, node_exporter's textfile collector)
    std::string socket;  // empty: $THINGMUX_METRICS_SOCKET, else metrics.sock next to the IPC socket
    double timeout_s = 10;
};

// The socket `thingmuxctl metrics` reads, and where that choice came from (for messages).
[[nodiscard]] std::string metrics_socket_path(const common_options& common, const metrics_options& m, std::string* origin = nullptr);

[[nodiscard]] int run_metrics(const common_options& common, const metrics_options& m);

}  // namespace thingmux::ctl
