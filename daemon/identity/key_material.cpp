#include "daemon/identity/key_material.hpp"

#include "common/utc_time.hpp"
#include "daemon/tpm2/tpm2_provider.hpp"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <array>
#include <memory>

namespace thingmux::identity {
namespace {

template <auto Free>
struct freer {
    template <class T>
    void operator()(T* p) const noexcept {
        Free(p);
    }
};
using bio_ptr = std::unique_ptr<BIO, freer<BIO_free_all>>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, freer<EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, freer<X509_free>>;
using req_ptr = std::unique_ptr<X509_REQ, freer<X509_REQ_free>>;

// A PEM larger than this is no key or certificate of ours (and int-sized for OpenSSL's BIOs).
constexpr std::size_t max_pem_bytes = std::size_t{1024} * 1024;

// The most bytes of a CN (RFC 5280's ub-common-name).
constexpr std::size_t max_common_name_bytes = 64;

// OpenSSL's reason for the last failure (the queue is emptied, so it never leaks into a later
// message), after `what`: "cannot read the private key: unsupported".
error openssl_error(std::string what) {
    unsigned long last = 0;
    while (const unsigned long e = ERR_get_error()) last = e;
    if (last != 0) {
        std::array<char, 256> text{};
        ERR_error_string_n(last, text.data(), text.size());
        what += " (OpenSSL: ";
        what += text.data();
        what += ")";
    }
    return {std::move(what)};
}

bio_ptr memory_bio(std::string_view bytes) {
    if (bytes.size() > max_pem_bytes) return nullptr;
    return bio_ptr(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    const long size = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data);
    return size > 0 && data != nullptr ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

// Never prompt on a terminal for an encrypted key's passphrase: a daemon has no one to ask.
int no_passphrase(char*, int, int, void*) {
    return -1;
}

// A TSS2 key, loaded into the TPM through the tpm2 provider.
result<pkey_ptr> load_tpm2_key(std::string_view key_pem, const std::string& tcti) {
    if (auto why = tpm2::load_provider(tcti); !why.empty()) return openssl_error(why);
    pkey_ptr key(tpm2::load_key(key_pem));
    if (!key)
        return openssl_error("cannot load the TPM key (TSS2 PEM) into the TPM with " + tpm2::tcti_name(tcti) +
                             ": was it made by this TPM, and is the TPM reachable?");
    return key;
}

result<pkey_ptr> load_key(std::string_view key_pem, const std::string& tcti) {
    if (key_pem.size() <= max_pem_bytes && tpm2::is_tss2_pem(key_pem)) return load_tpm2_key(key_pem, tcti);
    const auto bio = memory_bio(key_pem);
    if (!bio) return openssl_error("cannot read the private key: it is too large");
    pkey_ptr key(PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, no_passphrase, nullptr, nullptr, nullptr));
    if (!key) return openssl_error("cannot read the private key: it is not an unencrypted private key in PEM");
    return key;
}

result<x509_ptr> load_certificate(std::string_view cert_pem) {
    const auto bio = memory_bio(cert_pem);
    if (!bio) return openssl_error("cannot read the certificate: it is too large");
    x509_ptr cert(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
    if (!cert) return openssl_error("cannot read the certificate: it is not a certificate in PEM");
    return cert;
}

result<std::chrono::system_clock::time_point> to_time_point(const ASN1_TIME* t) {
    std::tm tm{};
    if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return openssl_error("the certificate's notAfter is not a time");
    const auto when = utc_time_point(tm);
    if (!when) return openssl_error("the certificate's notAfter is not a time");
    return *when;
}

std::string common_name(X509_NAME* name) {
    const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (index < 0) return {};
    unsigned char* utf8 = nullptr;
    const int size = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
    if (size < 0) return {};
    std::string cn(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(size));
    OPENSSL_free(utf8);
    return cn;
}

}  // namespace

secret_pem::secret_pem(secret_pem&& other) noexcept : bytes_(std::move(other.bytes_)) {
    other.wipe();
}

secret_pem& secret_pem::operator=(secret_pem&& other) noexcept {
    if (this != &other) {
        wipe();
        bytes_ = std::move(other.bytes_);
        other.wipe();
    }
    return *this;
}

secret_pem::~secret_pem() {
    wipe();
}

void secret_pem::wipe() noexcept {
    // The whole capacity: a moved-from string may keep its buffer with the old bytes in it.
    bytes_.resize(bytes_.capacity());
    OPENSSL_cleanse(bytes_.data(), bytes_.size());
    bytes_.clear();
}

result<secret_pem> generate_key(key_type type, const std::string& tpm2_tcti) {
    if (type == key_type::tpm2_ec_p256) {
        if (auto why = tpm2::load_provider(tpm2_tcti); !why.empty()) return openssl_error(why);
        pkey_ptr key(tpm2::generate_ec_p256());
        if (!key) return openssl_error("cannot generate an EC P-256 key in the TPM with " + tpm2::tcti_name(tpm2_tcti));
        bio_ptr bio(BIO_new(BIO_s_secmem()));
        if (!bio || !tpm2::write_pem(bio.get(), key.get()))
            return openssl_error("cannot write the TPM's new key as TSS2 PEM");
        return secret_pem(bio_text(bio.get()));
    }
    pkey_ptr key(type == key_type::rsa_2048 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048})
                                            : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!key) return openssl_error("cannot generate a private key");
    // A secure-memory BIO: OpenSSL wipes its buffer when it is freed.
    bio_ptr bio(BIO_new(BIO_s_secmem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
        return openssl_error("cannot write the new private key as PEM");
    return secret_pem(bio_text(bio.get()));
}

std::string key_problem(std::string_view key_pem, const std::string& tpm2_tcti) {
    auto key = load_key(key_pem, tpm2_tcti);
    return key ? std::string() : std::move(key.error().message);
}

result<std::string> make_csr(std::string_view key_pem, std::string_view cn, const std::string& tpm2_tcti) {
    auto key = load_key(key_pem, tpm2_tcti);
    if (!key) return key.error();
    return make_csr(key->get(), cn);
}

result<std::string> make_csr(EVP_PKEY* key, std::string_view cn) {
    if (cn.empty() || cn.size() > max_common_name_bytes)
        return error{"cannot make a certificate signing request for \"" + std::string(cn.substr(0, 80)) +
                     "\": a certificate's CN holds 1 to 64 bytes"};
    req_ptr req(X509_REQ_new());
    if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
        X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req.get()), "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(cn.data()), static_cast<int>(cn.size()), -1,
                                   0) != 1 ||
        X509_REQ_set_pubkey(req.get(), key) != 1)
        return openssl_error("cannot make a certificate signing request");
    // Signed where the key is (a TPM key's signature is the TPM's to make).
    const std::unique_ptr<EVP_MD_CTX, freer<EVP_MD_CTX_free>> signing(EVP_MD_CTX_new());
    if (!signing ||
        EVP_DigestSignInit_ex(signing.get(), nullptr, "SHA256", nullptr, tpm2::signing_properties(key), key, nullptr) != 1 ||
        X509_REQ_sign_ctx(req.get(), signing.get()) <= 0)
        return openssl_error("cannot sign the certificate signing request");
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1)
        return openssl_error("cannot write the certificate signing request as PEM");
    // In place: an error can be made of a string too.
    return result<std::string>(boost::system::in_place_value, bio_text(bio.get()));
}

