// Why a Thing's connection attempt failed or its session ended, as one of a small fixed set of
// names: the `reason` label of thingmux_link_failures_total. A peer's words (a broker's reason
// string, a proxy's status line, a certificate's subject) never become a label: only the
// condition's category and value choose the name.
//
// Pure: standard library and the uplink's error enum only.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>

namespace thingmux::metrics {

// Every name classify_link_failure() can return, in the order the metrics list them.
inline constexpr std::array<std::string_view, 13> link_failure_reasons{
    "takeover",       // another connection used the Thing's client ID
    "credentials",    // certificate, key, token or AWS credentials unusable or refused
    "tls",            // the TLS handshake or the server's certificate
    "not_authorized", // the broker refused the CONNECT (not authorized, bad credentials, banned)
    "broker_refused", // the broker refused the CONNECT for a reason that may pass (busy, unavailable)
    "closed_by_broker",  // the broker closed the connection
    "session_ended",  // the MQTT session ended it (DISCONNECT, keep-alive, protocol error)
    "timeout",        // a connection step took longer than connect_timeout
    "network",        // DNS, refused or reset TCP connection, unreachable network
    "proxy",          // the HTTP proxy on the way
    "websocket",      // the WebSocket upgrade or framing
    "requested",      // a reconnect thingmuxd asked for (new settings, rotated certificate)
    "other",
};

// `error`: the state event's condition; `takeover`: the uplink saw its client ID taken over.
[[nodiscard]] std::string_view classify_link_failure(const std::error_code& error, bool takeover) noexcept;

}  // namespace thingmux::metrics
