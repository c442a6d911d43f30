// The uplink's own error conditions as std::error_code values (category "thingmux.uplink").
// Transports report system errors (connection refused, host not found) and OpenSSL errors in
// their own categories; these are the conditions the uplink and its transports name themselves.
#pragma once

#include <system_error>

namespace thingmux::uplink {

enum class errc {
    // Fatal: retrying without a configuration change cannot help.
    credentials_unusable = 1,      // a CA, certificate or key file is missing, unreadable, not PEM or mismatched
    tls_setup_failed,              // SNI, host name verification or ALPN could not be set up
    server_certificate_untrusted,  // the broker's certificate is not signed by our CA file
    server_name_mismatch,          // the broker's certificate is for another host name or IP
    client_certificate_rejected,   // the broker refused our certificate (a certificate alert)
    broker_refused_permanently,    // CONNACK: not authorized, bad credentials, client ID, protocol, banned
    proxy_unusable,                // the environment names no usable proxy URL
    proxy_auth_required,           // the proxy answered 407: credentials missing or refused
    proxy_forbidden,               // the proxy answered 403: it does not allow the endpoint
    proxy_refused_permanently,     // the proxy answered another 1xx/3xx/4xx status
    proxy_malformed_answer,        // the proxy's answer is not HTTP (or not an HTTP proxy's)
    proxy_certificate_untrusted,   // an https:// proxy's certificate is not trusted or for another name
    custom_authorizer_unusable,    // a custom authorizer's token, signature or password file is missing or unusable
    custom_authorizer_denied,      // CONNACK: the custom authorizer refused the token (not authorized, bad credentials)
    aws_region_unknown,            // auth sigv4: neither region: nor the endpoint's name gives the AWS region
    credentials_provider_refused,  // the AWS IoT credentials provider answered 4xx (role alias, IoT policy, thing name)
    websocket_wrong_subprotocol,   // the server's WebSocket upgrade chose no subprotocol or another than mqtt
    // Transient: the next attempt may succeed.
    timed_out,                // a connection step took longer than connect_timeout
    proxy_unreachable,        // the proxy cannot be resolved or refuses the TCP connection
    proxy_closed,             // the proxy closed the connection before its answer to CONNECT
    proxy_refused,            // the proxy answered 5xx, 408 or 429: it or the way beyond it may recover
    proxy_tls_failed,         // the TLS handshake with an https:// proxy failed (not for its certificate)
    // auth sigv4: the sources are read again at each attempt, so a fixed file or a refreshed
    // token helps without a reload.
    aws_credentials_unavailable,  // no source of aws_credentials gave credentials
    aws_credentials_malformed,    // a source gave credentials that cannot be used (length, characters)
    aws_credentials_expired,      // the credentials' expiration has passed
    // The AWS IoT credentials provider (asked again at the next attempt or renewal):
    credentials_provider_unavailable,  // it answered 5xx, 408 or 429
    credentials_provider_bad_answer,   // its answer is not HTTP, too large, or holds no usable credentials
    credentials_provider_expired,      // its credentials expire before now by this machine's clock (clock skew)
    // A certificate's dates against the system clock: a device without a real-time clock boots
    // with a wrong time, and time sync fixes it without a change here (certificate_time.hpp).
    server_certificate_not_yet_valid,  // the broker's certificate (or one in its chain) starts later than now
    server_certificate_expired,        // the broker's certificate (or one in its chain) ended before now
    client_certificate_not_yet_valid,  // our certificate starts later than now, checked as it is loaded
    client_certificate_expired,        // our certificate ended before now, checked as it is loaded
    websocket_upgrade_refused,  // the server answered the WebSocket upgrade with another HTTP status than 101
    websocket_closed,           // the server closed the WebSocket (a close frame with a code and reason)
    websocket_oversized,        // the server's upgrade answer or a WebSocket message exceeds our limit
    websocket_malformed,        // the server's upgrade answer or frames break the WebSocket protocol (or a text message)
    closed_by_broker,         // the broker closed the connection (FIN, reset, TLS close_notify or not)
    broker_refused,           // CONNACK refused for a reason that may pass (server busy, unavailable)
    session_ended,            // the MQTT session ended it (DISCONNECT, dead link, protocol error)
    client_id_in_use,         // another connection keeps taking our client ID (takeover loop)
    key_store_unreachable,    // the TPM that holds the key cannot be reached (through tpm2_tcti)
    reconnect_requested,      // the owner asked for a reconnect (new settings, rotated certificate)
    stopped,                  // the owner stopped the uplink
};

[[nodiscard]] const std::error_category& uplink_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), uplink_category()};
}

// True when retrying without a change cannot help: the fatal uplink conditions above. System
// and TLS errors are transient (a broken peer or network may heal).
[[nodiscard]] bool is_fatal(const std::error_code& ec) noexcept;

// True for the conditions a wrong system clock explains (a certificate not valid yet or
// expired): transient, and worth a hint about time sync.
[[nodiscard]] bool is_clock_problem(const std::error_code& ec) noexcept;

}  // namespace thingmux::uplink

template <>
struct std::is_error_code_enum<thingmux::uplink::errc> : std::true_type {};