result<certificate_info> inspect_certificate(std::string_view cert_pem) {
    auto cert = load_certificate(cert_pem);
    if (!cert) return cert.error();
    auto not_after = to_time_point(X509_get0_notAfter(cert->get()));
    if (!not_after) return not_after.error();
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (X509_digest(cert->get(), EVP_sha256(), digest.data(), &size) != 1)
        return openssl_error("cannot compute the certificate's SHA-256 fingerprint");
    static constexpr char hex[] = "0123456789abcdef";
    std::string fingerprint;
    for (unsigned int i = 0; i < size; ++i) {
        fingerprint += hex[digest[i] >> 4];
        fingerprint += hex[digest[i] & 0xf];
    }
    return certificate_info{*not_after, common_name(X509_get_subject_name(cert->get())), std::move(fingerprint)};
}

result<bool> key_matches_certificate(std::string_view key_pem, std::string_view cert_pem,
                                     const std::string& tpm2_tcti) {
    auto key = load_key(key_pem, tpm2_tcti);
    if (!key) return key.error();
    return key_matches_certificate(key->get(), cert_pem);
}

result<bool> key_matches_certificate(const EVP_PKEY* key, std::string_view cert_pem) {
    auto cert = load_certificate(cert_pem);
    if (!cert) return cert.error();
    const EVP_PKEY* public_key = X509_get0_pubkey(cert->get());
    if (public_key == nullptr) return openssl_error("cannot read the certificate's public key");
    const bool same = EVP_PKEY_eq(public_key, key) == 1;
    ERR_clear_error();  // a mismatch of key types leaves an entry behind
    return same;
}

}  // namespace thingmux::identity
