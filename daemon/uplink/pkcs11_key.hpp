// A Thing's private key (and optionally its certificate) held in a PKCS#11 token, loaded through
// libp11's OpenSSL engine (Debian 12: libengine-pkcs11-openssl). The key never leaves the token:
// OpenSSL gets a handle whose signatures the token makes.
//
// This small interface is the only thing the TLS code knows of PKCS#11 loading: when OpenSSL's
// pkcs11 provider is available (later Debian releases), pkcs11_key.cpp is replaced by an
// OSSL_STORE load of the same URI and nothing else changes.
#pragma once

#include "common/pkcs11_uri.hpp"
#include "daemon/uplink/openssl_objects.hpp"

#include <string>

namespace thingmux::uplink {

// A key or certificate from the token, or what is wrong ("PIN incorrect for token thing", ...).
struct token_object {
    evp_pkey_ptr key;
    x509_ptr cert;
    std::string error;
};

// Loads the private key `uri` names from the token of the library in its module-path, logging in
// with `pin` (empty: none). Never prompts. A PIN the token refused is not tried again for the same
// token and object (a real token locks itself after a few wrong PINs): the error says so until
// the PIN changes.
[[nodiscard]] token_object load_token_key(const pkcs11::uri& uri, const std::string& pin);
// The same for the certificate object `uri` names (type=cert).
[[nodiscard]] token_object load_token_certificate(const pkcs11::uri& uri, const std::string& pin);

}  // namespace thingmux::uplink
