#include "daemon/app.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <sys/stat.h>

namespace thingmux {

namespace asio = boost::asio;
using unix_socket = asio::local::stream_protocol;

namespace {

// Binds the IPC socket. A socket file left by a crashed daemon is replaced; one that a live
// daemon still answers on is not (two daemons would fight over the Thing's client ID).
std::unique_ptr<unix_socket::acceptor> listen(asio::io_context& io, const daemon_settings& s) {
    const auto& path = s.socket_path;
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
                                     " (stop it first, or use --socket PATH)");
        std::filesystem::remove(path, fs_ec);
    }
    auto acceptor = std::make_unique<unix_socket::acceptor>(io);
    boost::system::error_code ec;
    acceptor->open(unix_socket(), ec);
    if (!ec) acceptor->bind(unix_socket::endpoint(path.string()), ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on " + path.string() + ": " + ec.message());
    if (::chmod(path.c_str(), static_cast<mode_t>(s.socket_mode)) != 0)
        throw std::runtime_error("cannot set mode of " + path.string() + ": " + std::strerror(errno));
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

}  // namespace

int run_daemon(const daemon_settings& s) {
    asio::io_context io(1);
    std::signal(SIGPIPE, SIG_IGN);

    std::unique_ptr<unix_socket::acceptor> acceptor;
    try {
        acceptor = listen(io, s);
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        return 1;
    }

    auto link = uplink::uplink::create(io, s.thing);
    hub::hub h(io, link, s.hub);
    link->on_state([&](const uplink::state_event& ev) {
        h.on_uplink_state(ev);
        const auto& c = link->config();
        switch (ev.state) {
        case uplink::link_state::connecting:
            spdlog::info("thing {}: connecting to {}:{}", c.thing_name, c.host, c.port);
            break;
        case uplink::link_state::connected:
            spdlog::info("thing {}: connected as {} (session {})", c.thing_name, c.session.client_id,
                         ev.session_present ? "resumed" : "new");
            break;
        case uplink::link_state::backing_off:
        case uplink::link_state::failed:
            spdlog::log(ev.fatal || ev.takeover ? spdlog::level::err : spdlog::level::warn, "thing {}: {}; retrying in {} ms{}",
                        c.thing_name, ev.reason, ev.retry_in.count(),
                        ev.fatal ? " (needs a configuration change)" : "");
            break;
        case uplink::link_state::stopped:
            spdlog::info("thing {}: disconnected ({})", c.thing_name, ev.reason);
            break;
        }
    });
    spdlog::info("listening on {} (mode {:o}); thing {} at {}:{}", s.socket_path.string(), s.socket_mode,
                 s.thing.thing_name, s.thing.host, s.thing.port);
    accept_loop(*acceptor, h);
    link->start();

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
            spdlog::info("signal {}: shutting down (stop accepting, finish in-flight messages, disconnect)", sig);
            boost::system::error_code ignored;
            acceptor->close(ignored);
            std::error_code fs_ignored;
            std::filesystem::remove(s.socket_path, fs_ignored);
            h.shutdown(s.shutdown_grace, [&] {
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
