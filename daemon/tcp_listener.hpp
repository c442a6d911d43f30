// A loopback TCP listener of the MQTT face (mqtt.tcp): one address, the same accept loop and
// back-off as the Unix sockets (accept_loop.hpp). The configuration allows loopback addresses
// only (config/parse_mqtt.cpp): the face has no TLS and trusts the kernel's word on who owns a
// connection (hub/peer_tcp.hpp).
#pragma once

#include "config/config.hpp"
#include "daemon/accept_loop.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>

#include <functional>

namespace thingmux {

class tcp_listener {
public:
    using socket = boost::asio::ip::tcp::socket;

    // Binds and listens on `where`. Throws std::runtime_error with a message for the user
    // (address in use, ...). `name` and `section` say whose listener it is in messages ("MQTT
    // TCP", "mqtt"; "metrics TCP", "metrics").
    tcp_listener(boost::asio::io_context& io, config::tcp_address where, std::string name = "MQTT TCP",
                 std::string section = "mqtt");
    tcp_listener(const tcp_listener&) = delete;
    tcp_listener& operator=(const tcp_listener&) = delete;

    // Accepts clients until close(), handing each to `on_client`.
    void start(std::function<void(socket)> on_client);
    void close();

    [[nodiscard]] const config::tcp_address& where() const noexcept { return where_; }

private:
    config::tcp_address where_;
    std::string section_;
    boost::asio::ip::tcp::acceptor acceptor_;
    accept_loop accepting_;
    std::function<void(socket)> on_client_;
};

}  // namespace thingmux
