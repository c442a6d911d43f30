// wss_relay: a WebSocket-over-TLS front for the test broker (MQTT over WebSocket, as AWS IoT
// Core's wss://ENDPOINT/mqtt), on Boost.Beast. It accepts wss with the test PKI's server
// certificate (optionally requiring a client certificate), records every upgrade request as one
// JSON line, requires the subprotocol mqtt, and relays binary messages to the broker's mTLS port
// (with one client identity of the test PKI: the broker's ACL is by certificate) and back.
// Options make it hostile: answer the upgrade with another status, choose another subprotocol,
// cut what the broker sends into tiny messages, or send one oversized message.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json/src.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ws = beast::websocket;
using asio::awaitable;
using asio::use_awaitable;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

constexpr const char* usage = R"(usage: wss_relay OPTIONS
A WebSocket-over-TLS front (wss) for a local MQTT broker, for tests.

  --port N                 listen on 127.0.0.1:N (required)
  --cert FILE --key FILE   the server certificate and key (required)
  --client-ca FILE         require a client certificate signed by this CA
  --broker-port N          the broker's MQTT-over-TLS port on 127.0.0.1 (required)
  --broker-ca FILE         the CA of the broker's certificate (required)
  --broker-cert FILE --broker-key FILE
                           the client identity presented to the broker (required)
  --record FILE            append each upgrade request as one JSON line
                           {"target":..., "headers":{lower-case name: value}, "client_cert": bool}
  --status N               answer every upgrade with HTTP status N instead (e.g. 403)
  --body-bytes N           with --status: a body of N bytes ('x') instead of a short JSON one
  --close-reason TEXT      after the upgrade, close the WebSocket with code 1008 and TEXT
  --subprotocol NAME       choose NAME instead of mqtt ("" chooses none)
  --fragment N             send what the broker sends in messages of at most N bytes
  --oversized N            after the upgrade, send one binary message of N bytes
  --help                   this text
)";

struct options {
    std::size_t port = 0;
    std::string cert, key, client_ca;
    std::size_t broker_port = 0;
    std::string broker_ca, broker_cert, broker_key;
    std::string record;
    std::size_t status = 0;
    std::optional<std::string> subprotocol;
    std::size_t fragment = 0;
    std::size_t oversized = 0;
    std::size_t body_bytes = 0;
    std::optional<std::string> close_reason;
};

std::optional<options> parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help") {
            std::cout << usage;
            std::exit(0);
        }
        if (i + 1 >= argc) return std::nullopt;
        const std::string v = argv[++i];
        const std::map<std::string, std::string*> texts{{"--cert", &o.cert},
                                                        {"--key", &o.key},
                                                        {"--client-ca", &o.client_ca},
                                                        {"--broker-ca", &o.broker_ca},
                                                        {"--broker-cert", &o.broker_cert},
                                                        {"--broker-key", &o.broker_key},
                                                        {"--record", &o.record}};
        const std::map<std::string, std::size_t*> counts{
            {"--port", &o.port},         {"--broker-port", &o.broker_port}, {"--status", &o.status},
            {"--fragment", &o.fragment}, {"--oversized", &o.oversized},     {"--body-bytes", &o.body_bytes}};
        if (const auto t = texts.find(a); t != texts.end())
            *t->second = v;
        else if (const auto c = counts.find(a); c != counts.end())
            *c->second = std::stoul(v);
        else if (a == "--subprotocol")
            o.subprotocol = v;
        else if (a == "--close-reason")
            o.close_reason = v;
        else
            return std::nullopt;
    }
    if (o.port == 0 || o.port > 65535 || o.broker_port > 65535 || o.cert.empty() || o.key.empty() ||
        o.broker_port == 0 || o.broker_ca.empty() || o.broker_cert.empty() || o.broker_key.empty())
        return std::nullopt;
    return o;
}

void record(const options& o, const http::request<http::empty_body>& req, bool client_cert) {
    if (o.record.empty()) return;
    boost::json::object headers;
    for (const auto& f : req) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (auto* v = headers.if_contains(name))
            *v = std::string(v->as_string()) + ", " + std::string(f.value());
        else
            headers[name] = std::string(f.value());
    }
    boost::json::object line{
        {"target", std::string(req.target())}, {"headers", std::move(headers)}, {"client_cert", client_cert}};
    std::ofstream out(o.record, std::ios::app);
    out << boost::json::serialize(line) << '\n';
}

bool offers_mqtt(std::string_view offered) {
    // "mqtt", "mqtt, mqttv3.1": a comma-separated list of tokens.
    while (!offered.empty()) {
        const auto comma = offered.find(',');
        auto token = offered.substr(0, comma);
        while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
        while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
        if (token == "mqtt") return true;
        if (comma == std::string_view::npos) break;
        offered.remove_prefix(comma + 1);
    }
    return false;
}

using client_stream = ws::stream<asio::ssl::stream<tcp::socket>>;
using broker_stream = asio::ssl::stream<tcp::socket>;

awaitable<void> client_to_broker(client_stream& client, broker_stream& broker) {
    beast::flat_buffer buffer;
    for (;;) {
        co_await client.async_read(buffer, use_awaitable);
        co_await asio::async_write(broker, buffer.data(), use_awaitable);
        buffer.consume(buffer.size());
    }
}

