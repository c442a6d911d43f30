#include "daemon/uplink/client_identity.hpp"

#include "common/custom_authorizer.hpp"
#include "common/pkcs11_uri.hpp"
#include "common/regular_file.hpp"
#include "daemon/uplink/error.hpp"
#include "daemon/uplink/pkcs11_key.hpp"
#include "daemon/uplink/secret_file.hpp"

#include <openssl/err.h>
#include <openssl/pkcs12.h>

#include <cstring>

namespace thingmux::uplink {
namespace {

constexpr std::size_t max_pin_bytes = 256;
constexpr std::size_t max_password_bytes = 1024;

client_identity failed(std::string why, std::error_code code = errc::credentials_unusable) {
    client_identity id;
    id.error = std::move(why);
    id.code = code;
    return id;
}

// A secret (PIN, password) of a file, without its trailing newline: echo PIN > file is the usual way.
std::string read_secret(const std::filesystem::path& file, const std::string& named, std::size_t max, std::string& out) {
    if (auto e = read_secret_file(file, named, max, out); !e.empty()) return e;
    out.resize(custom_authorizer::without_line_end(out).size());
    return {};
}

}  // namespace

std::string openssl_errors() {
    std::string out;
    while (const unsigned long e = ERR_get_error()) {
        const char* r = ERR_reason_error_string(e);
        if (r == nullptr) continue;
        if (!out.empty()) out += "; ";
        out += r;
    }
    return out.empty() ? "unknown error" : out;
}

client_identity load_token_identity(const tls_settings& s) {
    const auto key_uri = pkcs11::parse_uri(s.key_file.native());
    // The configuration checked both; this only guards against a setting made elsewhere.
    if (!key_uri.value) return failed("key " + pkcs11::redact(s.key_file.native()) + " is not a PKCS#11 URI: " + key_uri.problem);
    const auto& uri = *key_uri.value;
    std::string pin = uri.pin_value;
    struct wipe_pin {
        std::string& s;
        ~wipe_pin() { wipe(s); }
    } const wiping{pin};
    const auto pin_file = !uri.pin_source.empty() ? std::filesystem::path(uri.pin_file()) : s.key_pin;
    if (pin.empty() && !pin_file.empty()) {
        if (auto e = read_secret(pin_file, "PIN file " + pin_file.string(), max_pin_bytes, pin); !e.empty()) return failed(e);
    }
    client_identity id;
    id.key_name = "PKCS#11 key " + uri.describe();
    auto key = load_token_key(uri, pin);
    if (!key.key) return failed(std::move(key.error));
    id.key = std::move(key.key);
    if (pkcs11::is_uri(s.cert_file.native())) {
        const auto cert_uri = pkcs11::parse_uri(s.cert_file.native());
        if (!cert_uri.value) return failed("cert " + pkcs11::redact(s.cert_file.native()) + " is not a PKCS#11 URI: " + cert_uri.problem);
        auto c = *cert_uri.value;
        // The certificate sits in the key's token: it may leave out module-path and the PIN.
        if (c.module_path.empty()) c.module_path = uri.module_path;
        auto cert = load_token_certificate(c, pin);
        if (!cert.cert) return failed(std::move(cert.error));
        id.cert = std::move(cert.cert);
        id.cert_name = "PKCS#11 certificate " + c.describe();
    }
    return id;
}

client_identity load_pkcs12(const tls_settings& s) {
    const auto& file = s.pkcs12_file;
    auto c = files::read_regular(file, files::max_credential_bytes);
    if (c.os_error != 0) return failed("cannot read PKCS#12 bundle " + file.string() + ": " + std::strerror(c.os_error));
    if (!c.ok()) return failed("PKCS#12 bundle " + file.string() + " " + c.problem);
    std::string password;
    struct wipe_password {
        std::string& s;
        ~wipe_password() { wipe(s); }
    } const wiping{password};
    if (!s.pkcs12_password.empty()) {
        if (auto e = read_secret(s.pkcs12_password, "PKCS#12 password file " + s.pkcs12_password.string(),
                                 max_password_bytes, password);
            !e.empty())
            return failed(e);
    }
    const auto* bytes = reinterpret_cast<const unsigned char*>(c.bytes.data());
    PKCS12* p12 = d2i_PKCS12(nullptr, &bytes, static_cast<long>(c.bytes.size()));
    if (p12 == nullptr) return failed("PKCS#12 bundle " + file.string() + " is not a PKCS#12 (DER) file: " + openssl_errors());
    ERR_clear_error();
    if (PKCS12_verify_mac(p12, password.c_str(), static_cast<int>(password.size())) != 1) {
        PKCS12_free(p12);
        return failed("wrong password for PKCS#12 bundle " + file.string() + ": check pkcs12_password");
    }
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
    STACK_OF(X509)* chain = nullptr;
    const bool parsed = PKCS12_parse(p12, password.c_str(), &key, &cert, &chain) == 1;
    PKCS12_free(p12);
    client_identity id;
    id.key.reset(key);
    id.cert.reset(cert);
    for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) id.chain.emplace_back(sk_X509_value(chain, i));
    sk_X509_free(chain);
    if (!parsed) return failed("cannot read PKCS#12 bundle " + file.string() + ": " + openssl_errors());
    if (!id.key || !id.cert)
        return failed("PKCS#12 bundle " + file.string() + " holds no " + (id.key ? "certificate" : "private key") +
                      ": export it with openssl pkcs12 -export -inkey KEY -in CERT");
    id.key_name = id.cert_name = "PKCS#12 bundle " + file.string();
    return id;
}

}  // namespace thingmux::uplink
