#include "daemon/uplink/tls.hpp"

#include "common/pkcs11_uri.hpp"
#include "common/regular_file.hpp"
#include "common/utc_time.hpp"
#include "daemon/tpm2/tpm2_provider.hpp"
#include "daemon/uplink/certificate_dates.hpp"
#include "daemon/uplink/client_identity.hpp"
#include "daemon/uplink/error.hpp"

#include <boost/asio/ip/address.hpp>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <tuple>

namespace thingmux::uplink {
namespace {

// Reads a PEM file ourselves, never waiting on what is at the path (a FIFO there would freeze the
// daemon's only thread) and giving the errno a user can act on; OpenSSL's own message for a
// missing or unreadable file is much less clear. OpenSSL then parses the bytes that were checked.
// `code` becomes the system error when the process merely ran out of something a retry may find
// again.
std::string read_pem(const char* what, const std::filesystem::path& path, std::string& bytes, std::error_code& code) {
    if (path.empty()) return std::string("no ") + what + " file configured";
    auto c = files::read_regular(path, files::max_credential_bytes);
    if (c.os_error != 0) {
        if (c.os_error == EMFILE || c.os_error == ENFILE || c.os_error == ENOMEM)
            code = std::error_code(c.os_error, std::system_category());
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

// A client context that requires TLS 1.2+ and verifies the peer.
std::shared_ptr<boost::asio::ssl::context> verifying_client_context() {
    namespace ssl = boost::asio::ssl;
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX* native = ctx->native_handle();
    ERR_clear_error();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
    return ctx;
}

tls_context_result unusable(std::string why) { return {nullptr, std::move(why), errc::credentials_unusable}; }

// Adds the CA certificates of `ca` (the bytes of `file`); an error message, empty on success.
std::string add_ca(boost::asio::ssl::context& ctx, const std::string& ca, const std::filesystem::path& file) {
    boost::system::error_code ec;
    if (ctx.add_certificate_authority(boost::asio::buffer(ca), ec); ec)
        return "CA file " + file.string() + " holds no usable PEM certificate: " + openssl_reason(ec);
    return {};
}

// Puts a key, certificate and chain that were loaded (from a token, a TPM, a bundle) in `ctx`; a
// null certificate: the one of the PEM file is already there.
std::string use_identity(SSL_CTX* ctx, const client_identity& id, const std::string& cert_name) {
    ERR_clear_error();
    if (id.cert && SSL_CTX_use_certificate(ctx, id.cert.get()) != 1)
        return id.cert_name + " is not a usable certificate";
    for (const auto& c : id.chain) {
        if (SSL_CTX_add1_chain_cert(ctx, c.get()) != 1) return "cannot add the chain of " + id.cert_name;
    }
    const std::string mismatch = id.key_name + " does not match certificate " + cert_name +
                                 ": the certificate must be issued for this key (from a CSR the key signed)";
    if (SSL_CTX_use_PrivateKey(ctx, id.key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) return mismatch;
    return {};
}

// Our certificate's dates against the system clock, once everything else about it is right: a
// broker would refuse it with a mere "certificate expired" alert, which names no clock.
tls_context_result check_client_dates(std::shared_ptr<boost::asio::ssl::context> ctx, const std::string& cert_name) {
    const auto dates = dates_of(SSL_CTX_get0_certificate(ctx->native_handle()));
    if (!dates) return {std::move(ctx), {}, {}};
    const auto now = std::chrono::system_clock::now();
    const auto v = validity_at(dates->not_before, dates->not_after, now);
    if (v == validity::valid) return {std::move(ctx), {}, {}};
    return {nullptr, clock_problem("client certificate " + cert_name, v, dates->not_before, dates->not_after, now),
            v == validity::not_yet_valid ? errc::client_certificate_not_yet_valid : errc::client_certificate_expired};
}

std::optional<wall_time> wall_time_of(const ASN1_TIME* t) {
    std::tm tm{};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
    return utc_time_point(tm);  // not timegm(): a 32-bit time_t ends before AWS IoT's 2049 certificates do
}

}  // namespace

std::optional<certificate_dates> dates_of(const X509* cert) {
    if (cert == nullptr) return std::nullopt;
    const auto from = wall_time_of(X509_get0_notBefore(cert));
    const auto until = wall_time_of(X509_get0_notAfter(cert));
    if (!from || !until) return std::nullopt;
    return certificate_dates{*from, *until};
}

std::error_code server_verify_error(long verify_result) noexcept {
    switch (verify_result) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: return errc::server_name_mismatch;
    case X509_V_ERR_CERT_NOT_YET_VALID: return errc::server_certificate_not_yet_valid;
    case X509_V_ERR_CERT_HAS_EXPIRED: return errc::server_certificate_expired;
    default: return errc::server_certificate_untrusted;
    }
}

tls_context_result make_tls_context(const tls_settings& s) {
    std::string ca, cert, key;
    const wiped key_copy{key};
    const bool client_certificate = !s.cert_file.empty() || !s.key_file.empty() || !s.pkcs12_file.empty();
    const bool key_in_token = pkcs11::is_uri(s.key_file.native());
    const bool cert_in_token = pkcs11::is_uri(s.cert_file.native());
    for (const auto& [what, path, bytes, wanted] :
         {std::tuple{"CA", &s.ca_file, &ca, true}, {"certificate", &s.cert_file, &cert, !cert_in_token},
          {"key", &s.key_file, &key, !key_in_token}}) {
        if (path != &s.ca_file && (!client_certificate || !s.pkcs12_file.empty() || !wanted)) continue;
        std::error_code code = errc::credentials_unusable;
        if (auto e = read_pem(what, *path, *bytes, code); !e.empty()) return {nullptr, e, code};
    }
    client_identity loaded;
    if (!s.pkcs12_file.empty()) loaded = load_pkcs12(s);
    else if (key_in_token) loaded = load_token_identity(s);
    else if (tpm2::is_tss2_pem(key)) loaded = load_tpm2_key(key, s);
    if (!loaded.error.empty()) return {nullptr, std::move(loaded.error), loaded.code};
    namespace ssl = boost::asio::ssl;
    auto ctx = verifying_client_context();
    SSL_CTX* native = ctx->native_handle();
    // An encrypted key must not make OpenSSL ask for a password on the terminal: it fails instead.
    boost::system::error_code ec;
    ctx->set_password_callback([](std::size_t, ssl::context::password_purpose) { return std::string(); }, ec);
    if (auto e = add_ca(*ctx, ca, s.ca_file); !e.empty()) return unusable(std::move(e));
    if (!client_certificate) return {ctx, {}, {}};
    if (!cert.empty()) {
        if (ctx->use_certificate_chain(boost::asio::buffer(cert), ec); ec)
            return unusable("certificate file " + s.cert_file.string() +
                            " holds no usable PEM certificate: " + openssl_reason(ec));
    }
    if (loaded.key) {
        const auto cert_name = loaded.cert ? loaded.cert_name : "file " + s.cert_file.string();
        if (auto e = use_identity(native, loaded, cert_name); !e.empty()) return unusable(std::move(e));
        return check_client_dates(std::move(ctx), cert_name);
    }
    const std::string mismatch =
        "key file " + s.key_file.string() + " does not match certificate " + s.cert_file.string();
    if (ctx->use_private_key(boost::asio::buffer(key), ssl::context::pem, ec); ec) {
        if (ERR_GET_REASON(openssl_code(ec)) == X509_R_KEY_VALUES_MISMATCH) return unusable(mismatch);
        return unusable("key file " + s.key_file.string() + " holds no usable PEM private key: " + openssl_reason(ec));
    }
    ERR_clear_error();
    if (SSL_CTX_check_private_key(native) != 1) return unusable(mismatch);
    return check_client_dates(std::move(ctx), "file " + s.cert_file.string());
}

tls_context_result make_proxy_tls_context(const std::filesystem::path& ca_file) {
    auto ctx = verifying_client_context();
    if (ca_file.empty()) {
        if (SSL_CTX_set_default_verify_paths(ctx->native_handle()) != 1)
            return unusable("cannot load the system's CA store for the proxy's certificate");
        return {ctx, {}, {}};
    }
    std::string ca;
    std::error_code code = errc::credentials_unusable;
    if (auto e = read_pem("proxy CA", ca_file, ca, code); !e.empty()) return {nullptr, e, code};
    if (auto e = add_ca(*ctx, ca, ca_file); !e.empty()) return unusable("proxy " + e);
    return {ctx, {}, {}};
}

std::string prepare_ssl(SSL* ssl, const std::string& host, const std::vector<std::string>& alpn) {
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

namespace {

class openssl_error_category final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "openssl"; }

    // OpenSSL's reason and library, as Asio words them: "wrong version number (SSL routines)".
    [[nodiscard]] std::string message(int value) const override {
        const auto code = static_cast<unsigned long>(static_cast<unsigned int>(value));
        const char* reason = ERR_reason_error_string(code);
        if (reason == nullptr) return "OpenSSL error " + std::to_string(code);
        std::string text = reason;
        if (const char* lib = ERR_lib_error_string(code); lib != nullptr) text += std::string(" (") + lib + ")";
        return text;
    }
};

}  // namespace

const std::error_category& openssl_category() noexcept {
    static const openssl_error_category instance;
    return instance;
}

std::error_code openssl_error(unsigned long code) noexcept {
    // OpenSSL 3 packs library and reason into 31 bits, so the value survives the trip through int.
    return {static_cast<int>(static_cast<unsigned int>(code)), openssl_category()};
}

}  // namespace thingmux::uplink
