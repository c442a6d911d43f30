// MQTT's byte stream over a plain socket: TCP (resolve, connect with TCP_NODELAY) or a Unix
// stream socket (connect to a path), then read, write, close. The TLS transport runs over a TCP
// one; on their own they serve peers on this machine in tests and the benchmarks: a local
// mosquitto on loopback TCP, thingmuxd's MQTT face on its Unix socket (the configuration file
// selects neither: AWS IoT Core requires mTLS).
#pragma once

#include "daemon/uplink/transport.hpp"

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>

namespace thingmux::uplink {

class socket_transport final : public transport, public std::enable_shared_from_this<socket_transport> {
public:
    enum class family : std::uint8_t { tcp, unix_stream };

    socket_transport(boost::asio::io_context& io, family f);

    // TCP: resolves `host` and connects to the first address that answers on `port`. Unix: connects
    // to the socket at the path `host`; `port` is not used and nothing is resolved.
    void async_open(const std::string& host, std::uint16_t port, open_handler done) override;
    void async_read_some(boost::asio::mutable_buffer buffer, io_handler done) override;
    void async_write(std::span<const boost::asio::const_buffer> buffers, io_handler done) override;
    void close() override;
    [[nodiscard]] std::string describe(const std::error_code& ec) const override;

private:
    using tcp = boost::asio::ip::tcp;
    // One socket type for both families: only opening differs.
    using stream = boost::asio::generic::stream_protocol;

    void open_unix(const std::string& path, open_handler done);
    void on_resolved(const boost::system::error_code& ec, const tcp::resolver::results_type& results,
                     open_handler done);
    void on_connected(const boost::system::error_code& ec, open_handler done);

    family family_;
    tcp::resolver resolver_;
    stream::socket socket_;
};

}  // namespace thingmux::uplink
