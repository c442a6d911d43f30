// thingmuxd's composition root: the configuration, the IPC listener, the hub with one uplink per
// Thing, and signal handling (SIGTERM/SIGINT drain, SIGHUP reload) on one io_context.
#pragma once

#include "config/config.hpp"
#include "daemon/bus/bus.hpp"
#include "daemon/hub/hub.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace thingmux {

struct daemon_options {
    std::filesystem::path config_file = "/etc/thingmux/thingmux.yaml";
    std::optional<config::log_level> log_level;  // overrides log.level of the file
    std::chrono::milliseconds shutdown_grace{5000};  // SIGTERM: time to finish in-flight QoS 1
    std::string version;
    bus::bus_kind bus = bus::bus_kind::system;  // where the D-Bus management interface goes
};

// thingmuxd --check-config: loads and checks the file as the daemon would, prints every problem
// to stderr and a summary to stdout; returns the exit code (0 usable, 1 errors). Run as root, it
// also checks that the daemon's user (`as_user`, default "thingmux") can read every file the
// configuration names (file_access_check.hpp); a default user that does not exist is only
// noted, a named one is an error. Not root: the files are checked as the calling user only.
int check_configuration(const std::filesystem::path& file, const std::optional<std::string>& as_user = std::nullopt);

// What the hub needs to run a configured Thing (uplink settings and a fingerprint of everything
// whose change requires a reconnect, including the contents of the credential files).
[[nodiscard]] hub::thing_setup setup_of(const config::thing& t);

// Runs the daemon until SIGTERM/SIGINT; returns the process exit code. A configuration with
// errors, or a startup failure (socket in use, group missing), is reported and gives 1.
int run_daemon(const daemon_options& options);

}  // namespace thingmux
