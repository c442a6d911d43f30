#include "daemon/uplink/error.hpp"

#include <string>

namespace thingmux::uplink {
namespace {

class category final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "thingmux.uplink"; }

    [[nodiscard]] std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
        case errc::credentials_unusable: return "a CA, certificate or key file cannot be used";
        case errc::tls_setup_failed: return "TLS settings (SNI, host name verification, ALPN) cannot be applied";
        case errc::server_certificate_untrusted: return "the broker's certificate is not trusted by the CA file";
        case errc::server_name_mismatch: return "the broker's certificate does not match its host name";
        case errc::client_certificate_rejected: return "the broker rejected our client certificate";
        case errc::broker_refused_permanently: return "the broker refused the connection; retrying cannot help";
        case errc::proxy_unusable: return "the proxy setting names no usable proxy";
        case errc::proxy_auth_required: return "the proxy requires credentials or refused ours";
        case errc::proxy_forbidden: return "the proxy does not allow connections to the endpoint";
        case errc::proxy_refused_permanently: return "the proxy refused to open a tunnel";
        case errc::proxy_malformed_answer: return "the proxy's answer is not HTTP";
        case errc::proxy_certificate_untrusted: return "the proxy's certificate is not trusted";
        case errc::custom_authorizer_unusable: return "a custom authorizer's token, signature or password cannot be used";
        case errc::custom_authorizer_denied: return "the custom authorizer denied the connection";
        case errc::aws_region_unknown:
            return "the AWS region is unknown: write region: (the endpoint's name does not tell it)";
        case errc::credentials_provider_refused: return "the AWS IoT credentials provider refused to give credentials";
        case errc::credentials_provider_unavailable: return "the AWS IoT credentials provider cannot answer now";
        case errc::credentials_provider_bad_answer: return "the AWS IoT credentials provider's answer cannot be used";
        case errc::credentials_provider_expired:
            return "the AWS IoT credentials provider's credentials have expired by this machine's clock";
        case errc::websocket_wrong_subprotocol: return "the WebSocket server did not agree to speak MQTT (subprotocol mqtt)";
        case errc::server_certificate_not_yet_valid:
            return "the broker's certificate is not valid yet by the system clock (is the clock set?)";
        case errc::server_certificate_expired:
            return "the broker's certificate has expired by the system clock (is the clock set?)";
        case errc::client_certificate_not_yet_valid:
            return "our client certificate is not valid yet by the system clock (is the clock set?)";
        case errc::client_certificate_expired:
            return "our client certificate has expired by the system clock (is the clock set?)";
        case errc::websocket_upgrade_refused: return "the server refused the WebSocket upgrade";
        case errc::websocket_closed: return "the server closed the WebSocket";
        case errc::websocket_oversized: return "the WebSocket server sent more than our limits allow";
        case errc::websocket_malformed: return "the WebSocket server broke the WebSocket protocol";
        case errc::timed_out: return "connecting took longer than the connect timeout";
        case errc::proxy_unreachable: return "the proxy cannot be reached";
        case errc::proxy_closed: return "the proxy closed the connection before answering";
        case errc::proxy_refused: return "the proxy could not open a tunnel for now";
        case errc::proxy_tls_failed: return "the TLS handshake with the proxy failed";
        case errc::aws_credentials_unavailable: return "no source in aws_credentials gave AWS credentials";
        case errc::aws_credentials_malformed: return "the AWS credentials found cannot be used";
        case errc::aws_credentials_expired: return "the AWS credentials have expired";
        case errc::closed_by_broker: return "the broker closed the connection";
        case errc::broker_refused: return "the broker refused the connection";
        case errc::session_ended: return "the MQTT session ended the connection";
        case errc::client_id_in_use: return "another connection is using our client ID";
        case errc::key_store_unreachable: return "the TPM that holds the key cannot be reached";
        case errc::reconnect_requested: return "reconnecting on request";
        case errc::stopped: return "stopped";
        }
        return "unknown uplink error " + std::to_string(value);
    }
};

}  // namespace

const std::error_category& uplink_category() noexcept {
    static const category instance;
    return instance;
}

bool is_fatal(const std::error_code& ec) noexcept {
    if (ec.category() != uplink_category()) return false;
    switch (static_cast<errc>(ec.value())) {
    case errc::credentials_unusable:
    case errc::tls_setup_failed:
    case errc::server_certificate_untrusted:
    case errc::server_name_mismatch:
    case errc::client_certificate_rejected:
    case errc::broker_refused_permanently:
    case errc::proxy_unusable:
    case errc::proxy_auth_required:
    case errc::proxy_forbidden:
    case errc::proxy_refused_permanently:
    case errc::proxy_malformed_answer:
    case errc::proxy_certificate_untrusted:
    case errc::custom_authorizer_unusable:
    case errc::custom_authorizer_denied:
    case errc::aws_region_unknown:
    case errc::credentials_provider_refused:
    case errc::websocket_wrong_subprotocol: return true;
    default: return false;
    }
}

bool is_clock_problem(const std::error_code& ec) noexcept {
    return ec == errc::server_certificate_not_yet_valid || ec == errc::server_certificate_expired ||
           ec == errc::client_certificate_not_yet_valid || ec == errc::client_certificate_expired;
}

}  // namespace thingmux::uplink
