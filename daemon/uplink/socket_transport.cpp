#include "daemon/uplink/socket_transport.hpp"

#include "daemon/uplink/error.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <sys/un.h>

#include <vector>

namespace thingmux::uplink {
namespace asio = boost::asio;

namespace {

// The peer's close, however it arrived, is one condition for the uplink.
std::error_code read_error(const boost::system::error_code& ec) {
    if (ec == asio::error::eof || ec == asio::error::connection_reset) return errc::closed_by_broker;
    return ec;
}

}  // namespace

socket_transport::socket_transport(asio::io_context& io, family f)
    : transport(f == family::tcp ? "tcp" : "unix", ""), family_(f), resolver_(io), socket_(io) {}

void socket_transport::async_open(const std::string& host, std::uint16_t port, open_handler done) {
    if (family_ == family::unix_stream) return open_unix(host, std::move(done));
    // The handler travels with the pending operation, never in a member: it may hold the
    // transport above this one, which holds this one.
    resolver_.async_resolve(host, std::to_string(port),
                            [self = shared_from_this(), done = std::move(done)](boost::system::error_code ec,
                                                                                tcp::resolver::results_type r) mutable {
                                self->on_resolved(ec, r, std::move(done));
                            });
}

void socket_transport::open_unix(const std::string& path, open_handler done) {
    // A path that does not fit sockaddr_un would make the endpoint throw: refuse it as connect's
    // error, on the io_context like every completion.
    if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
        return asio::post(socket_.get_executor(), [self = shared_from_this(), done = std::move(done)] {
            done(boost::system::error_code(asio::error::name_too_long), open_step::connect);
        });
    }
    socket_.async_connect(stream::endpoint(asio::local::stream_protocol::endpoint(path)),
                          [self = shared_from_this(), done = std::move(done)](boost::system::error_code ec) mutable {
                              self->on_connected(ec, std::move(done));
                          });
}

void socket_transport::on_resolved(const boost::system::error_code& ec, const tcp::resolver::results_type& results,
                                   open_handler done) {
    if (ec) return done(ec, open_step::resolve);
    std::vector<stream::endpoint> addresses;
    for (const auto& entry : results) addresses.emplace_back(entry.endpoint());
    asio::async_connect(
        socket_, addresses,
        [self = shared_from_this(), done = std::move(done)](
            boost::system::error_code e, const stream::endpoint&) mutable { self->on_connected(e, std::move(done)); });
}

void socket_transport::on_connected(const boost::system::error_code& ec, open_handler done) {
    if (!ec && family_ == family::tcp) {
        // MQTT packets are small and each one matters now: no Nagle delay.
        boost::system::error_code ignored;
        socket_.set_option(tcp::no_delay(true), ignored);
    }
    done(ec, open_step::connect);
}

void socket_transport::async_read_some(asio::mutable_buffer buffer, io_handler done) {
    socket_.async_read_some(buffer, [self = shared_from_this(), done = std::move(done)](
                                        boost::system::error_code ec, std::size_t n) { done(read_error(ec), n); });
}

void socket_transport::async_write(std::span<const asio::const_buffer> buffers, io_handler done) {
    asio::async_write(socket_, buffers,
                      [self = shared_from_this(), done = std::move(done)](boost::system::error_code ec, std::size_t n) {
                          done(ec, n);
                      });
}

void socket_transport::close() {
    resolver_.cancel();
    boost::system::error_code ignored;
    socket_.shutdown(stream::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

std::string socket_transport::describe(const std::error_code& ec) const {
    return ec.message();
}

}  // namespace thingmux::uplink
