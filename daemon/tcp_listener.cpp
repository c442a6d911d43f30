#include "daemon/tcp_listener.hpp"

#include <stdexcept>
#include <utility>

namespace thingmux {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

tcp_listener::tcp_listener(asio::io_context& io, config::tcp_address where, std::string name, std::string section)
    : where_(std::move(where)), section_(section), acceptor_(io), accepting_(io.get_executor(), std::move(name), std::move(section)) {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(where_.host, ec);
    const tcp::endpoint endpoint(address, where_.port);
    if (!ec) acceptor_.open(endpoint.protocol(), ec);
    // A restarted thingmuxd binds again at once, with connections of the old one in TIME_WAIT.
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && address.is_v6()) acceptor_.set_option(asio::ip::v6_only(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw std::runtime_error(
            (section_ == "mqtt" ? "cannot listen for MQTT clients on " : "cannot listen for " + section_ + " clients on ") +
            where_.to_string() + ": " + ec.message() +
            (ec == asio::error::address_in_use
                 ? (section_ == "mqtt" ? std::string(" (another broker, e.g. mosquitto, uses the port? stop it, or change mqtt.tcp)")
                                       : " (another program uses the port? stop it, or change " + section_ + ".listen)")
                 : std::string{}));
}

void tcp_listener::start(std::function<void(socket)> on_client) {
    on_client_ = std::move(on_client);
    accepting_.run(acceptor_, on_client_);
}

void tcp_listener::close() {
    accepting_.stop(acceptor_);
}

}  // namespace thingmux
