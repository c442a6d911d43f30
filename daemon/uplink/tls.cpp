#include "daemon/uplink/tls.hpp"

#include "common/regular_file.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <tuple>

namespace thingmux::uplink {
namespace {

// Reads a PEM file ourselves, never waiting on what is at the path (a FIFO there would freeze the
// daemon's only thread) and giving the errno a user can act on; OpenSSL's own message for a
// missing or unreadable file is much less clear. OpenSSL then parses the bytes that were checked.
// `fatal` is cleared when the process merely ran out of something a retry may find again.
std::string read_pem(const char* what, const std::filesystem::path& path, std::string& bytes, bool& fatal) {
    if (path.empty()) return std::string("no ") + what + " file configured";
    auto c = files::read_regular(path, files::max_credential_bytes);
    if (c.os_error != 0) {
        fatal = c.os_error != EMFILE && c.os_error != ENFILE && c.os_error != ENOMEM;
        return std::string("cannot read ") + what + " file " + path.string() + ": " + std::strerror(c.os_error);
    }
    if (!c.ok()) return std::string(what) + " file " + path.string() + " " + c.problem;
    bytes = std::move(c.bytes);
    return {};
}

// The OpenSSL error code in an error Asio's SSL context reported.
unsigned long openssl_code(const boost::system::error_code& ec) {
    return static_cast<unsigned long>(static_cast<unsigned int>(ec.value()));
}

// Its reason, for a message: "no start line", "bad decrypt".
std::string openssl_reason(const boost::system::error_code& ec) {
    const char* r = ERR_reason_error_string(openssl_code(ec));
    return r != nullptr ? r : "unknown OpenSSL error";
}

// Wipes a copy of the private key once OpenSSL holds its own.
struct wiped {
    std::string& bytes;
    ~wiped() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
};

}  // namespace

tls_context_result make_tls_context(const tls_settings& s) {
    std::string ca, cert, key;
    const wiped key_copy{key};
    for (const auto& [what, path, bytes] : {std::tuple{"CA", &s.ca_file, &ca}, {"certificate", &s.cert_file, &cert},
                                            {"key", &s.key_file, &key}}) {
        bool fatal = true;
        if (auto e = read_pem(what, *path, *bytes, fatal); !e.empty()) return {nullptr, e, fatal};
    }
    namespace ssl = boost::asio::ssl;
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX* native = ctx->native_handle();
    ERR_clear_error();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
    // An encrypted key must not make OpenSSL ask for a password on the terminal: it fails instead.
    boost::system::error_code ec;
    ctx->set_password_callback([](std::size_t, ssl::context::password_purpose) { return std::string(); }, ec);
    if (ctx->add_certificate_authority(boost::asio::buffer(ca), ec); ec)
        return {nullptr, "CA file " + s.ca_file.string() + " holds no usable PEM certificate: " + openssl_reason(ec)};
    if (ctx->use_certificate_chain(boost::asio::buffer(cert), ec); ec)
        return {nullptr,
                "certificate file " + s.cert_file.string() + " holds no usable PEM certificate: " + openssl_reason(ec)};
    if (ctx->use_private_key(boost::asio::buffer(key), ssl::context::pem, ec); ec) {
        if (ERR_GET_REASON(openssl_code(ec)) == X509_R_KEY_VALUES_MISMATCH)
            return {nullptr, "key file " + s.key_file.string() + " does not match certificate " + s.cert_file.string()};
        return {nullptr, "key file " + s.key_file.string() + " holds no usable PEM private key: " + openssl_reason(ec)};
    }
    ERR_clear_error();
    if (SSL_CTX_check_private_key(native) != 1)
        return {nullptr, "key file " + s.key_file.string() + " does not match certificate " + s.cert_file.string()};
    return {ctx, {}};
}

std::string prepare_ssl(void* native_ssl, const std::string& host, const std::vector<std::string>& alpn) {
    auto* ssl = static_cast<SSL*>(native_ssl);
    boost::system::error_code ec;
    const auto ip = boost::asio::ip::make_address(host, ec);
    if (ec) {
        // SNI is required by AWS IoT Core; it is only defined for DNS names.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"  // OpenSSL's macro casts
        if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) return "cannot set TLS SNI to " + host;
#pragma GCC diagnostic pop
        if (SSL_set1_host(ssl, host.c_str()) != 1) return "cannot set host name verification for " + host;
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    } else {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        if (X509_VERIFY_PARAM_set1_ip_asc(param, ip.to_string().c_str()) != 1) return "cannot verify IP " + host;
    }
    if (!alpn.empty()) {
        std::string wire;
        for (const auto& p : alpn) {
            if (p.empty() || p.size() > 255) return "invalid ALPN protocol name '" + p + "'";
            wire.push_back(static_cast<char>(p.size()));
            wire += p;
        }
        // SSL_set_alpn_protos returns 0 on success, unlike most of OpenSSL.
        if (SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(wire.data()),
                                static_cast<unsigned>(wire.size())) != 0)
            return "cannot set ALPN";
    }
    return {};
}

std::string describe_tls_error(const boost::system::error_code& ec, void* native_ssl, const std::string& host,
                               const tls_settings& s, bool& fatal) {
    fatal = false;
    auto* ssl = static_cast<SSL*>(native_ssl);
    if (ssl != nullptr) {
        const long verify = SSL_get_verify_result(ssl);
        if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
            fatal = true;
            return "server certificate does not match host name " + host;
        }
        if (verify != X509_V_OK) {
            fatal = true;
            return "server certificate for " + host + " not trusted by CA file " + s.ca_file.string() + ": " +
                   X509_verify_cert_error_string(verify);
        }
    }
    if (ec.category() == boost::asio::error::get_ssl_category()) {
        const std::string what = ec.message();
        // An alert from the broker during or right after the handshake means it refused our
        // certificate (with TLS 1.3 it arrives on the first read, after the handshake "succeeded").
        if (what.find("alert") != std::string::npos) {
            fatal = what.find("certificate") != std::string::npos || what.find("unknown ca") != std::string::npos;
            return "broker rejected our client certificate " + s.cert_file.string() + ": " + what;
        }
        return "TLS error with " + host + ": " + what;
    }
    if (ec == boost::asio::ssl::error::stream_truncated) return "TLS connection to " + host + " closed without close_notify";
    return ec.message();
}

}  // namespace thingmux::uplink
