// thingmuxd: holds one mTLS MQTT session per Thing and shares it with local applications.
#include "daemon/app.hpp"
#include "daemon/logging.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#ifndef THINGMUX_VERSION
#define THINGMUX_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
    using namespace thingmux;
#if defined(__GLIBC__)
    // All work runs on one thread (docs/architecture.md). The only other one is Asio's resolver
    // thread, which calls getaddrinfo() while an uplink connects: an arena of its own would keep
    // its pages for the daemon's lifetime for a handful of allocations, where sharing the main
    // arena costs an uncontended lock.
    ::mallopt(M_ARENA_MAX, 1);
#endif
    CLI::App app{"thingmuxd " THINGMUX_VERSION ": holds one mTLS MQTT session per AWS IoT Thing and shares it with every\n"
                 "local application (libthingmux, thingmuxctl) over a Unix socket. Everything it does is set in its\n"
                 "configuration file (docs/config.md). Signals: SIGHUP reloads the file, SIGTERM stops gracefully."};
    daemon_options options;
    options.version = THINGMUX_VERSION;
    std::string level;
    bool version = false;
    bool check = false;
    app.add_flag("--version", version, "Print the version and exit");
    app.add_option("-c,--config", options.config_file, "Configuration file")->capture_default_str();
    app.add_flag("--check-config", check,
                 "Check the configuration file (syntax, values, readable certificate and key files) and exit: "
                 "0 when usable, 1 when not; every problem is printed as FILE:LINE:COLUMN");
    std::string as_user;
    app.add_option("--as-user", as_user,
                   "With --check-config run as root: the user thingmuxd runs as, whose access to every key, "
                   "certificate, CA and password file is checked by opening it as that user [default: thingmux]")
        ->option_text("USER");
    std::string bus = "system";
    app.add_option("--bus", bus,
                   "Where the D-Bus management interface goes: system (DBUS_SYSTEM_BUS_ADDRESS if set), user, or none")
        ->check(CLI::IsMember({"system", "user", "none"}))
        ->capture_default_str();
    app.add_option("--log-level", level, "Override log.level: trace, debug, info, warn, error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
    CLI11_PARSE(app, argc, argv);
    if (version) {
        std::cout << "thingmuxd " THINGMUX_VERSION "\n";
        return 0;
    }
    if (check)
        return check_configuration(options.config_file, as_user.empty() ? std::nullopt : std::optional(as_user));
    if (!level.empty()) {
        const config::log_level levels[] = {config::log_level::trace, config::log_level::debug, config::log_level::info,
                                            config::log_level::warn, config::log_level::error};
        for (auto l : levels) {
            if (level == config::to_string(l)) options.log_level = l;
        }
    }
    options.bus = bus == "user" ? bus::bus_kind::user : bus == "none" ? bus::bus_kind::none : bus::bus_kind::system;
    // Until the configuration says otherwise: the journal under systemd (so that errors in the
    // file are logged with their priority), else stderr.
    logging::setup(config::log_target::automatic);
    return run_daemon(options);
}
