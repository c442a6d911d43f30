// Key material (daemon/identity/key_material.hpp): keys of both types, CSRs that a CA accepts,
// certificate facts, key/certificate matching, and input that is not what it should be.
#include "daemon/identity/key_material.hpp"
#include "daemon/tpm2/tpm2_provider.hpp"

#include "identity_test_support.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace thingmux::identity {
namespace {

using namespace std::chrono;

TEST(IdentityKeyMaterial, EcAndRsaKeysMakeCsrsACaSigns) {
    const test::test_ca ca;
    for (const auto type : {key_type::ec_p256, key_type::rsa_2048}) {
        const auto key = generate_key(type);
        ASSERT_TRUE(key.has_value()) << key.error().message;
        EXPECT_TRUE(key->view().starts_with("-----BEGIN PRIVATE KEY-----"));
        EXPECT_EQ(key_problem(key->view()), "");
        const auto csr = make_csr(key->view(), "gw-0042");
        ASSERT_TRUE(csr.has_value()) << csr.error().message;
        EXPECT_TRUE(csr->starts_with("-----BEGIN CERTIFICATE REQUEST-----"));

        const auto cert = ca.issue(*csr, hours(48));
        const auto info = inspect_certificate(cert);
        ASSERT_TRUE(info.has_value()) << info.error().message;
        EXPECT_EQ(info->subject_cn, "gw-0042");
        EXPECT_EQ(info->sha256_fingerprint.size(), 64U);
        EXPECT_EQ(info->sha256_fingerprint.find_first_not_of("0123456789abcdef"), std::string::npos);
        const auto left = info->not_after - system_clock::now();
        EXPECT_GT(left, hours(47));
        EXPECT_LE(left, hours(48));

        const auto matches = key_matches_certificate(key->view(), cert);
        ASSERT_TRUE(matches.has_value()) << matches.error().message;
        EXPECT_TRUE(*matches);
        const auto other = generate_key(type);
        ASSERT_TRUE(other.has_value());
        EXPECT_FALSE(key_matches_certificate(other->view(), cert).value());
    }
}

TEST(IdentityKeyMaterial, KeysOpenSslHoldsMakeCsrsAndMatch) {
    // As a key in a token or TPM would be used: an EVP_PKEY, no PEM.
    const test::test_ca ca;
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"),
                                                            EVP_PKEY_free);
    ASSERT_TRUE(key);
    const auto csr = make_csr(key.get(), "gw-hw");
    ASSERT_TRUE(csr.has_value()) << csr.error().message;
    const auto cert = ca.issue(*csr);
    EXPECT_EQ(inspect_certificate(cert).value().subject_cn, "gw-hw");
    EXPECT_TRUE(key_matches_certificate(key.get(), cert).value());
    EXPECT_FALSE(key_matches_certificate(key.get(), ca.issue_pair("other").cert).value());
}

// Which keys go to the TPM is decided by the PEM's first line and the key's provider; none of this
// needs a TPM (the integration test IdentityTest.TpmKeyType... uses one).
TEST(IdentityKeyMaterial, OnlyTss2PemsAndTpmKeysGoToTheTpm) {
    EXPECT_TRUE(tpm2::is_tss2_pem("-----BEGIN TSS2 PRIVATE KEY-----\nMIH=\n-----END TSS2 PRIVATE KEY-----\n"));
    EXPECT_TRUE(tpm2::is_tss2_pem("\n  -----BEGIN TSS2 PRIVATE KEY-----\n"));
    EXPECT_FALSE(tpm2::is_tss2_pem(""));
    EXPECT_FALSE(tpm2::is_tss2_pem("-----BEGIN PRIVATE KEY-----\n"));
    EXPECT_FALSE(tpm2::is_tss2_pem("x-----BEGIN TSS2 PRIVATE KEY-----\n"));
    const auto pem = generate_key(key_type::ec_p256);
    ASSERT_TRUE(pem.has_value());
    EXPECT_FALSE(tpm2::is_tss2_pem(pem->view()));
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"),
                                                            EVP_PKEY_free);
    ASSERT_TRUE(key);
    EXPECT_EQ(tpm2::signing_properties(key.get()), nullptr);
    EXPECT_EQ(tpm2::signing_properties(nullptr), nullptr);
}

