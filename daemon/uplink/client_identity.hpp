// The Thing's TLS client identity when it is not a pair of PEM files: a private key in a PKCS#11
// token (and maybe its certificate too), a TPM 2.0 key (TSS2 PEM file, tpm2-openssl provider), or
// a PKCS#12 bundle. Loaded fresh at every connection attempt, like the PEM files.
#pragma once

#include "daemon/uplink/openssl_objects.hpp"
#include "daemon/uplink/tls.hpp"

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace thingmux::uplink {

struct client_identity {
    evp_pkey_ptr key;             // null: the key is a PEM file (tls_settings::key_file)
    x509_ptr cert;                // null: the certificate is a PEM file (tls_settings::cert_file)
    std::vector<x509_ptr> chain;  // PKCS#12: the other certificates of the bundle
    // What the key and certificate are, for messages: "PKCS#11 key pkcs11:token=t;object=k",
    // "TPM key /etc/thingmux/key.tss", "PKCS#12 bundle /etc/thingmux/thing.p12".
    std::string key_name;
    std::string cert_name;
    std::string error;
    std::error_code code;
};

// The key (and certificate, when cert_file is a "pkcs11:" URI too) that key_file's URI names.
[[nodiscard]] client_identity load_token_identity(const tls_settings& s);

// The TPM key of key_file, whose text is `pem` (tpm2_key.cpp).
[[nodiscard]] client_identity load_tpm2_key(const std::string& pem, const tls_settings& s);

// Key, certificate and chain of the PKCS#12 bundle pkcs12_file.
[[nodiscard]] client_identity load_pkcs12(const tls_settings& s);

}  // namespace thingmux::uplink
