#include "daemon/tpm2/tpm2_provider.hpp"

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include <cstdlib>
#include <mutex>
#include <utility>

namespace thingmux::tpm2 {

bool is_tss2_pem(std::string_view pem) noexcept {
    const auto start = pem.find_first_not_of(" \t\r\n");
    return start != std::string_view::npos && pem.substr(start).starts_with(tss2_pem_begin);
}

std::string tcti_name(const std::string& tcti) {
    return tcti.empty() ? std::string("the provider's default TCTI") : "TCTI " + tcti;
}

namespace {

// The providers this process loaded; unloaded at exit, after every key that refers to them is
// gone, so that the provider's own state (its TPM connection) is torn down and freed.
OSSL_PROVIDER* loaded_default = nullptr;
OSSL_PROVIDER* loaded_tpm2 = nullptr;

void unload_providers() {
    if (loaded_tpm2 != nullptr) OSSL_PROVIDER_unload(std::exchange(loaded_tpm2, nullptr));
    if (loaded_default != nullptr) OSSL_PROVIDER_unload(std::exchange(loaded_default, nullptr));
}

}  // namespace

std::string load_provider(const std::string& tcti) {
    // Loaded once for the process, until it exits: the keys loaded through it refer to it.
    static std::mutex mutex;
    const std::lock_guard lock(mutex);
    if (loaded_tpm2 != nullptr) return {};
    ERR_clear_error();
    if (!tcti.empty()) ::setenv("TPM2OPENSSL_TCTI", tcti.c_str(), 1);
    // "default" stays loaded beside it: everything but the key's own operations comes from there.
    if (loaded_default == nullptr && (loaded_default = OSSL_PROVIDER_load(nullptr, "default")) == nullptr)
        return "cannot reach the TPM through OpenSSL's tpm2 provider with " + tcti_name(tcti);
    if ((loaded_tpm2 = OSSL_PROVIDER_load(nullptr, "tpm2")) == nullptr)
        return "cannot reach the TPM through OpenSSL's tpm2 provider with " + tcti_name(tcti);
    static const bool registered = std::atexit(unload_providers) == 0;
    (void)registered;
    return {};
}

EVP_PKEY* load_key(std::string_view pem) {
    EVP_PKEY* key = nullptr;
    OSSL_DECODER_CTX* d =
        OSSL_DECODER_CTX_new_for_pkey(&key, "PEM", nullptr, nullptr, OSSL_KEYMGMT_SELECT_KEYPAIR, nullptr, "?provider=tpm2");
    const auto* data = reinterpret_cast<const unsigned char*>(pem.data());
    std::size_t size = pem.size();
    const bool ok = d != nullptr && OSSL_DECODER_from_data(d, &data, &size) == 1 && key != nullptr;
    OSSL_DECODER_CTX_free(d);
    if (ok) return key;
    EVP_PKEY_free(key);
    return nullptr;
}

EVP_PKEY* generate_ec_p256() {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", "provider=tpm2");
    EVP_PKEY* key = nullptr;
    if (ctx == nullptr || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_CTX_set_group_name(ctx, "P-256") != 1 ||
        EVP_PKEY_generate(ctx, &key) != 1) {
        EVP_PKEY_free(key);
        key = nullptr;
    }
    EVP_PKEY_CTX_free(ctx);
    return key;
}

const char* signing_properties(const EVP_PKEY* key) noexcept {
    const OSSL_PROVIDER* p = key != nullptr ? EVP_PKEY_get0_provider(key) : nullptr;
    return p != nullptr && std::string_view(OSSL_PROVIDER_get0_name(p)) == "tpm2" ? "provider=tpm2" : nullptr;
}

bool write_pem(BIO* out, EVP_PKEY* key) {
    // Only the tpm2 provider's encoder can write its key: the private part never leaves the TPM.
    OSSL_ENCODER_CTX* e = OSSL_ENCODER_CTX_new_for_pkey(key, OSSL_KEYMGMT_SELECT_KEYPAIR, "PEM", nullptr, "provider=tpm2");
    const bool ok = e != nullptr && OSSL_ENCODER_CTX_get_num_encoders(e) > 0 && OSSL_ENCODER_to_bio(e, out) == 1;
    OSSL_ENCODER_CTX_free(e);
    return ok;
}

}  // namespace thingmux::tpm2
