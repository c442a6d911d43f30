// transport_stream: Boost.Beast's HTTP code over a real TCP transport (socket_transport) to a
// server on the loopback interface, in one io_context.
#include "daemon/uplink/socket_transport.hpp"
#include "daemon/uplink/transport_stream.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include <string>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using thingmux::uplink::socket_transport;
using thingmux::uplink::transport_stream;

namespace {

struct loopback_server {
    explicit loopback_server(asio::io_context& io) : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}), peer(io) {}
    [[nodiscard]] std::uint16_t port() const { return acceptor.local_endpoint().port(); }
    asio::ip::tcp::acceptor acceptor;
    asio::ip::tcp::socket peer;
};

// Opens a TCP transport to the server and accepts it; both ends are connected on return.
std::shared_ptr<socket_transport> connect(asio::io_context& io, loopback_server& server) {
    auto link = std::make_shared<socket_transport>(io, socket_transport::family::tcp);
    bool opened = false;
    link->async_open("127.0.0.1", server.port(), [&](std::error_code ec, auto) {
        EXPECT_FALSE(ec) << ec.message();
        opened = true;
    });
    bool accepted = false;
    server.acceptor.async_accept(server.peer, [&](boost::system::error_code ec) {
        EXPECT_FALSE(ec) << ec.message();
        accepted = true;
    });
    io.run();
    io.restart();
    EXPECT_TRUE(opened);
    EXPECT_TRUE(accepted);
    return link;
}

}  // namespace

TEST(TransportStreamTest, BeastHttpRequestAndResponseTravelOverTheTransport) {
    asio::io_context io;
    loopback_server server(io);
    auto link = connect(io, server);
    transport_stream stream(io, link);

    http::request<http::string_body> request{http::verb::get, "/role-aliases/a/credentials", 11};
    request.set(http::field::host, "credentials.example");
    request.set("x-amzn-iot-thingname", "gateway-01");
    std::size_t written = 0;
    http::async_write(stream, request, [&](boost::system::error_code ec, std::size_t n) {
        EXPECT_FALSE(ec) << ec.message();
        written = n;
    });
    io.run();
    io.restart();
    ASSERT_GT(written, 0U);

    boost::beast::flat_buffer server_buffer;
    http::request<http::string_body> received;
    http::read(server.peer, server_buffer, received);
    EXPECT_EQ(received.target(), "/role-aliases/a/credentials");
    EXPECT_EQ(received["x-amzn-iot-thingname"], "gateway-01");

    http::response<http::string_body> answer{http::status::ok, 11};
    answer.body() = std::string(100'000, 'x');  // more than one read's worth
    answer.prepare_payload();
    http::write(server.peer, answer);

    boost::beast::flat_buffer buffer;
    http::response<http::string_body> response;
    bool read_done = false;
    http::async_read(stream, buffer, response, [&](boost::system::error_code ec, std::size_t) {
        EXPECT_FALSE(ec) << ec.message();
        read_done = true;
    });
    io.run();
    io.restart();
    ASSERT_TRUE(read_done);
    EXPECT_EQ(response.result(), http::status::ok);
    EXPECT_EQ(response.body().size(), 100'000U);
}

TEST(TransportStreamTest, PeerClosingReachesBeastAsEndOfStream) {
    asio::io_context io;
    loopback_server server(io);
    auto link = connect(io, server);
    transport_stream stream(io, link);

    asio::write(server.peer, asio::buffer(std::string_view("HTTP/1.1 200 OK\r\nContent-Le")));
    server.peer.close();

    boost::beast::flat_buffer buffer;
    http::response<http::string_body> response;
    boost::system::error_code result;
    int completions = 0;
    http::async_read(stream, buffer, response, [&](boost::system::error_code ec, std::size_t) {
        result = ec;
        ++completions;
    });
    io.run();
    EXPECT_EQ(completions, 1);
    // Beast calls an end of stream inside a message a partial message.
    EXPECT_EQ(result, http::error::partial_message) << result.message();
}

TEST(TransportStreamTest, TransportErrorsKeepTheirOwnCategory) {
    asio::io_context io;
    loopback_server server(io);
    auto link = connect(io, server);
    transport_stream stream(io, link);
    link->close();

    char byte = 0;
    boost::system::error_code result;
    int completions = 0;
    stream.async_read_some(asio::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) {
        result = ec;
        ++completions;
    });
    io.run();
    EXPECT_EQ(completions, 1);
    EXPECT_TRUE(result.failed());
    EXPECT_NE(result, asio::error::eof);
}
