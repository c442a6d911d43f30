// TLS client settings of one uplink, the OpenSSL context built from them (with errors that name
// the file and the problem: "cannot read key file /etc/x.pem: Permission denied"), the per-
// connection SSL set-up, and OpenSSL's errors as std::error_code values.
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <openssl/ssl.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace thingmux::uplink {

struct tls_settings {
    std::filesystem::path ca_file;    // CA bundle that must have signed the broker's certificate
    // Client certificate chain and private key (PEM); both empty: no client certificate (the broker
    // authenticates the client otherwise, e.g. through a custom authorizer).
    // key_file may also be a "pkcs11:" URI (a key in a PKCS#11 token) or a TSS2 PEM file (a TPM
    // 2.0 key); cert_file may also be a "pkcs11:" URI (the certificate in the key's token).
    std::filesystem::path cert_file;
    std::filesystem::path key_file;
    std::filesystem::path key_pin;  // a file with the token's PIN where the URI gives none; empty: none
    // A PKCS#12 bundle (key, certificate, chain) instead of cert_file and key_file, and the file
    // holding its password (empty: none).
    std::filesystem::path pkcs12_file;
    std::filesystem::path pkcs12_password;
    // The tpm2 provider's TCTI, set as TPM2OPENSSL_TCTI when the provider is first loaded; empty:
    // the provider's default (/dev/tpmrm0).
    std::string tpm2_tcti;
    std::vector<std::string> alpn;    // e.g. {"x-amzn-mqtt-ca"} for AWS IoT Core on port 443
    // What the server is, in messages ("broker rejected our client certificate …").
    std::string peer = "broker";
};

// Either a ready context or a message saying which file is wrong and why.
struct tls_context_result {
    std::shared_ptr<boost::asio::ssl::context> context;
    std::string error;
    // errc::credentials_unusable, or the system error when the process merely ran out of
    // descriptors or memory (retrying can help then).
    std::error_code code;
};

// Loads the files (and the key from its token or TPM) fresh, so a fixed permission or a rotated
// certificate is picked up on the next attempt; requires TLS 1.2+, peer verification against
// ca_file, and checks that the key matches the certificate (when there is a client certificate).
[[nodiscard]] tls_context_result make_tls_context(const tls_settings& settings);

// A context for a TLS connection to an https:// proxy: TLS 1.2+, the proxy's certificate verified
// against `ca_file` (loaded fresh) or, when it is empty, the system's CA store; no client
// certificate.
[[nodiscard]] tls_context_result make_proxy_tls_context(const std::filesystem::path& ca_file);

// Prepares one connection's SSL object: SNI (not for IP literals), host name / IP verification
// against the certificate, ALPN. Returns an error message, empty on success.
[[nodiscard]] std::string prepare_ssl(SSL* ssl, const std::string& host, const std::vector<std::string>& alpn);

// OpenSSL's error codes (ERR_get_error()) as std::error_code values; message() is OpenSSL's
// reason and library: "wrong version number (SSL routines)".
[[nodiscard]] const std::error_category& openssl_category() noexcept;
[[nodiscard]] std::error_code openssl_error(unsigned long code) noexcept;

}  // namespace thingmux::uplink
