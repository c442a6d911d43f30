#include "daemon/uplink/transport.hpp"

#include "daemon/uplink/socket_transport.hpp"
#include "daemon/uplink/tls_transport.hpp"

namespace thingmux::uplink {

transport_result make_transport(boost::asio::io_context& io, transport_kind kind, const std::string& host,
                                const tls_settings& tls) {
    if (kind == transport_kind::unix_socket)
        return {std::make_shared<socket_transport>(io, socket_transport::family::unix_stream), {}, {}};
    auto tcp = std::make_shared<socket_transport>(io, socket_transport::family::tcp);
    if (kind == transport_kind::tcp) return {std::move(tcp), {}, {}};
    auto context = make_tls_context(tls);
    if (!context.context) return {nullptr, context.code, std::move(context.error)};
    return tls_transport::create(io, std::move(tcp), std::move(context.context), host, tls);
}

}  // namespace thingmux::uplink