TEST(IdentityKeyMaterial, KeysOfAnotherTypeDoNotMatch) {
    const test::test_ca ca;
    const auto ec = generate_key(key_type::ec_p256).value();
    const auto rsa = generate_key(key_type::rsa_2048).value();
    const auto cert = ca.issue(make_csr(ec.view(), "t").value());
    EXPECT_FALSE(key_matches_certificate(rsa.view(), cert).value());
}

TEST(IdentityKeyMaterial, FingerprintsDifferAndAreStable) {
    const test::test_ca ca;
    const auto key = generate_key().value();
    const auto csr = make_csr(key.view(), "t").value();
    const auto a = ca.issue(csr);
    const auto b = ca.issue(csr);
    EXPECT_EQ(inspect_certificate(a).value().sha256_fingerprint, inspect_certificate(a).value().sha256_fingerprint);
    EXPECT_NE(inspect_certificate(a).value().sha256_fingerprint, inspect_certificate(b).value().sha256_fingerprint);
}

TEST(IdentityKeyMaterial, BadInputGivesMessagesNotCrashes) {
    const auto key = generate_key().value();
    EXPECT_NE(key_problem(""), "");
    EXPECT_NE(key_problem("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n"), "");
    const auto no_csr = make_csr("not a key", "t");
    ASSERT_FALSE(no_csr.has_value());
    EXPECT_NE(no_csr.error().message.find("cannot read the private key"), std::string::npos) << no_csr.error().message;
    for (const std::string& cn : std::vector<std::string>{std::string(), std::string(65, 'a')}) {
        const auto csr = make_csr(key.view(), cn);
        ASSERT_FALSE(csr.has_value());
        EXPECT_NE(csr.error().message.find("1 to 64 bytes"), std::string::npos);
    }
    EXPECT_TRUE(make_csr(key.view(), std::string(64, 'a')).has_value());
    const auto info = inspect_certificate(key.view());
    ASSERT_FALSE(info.has_value());
    EXPECT_NE(info.error().message.find("not a certificate"), std::string::npos) << info.error().message;
    EXPECT_FALSE(key_matches_certificate(key.view(), "x").has_value());
}

TEST(IdentityKeyMaterial, EncryptedKeysAreRefusedWithoutPrompting) {
    // A passphrase-protected key: the daemon has nobody to ask, so it must fail, not block on a terminal.
    const auto key = generate_key().value();
    std::unique_ptr<BIO, decltype(&BIO_free)> in(
        BIO_new_mem_buf(key.view().data(), static_cast<int>(key.view().size())), BIO_free);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
        PEM_read_bio_PrivateKey(in.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
    char pass[] = "secret";
    ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(out.get(), pkey.get(), EVP_aes_256_cbc(), pass, 6, nullptr, nullptr), 1);
    char* data = nullptr;
    const long size = BIO_ctrl(out.get(), BIO_CTRL_INFO, 0, &data);
    const std::string encrypted(data, static_cast<std::size_t>(size));
    EXPECT_NE(key_problem(encrypted), "");
}

TEST(IdentityKeyMaterial, SecretPemIsEmptiedWhenMovedFrom) {
    secret_pem a(std::string(100, 'k'));
    secret_pem b(std::move(a));
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): what a move leaves is the point
    EXPECT_EQ(b.view(), std::string(100, 'k'));
    secret_pem c;
    c = std::move(b);
    EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
    EXPECT_EQ(c.view().size(), 100U);
}

}  // namespace
}  // namespace thingmux::identity
