// TPM 2.0 keys through OpenSSL's tpm2 provider (tpm2-openssl). A TPM key on disk is a TSS2 PEM
// ("-----BEGIN TSS2 PRIVATE KEY-----"): a blob wrapped by the TPM, of use only to that TPM. No
// logging; failures leave OpenSSL's reason in its error queue and say what failed.
#pragma once

#include <openssl/types.h>

#include <string>
#include <string_view>

namespace thingmux::tpm2 {

inline constexpr std::string_view tss2_pem_begin = "-----BEGIN TSS2 PRIVATE KEY-----";

// Whether `pem` is a TSS2 PEM key (it starts with its BEGIN line, after white space).
[[nodiscard]] bool is_tss2_pem(std::string_view pem) noexcept;

// "TCTI <tcti>", or "the provider's default TCTI" when `tcti` is empty: for messages.
[[nodiscard]] std::string tcti_name(const std::string& tcti);

// Loads the tpm2 provider (and the default one beside it) once for the process; "" when it is
// loaded, else why not. tpm2-openssl reads its TCTI (TPM2OPENSSL_TCTI) when it is loaded, so the
// `tcti` of the first call that succeeds is the one used for the rest of the process (empty: the
// provider's default); a changed tpm2_tcti needs a restart.
[[nodiscard]] std::string load_provider(const std::string& tcti);

// The TPM key of a TSS2 PEM, loaded into the TPM (the provider must be loaded); nullptr when it
// does not load (the PEM is not one, or was made by another TPM, or the TPM is unreachable).
[[nodiscard]] EVP_PKEY* load_key(std::string_view pem);

// A new EC P-256 key generated inside the TPM (the provider must be loaded); nullptr on failure.
[[nodiscard]] EVP_PKEY* generate_ec_p256();

// The property query that makes a signature with `key` in the TPM when it is a TPM key
// ("provider=tpm2"; OpenSSL 3.0 would otherwise pick the default provider's ECDSA, which has only
// the key's public half), or nullptr for any other key.
[[nodiscard]] const char* signing_properties(const EVP_PKEY* key) noexcept;

// A TPM key as TSS2 PEM text, written into `out` (a secure-memory BIO is best); false on failure.
[[nodiscard]] bool write_pem(BIO* out, EVP_PKEY* key);

}  // namespace thingmux::tpm2
