#include "daemon/app.hpp"

#include "daemon/logging.hpp"
#include "daemon/service.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <grp.h>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace thingmux {

namespace asio = boost::asio;
using unix_socket = asio::local::stream_protocol;

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

// A hash of a file's contents (empty if unreadable): tells a rotated certificate from the old one.
std::string content_hash(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return std::to_string(std::hash<std::string>{}(bytes));
}

gid_t group_id(const std::string& name) {
    group g{};
    group* found = nullptr;
    std::vector<char> buf(4096);
    int rc = 0;
    while ((rc = ::getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found)) == ERANGE) buf.resize(buf.size() * 2);
    if (rc != 0 || found == nullptr)
        throw std::runtime_error("ipc.group '" + name + "' does not exist: create it (the package's sysusers.d file does) "
                                 "or set ipc.group: \"\" in the configuration");
    return g.gr_gid;
}

// Applies ipc.mode and ipc.group to the socket file.
void set_socket_access(const config::ipc_settings& ipc) {
    const auto& path = ipc.socket;
    if (!ipc.group.empty() && ::chown(path.c_str(), static_cast<uid_t>(-1), group_id(ipc.group)) != 0)
        throw std::runtime_error("cannot give " + path.string() + " to group " + ipc.group + ": " + std::strerror(errno));
    if (::chmod(path.c_str(), static_cast<mode_t>(ipc.mode)) != 0)
        throw std::runtime_error("cannot set mode of " + path.string() + ": " + std::strerror(errno));
}

