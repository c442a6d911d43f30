// A Thing's TLS identity (docs/config.md "things[].cert", docs/identity.md): ca, cert and
// key as PEM files, a key (and certificate) in a PKCS#11 token named by a "pkcs11:" URI with its
// key_pin, a TPM 2.0 key file, or a PKCS#12 bundle with its pkcs12_password.
#include "common/pkcs11_uri.hpp"
#include "config/parser.hpp"

namespace thingmux::config::detail {
namespace {

constexpr const char* uri_hint =
    "e.g. pkcs11:token=thing;object=key;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so";

}  // namespace

void parser::parse_credentials(const fields& f, const std::string& path, thing& t, bool certificate_optional) {
    const auto p = [&](std::string_view key) { return path + "." + std::string(key); };
    const auto* bundle = find(f, "pkcs12");
    if (bundle != nullptr) {
        if (auto v = file_or_credential(bundle->value, p("pkcs12"))) t.pkcs12 = std::move(*v);
        for (const char* key : {"cert", "key", "key_pin"}) {
            if (const auto* x = find(f, key))
                error(x->value, p(key), std::string("pkcs12 holds the key and certificate: ") + key + " goes without it",
                      "write either pkcs12 (with pkcs12_password) or cert and key");
        }
    }
    if (const auto* x = find(f, "pkcs12_password")) {
        if (bundle == nullptr) error(x->value, p("pkcs12_password"), "goes with pkcs12", "write pkcs12: the bundle's file");
        else if (auto v = secret_file(x->value, p("pkcs12_password"), "the bundle's password")) t.pkcs12_password = std::move(*v);
    }
    const auto required = [&](std::string_view key, std::string_view hint) -> const field* {
        const auto* x = find(f, key);
        if (x == nullptr) report(t.where, p(key), "missing required key '" + std::string(key) + "'", std::string(hint));
        return x;
    };
    if (const auto* x = required("ca", "the path of the PEM file, e.g. ca: /etc/thingmux/...")) {
        if (auto v = file_or_credential(x->value, p("ca"))) t.ca = std::move(*v);
    }
    bool key_in_token = false;
    for (const auto& [key, target] : {std::pair{"cert", &t.cert}, {"key", &t.key}}) {
        const auto hint = "the path of the PEM file, e.g. " + std::string(key) + ": /etc/thingmux/..., or a pkcs11: URI";
        const auto* x = certificate_optional || bundle != nullptr ? find(f, key) : required(key, hint);
        if (x == nullptr || bundle != nullptr) continue;
        const auto text = x->value.IsScalar() ? x->value.Scalar() : std::string();
        if (!pkcs11::is_uri(text)) {
            if (auto v = file_or_credential(x->value, p(key))) *target = std::move(*v);
            continue;
        }
        // Never quoted as written: the URI may hold a PIN.
        const auto uri = pkcs11::parse_uri(text);
        if (!uri.value) {
            error(x->value, p(key), "is not a usable PKCS#11 URI: it " + uri.problem, uri_hint);
            continue;
        }
        if (std::string_view(key) == "key") {
            key_in_token = true;
            if (uri.value->module_path.empty())
                error(x->value, p(key), "names no PKCS#11 library: module-path is missing",
                      "add ?module-path=/path/of/the/token/library.so, e.g. /usr/lib/softhsm/libsofthsm2.so");
            if (const auto* type = uri.value->find("type"); type != nullptr && *type != "private")
                error(x->value, p(key), "names an object of type " + *type + ", not a private key", "write type=private");
        } else if (const auto* type = uri.value->find("type"); type != nullptr && *type != "cert") {
            error(x->value, p(key), "names an object of type " + *type + ", not a certificate", "write type=cert");
        }
        if (!uri.value->pin_value.empty())
            warn(x->value, p(key), "holds the token's PIN (pin-value) in the configuration file",
                 "put the PIN in a file only thingmuxd may read and name it in key_pin (or pin-source=file:...)");
        *target = text;
    }
    const auto* cert = find(f, "cert");
    const auto* key = find(f, "key");
    if (cert != nullptr && key != nullptr && bundle == nullptr && pkcs11::is_uri(t.cert.native()) && !key_in_token)
        error(cert->value, p("cert"), "a certificate in a token goes with the key in that token",
              "write key: as a pkcs11: URI too, or cert: as the certificate's PEM file");
    if (certificate_optional && bundle == nullptr && (cert == nullptr) != (key == nullptr)) {
        const auto* written = cert != nullptr ? cert : key;
        error(written->value, p(cert != nullptr ? "cert" : "key"), "cert and key go together",
              "write both (a client certificate with its key) or neither");
    }
    if (const auto* x = find(f, "key_pin"); x != nullptr && bundle == nullptr) {
        if (!key_in_token)
            error(x->value, p("key_pin"), "is the PIN of a key in a PKCS#11 token", "write key: as a pkcs11: URI, or remove key_pin");
        else if (auto v = secret_file(x->value, p("key_pin"), "the token's PIN"))
            t.key_pin = std::move(*v);
    }
}

}  // namespace thingmux::config::detail
