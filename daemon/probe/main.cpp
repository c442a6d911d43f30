// thingmux-probe: checks that this device can hold its Thing's MQTT session. Connects with the
// Thing's certificate, subscribes to a topic, publishes numbered messages to it and waits until
// every one is acknowledged by the broker and received back. The settings come from options, or
// from thingmuxd's configuration file (--config), built the way the daemon builds them.
#include "config/config.hpp"
#include "daemon/app.hpp"
#include "daemon/uplink/uplink.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <set>

namespace asio = boost::asio;
using namespace thingmux;

int main(int argc, char** argv) {
    CLI::App app{"thingmux-probe: connect to the MQTT broker as a Thing over mTLS, subscribe, publish numbered\n"
                 "messages and check that every one is acknowledged and received back."};
    uplink::uplink_config cfg;
    std::string protocol = "mqtt5";
    std::string topic;
    unsigned count = 10;
    int qos = 1;
    unsigned timeout_s = 30;
    unsigned keep_alive = 60;
    bool retry = false;
    std::string proxy_url;
    std::filesystem::path proxy_credentials, proxy_ca;
    uplink::custom_authorizer_files authorizer;
    app.add_option("--host", cfg.host, "Broker host name (certificate must match it); required without --config");
    app.add_option("--port", cfg.port, "Broker port (443 uses ALPN x-amzn-mqtt-ca)")->capture_default_str();
    app.add_option("--thing", cfg.thing_name,
                   "Thing name; also the client ID unless --client-id is given. With --config: which Thing of the file "
                   "[default: the first]");
    app.add_option("--client-id", cfg.session.client_id, "MQTT client ID (default: the Thing name)");
    app.add_option("--ca", cfg.tls.ca_file, "CA bundle that signed the broker certificate (PEM); required without --config");
    app.add_option("--cert", cfg.tls.cert_file, "Thing certificate (PEM); optional with --authorizer");
    app.add_option("--key", cfg.tls.key_file, "Thing private key (PEM); optional with --authorizer");
    app.add_option("--protocol", protocol, "mqtt5 or mqtt311")->check(CLI::IsMember({"mqtt5", "mqtt311"}))->capture_default_str();
    app.add_option("--topic", topic, "Topic to publish to and subscribe to (default: dt/THING/probe)");
    app.add_option("--count", count, "Number of messages")->capture_default_str();
    app.add_option("--qos", qos, "QoS of the messages (0 or 1)")->check(CLI::Range(0, 1))->capture_default_str();
    app.add_option("--keep-alive", keep_alive, "Keep-alive in seconds")->capture_default_str();
    app.add_option("--timeout", timeout_s, "Give up after this many seconds")->capture_default_str();
    app.add_flag("--retry", retry, "Keep retrying after errors a retry cannot fix (bad certificate, not authorized)");
    app.add_option("--proxy", proxy_url, "Go through this HTTP proxy: http://[USER:PASSWORD@]HOST:PORT or https://...");
    app.add_option("--proxy-credentials", proxy_credentials, "File holding USER:PASSWORD for the proxy (Basic)");
    app.add_option("--proxy-ca", proxy_ca, "CA bundle for an https:// proxy's certificate (default: the system's)");
    app.add_option("--authorizer", authorizer.name, "Log in through this AWS IoT custom authorizer (port 443: ALPN mqtt)");
    app.add_option("--token-key-name", authorizer.token_key_name, "The authorizer's token key name (with --token)");
    app.add_option("--token", authorizer.token_file, "File holding the authorizer's token");
    app.add_option("--signature", authorizer.signature_file, "File holding the token's signature (signing authorizers)");
    app.add_option("--username", authorizer.username, "MQTT user name before the authorizer's parameters");
    app.add_option("--password", authorizer.password_file, "File holding the MQTT password for the authorizer");
    std::filesystem::path config_file;
    app.add_option("--config", config_file,
                   "Take the endpoint, port, transport, CA, certificate, key, proxy and login of --thing (default: the "
                   "first Thing) from thingmuxd's configuration file; options given as well override it")
        ->option_text("FILE");
    app.footer(
        "Exit codes: 0 every message acknowledged and received back; 1 timed out after connecting, or the broker "
        "refused messages; 2 needs a configuration change (the message names the file or the broker's reason); "
        "3 could not connect within --timeout for a reason that may pass by itself (network, broker unavailable, "
        "the system clock: a certificate not valid yet or expired by it); 130 interrupted.");
    CLI11_PARSE(app, argc, argv);
    if (config_file.empty()) {
        for (const char* needed : {"--host", "--thing", "--ca"}) {
            if (app.get_option(needed)->count() == 0) {
                std::cerr << "thingmux-probe: " << needed << " is required (unless --config is given)\n";
                return 2;
            }
        }
    } else {
        auto loaded = config::load_file(config_file);
        for (const auto& d : loaded.diagnostics) std::cerr << to_string(d) << '\n';
        if (!loaded.config) {
            std::cerr << "thingmux-probe: " << config_file.string() << ": not usable; fix the errors above\n";
            return 2;
        }
        const auto& things = loaded.config->things;
        auto it = things.begin();
        if (!cfg.thing_name.empty())
            it = std::find_if(things.begin(), things.end(), [&](const config::thing& t) { return t.name == cfg.thing_name; });
        if (it == things.end()) {
            std::cerr << "thingmux-probe: " << config_file.string() << " has no Thing "
                      << (cfg.thing_name.empty() ? std::string() : "'" + cfg.thing_name + "'") << '\n';
            return 2;
        }
        if (cfg.thing_name.empty() && things.size() > 1)
            std::cerr << "thingmux-probe: " << config_file.string() << " has " << things.size()
                      << " Things; probing the first, " << it->name << " (--thing NAME for another)\n";
        // Exactly what the daemon would use, then what the command line overrides.
        auto from_file = setup_of(*it).link;
        from_file.tls.tpm2_tcti = loaded.config->tpm2_tcti;
        const auto given = [&](const char* name) { return app.get_option(name)->count() > 0; };
        if (given("--host")) from_file.host = cfg.host;
        if (given("--port")) from_file.port = cfg.port;
        if (given("--client-id")) from_file.session.client_id = cfg.session.client_id;
        if (given("--ca")) from_file.tls.ca_file = cfg.tls.ca_file;
        if (given("--cert")) from_file.tls.cert_file = cfg.tls.cert_file;
        if (given("--key")) from_file.tls.key_file = cfg.tls.key_file;
        if (!given("--protocol"))
            protocol = from_file.session.version == mqtt::protocol_version::v311 ? "mqtt311" : "mqtt5";
        if (!given("--keep-alive"))
            keep_alive = static_cast<unsigned>(std::chrono::duration_cast<std::chrono::seconds>(from_file.session.keep_alive).count());
        cfg = std::move(from_file);
        if (cfg.session.client_id.empty()) cfg.session.client_id = cfg.thing_name;
        // The broker allows one connection per client ID: this one takes the daemon's over.
        if (!given("--client-id"))
            std::cerr << "thingmux-probe: warning: connecting as client ID '" << cfg.session.client_id
                  << "', the one thingmuxd uses for Thing " << cfg.thing_name
                  << ": while thingmuxd runs, the broker disconnects it when the probe connects, and the probe when "
                     "thingmuxd reconnects (both are kicked off once). Stop it first (systemctl stop thingmuxd), or "
                     "pass --client-id with another ID the Thing's IoT policy allows\n";
    }
    if (config_file.empty() && authorizer.name.empty() && (cfg.tls.cert_file.empty() || cfg.tls.key_file.empty())) {
        std::cerr << "thingmux-probe: --cert and --key are required (unless --authorizer is given)\n";
        return 2;
    }
    if (!authorizer.name.empty()) cfg.custom_authorizer = authorizer;
    const bool alpn_from_file = !config_file.empty() && app.get_option("--port")->count() == 0;
    if (!proxy_url.empty()) {
        auto parsed = proxy::parse_url(proxy_url);
        if (!parsed.value) {
            std::cerr << "thingmux-probe: --proxy " << parsed.problem << '\n';
            return 2;
        }
        cfg.proxy = uplink::proxy_route{.url = std::move(*parsed.value),
                                        .named_by = "--proxy",
                                        .credentials_file = proxy_credentials,
                                        .ca_file = proxy_ca,
                                        .unusable = {}};
    }

    spdlog::set_pattern("%H:%M:%S.%e %^%l%$ %v");
    if (topic.empty()) topic = "dt/" + cfg.thing_name + "/probe";
    cfg.session.version = protocol == "mqtt311" ? mqtt::protocol_version::v311 : mqtt::protocol_version::v5;
    cfg.session.keep_alive = std::chrono::seconds(keep_alive);
    // AWS IoT Core's MQTT-over-443: x-amzn-mqtt-ca for certificates, mqtt for a custom authorizer.
    if (cfg.port == 443 && !alpn_from_file) cfg.tls.alpn = {cfg.custom_authorizer ? "mqtt" : "x-amzn-mqtt-ca"};

    asio::io_context io;
    auto link = uplink::uplink::create(io, cfg);
    std::set<std::string> received;
    unsigned acked = 0, failed = 0, duplicates = 0;
    bool started = false;
    bool ever_connected = false;
    int exit_code = 1;
    const auto t0 = std::chrono::steady_clock::now();

    auto finish = [&](int code) {
        exit_code = code;
        link->stop([&io] { io.stop(); });
    };
    auto check_done = [&] {
        if (received.size() == count && acked + failed == count) finish(failed == 0 ? 0 : 1);
    };

    link->on_state([&](const uplink::state_event& ev) {
        if (ev.state == uplink::link_state::connected) {
            ever_connected = true;
            spdlog::info("connected to {}:{} as {} ({}, session {})", cfg.host, cfg.port, link->config().session.client_id,
                         protocol, ev.session_present ? "resumed" : "new");
        } else if (ev.state == uplink::link_state::connecting) {
            spdlog::info("connecting to {}:{}{}", cfg.host, cfg.port,
                         cfg.proxy ? " through proxy " + uplink::describe(*cfg.proxy) : std::string());
        } else if (ev.fatal && !retry) {
            spdlog::error("{}", ev.reason);
            spdlog::error("giving up: this needs a configuration change (--retry keeps trying)");
            finish(2);
        } else if (ev.state == uplink::link_state::backing_off || ev.state == uplink::link_state::failed) {
            spdlog::error("{}; retrying in {} ms", ev.reason, ev.retry_in.count());
        }
        if (ev.state != uplink::link_state::connected || started) return;
        started = true;
        link->subscribe({{.filter = topic, .max_qos = mqtt::qos::at_least_once}}, [&](const std::vector<std::uint8_t>& codes) {
            if (codes.empty() || codes[0] >= 0x80) {
                spdlog::error("broker refused subscription to {}: {}", topic,
                              codes.empty() ? "no reason" : mqtt::reason_string(codes[0]));
                return finish(2);
            }
            spdlog::info("subscribed to {}; publishing {} message(s) at QoS {}", topic, count, qos);
            for (unsigned i = 1; i <= count; ++i) {
                mqtt::publish p{.topic = topic, .payload = std::to_string(i), .qos = static_cast<mqtt::qos>(qos)};
                link->publish(std::move(p), [&, i](const mqtt::action::publish_done& d) {
                    if (d.error != mqtt::local_error::none || d.reason_code >= 0x80) {
                        ++failed;
                        spdlog::error("message {} not accepted: {}", i,
                                      d.error != mqtt::local_error::none ? mqtt::to_string(d.error) : mqtt::reason_string(d.reason_code));
                    } else {
                        ++acked;
                    }
                    check_done();
                });
            }
        });
    });
    link->on_message([&](const mqtt::publish& m, std::optional<mqtt::inbound_ticket> ticket) {
        if (m.topic == topic && !received.insert(m.payload).second) ++duplicates;
        if (ticket) link->acknowledge(*ticket);
        check_done();
    });

    asio::steady_timer deadline(io, std::chrono::seconds(timeout_s));
    deadline.async_wait([&](boost::system::error_code ec) {
        if (ec) return;
        const auto& last = link->last_event();
        if (!ever_connected) {
            // Never connected: a failure that needs a change (--retry kept trying) or one that
            // may pass by itself, which a script retries later rather than alerting someone.
            spdlog::error("timed out after {} s without connecting; last state: {} {}", timeout_s,
                          uplink::to_string(link->state()), last.reason);
            if (uplink::is_clock_problem(last.error))
                spdlog::error("the system clock decides whether a certificate is valid: once time sync has set it "
                              "(timedatectl shows it), connecting succeeds without a change");
            return finish(last.fatal ? 2 : 3);
        }
        spdlog::error("timed out after {} s: {} of {} received, {} acknowledged; last state: {} {}", timeout_s,
                      received.size(), count, acked, uplink::to_string(link->state()), last.reason);
        finish(1);
    });
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (!ec) finish(130);
    });

    link->start();
    io.run();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "published " << count << ", acknowledged " << acked << ", failed " << failed << ", received "
              << received.size() << ", duplicates " << duplicates << ", in " << static_cast<long>(ms) << " ms\n";
    return exit_code;
}
