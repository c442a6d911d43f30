// thingmuxd: holds one mTLS MQTT session per Thing and shares it with local applications.
#include "daemon/app.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#ifndef THINGMUX_VERSION
#define THINGMUX_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
    using namespace thingmux;
    CLI::App app{"thingmuxd " THINGMUX_VERSION ": holds one mTLS MQTT session for a Thing and shares it with every local\n"
                 "application (libthingmux, thingmuxctl) over a Unix socket."};
    daemon_settings s;
    auto& t = s.thing;
    t.port = 8883;
    std::string protocol = "mqtt5";
    std::string level = "info";
    unsigned keep_alive = 60;
    std::string mode = "0660";
    bool version = false;
    app.add_flag("--version", version, "Print the version and exit");
    app.add_option("--thing", t.thing_name, "Thing name (also the MQTT client ID unless --client-id is given)");
    app.add_option("--endpoint", t.host, "Broker host name, e.g. XXXX-ats.iot.eu-west-1.amazonaws.com");
    app.add_option("--port", t.port, "Broker port (443 uses ALPN x-amzn-mqtt-ca)")->capture_default_str();
    app.add_option("--client-id", t.session.client_id, "MQTT client ID (default: the Thing name)");
    app.add_option("--ca", t.tls.ca_file, "CA bundle that signed the broker's certificate (PEM)");
    app.add_option("--cert", t.tls.cert_file, "Thing certificate (PEM)");
    app.add_option("--key", t.tls.key_file, "Thing private key (PEM)");
    app.add_option("--protocol", protocol, "mqtt5 or mqtt311")->check(CLI::IsMember({"mqtt5", "mqtt311"}))->capture_default_str();
    app.add_option("--keep-alive", keep_alive, "MQTT keep-alive in seconds (30..1200 on AWS IoT Core)")
        ->check(CLI::Range(0u, 65535u))->capture_default_str();
    app.add_option("--session-expiry", t.session.session_expiry, "MQTT 5 session expiry in seconds")->capture_default_str();
    app.add_option("--socket", s.socket_path, "IPC socket path")->capture_default_str();
    app.add_option("--socket-mode", mode, "IPC socket permissions (octal)")->capture_default_str();
    app.add_option("--max-client-queue", s.hub.limits.max_queue_bytes,
                   "Bytes queued for one client before it is cut off as too slow")->capture_default_str();
    app.add_option("--log-level", level, "trace, debug, info, warn, error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    if (version) {
        std::cout << "thingmuxd " THINGMUX_VERSION "\n";
        return 0;
    }

    std::vector<std::string> missing;
    for (auto [flag, value] : {std::pair{"--thing", t.thing_name}, {"--endpoint", t.host}, {"--ca", t.tls.ca_file.string()},
                               {"--cert", t.tls.cert_file.string()}, {"--key", t.tls.key_file.string()}}) {
        if (value.empty()) missing.emplace_back(flag);
    }
    if (!missing.empty()) {
        std::string list;
        for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
        std::cerr << "thingmuxd: missing " << list << "; see thingmuxd --help\n";
        return 2;
    }
    try {
        s.socket_mode = static_cast<unsigned>(std::stoul(mode, nullptr, 8));
    } catch (const std::exception&) {
        std::cerr << "thingmuxd: --socket-mode '" << mode << "' is not an octal mode such as 0660\n";
        return 2;
    }
    t.session.version = protocol == "mqtt311" ? mqtt::protocol_version::v311 : mqtt::protocol_version::v5;
    t.session.keep_alive = std::chrono::seconds(keep_alive);
    s.hub.daemon_version = THINGMUX_VERSION;

    spdlog::set_level(spdlog::level::from_str(level));
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    return run_daemon(s);
}
