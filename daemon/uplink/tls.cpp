#include "daemon/uplink/tls.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace thingmux::uplink {
namespace {

// Opening the file ourselves gives the errno a user can act on; OpenSSL's own message for a
// missing or unreadable file is much less clear.
std::string check_readable(const char* what, const std::filesystem::path& path) {
    if (path.empty()) return std::string("no ") + what + " file configured";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::string("cannot read ") + what + " file " + path.string() + ": " + std::strerror(errno);
    ::close(fd);
    return {};
}

std::string openssl_reason() {
    const unsigned long code = ERR_peek_last_error();
    ERR_clear_error();
    if (code == 0) return "unknown OpenSSL error";
    const char* r = ERR_reason_error_string(code);
    return r ? r : "unknown OpenSSL error";
}

}  // namespace

tls_context_result make_tls_context(const tls_settings& s) {
    for (const auto& [what, path] : {std::pair{"CA", &s.ca_file}, {"certificate", &s.cert_file}, {"key", &s.key_file}}) {
        if (auto e = check_readable(what, *path); !e.empty()) return {nullptr, e};
    }
    namespace ssl = boost::asio::ssl;
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX* native = ctx->native_handle();
    ERR_clear_error();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_load_verify_locations(native, s.ca_file.c_str(), nullptr) != 1)
        return {nullptr, "CA file " + s.ca_file.string() + " holds no usable PEM certificate: " + openssl_reason()};
    if (SSL_CTX_use_certificate_chain_file(native, s.cert_file.c_str()) != 1)
        return {nullptr, "certificate file " + s.cert_file.string() + " holds no usable PEM certificate: " + openssl_reason()};
    if (SSL_CTX_use_PrivateKey_file(native, s.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
            ERR_clear_error();
            return {nullptr, "key file " + s.key_file.string() + " does not match certificate " + s.cert_file.string()};
        }
        return {nullptr, "key file " + s.key_file.string() + " holds no usable PEM private key: " + openssl_reason()};
    }
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
