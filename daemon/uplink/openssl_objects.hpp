// Owning pointers to the OpenSSL objects a client identity is made of (a key, certificates), and
// OpenSSL's queued errors for a message.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace thingmux::uplink {

struct evp_pkey_free {
    void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct x509_free {
    void operator()(X509* c) const noexcept { X509_free(c); }
};
using evp_pkey_ptr = std::unique_ptr<EVP_PKEY, evp_pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

// Takes OpenSSL's queued errors, oldest first, as one line: "PIN incorrect; object not found"
// ("unknown error" when there is none). Defined in client_identity.cpp.
[[nodiscard]] std::string openssl_errors();

}  // namespace thingmux::uplink
