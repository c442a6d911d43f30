#include "daemon/app.hpp"

#include "common/printable.hpp"
#include "common/regular_file.hpp"
#include "daemon/aws/websocket_signer.hpp"
#include "daemon/file_access_check.hpp"
#include "daemon/listener.hpp"
#include "daemon/logging.hpp"
#include "daemon/metrics/collector.hpp"
#include "daemon/metrics/http_server.hpp"
#include "daemon/service.hpp"
#include "daemon/tcp_listener.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string_view>
#include <utility>
#include <vector>

namespace thingmux {

namespace asio = boost::asio;

namespace {

spdlog::level::level_enum to_spdlog(config::log_level l) {
    switch (l) {
    case config::log_level::trace: return spdlog::level::trace;
    case config::log_level::debug: return spdlog::level::debug;
    case config::log_level::info: return spdlog::level::info;
    case config::log_level::warn: return spdlog::level::warn;
    case config::log_level::error: return spdlog::level::err;
    }
    return spdlog::level::info;
}

// A hash of a file's contents (empty if unusable): tells a rotated certificate from the old one.
std::string content_hash(const std::filesystem::path& file) {
    const auto c = files::read_regular(file, files::max_credential_bytes);
    return c.ok() ? std::to_string(std::hash<std::string>{}(c.bytes)) : std::string{};
}

std::string environment_value(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
}

// The proxy a Thing goes through: the one its configuration names, or the one thingmuxd's
// environment names for its endpoint (proxy: env); none: directly. Says which when it comes from
// the environment, since nothing in the configuration file shows it.
std::optional<uplink::proxy_route> proxy_route_of(const config::thing& t) {
    const auto& p = t.proxy;
    if (p.mode == config::proxy_mode::direct) return std::nullopt;
    uplink::proxy_route route{.url = p.url,
                              .named_by = "proxy",
                              .credentials_file = config::resolve_file(p.credentials),
                              .ca_file = config::resolve_file(p.ca),
                              .unusable = {}};
    if (p.mode == config::proxy_mode::url) return route;
    const auto choice = proxy::choose({.https_proxy = environment_value("https_proxy"),
                                       .https_proxy_upper = environment_value("HTTPS_PROXY"),
                                       .no_proxy = environment_value("no_proxy"),
                                       .no_proxy_upper = environment_value("NO_PROXY")},
                                      t.endpoint, t.port);
    const auto endpoint = proxy::authority(t.endpoint, t.port);
    if (!choice.proxy && choice.problem.empty()) {
        spdlog::info("thing {}: proxy: env: {}; connecting to {} directly", t.name,
                     choice.variable.empty() ? std::string("neither https_proxy nor HTTPS_PROXY is set")
                                             : choice.variable + " exempts it",
                     endpoint);
        return std::nullopt;
    }
    route.named_by = choice.variable;
    if (choice.proxy) {
        route.url = *choice.proxy;
        spdlog::info("thing {}: proxy: env: connecting to {} through {}", t.name, endpoint, describe(route));
    } else {
        route.unusable = choice.variable + " names no usable proxy: its value " + choice.problem +
                         " (thingmuxd takes proxy: env from https_proxy or HTTPS_PROXY, e.g. http://proxy.example:3128)";
    }
    return route;
}

// Keeps ipc.max_clients and mqtt.max_clients together within what the open-file limit lets
// thingmuxd hold, so that ordinary load never reaches EMFILE; says so when it lowers them. IPC
// clients (libthingmux, thingmuxctl: the management path too) keep their share first; MQTT
// clients get what is left, at least 1.
void fit_to_open_files(config::configuration& c, rlim_t open_files) {
    const auto capacity = client_capacity(open_files, c.things.size());
    if (c.ipc.max_clients > capacity) {
        spdlog::warn(
            "ipc.max_clients is {}, but with an open-file limit of {} thingmuxd can hold {} clients: using {} "
            "(raise LimitNOFILE= in thingmuxd.service, or lower ipc.max_clients)",
            c.ipc.max_clients, open_files, capacity, capacity);
        c.ipc.max_clients = capacity;
    }
    const auto left = std::max<std::size_t>(capacity - c.ipc.max_clients, 1);
    if (!c.mqtt.enabled || c.mqtt.max_clients <= left) return;
    spdlog::warn(
        "mqtt.max_clients is {}, but with an open-file limit of {} thingmuxd can hold {} clients, {} of them "
        "for ipc.max_clients: using {} (raise LimitNOFILE= in thingmuxd.service, or lower ipc.max_clients or "
        "mqtt.max_clients)",
        c.mqtt.max_clients, open_files, capacity, c.ipc.max_clients, left);
    c.mqtt.max_clients = left;
}

// A reloaded socket setting: the mode and group apply at once, a new path at the next start.
void reload_access(listener& l, const listener::endpoint& next) {
    if (next.path != l.where().path) {
        spdlog::warn("{}.socket changed to {}; it takes effect when thingmuxd restarts", next.section,
                     logging::escaped(next.path.string()));
    } else if (auto problem = l.apply_access(next); !problem.empty()) {
        spdlog::error("{}", logging::escaped(problem, 4096));
    }
}

// The users of mqtt.passwords; null when it is not set. Read at start and on every reload (the
// configuration's load checked it a moment ago: a file that became unreadable since gives an
// empty table, refusing every password, and says so).
std::shared_ptr<const config::password_table> load_mqtt_passwords(const config::mqtt_settings& m) {
    if (!m.enabled || m.passwords.empty()) return nullptr;
    std::string error;
    auto table = config::read_password_file(m.passwords, error);
    if (!table) {
        spdlog::error("mqtt.passwords: {}; every MQTT username and password is refused", logging::escaped(error, 4096));
        return std::make_shared<const config::password_table>();
    }
    spdlog::info("mqtt.passwords: {} user(s) from {}", table->entries.size(), logging::escaped(m.passwords.string()));
    return std::make_shared<const config::password_table>(std::move(*table));
}

std::string tcp_addresses(const std::vector<config::tcp_address>& list) {
    std::string out;
    for (const auto& a : list) out += (out.empty() ? "" : ", ") + a.to_string();
    return out;
}

spool::limits spool_limits(const config::spool_settings& s) { return {.max_bytes = s.max_bytes, .max_messages = s.max_messages}; }

// The durable spool; without it (logged) QoS 1 messages accepted while offline wait in memory.
std::unique_ptr<spool::store> open_spool(const config::spool_settings& s) {
    std::vector<std::string> notices;
    std::string error;
    auto store = spool::store::open(s.path, spool_limits(s), notices, error);
    for (const auto& n : notices) spdlog::warn("spool: {}", n);
    if (!store) {
        spdlog::error("spool unavailable: {}; QoS 1 messages accepted while a Thing is offline are kept in memory only", error);
        return store;
    }
    spdlog::info("spool {}: {} message(s), {} bytes waiting", logging::escaped(s.path.string()), store->total_count(),
                 store->total_bytes());
    return store;
}

listener::endpoint metrics_endpoint(const config::metrics_settings& m) {
    return {.path = m.socket, .mode = m.mode, .group = m.group, .name = "metrics", .section = "metrics"};
}

// The metrics endpoint's listeners (metrics.socket, metrics.listen). A listener that cannot be
// set up is logged and left out: the metrics must never keep the data path from starting.
struct metrics_listeners {
    std::unique_ptr<listener> unix_socket;
    std::unique_ptr<tcp_listener> tcp;

