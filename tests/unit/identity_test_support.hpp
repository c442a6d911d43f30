// Support for the identity tests: a certificate authority made at test time, which issues a
// certificate for a CSR as AWS IoT's CreateCertificateFromCsr does (subject and public key from
// the CSR), and a directory of the test's own for identity files.
#pragma once

#include "common/regular_file.hpp"
#include "daemon/identity/key_material.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace thingmux::identity::test {

class test_ca {
public:
    test_ca() : key_(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free) {
        if (!key_) throw std::runtime_error("test CA: no key");
    }

    // A certificate (PEM) for the CSR's key and subject, valid from now for `lifetime`.
    [[nodiscard]] std::string issue(std::string_view csr_pem,
                                    std::chrono::seconds lifetime = std::chrono::hours(24)) const {
        std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())),
                                                     BIO_free);
        std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(
            PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr), X509_REQ_free);
        if (!req || X509_REQ_verify(req.get(), X509_REQ_get0_pubkey(req.get())) != 1)
            throw std::runtime_error("test CA: not a signed CSR");
        std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
        X509_NAME* issuer = X509_NAME_new();
        X509_NAME_add_entry_by_txt(issuer, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("test CA"), -1,
                                   -1, 0);
        const bool ok =
            X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
            ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial_) == 1 &&
            X509_set_issuer_name(cert.get(), issuer) == 1 &&
            X509_set_subject_name(cert.get(), X509_REQ_get_subject_name(req.get())) == 1 &&
            X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0) != nullptr &&
            X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(lifetime.count())) != nullptr &&
            X509_set_pubkey(cert.get(), X509_REQ_get0_pubkey(req.get())) == 1 &&
            X509_sign(cert.get(), key_.get(), EVP_sha256()) > 0;
        X509_NAME_free(issuer);
        if (!ok) throw std::runtime_error("test CA: cannot issue");
        std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
        PEM_write_bio_X509(out.get(), cert.get());
        char* data = nullptr;
        const long size = BIO_ctrl(out.get(), BIO_CTRL_INFO, 0, &data);
        return std::string(data, static_cast<std::size_t>(size));
    }

    // A new key (PEM) and a certificate for it.
    struct key_and_cert {
        std::string key;
        std::string cert;
    };
    [[nodiscard]] key_and_cert issue_pair(std::string_view common_name) const {
        auto key = generate_key().value();
        return {std::string(key.view()), issue(make_csr(key.view(), common_name).value())};
    }

private:
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key_;
    mutable long serial_ = 0;
};

// A new directory under the temporary directory, removed with its contents at the end.
class temp_dir {
public:
    explicit temp_dir(const std::string& prefix) {
        std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot make " + pattern);
        path_ = pattern;
    }
    ~temp_dir() { std::filesystem::remove_all(path_); }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

private:
    std::filesystem::path path_;
};

inline std::string read_file(const std::filesystem::path& p) {
    return files::read_regular(p, 1 << 20).bytes;
}

}  // namespace thingmux::identity::test
