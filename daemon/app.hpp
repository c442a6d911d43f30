// thingmuxd's composition root: the IPC listener, the hub, the uplink and signal handling on
// one io_context.
#pragma once

#include "daemon/hub/hub.hpp"
#include "daemon/uplink/uplink.hpp"

#include <chrono>
#include <filesystem>

namespace thingmux {

struct daemon_settings {
    uplink::uplink_config thing;
    std::filesystem::path socket_path = "/run/thingmux/thingmux.sock";
    unsigned socket_mode = 0660;
    hub::hub_settings hub;
    std::chrono::milliseconds shutdown_grace{5000};  // SIGTERM: time to finish in-flight QoS 1
};

// Runs the daemon until SIGTERM/SIGINT; returns the process exit code. Startup errors (socket
// in use, directory missing) are logged and give exit code 1.
int run_daemon(const daemon_settings& settings);

}  // namespace thingmux
