// things[].provisioning and things[].rotation (docs/config.md, docs/identity.md): parsed and
// checked where written; the claim files and the directories of cert and key checked by
// load_file().
#include "config/config.hpp"
#include "tests/unit/config_test_support.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace {

using namespace thingmux::config;
using namespace thingmux::config::test;

TEST(ConfigIdentity, NeitherByDefault) {
    const auto r = parse(minimal, "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_FALSE(r.config->things.at(0).provisioning);
    EXPECT_FALSE(r.config->things.at(0).rotation);
}

TEST(ConfigIdentity, ProvisioningWithEveryKey) {
    const auto r = parse(minimal +
                             "    provisioning:\n"
                             "      template: Gateway_Fleet-1\n"
                             "      claim_cert: /etc/thingmux/claim.crt\n"
                             "      claim_key: credential:claim-key\n"
                             "      parameters: {SerialNumber: \"sn-${thing}\", Site: north}\n"
                             "      key_type: rsa-2048\n"
                             "      timeout: 45s\n",
                         "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& p = *r.config->things.at(0).provisioning;
    EXPECT_EQ(p.template_name, "Gateway_Fleet-1");
    EXPECT_EQ(p.claim_cert, "/etc/thingmux/claim.crt");
    EXPECT_EQ(p.claim_key, "credential:claim-key");
    ASSERT_EQ(p.parameters.size(), 2U);
    EXPECT_EQ(p.parameters.at("SerialNumber"), "sn-gw");
    EXPECT_EQ(p.parameters.at("Site"), "north");
    EXPECT_EQ(p.key_type, generated_key::rsa_2048);
    EXPECT_EQ(p.timeout, std::chrono::seconds(45));
    EXPECT_STREQ(to_string(p.key_type), "rsa-2048");
}

TEST(ConfigIdentity, ProvisioningNeedsTemplateAndClaim) {
    const auto r = parse(minimal + "    provisioning: {parameters: {A: b}}\n", "t.yaml");
    expect_error(r, "things[0].provisioning.template", 7, 19, "missing required key 'template'");
    expect_error(r, "things[0].provisioning.claim_cert", 7, 19, "missing required key 'claim_cert'");
    expect_error(r, "things[0].provisioning.claim_key", 7, 19, "missing required key 'claim_key'");
}

TEST(ConfigIdentity, RefusesBadTemplateNamesAndParameters) {
    const auto r = parse(minimal +
                             "    provisioning:\n"
                             "      template: \"has space\"\n"
                             "      claim_cert: /c\n"
                             "      claim_key: /k\n"
                             "      parameters: {A: \"${unit}\", B: [1]}\n",
                         "t.yaml");
    expect_error(r, "things[0].provisioning.template", 8, 17, "is not a provisioning template name", "1 to 36");
    expect_error(r, "things[0].provisioning.parameters.A", 11, 23, "uses a variable other than ${thing}");
    ASSERT_NE(find(r, "things[0].provisioning.parameters.B"), nullptr) << all(r);
}

TEST(ConfigIdentity, TooManyParametersAreRefused) {
    std::string params = "      parameters:\n";
    for (int i = 0; i < 65; ++i) params += "        P" + std::to_string(i) + ": v\n";
    const auto r = parse(minimal + "    provisioning:\n      template: T\n      claim_cert: /c\n      claim_key: /k\n" + params,
                         "t.yaml");
    expect_error(r, "things[0].provisioning.parameters", 12, 9, "has 65 entries", "at most 64");
}

TEST(ConfigIdentity, RotationDefaultsAndBeforeExpiry) {
    const auto r = parse(minimal + "    rotation: {before_expiry: 14d, template: Rotate}\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& rot = *r.config->things.at(0).rotation;
    EXPECT_EQ(rot.before_expiry, std::chrono::hours(24 * 14));
    EXPECT_EQ(rot.template_name, "Rotate");
    EXPECT_EQ(rot.key_type, generated_key::ec_p256);
    EXPECT_EQ(rot.timeout, std::chrono::seconds(30));
    const auto d = parse(minimal + "    rotation: {template: R}\n", "t.yaml");
    ASSERT_TRUE(d.ok()) << all(d);
    EXPECT_EQ(d.config->things.at(0).rotation->before_expiry, std::chrono::hours(24 * 30));
}

// tpm2-ec-p256: the key is generated inside the TPM (parsing needs no TPM).
TEST(ConfigIdentity, TpmKeyTypeForProvisioningAndRotation) {
    const auto r = parse(minimal +
                             "    provisioning: {template: T, claim_cert: /c, claim_key: /k, key_type: tpm2-ec-p256}\n"
                             "    rotation: {template: R, key_type: tpm2-ec-p256}\n",
                         "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->things.at(0).provisioning->key_type, generated_key::tpm2_ec_p256);
    EXPECT_EQ(r.config->things.at(0).rotation->key_type, generated_key::tpm2_ec_p256);
    EXPECT_STREQ(to_string(generated_key::tpm2_ec_p256), "tpm2-ec-p256");
    const auto bad = parse(minimal + "    rotation: {template: R, key_type: tpm2-rsa-2048}\n", "t.yaml");
    EXPECT_FALSE(bad.ok());
    const auto* e = find(bad, "things[0].rotation.key_type");
    ASSERT_NE(e, nullptr) << all(bad);
    EXPECT_NE(e->message.find("'tpm2-rsa-2048' is not one of"), std::string::npos) << e->message;
    EXPECT_NE(e->message.find("tpm2-ec-p256"), std::string::npos) << e->message;
}

// AWS IoT issues CreateCertificateFromCsr's certificate inactive: only the template activates it.
TEST(ConfigIdentity, RotationNeedsATemplate) {
    const auto r = parse(minimal + "    rotation: {before_expiry: 7d}\n", "t.yaml");
    expect_error(r, "things[0].rotation.template", 7, 15, "missing required key 'template'", "AWS IoT issues it inactive");
}

TEST(ConfigIdentity, KeyAndCertMustBeWritableFiles) {
    auto text = minimal;
    text.replace(text.find("/etc/key.pem"), 12, "credential:thing-key");
    const auto r = parse(text + "    rotation: {template: R}\n", "t.yaml");
    expect_error(r, "things[0].rotation", 7, 15, "cannot write the new key to credential:thing-key",
                 "/var/lib/thingmux/identity/");
}

TEST(ConfigIdentity, NeedsX509) {
    const auto r = parse(minimal +
                             "    auth: custom-authorizer\n"
                             "    custom_authorizer: {name: a, password: /p}\n"
                             "    rotation: {template: R}\n",
                         "t.yaml");
    expect_error(r, "things[0].rotation", 9, 15, "needs auth: x509");
}

// load_file(): the claim files are checked like the Thing's; cert and key may be missing before
// provisioning, but their directory must take the new files.
TEST(ConfigIdentity, LoadFileChecksClaimFilesAndTheIdentityDirectory) {
    const auto dir = std::filesystem::temp_directory_path() / ("thingmux-config-identity-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "identity");
    for (const auto* name : {"ca.pem", "claim.crt", "claim.key"}) std::ofstream(dir / name) << "x\n";
    ::chmod((dir / "claim.key").c_str(), 0600);
    const auto write = [&](const std::string& identity_dir) {
        std::ofstream(dir / "t.yaml") << "things:\n"
                                         "  - name: gw\n"
                                         "    endpoint: broker.example.com\n"
                                         "    ca: " << (dir / "ca.pem").string() << "\n"
                                         "    cert: " << identity_dir << "/gw.crt\n"
                                         "    key: " << identity_dir << "/gw.key\n"
                                         "    provisioning:\n"
                                         "      template: T\n"
                                         "      claim_cert: " << (dir / "claim.crt").string() << "\n"
                                         "      claim_key: " << (dir / "missing-claim.key").string() << "\n";
    };
    write((dir / "identity").string());
    auto r = load_file(dir / "t.yaml");
    // The Thing's own files do not exist yet: no diagnostic for them; the missing claim key has one.
    EXPECT_EQ(find(r, "things[0].cert"), nullptr) << all(r);
    EXPECT_EQ(find(r, "things[0].key"), nullptr) << all(r);
    const auto* claim = find(r, "things[0].provisioning.claim_key");
    ASSERT_NE(claim, nullptr) << all(r);
    EXPECT_NE(claim->message.find("missing-claim.key"), std::string::npos) << claim->message;
    EXPECT_EQ(error_count(r), 1U) << all(r);

    write((dir / "no-such-dir").string());
    r = load_file(dir / "t.yaml");
    const auto* cert = find(r, "things[0].cert");
    ASSERT_NE(cert, nullptr) << all(r);
    EXPECT_NE(cert->message.find("cannot write the Thing's new certificate into"), std::string::npos) << cert->message;
    EXPECT_NE(cert->hint.find("/var/lib/thingmux/identity"), std::string::npos);
    std::filesystem::remove_all(dir);
}

}  // namespace
