#include "daemon/uplink/tcp_transport.hpp"

#include "daemon/uplink/error.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>

namespace thingmux::uplink {
namespace asio = boost::asio;

namespace {

// The peer's close, however it arrived, is one condition for the uplink.
std::error_code read_error(const boost::system::error_code& ec) {
    if (ec == asio::error::eof || ec == asio::error::connection_reset) return errc::closed_by_broker;
    return ec;
}

}  // namespace

tcp_transport::tcp_transport(asio::io_context& io) : transport("tcp", ""), resolver_(io), socket_(io) {}

void tcp_transport::async_open(const std::string& host, std::uint16_t port, open_handler done) {
    // The handler travels with the pending operation, never in a member: it may hold the
    // transport above this one, which holds this one.
    resolver_.async_resolve(host, std::to_string(port),
                            [self = shared_from_this(), done = std::move(done)](boost::system::error_code ec,
                                                                               tcp::resolver::results_type r) mutable {
                                self->on_resolved(ec, r, std::move(done));
                            });
}

void tcp_transport::on_resolved(const boost::system::error_code& ec, const tcp::resolver::results_type& results,
                                open_handler done) {
    if (ec) return done(ec, open_step::resolve);
    asio::async_connect(socket_, results,
                        [self = shared_from_this(), done = std::move(done)](boost::system::error_code e,
                                                                          const tcp::endpoint&) mutable {
                            self->on_connected(e, std::move(done));
                        });
}

void tcp_transport::on_connected(const boost::system::error_code& ec, open_handler done) {
    if (!ec) {
        // MQTT packets are small and each one matters now: no Nagle delay.
        boost::system::error_code ignored;
        socket_.set_option(tcp::no_delay(true), ignored);
    }
    done(ec, open_step::connect);
}

void tcp_transport::async_read_some(asio::mutable_buffer buffer, io_handler done) {
    socket_.async_read_some(buffer, [self = shared_from_this(), done = std::move(done)](boost::system::error_code ec,
                                                                                       std::size_t n) {
        done(read_error(ec), n);
    });
}

void tcp_transport::async_write(std::span<const asio::const_buffer> buffers, io_handler done) {
    asio::async_write(socket_, buffers,
                      [self = shared_from_this(), done = std::move(done)](boost::system::error_code ec, std::size_t n) {
                          done(ec, n);
                      });
}

void tcp_transport::close() {
    resolver_.cancel();
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

std::string tcp_transport::describe(const std::error_code& ec) const { return ec.message(); }

}  // namespace thingmux::uplink
