// A Thing's key material with OpenSSL 3 (EVP APIs only): new private keys, certificate signing
// requests, and what the daemon needs to know of a certificate (expiry, subject, fingerprint,
// whether a key belongs to it). No file I/O, no logging; errors are values that name the step.
// A key may be a TPM 2.0 key in TSS2 PEM ("-----BEGIN TSS2 PRIVATE KEY-----"): it is then used
// through OpenSSL's tpm2 provider (daemon/tpm2), in the TPM that `tpm2_tcti` names (empty: the
// provider's default), and every function taking a key PEM accepts one.
#pragma once

#include "daemon/identity/result.hpp"

#include <openssl/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace thingmux::identity {

// PEM text of a private key. Its bytes are wiped when it is destroyed or moved from, so a key
// leaves no copy behind in freed memory (of this buffer: OpenSSL wipes its own).
class secret_pem {
public:
    secret_pem() = default;
    explicit secret_pem(std::string bytes) noexcept : bytes_(std::move(bytes)) {}
    secret_pem(const secret_pem&) = delete;
    secret_pem& operator=(const secret_pem&) = delete;
    secret_pem(secret_pem&& other) noexcept;
    secret_pem& operator=(secret_pem&& other) noexcept;
    ~secret_pem();

    [[nodiscard]] std::string_view view() const noexcept { return bytes_; }
    [[nodiscard]] bool empty() const noexcept { return bytes_.empty(); }

private:
    void wipe() noexcept;
    std::string bytes_;
};

enum class key_type : std::uint8_t {
    ec_p256,  // the default: small, fast, accepted by AWS IoT
    rsa_2048,
    tpm2_ec_p256,  // generated inside the TPM: its private part never leaves it
};

// A new private key as unencrypted PKCS#8 PEM; for tpm2_ec_p256, the TSS2 PEM of a key the TPM
// made (a blob wrapped by the TPM, of use only to it).
[[nodiscard]] result<secret_pem> generate_key(key_type type = key_type::ec_p256, const std::string& tpm2_tcti = {});

// Whether `key_pem` is an unencrypted private key PEM OpenSSL can load, or a TSS2 key that loads
// into the TPM ("" when it is, else why not).
[[nodiscard]] std::string key_problem(std::string_view key_pem, const std::string& tpm2_tcti = {});

// A PKCS#10 certificate signing request (PEM) for the key in `key_pem`: subject CN=`common_name`,
// signed with SHA-256 (by the TPM, for a TSS2 key).
[[nodiscard]] result<std::string> make_csr(std::string_view key_pem, std::string_view common_name,
                                           const std::string& tpm2_tcti = {});
// The same for a key OpenSSL already holds, such as one in a PKCS#11 token or a TPM (loaded
// through its engine or provider): the CSR is signed where the key is.
[[nodiscard]] result<std::string> make_csr(EVP_PKEY* key, std::string_view common_name);

// What the daemon shows and checks of a certificate.
struct certificate_info {
    std::chrono::system_clock::time_point not_after;
    std::string subject_cn;          // empty when the subject has no CN
    std::string sha256_fingerprint;  // 64 lower-case hex digits of the DER's SHA-256
};

// Reads the first certificate of `cert_pem`.
[[nodiscard]] result<certificate_info> inspect_certificate(std::string_view cert_pem);

// Whether the private key in `key_pem` is the one the certificate in `cert_pem` was issued for.
[[nodiscard]] result<bool> key_matches_certificate(std::string_view key_pem, std::string_view cert_pem,
                                                  const std::string& tpm2_tcti = {});
// The same for a key OpenSSL already holds (its public part is compared).
[[nodiscard]] result<bool> key_matches_certificate(const EVP_PKEY* key, std::string_view cert_pem);

}  // namespace thingmux::identity