awaitable<void> broker_to_client(client_stream& client, broker_stream& broker, std::size_t fragment) {
    std::vector<char> buffer(64 * 1024);
    for (;;) {
        const std::size_t n = co_await broker.async_read_some(asio::buffer(buffer), use_awaitable);
        const std::size_t piece = fragment == 0 ? n : fragment;
        for (std::size_t at = 0; at < n; at += piece)
            co_await client.async_write(asio::buffer(buffer.data() + at, std::min(piece, n - at)), use_awaitable);
    }
}

// One frame whose header announces all `size` bytes (a client refuses it at the header, before
// any payload; without that limit it would have to take them all).
awaitable<void> send_oversized(client_stream& client, std::size_t size) {
    const std::vector<char> chunk(64 * 1024, 0);
    std::vector<asio::const_buffer> pieces;
    for (std::size_t at = 0; at < size; at += chunk.size())
        pieces.push_back(asio::buffer(chunk.data(), std::min(chunk.size(), size - at)));
    client.auto_fragment(false);
    co_await client.async_write(pieces, use_awaitable);
}

awaitable<void> serve(tcp::socket socket, asio::ssl::context& server_tls, asio::ssl::context& broker_tls,
                      const options& o) {
    try {
        client_stream client(std::move(socket), server_tls);
        co_await client.next_layer().async_handshake(asio::ssl::stream_base::server, use_awaitable);
        const bool client_cert = SSL_get0_peer_certificate(client.next_layer().native_handle()) != nullptr;

        beast::flat_buffer buffer;
        http::request_parser<http::empty_body> parser;
        parser.header_limit(16 * 1024);
        co_await http::async_read(client.next_layer(), buffer, parser, use_awaitable);
        auto req = parser.release();
        record(o, req, client_cert);

        std::optional<std::pair<http::status, std::string>> refusal;
        if (o.status != 0)
            refusal.emplace(static_cast<http::status>(o.status), o.body_bytes != 0
                                                                     ? std::string(o.body_bytes, 'x')
                                                                     : std::string(R"({"message":"Forbidden"})"));
        else if (!ws::is_upgrade(req))
            refusal.emplace(http::status::bad_request, R"({"message":"not a WebSocket upgrade"})");
        else if (!o.subprotocol && !offers_mqtt(req[http::field::sec_websocket_protocol]))
            refusal.emplace(http::status::bad_request, R"({"message":"subprotocol mqtt required"})");
        if (refusal) {
            http::response<http::string_body> res{refusal->first, req.version()};
            res.set(http::field::content_type, "application/json");
            res.body() = std::move(refusal->second);
            res.prepare_payload();
            co_await http::async_write(client.next_layer(), res, use_awaitable);
            co_return;
        }

        const std::string chosen = o.subprotocol.value_or("mqtt");
        client.set_option(ws::stream_base::decorator([chosen](ws::response_type& res) {
            if (!chosen.empty()) res.set(http::field::sec_websocket_protocol, chosen);
        }));
        client.binary(true);
        client.read_message_max(1024 * 1024);
        co_await client.async_accept(req, use_awaitable);
        if (o.oversized != 0) {
            co_await send_oversized(client, o.oversized);
            co_return;
        }
        if (o.close_reason) {
            co_await client.async_close(ws::close_reason(ws::close_code::policy_error, *o.close_reason), use_awaitable);
            co_return;
        }

        broker_stream broker(co_await asio::this_coro::executor, broker_tls);
        co_await broker.next_layer().async_connect(
            {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(o.broker_port)}, use_awaitable);
        co_await broker.async_handshake(asio::ssl::stream_base::client, use_awaitable);
        // Whichever side ends first ends both.
        co_await (client_to_broker(client, broker) || broker_to_client(client, broker, o.fragment));
    } catch (const std::exception&) {
        // A peer went away or broke the protocol: the connection ends, the relay goes on.
    }
}

awaitable<void> listen(tcp::acceptor& acceptor, asio::ssl::context& server_tls, asio::ssl::context& broker_tls,
                       const options& o) {
    for (;;) {
        auto socket = co_await acceptor.async_accept(use_awaitable);
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), server_tls, broker_tls, o), asio::detached);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const auto o = parse(argc, argv);
    if (!o) {
        std::cerr << usage;
        return 2;
    }
    try {
        asio::io_context io;
        asio::ssl::context server_tls(asio::ssl::context::tls_server);
        server_tls.use_certificate_chain_file(o->cert);
        server_tls.use_private_key_file(o->key, asio::ssl::context::pem);
        if (!o->client_ca.empty()) {
            server_tls.load_verify_file(o->client_ca);
            server_tls.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
        }
        asio::ssl::context broker_tls(asio::ssl::context::tls_client);
        broker_tls.load_verify_file(o->broker_ca);
        broker_tls.set_verify_mode(asio::ssl::verify_peer);
        broker_tls.use_certificate_chain_file(o->broker_cert);
        broker_tls.use_private_key_file(o->broker_key, asio::ssl::context::pem);

        tcp::acceptor acceptor(io);
        const tcp::endpoint at(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(o->port));
        acceptor.open(at.protocol());
        acceptor.set_option(asio::socket_base::reuse_address(true));
        acceptor.bind(at);
        acceptor.listen();
        asio::signal_set stop(io, SIGTERM, SIGINT);
        stop.async_wait([&](const boost::system::error_code&, int) { io.stop(); });
        asio::co_spawn(io, listen(acceptor, server_tls, broker_tls, *o), asio::detached);
        std::cout << "wss_relay: listening on 127.0.0.1:" << o->port << std::endl;
        io.run();
    } catch (const std::exception& e) {
        std::cerr << "wss_relay: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
