#include "daemon/metrics/link_reasons.hpp"

#include "daemon/uplink/error.hpp"

#include <cerrno>
#include <cstring>

namespace thingmux::metrics {

namespace {

std::string_view of_uplink(uplink::errc e) noexcept {
    using uplink::errc;
    switch (e) {
    case errc::credentials_unusable:
    case errc::client_certificate_rejected:
    case errc::custom_authorizer_unusable:
    case errc::custom_authorizer_denied:
    case errc::aws_region_unknown:
    case errc::credentials_provider_refused:
    case errc::aws_credentials_unavailable:
    case errc::aws_credentials_malformed:
    case errc::aws_credentials_expired:
    case errc::credentials_provider_unavailable:
    case errc::credentials_provider_bad_answer:
    case errc::credentials_provider_expired:
    case errc::key_store_unreachable: return "credentials";
    case errc::tls_setup_failed:
    case errc::server_certificate_untrusted:
    case errc::server_name_mismatch: return "tls";
    case errc::broker_refused_permanently: return "not_authorized";
    case errc::broker_refused: return "broker_refused";
    case errc::proxy_unusable:
    case errc::proxy_auth_required:
    case errc::proxy_forbidden:
    case errc::proxy_refused_permanently:
    case errc::proxy_malformed_answer:
    case errc::proxy_certificate_untrusted:
    case errc::proxy_unreachable:
    case errc::proxy_closed:
    case errc::proxy_refused:
    case errc::proxy_tls_failed: return "proxy";
    case errc::websocket_wrong_subprotocol:
    case errc::websocket_upgrade_refused:
    case errc::websocket_closed:
    case errc::websocket_oversized:
    case errc::websocket_malformed: return "websocket";
    case errc::timed_out: return "timeout";
    case errc::closed_by_broker: return "closed_by_broker";
    case errc::session_ended: return "session_ended";
    case errc::client_id_in_use: return "takeover";
    case errc::reconnect_requested:
    case errc::stopped: return "requested";
    default: break;  // a condition added later: counted, without a name of its own yet
    }
    return "other";
}

}  // namespace

std::string_view classify_link_failure(const std::error_code& error, bool takeover) noexcept {
    if (takeover) return "takeover";
    if (!error) return "other";
    const auto& cat = error.category();
    if (cat == uplink::uplink_category()) return of_uplink(static_cast<uplink::errc>(error.value()));
    // Asio's and OpenSSL's categories reach here through Boost's error codes: told by name.
    const std::string_view name = cat.name();
    if (name.find("ssl") != std::string_view::npos || name.find("SSL") != std::string_view::npos) return "tls";
    if (name == "asio.netdb" || name == "asio.addrinfo") return "network";
    if (name == "asio.misc") return "closed_by_broker";  // eof: the peer closed the connection
    if (name == "system" || name == "generic") {
        switch (error.value()) {
        case ETIMEDOUT: return "timeout";
        case ECONNRESET:
        case EPIPE: return "closed_by_broker";
        default: return "network";
        }
    }
    return "other";
}

}  // namespace thingmux::metrics