    void open(asio::io_context& io, const config::metrics_settings& m, metrics::http_server& server) {
        if (!m.enabled) {
            spdlog::info("metrics off (metrics.enabled: false)");
            return;
        }
        try {
            unix_socket = std::make_unique<listener>(io, metrics_endpoint(m), -1);
            unix_socket->start([&server](listener::socket s) { server.serve(std::move(s)); });
            spdlog::info("metrics on {} (mode {:o}{}): GET /metrics", logging::escaped(m.socket.string()), m.mode,
                         logging::escaped(m.group.empty() ? "" : ", group " + m.group));
        } catch (const std::exception& e) {
            spdlog::error("{}; thingmuxd runs without its metrics socket", logging::escaped(e.what(), 4096));
            unix_socket.reset();
        }
        if (!m.listen) return;
        try {
            tcp = std::make_unique<tcp_listener>(io, *m.listen, "metrics TCP", "metrics");
            tcp->start([&server](tcp_listener::socket s) { server.serve(std::move(s)); });
            spdlog::info("metrics on http://{}/metrics (TCP)", m.listen->to_string());
        } catch (const std::exception& e) {
            spdlog::error("{}; thingmuxd runs without its metrics TCP listener", logging::escaped(e.what(), 4096));
            tcp.reset();
        }
    }
    // A reloaded metrics: section: the socket's mode and group apply at once; the rest at the next start.
    void reload(const config::metrics_settings& now, const config::metrics_settings& next) {
        const auto listen_text = [](const config::metrics_settings& m) { return m.listen ? m.listen->to_string() : std::string("(none)"); };
        if (now.enabled != next.enabled || listen_text(now) != listen_text(next) || now.socket != next.socket) {
            spdlog::warn("metrics.enabled, metrics.socket or metrics.listen changed; it takes effect when thingmuxd restarts");
        } else if (unix_socket) {
            if (auto problem = unix_socket->apply_access(metrics_endpoint(next)); !problem.empty())
                spdlog::error("{}", logging::escaped(problem, 4096));
        }
    }
    void close() {
        if (unix_socket) unix_socket->close();
        if (tcp) tcp->close();
    }
};

std::vector<hub::thing_setup> setups_of(const config::configuration& c) {
    std::vector<hub::thing_setup> out;
    for (const auto& t : c.things) {
        out.push_back(setup_of(t));
        // A process-wide setting (the tpm2 provider is loaded once), carried by each Thing's TLS settings.
        out.back().link.tls.tpm2_tcti = c.tpm2_tcti;
    }
    return out;
}

// Logs a problem of the configuration file: it quotes the file (keys, values, paths), escaped.
void log_diagnostic(const config::diagnostic& d) {
    constexpr std::size_t max_bytes = 4096;
    spdlog::log(d.warning ? spdlog::level::warn : spdlog::level::err, "{}", logging::escaped(to_string(d), max_bytes));
}

// Loads the file; logs every diagnostic (errors at error level). Returns the configuration
// when it has no error.
std::optional<config::configuration> load_logged(const std::filesystem::path& file) {
    auto r = config::load_file(file);
    for (const auto& d : r.diagnostics) log_diagnostic(d);
    return std::move(r.config);
}

}  // namespace

hub::thing_setup setup_of(const config::thing& t) {
    uplink::uplink_config u;
    u.thing_name = t.name;
    u.host = t.endpoint;
    u.port = t.port;
    u.tls.ca_file = config::resolve_file(t.ca);
    u.tls.cert_file = config::resolve_file(t.cert);
    u.tls.key_file = config::resolve_file(t.key);  // a pkcs11: URI passes unchanged
    u.tls.key_pin = config::resolve_file(t.key_pin);
    u.tls.pkcs12_file = config::resolve_file(t.pkcs12);
    u.tls.pkcs12_password = config::resolve_file(t.pkcs12_password);
    u.tls.alpn = t.alpn;
    u.session.client_id = t.client_id;
    u.session.version = t.protocol == config::protocol_version::mqtt311 ? mqtt::protocol_version::v311
                                                                        : mqtt::protocol_version::v5;
    u.session.keep_alive = t.keep_alive;
    // No expiry maps to MQTT 5's "never expires" value.
    u.session.session_expiry = t.session_expiry ? static_cast<std::uint32_t>(t.session_expiry->count()) : 0xFFFFFFFFU;
    u.session.max_inflight = t.limits.inflight;
    u.session.max_filters_per_packet = t.limits.filters_per_subscribe.value_or(std::numeric_limits<std::size_t>::max());
    u.session.broker_max_packet = t.limits.max_packet;
    u.backoff.base = t.backoff_base;
    u.backoff.cap = t.backoff_cap;
    u.connect_timeout = t.connect_timeout;
    u.proxy = proxy_route_of(t);
    if (t.auth == config::auth_method::custom_authorizer) {
        const auto& c = t.custom_authorizer;
        u.custom_authorizer = uplink::custom_authorizer_files{.name = c.name,
                                                              .token_key_name = c.token_key_name,
                                                              .username = c.username,
                                                              .token_file = config::resolve_file(c.token),
                                                              .signature_file = config::resolve_file(c.signature),
                                                              .password_file = config::resolve_file(c.password)};
    }
    if (t.transport == config::transport_mode::websocket) u.transport = uplink::transport_kind::websocket;
    if (t.auth == config::auth_method::sigv4) {
        u.websocket_request =
            aws::sigv4_request_source(t, {.tls = u.tls, .proxy = u.proxy, .timeout = t.connect_timeout});
    }

    std::string fp = t.endpoint + '\n' + to_string(t.transport) + '\n' + std::to_string(t.port) + '\n' + t.client_id + '\n' + to_string(t.protocol) + '\n' +
                     std::to_string(t.keep_alive.count()) + '\n' + std::to_string(u.session.session_expiry) + '\n' +
                     std::to_string(t.limits.inflight) + '\n' + std::to_string(u.session.max_filters_per_packet) + '\n' +
                     std::to_string(t.connect_timeout.count()) + '\n' +
                     (t.limits.max_packet ? std::to_string(*t.limits.max_packet) : "unlimited") + '\n';
    for (const auto& a : t.alpn) fp += a + ',';
    std::vector<const std::filesystem::path*> files{&u.tls.ca_file,     &u.tls.cert_file,   &u.tls.key_file,
                                                    &u.tls.key_pin,     &u.tls.pkcs12_file, &u.tls.pkcs12_password};
    if (u.proxy) {
        const auto& r = *u.proxy;
        // The URL's login counts too: a changed password must reconnect.
        const auto login = r.url.login ? r.url.login->user + ':' + r.url.login->password : std::string();
        fp += "\nproxy " + describe(r) + '\n' + std::to_string(std::hash<std::string>{}(login)) + '\n' + r.unusable;
        files.insert(files.end(), {&r.credentials_file, &r.ca_file});
    }
    if (u.custom_authorizer) {
        // A changed token file reconnects at a reload; it is read at every attempt anyway.
        const auto& c = *u.custom_authorizer;
        fp += "\ncustom-authorizer " + c.name + '\n' + c.token_key_name + '\n' + c.username;
        files.insert(files.end(), {&c.token_file, &c.signature_file, &c.password_file});
    }
    if (t.auth == config::auth_method::sigv4) {
        // The sources are read at every attempt; a reload that changes them reconnects.
        fp += "\nsigv4 " + t.region;
        for (const auto& s : t.aws_credentials) {
            fp += '\n' + std::string(to_string(s.type)) + ' ' + s.file.string() + ' ' + s.profile + ' ' + s.endpoint + ':' + std::to_string(s.port) + ' ' +
                  s.role_alias + ' ' + s.ca.string();
        }
    }
    for (const auto* f : files) fp += '\n' + f->string() + '=' + content_hash(*f);
    return {.settings = t, .link = std::move(u), .fingerprint = std::move(fp)};
}

namespace {

// The root half of --check-config: every file the configuration names, opened as the daemon's
// user. Returns false when one of them cannot be read (each said on stderr with its fix).
bool check_daemon_user_access(const config::configuration& c, const std::filesystem::path& file,
                              const std::optional<std::string>& as_user) {
    const std::string name = as_user.value_or("thingmux");
    user_account who;
    if (!find_account(name, who)) {
        if (as_user) {
            std::cerr << file.string() << ": user " << text::printable(name) << " (--as-user) does not exist\n";
            return false;
        }
        std::cerr << file.string() << ": note: user " << name
                  << " does not exist, so whether the daemon's user can read the files was not checked (the package "
                     "creates it; name another with --as-user USER)\n";
        return true;
    }
    const auto files = files_read_by_daemon(c, file);
    std::string problem;
    const auto failures = unreadable_as(who, files, problem);
    if (!problem.empty()) {
        std::cerr << file.string() << ": " << problem << '\n';
        return false;
    }
    for (const auto& f : failures) {
        std::cerr << file.string() << ": " << f.file.setting << ": user " << name << " cannot read "
                  << text::printable(f.file.resolved.string()) << ": " << std::strerror(f.error)
                  << "; fix: " << text::printable(access_fix(f, who)) << '\n';
    }
    for (const auto& f : files) {
        if (f.resolved.empty())
            std::cerr << file.string() << ": note: " << f.setting << ": " << text::printable(f.written.string())
                      << " is a systemd credential, not checked here; check it as the service gets it: systemd-run "
                         "--pipe --wait -p User="
                      << name << " -p LoadCredential=NAME:PATH thingmuxd --check-config --config "
                      << text::printable(file.string()) << '\n';
    }
    return failures.empty();
}

}  // namespace

int check_configuration(const std::filesystem::path& file, const std::optional<std::string>& as_user) {
    auto r = config::load_file(file);
    for (const auto& d : r.diagnostics) std::cerr << to_string(d) << '\n';
    if (!r.ok()) {
        std::cerr << file.string() << ": not usable; fix the errors above\n";
        return 1;
    }
    const auto& c = *r.config;
    std::vector<std::pair<const std::string*, std::string_view>> groups{{&c.ipc.group, "ipc.group"}};
    if (c.mqtt.enabled) groups.emplace_back(&c.mqtt.group, "mqtt.group");
    if (c.metrics.enabled) groups.emplace_back(&c.metrics.group, "metrics.group");
    for (const auto& [group, setting] : groups) {
        if (group->empty()) continue;
        try {
            (void)socket_group_id(*group, setting);
        } catch (const std::exception& e) {
            std::cerr << file.string() << ": " << e.what() << '\n';
            return 1;
        }
    }
    if (::geteuid() == 0 && !check_daemon_user_access(c, file, as_user)) {
        std::cerr << file.string() << ": not usable by the daemon's user; fix the files above\n";
        return 1;
    }
    std::cout << file.string() << ": OK: " << c.things.size() << " Thing(s), " << c.apps.size()
              << " app rule(s), socket " << c.ipc.socket.string() << ", "
              << (c.mqtt.enabled ? "MQTT socket " + c.mqtt.socket.string() : std::string("MQTT face off"))
              << (c.mqtt.enabled && !c.mqtt.tcp.empty() ? ", MQTT TCP " + tcp_addresses(c.mqtt.tcp) : std::string{})
              << (c.metrics.enabled ? ", metrics " + c.metrics.socket.string() : std::string(", metrics off"))
              << (c.metrics.enabled && c.metrics.listen ? " and http://" + c.metrics.listen->to_string() + "/metrics" : std::string{})
              << '\n';
    return 0;
}

int run_daemon(const daemon_options& options) {
    const std::string config_file = options.config_file.string();
    auto loaded = load_logged(options.config_file);
    if (!loaded) {
        spdlog::critical("{}: configuration has errors (listed above); not starting", logging::escaped(config_file));
        return 1;
    }
    spdlog::set_level(to_spdlog(options.log_level.value_or(loaded->log.level)));
    logging::setup(loaded->log.target);
    const rlim_t open_files = raise_open_file_limit();
    fit_to_open_files(*loaded, open_files);
    auto cfg = std::make_shared<const config::configuration>(std::move(*loaded));

    asio::io_context io(1);
    std::signal(SIGPIPE, SIG_IGN);
    std::signal(SIGXFSZ, SIG_IGN);  // a file size limit fails the write (reported), not the daemon
    // Registered before the socket listens: a client may see the socket and signal the daemon
    // at once. A signal that comes before the loop runs waits in the set; it is never fatal.
    asio::signal_set hangup(io, SIGHUP);
    asio::signal_set signals(io, SIGTERM, SIGINT);
    service::notifier manager(io);

    const auto activated = service::activated_sockets(cfg->ipc.socket, cfg->mqtt.socket);
    if (!cfg->mqtt.enabled && activated.mqtt >= 0) {
        spdlog::warn(
            "systemd passed the MQTT socket {}, but mqtt.enabled is false: closing it (remove its ListenStream= "
            "from thingmuxd.socket)",
            logging::escaped(cfg->mqtt.socket.string()));
        ::close(activated.mqtt);
    }
    std::unique_ptr<listener> ipc;
    std::unique_ptr<listener> mqtt;  // null when mqtt.enabled is false
    std::vector<std::unique_ptr<tcp_listener>> mqtt_tcp;  // mqtt.tcp, when mqtt.enabled
    try {
        ipc = std::make_unique<listener>(io, ipc_endpoint(cfg->ipc), activated.ipc);
        if (cfg->mqtt.enabled) {
            mqtt = std::make_unique<listener>(io, mqtt_endpoint(cfg->mqtt), activated.mqtt);
            for (const auto& address : cfg->mqtt.tcp) mqtt_tcp.push_back(std::make_unique<tcp_listener>(io, address));
        }
    } catch (const std::exception& e) {
        spdlog::critical("{}", logging::escaped(e.what(), 4096));
        // A later socket failed: leave none of the earlier ones behind.
        if (ipc) ipc->close();
        if (mqtt) mqtt->close();
        return 1;
    }
    // Empty when systemd passed the socket: systemd owns that file.
    const auto socket_path = ipc->path();

    hub::hub h(io, options.version, open_spool(cfg->spool));
    h.set_mqtt_passwords(load_mqtt_passwords(cfg->mqtt));
    // Before the first apply(): the Things' pipelines take its per-app counters when they are made.
    metrics::collector collector(h, options.version, [&cfg] { return cfg; });
    metrics::http_server metrics_server(io, [&collector](metrics::format f, std::string_view thing) {
        return collector.scrape(f, thing);
    });
    metrics_listeners metrics_on;
    h.apply(cfg, setups_of(*cfg));
    if (activated.ipc >= 0)
        spdlog::info("thingmuxd {} listening on the socket systemd passed; {} Thing(s), {} app rule(s) from {}",
                     options.version, cfg->things.size(), cfg->apps.size(), logging::escaped(config_file));
    else
        spdlog::info("thingmuxd {} listening on {} (mode {:o}{}); {} Thing(s), {} app rule(s) from {}", options.version,
                     logging::escaped(socket_path.string()), cfg->ipc.mode,
                     logging::escaped(cfg->ipc.group.empty() ? "" : ", group " + cfg->ipc.group), cfg->things.size(),
                     cfg->apps.size(), logging::escaped(config_file));
    // Before the IPC socket accepts: whoever sees thingmuxd answer there finds its metrics too.
    metrics_on.open(io, cfg->metrics, metrics_server);
    ipc->start([&h](listener::socket s) { h.add_client(std::move(s)); });
    if (mqtt) {
        if (activated.mqtt >= 0)
            spdlog::info("MQTT face listening on {}, the socket systemd passed",
                         logging::escaped(cfg->mqtt.socket.string()));
        else
            spdlog::info("MQTT face listening on {} (mode {:o}{})", logging::escaped(cfg->mqtt.socket.string()),
                         cfg->mqtt.mode, logging::escaped(cfg->mqtt.group.empty() ? "" : ", group " + cfg->mqtt.group));
        mqtt->start([&h](listener::socket s) { h.add_mqtt_client(hub::mqtt_client::socket(std::move(s))); });
    }
    for (auto& l : mqtt_tcp) {
        spdlog::info("MQTT face listening on {} (loopback TCP)", l->where().to_string());
        l->start([&h](tcp_listener::socket s) { h.add_mqtt_client(hub::mqtt_client::socket(std::move(s))); });
    }

    bus::bus_service* bus_ptr = nullptr;
    // Returns "" when the new configuration is in force, else what is wrong with the file.
    // "gateway-01: connected; gateway-02: backing_off (why)" for systemctl status. (No client
    // count: it would go stale between state changes.)
    auto status_line = [&h] {
        std::string line;
        for (const auto& name : h.thing_names()) {
            const auto st = h.status_of(name);
            if (!st) continue;
            line += (line.empty() ? "" : "; ") + name + ": " + uplink::to_string(st->state);
            if (st->state != uplink::link_state::connected && !st->reason.empty()) line += " (" + st->reason + ")";
        }
        return line;
    };
    h.on_thing_state([&](const std::string&, const uplink::state_event&) { manager.status(status_line()); });

    auto reload = [&]() -> std::string {
        spdlog::info("reloading {}", logging::escaped(config_file));
        manager.reloading();
        struct ready_again {
            service::notifier& m;
            decltype(status_line)& line;
            ~ready_again() { m.ready(line()); }
        } ready_after{manager, status_line};
        auto r = config::load_file(options.config_file);
        std::string problems;
        for (const auto& d : r.diagnostics) {
            log_diagnostic(d);
            if (!d.warning) problems += (problems.empty() ? "" : "\n") + to_string(d);
        }
        auto next = std::move(r.config);
        if (!next) {
            spdlog::error("{}: the new configuration has errors (listed above); keeping the one in force",
                          logging::escaped(config_file));
            return problems;
        }
        fit_to_open_files(*next, open_files);
        reload_access(*ipc, ipc_endpoint(next->ipc));
        if (next->mqtt.enabled != (mqtt != nullptr))
            spdlog::warn("mqtt.enabled changed to {}; it takes effect when thingmuxd restarts", next->mqtt.enabled);
        else if (mqtt)
            reload_access(*mqtt, mqtt_endpoint(next->mqtt));
        if (mqtt && tcp_addresses(next->mqtt.tcp) != tcp_addresses(cfg->mqtt.tcp))
            spdlog::warn("mqtt.tcp changed to [{}]; it takes effect when thingmuxd restarts",
                         logging::escaped(tcp_addresses(next->mqtt.tcp)));
        metrics_on.reload(cfg->metrics, next->metrics);
        h.set_mqtt_passwords(load_mqtt_passwords(next->mqtt));
        cfg = std::make_shared<const config::configuration>(std::move(*next));
        spdlog::set_level(to_spdlog(options.log_level.value_or(cfg->log.level)));
        logging::setup(cfg->log.target);
        h.apply(cfg, setups_of(*cfg));
        spdlog::info("configuration reloaded: {} Thing(s), {} app rule(s)", cfg->things.size(), cfg->apps.size());
        if (bus_ptr != nullptr) bus_ptr->reloaded();
        return {};
    };

    h.on_reload(reload);  // IPC reload (hub/admin.cpp): the same reload as D-Bus and SIGHUP
    bus::bus_service bus(io, h,
                         {.kind = options.bus,
                          .version = options.version,
                          .reload = reload,
                          .log_target = logging::target,
                          .set_log_target = logging::set_target});
    bus.start();
    bus_ptr = &bus;
    manager.ready(status_line());

    std::function<void()> wait_hangup = [&] {
        hangup.async_wait([&](boost::system::error_code ec, int) {
            if (ec) return;
            (void)reload();
            wait_hangup();
        });
    };
    wait_hangup();

    bool stopping = false;
    std::function<void()> wait_signal = [&] {
        signals.async_wait([&](boost::system::error_code ec, int sig) {
            if (ec) return;
            if (stopping) {
                spdlog::warn("second signal {}: exiting now", sig);
                io.stop();
                return;
            }
            stopping = true;
            manager.stopping();
            spdlog::info("signal {}: shutting down (stop accepting, finish in-flight messages, disconnect)", sig);
            ipc->close();
            if (mqtt) mqtt->close();
            for (auto& l : mqtt_tcp) l->close();
            metrics_on.close();
            boost::system::error_code ignored;
            hangup.cancel(ignored);
            h.shutdown(options.shutdown_grace, [&] {
                signals.cancel();
                io.stop();
            });
            wait_signal();
        });
    };
    wait_signal();
    io.run();
    spdlog::info("stopped");
    return 0;
}

}  // namespace thingmux
