// MQTT's byte stream over plain TCP: resolve, connect (TCP_NODELAY), read, write. The TLS
// transport runs over one; on its own it serves peers on loopback in tests and the benchmarks
// (the configuration file cannot select it: AWS IoT Core requires mTLS).
#pragma once

#include "daemon/uplink/transport.hpp"

#include <boost/asio/ip/tcp.hpp>

namespace thingmux::uplink {

class tcp_transport final : public transport, public std::enable_shared_from_this<tcp_transport> {
public:
    explicit tcp_transport(boost::asio::io_context& io);

    void async_open(const std::string& host, std::uint16_t port, open_handler done) override;
    void async_read_some(boost::asio::mutable_buffer buffer, io_handler done) override;
    void async_write(std::span<const boost::asio::const_buffer> buffers, io_handler done) override;
    void close() override;
    [[nodiscard]] std::string describe(const std::error_code& ec) const override;

private:
    using tcp = boost::asio::ip::tcp;

    void on_resolved(const boost::system::error_code& ec, const tcp::resolver::results_type& results, open_handler done);
    void on_connected(const boost::system::error_code& ec, open_handler done);

    tcp::resolver resolver_;
    tcp::socket socket_;
};

}  // namespace thingmux::uplink
