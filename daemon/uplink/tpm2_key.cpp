// TPM 2.0 keys (TSS2 PEM files) through the tpm2-openssl provider.
//
// The provider's key cannot sign inside a TLS handshake as it is: OpenSSL 3.0 offers the
// handshake's signature to the default provider first, which takes the key's public half (all the
// TPM exports) and then fails for want of the private one. Preferring the tpm2 provider for the
// whole TLS context instead makes every hash, cipher and signature check a TPM command, which is
// slow and exhausts a TPM's few object slots within one handshake. So the TLS context gets an EC
// key whose signing method asks the TPM key to sign, and does everything else itself. That method
// is OpenSSL's EC_KEY_METHOD, deprecated in OpenSSL 3: this file is the one place that uses it, so
// the deprecation warnings are silenced here only.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "daemon/uplink/client_identity.hpp"
#include "daemon/uplink/error.hpp"
#include "daemon/tpm2/tpm2_provider.hpp"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <vector>

namespace thingmux::uplink {
namespace {

// Where the EC key keeps the TPM key it signs with (freed with it).
int tpm_key_index() {
    static const int index = EC_KEY_get_ex_new_index(
        0, nullptr, nullptr, nullptr, [](void*, void* key, CRYPTO_EX_DATA*, int, long, void*) {
            EVP_PKEY_free(static_cast<EVP_PKEY*>(key));
        });
    return index;
}

// ECDSA of a digest by the TPM key, as OpenSSL's EC_KEY_METHOD asks for it.
ECDSA_SIG* tpm_sign_sig(const unsigned char* digest, int length, const BIGNUM*, const BIGNUM*, EC_KEY* ec) {
    auto* key = static_cast<EVP_PKEY*>(EC_KEY_get_ex_data(ec, tpm_key_index()));
    EVP_PKEY_CTX* ctx = key != nullptr ? EVP_PKEY_CTX_new_from_pkey(nullptr, key, "provider=tpm2") : nullptr;
    ECDSA_SIG* sig = nullptr;
    std::size_t size = 0;
    const auto n = static_cast<std::size_t>(length);
    if (ctx != nullptr && EVP_PKEY_sign_init(ctx) == 1 && EVP_PKEY_sign(ctx, nullptr, &size, digest, n) == 1) {
        std::vector<unsigned char> der(size);
        if (EVP_PKEY_sign(ctx, der.data(), &size, digest, n) == 1) {
            const unsigned char* p = der.data();
            sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(size));
        }
    }
    EVP_PKEY_CTX_free(ctx);
    return sig;
}

int tpm_sign(int, const unsigned char* digest, int length, unsigned char* out, unsigned int* out_length,
             const BIGNUM* k, const BIGNUM* r, EC_KEY* ec) {
    ECDSA_SIG* sig = tpm_sign_sig(digest, length, k, r, ec);
    if (sig == nullptr) return 0;
    *out_length = static_cast<unsigned int>(i2d_ECDSA_SIG(sig, &out));
    ECDSA_SIG_free(sig);
    return 1;
}

const EC_KEY_METHOD* tpm_method() {
    static EC_KEY_METHOD* method = [] {
        EC_KEY_METHOD* m = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
        if (m != nullptr) EC_KEY_METHOD_set_sign(m, tpm_sign, nullptr, tpm_sign_sig);
        return m;
    }();
    return method;
}

// An EC key with the TPM key's public half whose signatures the TPM key makes; takes `tpm`.
evp_pkey_ptr signing_through(evp_pkey_ptr tpm) {
    unsigned char* der = nullptr;
    const int length = i2d_PUBKEY(tpm.get(), &der);
    if (length <= 0) return nullptr;
    const unsigned char* p = der;
    evp_pkey_ptr pub{d2i_PUBKEY(nullptr, &p, length)};
    OPENSSL_free(der);
    EC_KEY* ec = pub ? EVP_PKEY_get1_EC_KEY(pub.get()) : nullptr;
    if (ec == nullptr || tpm_method() == nullptr || EC_KEY_set_method(ec, tpm_method()) != 1 ||
        EC_KEY_set_ex_data(ec, tpm_key_index(), tpm.get()) != 1) {
        EC_KEY_free(ec);
        return nullptr;
    }
    (void)tpm.release();  // the EC key owns it now
    evp_pkey_ptr out{EVP_PKEY_new()};
    if (!out || EVP_PKEY_assign_EC_KEY(out.get(), ec) != 1) {
        EC_KEY_free(ec);
        return nullptr;
    }
    return out;
}

client_identity failed(std::string why, errc code = errc::credentials_unusable) {
    client_identity id;
    id.error = std::move(why);
    id.code = code;
    return id;
}

}  // namespace

client_identity load_tpm2_key(const std::string& pem, const tls_settings& s) {
    ERR_clear_error();
    if (auto why = tpm2::load_provider(s.tpm2_tcti); !why.empty())
        return failed(why + " (" + openssl_errors() +
                          "): check that tpm2-openssl is installed and the TPM is reachable (/dev/tpmrm0, or tpm2_tcti:)",
                      errc::key_store_unreachable);  // a TPM simulator or resource manager may come up
    const auto name = "TPM key " + s.key_file.string();
    evp_pkey_ptr tpm_key{tpm2::load_key(pem)};
    if (!tpm_key)
        return failed("cannot load " + name + " into the TPM with " + tpm2::tcti_name(s.tpm2_tcti) + ": " +
                      openssl_errors() + "; was the key made by this TPM, and is the TPM reachable?");
    if (EVP_PKEY_get_base_id(tpm_key.get()) != EVP_PKEY_EC)
        return failed(name + " is not an EC key: thingmuxd signs with TPM EC keys only (openssl genpkey -provider tpm2 "
                             "-algorithm EC -pkeyopt group:P-256)");
    client_identity id;
    id.key = signing_through(std::move(tpm_key));
    if (!id.key) return failed("cannot use " + name + " for TLS: " + openssl_errors());
    id.key_name = name;
    return id;
}

}  // namespace thingmux::uplink
