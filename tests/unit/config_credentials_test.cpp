// A Thing's identity beyond PEM files (config/parse_credentials.cpp, docs/config.md "things[].key",
// docs/identity.md): pkcs11: URIs for key and cert, key_pin, pkcs12 with its password,
// tpm2_tcti; and what load_file() checks of them (a URI is no file; its library and PIN file are).
#include "config/config.hpp"
#include "tests/unit/config_test_support.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace thingmux::config::test {
namespace {

const std::string token_key = "\"pkcs11:token=thing;object=key;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so\"";

// minimal with its key line (line 6) replaced by `lines`.
std::string with_identity(const std::string& lines) {
    auto y = minimal;
    y.erase(y.find("    key: /etc/key.pem\n"));
    return y + lines;
}

TEST(ConfigCredentials, Pkcs11KeyWithPinFileAndCertificateInTheToken) {
    const auto r = parse(with_identity("    key: " + token_key + "\n    key_pin: credential:token-pin\n"), "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& t = r.config->things[0];
    EXPECT_EQ(t.key.native(), "pkcs11:token=thing;object=key;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so");
    EXPECT_EQ(t.key_pin.native(), "credential:token-pin");
    auto y = with_identity("    key: " + token_key + "\n");
    y.replace(y.find("cert: /etc/cert.pem"), 19, "cert: \"pkcs11:token=thing;object=key;type=cert\"");
    const auto c = parse(y, "t.yaml");
    ASSERT_TRUE(c.ok()) << all(c);
    EXPECT_EQ(c.config->things[0].cert.native(), "pkcs11:token=thing;object=key;type=cert");
}

TEST(ConfigCredentials, Pkcs11UriProblemsAreErrorsThatNeverQuoteThePin) {
    expect_error(parse(with_identity("    key: \"pkcs11:token=thing;object=key\"\n"), "t.yaml"), "things[0].key", 6, 10,
                 "module-path is missing", "module-path=");
    const auto bad = parse(with_identity("    key: \"pkcs11:object=k;colour=red?pin-value=98765\"\n"), "t.yaml");
    expect_error(bad, "things[0].key", 6, 10, "unknown attribute 'colour'");
    EXPECT_EQ(all(bad).find("98765"), std::string::npos);
    expect_error(parse(with_identity("    key: \"pkcs11:object=k;type=cert?module-path=/m.so\"\n"), "t.yaml"), "things[0].key",
                 6, 10, "not a private key");
}

TEST(ConfigCredentials, PinInTheUriIsAWarning) {
    const auto r = parse(with_identity("    key: \"pkcs11:object=k?module-path=/m.so&pin-value=1234\"\n"), "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto* d = find(r, "things[0].key");
    ASSERT_NE(d, nullptr);
    EXPECT_TRUE(d->warning);
    EXPECT_NE(d->hint.find("key_pin"), std::string::npos);
    EXPECT_EQ(all(r).find("1234"), std::string::npos);
}

TEST(ConfigCredentials, KeyPinAndTokenCertificateNeedAKeyInTheToken) {
    expect_error(parse(minimal + "    key_pin: /etc/pin\n", "t.yaml"), "things[0].key_pin", 7, 14, "PKCS#11 token");
    auto y = minimal;
    y.replace(y.find("cert: /etc/cert.pem"), 19, "cert: \"pkcs11:object=c;type=cert\"");
    expect_error(parse(y, "t.yaml"), "things[0].cert", 5, 11, "goes with the key in that token");
}

TEST(ConfigCredentials, Pkcs12ExcludesCertAndKey) {
    auto y = minimal;
    y.erase(y.find("    cert: /etc/cert.pem\n"));
    const auto r = parse(y + "    pkcs12: /etc/thing.p12\n    pkcs12_password: credential:p12\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->things[0].pkcs12.native(), "/etc/thing.p12");
    EXPECT_EQ(r.config->things[0].pkcs12_password.native(), "credential:p12");
    expect_error(parse(minimal + "    pkcs12: /etc/thing.p12\n", "t.yaml"), "things[0].cert", 5, 11, "goes without it");
    expect_error(parse(minimal + "    pkcs12_password: /etc/pw\n", "t.yaml"), "things[0].pkcs12_password", 7, 22, "goes with pkcs12");
    // The password is never written in the configuration itself.
    expect_error(parse(y + "    pkcs12: /etc/thing.p12\n    pkcs12_password: hunter2\n", "t.yaml"),
                 "things[0].pkcs12_password", 6, 22, "neither a file nor a systemd credential");
}

TEST(ConfigCredentials, Tpm2Tcti) {
    const auto r = parse(minimal + "tpm2_tcti: \"swtpm:host=127.0.0.1,port=2321\"\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->tpm2_tcti, "swtpm:host=127.0.0.1,port=2321");
    EXPECT_TRUE(parse(minimal, "t.yaml").config->tpm2_tcti.empty());
    expect_error(parse(minimal + "tpm2_tcti: \"\"\n", "t.yaml"), "tpm2_tcti", 7, 12, "must not be empty");
    expect_error(parse(minimal + "tpm2_tcti: \"" + std::string(1025, 'x') + "\"\n", "t.yaml"), "tpm2_tcti", 7, 12, "is not a TCTI");
}

class ConfigCredentialsFiles : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/thingmux-config-identity-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        for (const auto* name : {"ca.pem", "cert.pem", "lib.so", "pin", "thing.p12", "p12pw"}) std::ofstream(dir_ / name) << "x\n";
        for (const auto* name : {"pin", "thing.p12", "p12pw"})
            std::filesystem::permissions(dir_ / name, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    load_result load(const std::string& identity) {
        const auto p = dir_ / "thingmux.yaml";
        std::ofstream(p) << "things:\n  - name: gw\n    endpoint: broker.example.com\n    ca: " << (dir_ / "ca.pem").string()
                         << "\n" << identity;
        return load_file(p);
    }
    std::filesystem::path dir_;
};

TEST_F(ConfigCredentialsFiles, ATokenUriIsNoFileButItsLibraryAndPinFileAre) {
    const auto cert = "    cert: " + (dir_ / "cert.pem").string() + "\n";
    auto r = load(cert + "    key: \"pkcs11:object=k?module-path=" + (dir_ / "lib.so").string() + "\"\n    key_pin: " +
                  (dir_ / "pin").string() + "\n");
    EXPECT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
    r = load(cert + "    key: \"pkcs11:object=k?module-path=/nonexistent/lib.so&pin-source=file:" + (dir_ / "nopin").string() + "\"\n");
    EXPECT_FALSE(r.ok());
    ASSERT_NE(find(r, "things[0].key module-path"), nullptr) << all(r);
    EXPECT_NE(find(r, "things[0].key module-path")->message.find("/nonexistent/lib.so does not exist"), std::string::npos);
    ASSERT_NE(find(r, "things[0].key pin-source"), nullptr) << all(r);
}

TEST_F(ConfigCredentialsFiles, Pkcs12BundleIsCheckedLikeAKey) {
    const auto lines = "    pkcs12: " + (dir_ / "thing.p12").string() + "\n    pkcs12_password: " + (dir_ / "p12pw").string() + "\n";
    auto r = load(lines);
    EXPECT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
    std::filesystem::permissions(dir_ / "thing.p12", std::filesystem::perms::others_read, std::filesystem::perm_options::add);
    r = load(lines);
    EXPECT_TRUE(r.ok()) << all(r);
    const auto* d = find(r, "things[0].pkcs12");
    ASSERT_NE(d, nullptr) << all(r);
    EXPECT_TRUE(d->warning);
    EXPECT_NE(d->message.find("readable by other users"), std::string::npos);
}

}  // namespace
}  // namespace thingmux::config::test
