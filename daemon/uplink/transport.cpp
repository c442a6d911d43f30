#include "daemon/uplink/transport.hpp"

#include "daemon/uplink/http_proxy_transport.hpp"
#include "daemon/uplink/socket_transport.hpp"
#include "daemon/uplink/tls_transport.hpp"
#include "daemon/uplink/websocket_transport.hpp"

namespace thingmux::uplink {

transport_result make_transport(boost::asio::io_context& io, transport_kind kind, const std::string& host,
                                const tls_settings& tls, const proxy_route* proxy, const websocket_request& websocket) {
    if (kind == transport_kind::unix_socket)
        return {std::make_shared<socket_transport>(io, socket_transport::family::unix_stream), {}, {}};
    std::shared_ptr<transport> below = std::make_shared<socket_transport>(io, socket_transport::family::tcp);
    if (proxy != nullptr) {
        auto tunnel = http_proxy_transport::create(io, std::move(below), *proxy);
        if (!tunnel.link) return tunnel;
        below = std::move(tunnel.link);
    }
    if (kind == transport_kind::tcp) return {std::move(below), {}, {}};
    auto context = make_tls_context(tls);
    if (!context.context) return {nullptr, context.code, std::move(context.error)};
    auto secure = tls_transport::create(io, std::move(below), std::move(context.context), host, tls);
    if (kind != transport_kind::websocket || !secure.link) return secure;
    return make_websocket_transport(io, std::move(secure.link), websocket);
}

std::string destination(const std::string& host, std::uint16_t port, const proxy_route* proxy) {
    auto where = proxy::authority(host, port);
    if (proxy != nullptr) where += " through proxy " + describe(*proxy);
    return where;
}

std::string step_name(const transport& t, open_step step) {
    switch (step) {
    case open_step::resolve: return "resolve";
    case open_step::connect:
    case open_step::proxy: return "connect to";
    case open_step::handshake: return t.handshake_name();
    case open_step::upgrade: return "WebSocket upgrade with";
    }
    return "open";
}

std::string describe_open_failure(const transport& t, const std::error_code& ec, open_step step,
                                  const std::string& where) {
    switch (step) {
    case open_step::resolve: return "cannot resolve " + where + ": " + ec.message();
    case open_step::connect: return "cannot connect to " + where + ": " + ec.message();
    case open_step::handshake:
    case open_step::upgrade:
    case open_step::proxy: return t.describe(ec);
    }
    return t.describe(ec);
}

}  // namespace thingmux::uplink
