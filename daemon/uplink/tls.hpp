// TLS client settings of one uplink and the OpenSSL context built from them, with errors that
// name the file and the problem ("cannot read key file /etc/x.pem: Permission denied").
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace thingmux::uplink {

struct tls_settings {
    std::filesystem::path ca_file;    // CA bundle that must have signed the broker's certificate
    std::filesystem::path cert_file;  // client certificate chain (PEM)
    std::filesystem::path key_file;   // client private key (PEM)
    std::vector<std::string> alpn;    // e.g. {"x-amzn-mqtt-ca"} for AWS IoT Core on port 443
};

// Either a ready context or a message saying which file is wrong and why.
struct tls_context_result {
    std::shared_ptr<boost::asio::ssl::context> context;
    std::string error;
    // False when retrying can help without a configuration change (out of descriptors or memory).
    bool fatal = true;
};

// Loads the files fresh (so a fixed permission or a rotated certificate is picked up on the next
// attempt), requires TLS 1.2+, peer verification against ca_file, and checks that the key
// matches the certificate.
[[nodiscard]] tls_context_result make_tls_context(const tls_settings& settings);

// Prepares one connection's SSL object: SNI (not for IP literals), host name / IP verification
// against the certificate, ALPN. Returns an error message, empty on success.
[[nodiscard]] std::string prepare_ssl(void* native_ssl, const std::string& host, const std::vector<std::string>& alpn);

// Explains a failed handshake or a TLS-level read error for a human: distinguishes "the broker's
// certificate is not trusted by our CA file" from "the broker rejected our client certificate".
// `fatal` is set when retrying without a configuration change cannot help.
[[nodiscard]] std::string describe_tls_error(const boost::system::error_code& ec, void* native_ssl,
                                             const std::string& host, const tls_settings& settings, bool& fatal);

}  // namespace thingmux::uplink