// Takes the socket systemd passed (thingmuxd.socket sets its path, owner and mode), or binds
// ipc.socket. A socket file left by a crashed daemon is replaced; one that a live daemon still
// answers on is not (two daemons would fight over the Things' client IDs).
std::unique_ptr<unix_socket::acceptor> listen(asio::io_context& io, const config::ipc_settings& ipc, int activated) {
    if (activated >= 0) {
        auto acceptor = std::make_unique<unix_socket::acceptor>(io);
        boost::system::error_code ec;
        acceptor->assign(unix_socket(), activated, ec);
        if (ec) throw std::runtime_error("cannot use the socket systemd passed: " + ec.message());
        return acceptor;
    }
    const auto& path = ipc.socket;
    std::error_code fs_ec;
    if (!path.parent_path().empty() && !std::filesystem::exists(path.parent_path(), fs_ec)) {
        std::filesystem::create_directories(path.parent_path(), fs_ec);
        if (fs_ec)
            throw std::runtime_error("cannot create directory " + path.parent_path().string() + " for the IPC socket: " +
                                     fs_ec.message());
    }
    if (std::filesystem::is_socket(path, fs_ec)) {
        unix_socket::socket probe(io);
        boost::system::error_code ec;
        probe.connect(unix_socket::endpoint(path.string()), ec);
        if (!ec)
            throw std::runtime_error("another thingmuxd is already listening on " + path.string() +
                                     " (stop it first, or set ipc.socket)");
        std::filesystem::remove(path, fs_ec);
    }
    auto acceptor = std::make_unique<unix_socket::acceptor>(io);
    boost::system::error_code ec;
    acceptor->open(unix_socket(), ec);
    if (!ec) acceptor->bind(unix_socket::endpoint(path.string()), ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on " + path.string() + ": " + ec.message());
    set_socket_access(ipc);
    return acceptor;
}

void accept_loop(unix_socket::acceptor& acceptor, hub::hub& h) {
    acceptor.async_accept([&acceptor, &h](boost::system::error_code ec, unix_socket::socket s) {
        if (ec == asio::error::operation_aborted) return;
        if (ec) {
            spdlog::warn("accepting an IPC client failed: {}", ec.message());
        } else {
            h.add_client(std::move(s));
        }
        accept_loop(acceptor, h);
    });
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
    spdlog::info("spool {}: {} message(s), {} bytes waiting", s.path.string(), store->total_count(), store->total_bytes());
    return store;
}

std::vector<hub::thing_setup> setups_of(const config::configuration& c) {
    std::vector<hub::thing_setup> out;
    for (const auto& t : c.things) out.push_back(setup_of(t));
    return out;
}

// Loads the file; logs every diagnostic (errors at error level). Returns the configuration
// when it has no error.
std::optional<config::configuration> load_logged(const std::filesystem::path& file) {
    auto r = config::load_file(file);
    for (const auto& d : r.diagnostics) spdlog::log(d.warning ? spdlog::level::warn : spdlog::level::err, "{}", to_string(d));
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
    u.tls.key_file = config::resolve_file(t.key);
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

    std::string fp = t.endpoint + '\n' + std::to_string(t.port) + '\n' + t.client_id + '\n' + to_string(t.protocol) + '\n' +
                     std::to_string(t.keep_alive.count()) + '\n' + std::to_string(u.session.session_expiry) + '\n' +
                     std::to_string(t.limits.inflight) + '\n' + std::to_string(u.session.max_filters_per_packet) + '\n' +
                     std::to_string(t.connect_timeout.count()) + '\n' +
                     (t.limits.max_packet ? std::to_string(*t.limits.max_packet) : "unlimited") + '\n';
    for (const auto& a : t.alpn) fp += a + ',';
    for (const auto* f : {&u.tls.ca_file, &u.tls.cert_file, &u.tls.key_file}) fp += '\n' + f->string() + '=' + content_hash(*f);
    return {.settings = t, .link = std::move(u), .fingerprint = std::move(fp)};
}

int check_configuration(const std::filesystem::path& file) {
    auto r = config::load_file(file);
    for (const auto& d : r.diagnostics) std::cerr << to_string(d) << '\n';
    if (!r.ok()) {
        std::cerr << file.string() << ": not usable; fix the errors above\n";
        return 1;
    }
    const auto& c = *r.config;
    if (!c.ipc.group.empty()) {
        try {
            (void)group_id(c.ipc.group);
        } catch (const std::exception& e) {
            std::cerr << file.string() << ": " << e.what() << '\n';
            return 1;
        }
    }
    std::cout << file.string() << ": OK: " << c.things.size() << " Thing(s), " << c.apps.size() << " app rule(s), socket "
              << c.ipc.socket.string() << '\n';
    return 0;
}

int run_daemon(const daemon_options& options) {
    auto loaded = load_logged(options.config_file);
    if (!loaded) {
        spdlog::critical("{}: configuration has errors (listed above); not starting", options.config_file.string());
        return 1;
    }
    auto cfg = std::make_shared<const config::configuration>(std::move(*loaded));
    spdlog::set_level(to_spdlog(options.log_level.value_or(cfg->log.level)));
    logging::setup(cfg->log.target);

    asio::io_context io(1);
    std::signal(SIGPIPE, SIG_IGN);
    std::signal(SIGXFSZ, SIG_IGN);  // a file size limit fails the write (reported), not the daemon
    service::notifier manager(io);

    const int activated = service::activated_socket();
    std::unique_ptr<unix_socket::acceptor> acceptor;
    try {
        acceptor = listen(io, cfg->ipc, activated);
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        return 1;
    }
    // systemd owns an activated socket's file; thingmuxd removes only the one it made.
    const auto socket_path = activated >= 0 ? std::filesystem::path{} : cfg->ipc.socket;

    hub::hub h(io, options.version, open_spool(cfg->spool));
    h.apply(cfg, setups_of(*cfg));
    if (activated >= 0)
        spdlog::info("thingmuxd {} listening on the socket systemd passed; {} Thing(s), {} app rule(s) from {}",
                     options.version, cfg->things.size(), cfg->apps.size(), options.config_file.string());
    else
        spdlog::info("thingmuxd {} listening on {} (mode {:o}{}); {} Thing(s), {} app rule(s) from {}", options.version,
                     socket_path.string(), cfg->ipc.mode, cfg->ipc.group.empty() ? "" : ", group " + cfg->ipc.group,
                     cfg->things.size(), cfg->apps.size(), options.config_file.string());
    accept_loop(*acceptor, h);

    bus::bus_service* bus_ptr = nullptr;
    // Returns "" when the new configuration is in force, else what is wrong with the file.
    // "gateway-01: connected; gateway-02: backing-off (why)" for systemctl status. (No client
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
        spdlog::info("reloading {}", options.config_file.string());
        manager.reloading();
        struct ready_again {
            service::notifier& m;
            decltype(status_line)& line;
            ~ready_again() { m.ready(line()); }
        } ready_after{manager, status_line};
        auto r = config::load_file(options.config_file);
        std::string problems;
        for (const auto& d : r.diagnostics) {
            spdlog::log(d.warning ? spdlog::level::warn : spdlog::level::err, "{}", to_string(d));
            if (!d.warning) problems += (problems.empty() ? "" : "\n") + to_string(d);
        }
        auto next = std::move(r.config);
        if (!next) {
            spdlog::error("{}: the new configuration has errors (listed above); keeping the one in force",
                          options.config_file.string());
            return problems;
        }
        if (activated >= 0) {
            // systemd's socket unit decides the socket's path and access.
        } else if (next->ipc.socket != socket_path)
            spdlog::warn("ipc.socket changed to {}; it takes effect when thingmuxd restarts", next->ipc.socket.string());
        else
            try {
                set_socket_access(next->ipc);
            } catch (const std::exception& e) {
                spdlog::error("{}", e.what());
            }
        cfg = std::make_shared<const config::configuration>(std::move(*next));
        spdlog::set_level(to_spdlog(options.log_level.value_or(cfg->log.level)));
        logging::setup(cfg->log.target);
        h.apply(cfg, setups_of(*cfg));
        spdlog::info("configuration reloaded: {} Thing(s), {} app rule(s)", cfg->things.size(), cfg->apps.size());
        if (bus_ptr != nullptr) bus_ptr->reloaded();
        return {};
    };

    bus::bus_service bus(io, h,
                         {.kind = options.bus,
                          .version = options.version,
                          .reload = reload,
                          .log_target = logging::target,
                          .set_log_target = logging::set_target});
    bus.start();
    bus_ptr = &bus;
    manager.ready(status_line());

    asio::signal_set hangup(io, SIGHUP);
    std::function<void()> wait_hangup = [&] {
        hangup.async_wait([&](boost::system::error_code ec, int) {
            if (ec) return;
            (void)reload();
            wait_hangup();
        });
    };
    wait_hangup();

    asio::signal_set signals(io, SIGTERM, SIGINT);
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
            boost::system::error_code ignored;
            acceptor->close(ignored);
            hangup.cancel(ignored);
            std::error_code fs_ignored;
            if (!socket_path.empty()) std::filesystem::remove(socket_path, fs_ignored);
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
