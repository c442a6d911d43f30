// Owning pointers to the OpenSSL objects a client identity is made of (a key, certificates).
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>

namespace thingmux::uplink {

struct evp_pkey_free {
    void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct x509_free {
    void operator()(X509* c) const noexcept { X509_free(c); }
};
using evp_pkey_ptr = std::unique_ptr<EVP_PKEY, evp_pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

}  // namespace thingmux::uplink
