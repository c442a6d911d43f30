// MQTT over WebSocket (wss://ENDPOINT/mqtt): Boost.Beast's WebSocket client over the transport
// below it (TLS over TCP, directly or through an HTTP proxy), adapted by transport_stream.
//
// Opening is the lower transport's open, then the HTTP upgrade: Host is the endpoint, the target
// and extra headers come from the attempt's websocket_request (a SigV4 presigned target, a custom
// authorizer's headers), and Sec-WebSocket-Protocol offers "mqtt", which the server must choose.
// Then MQTT's bytes travel in binary messages: a write is one message; reads hand over the
// payload bytes as one byte stream, so a packet may span messages and a message may hold several
// packets.
//
// Limits on what the server makes us buffer: the upgrade answer (head and body) at most
// upgrade_answer_max bytes, a message at most message_max bytes (Beast streams a message's
// payload into the reader's buffer, so memory stays bounded either way; the limit ends a message
// that never ends). Failures are uplink::errc values (upgrade refused with its HTTP status, wrong
// subprotocol, closed by the server with its code and reason, oversized, malformed) that
// describe() words for people, with the server's text escaped.
#pragma once

#include "daemon/uplink/transport.hpp"
#include "daemon/uplink/websocket_request.hpp"

#include <cstddef>
#include <memory>

namespace thingmux::uplink {

inline constexpr std::size_t websocket_upgrade_answer_max = 16 * 1024;
inline constexpr std::size_t websocket_message_max = 1024 * 1024;

// A WebSocket transport over `lower` (not yet opened), or errc::credentials_unusable when the
// request cannot be sent (a line break or control character in its target or a header, such as
// a token file's trailing newline).
[[nodiscard]] transport_result make_websocket_transport(boost::asio::io_context& io, std::shared_ptr<transport> lower,
                                                        websocket_request request);

}  // namespace thingmux::uplink
