// things[].auth, region and aws_credentials (docs/config.md, docs/connecting.md "MQTT over
// WebSocket with SigV4"): parsed and checked where written; the files of aws_credentials checked
// by load_file() like the other file keys.
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

// `minimal` with an AWS IoT endpoint (line 3) and `more` appended from line 7 on.
std::string sigv4(const std::string& more) {
    auto text = minimal;
    text.replace(text.find("broker.example.com"), 18, "a1b2-ats.iot.eu-west-1.amazonaws.com");
    return text + more;
}

TEST(ConfigSigV4, X509ByDefault) {
    const auto r = parse(minimal, "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->things.at(0).auth, auth_method::x509);
    EXPECT_TRUE(r.config->things.at(0).aws_credentials.empty());
    EXPECT_STREQ(to_string(auth_method::custom_authorizer), "custom-authorizer");
}

TEST(ConfigSigV4, EverySourceKind) {
    const auto r =
        parse(sigv4("    auth: sigv4\n"
                    "    region: eu-central-1\n"
                    "    aws_credentials:\n"
                    "      - file: /etc/thingmux/aws-credentials\n"
                    "        profile: gateway\n"
                    "      - file: credential:aws\n"
                    "      - env\n"
                    "      - profile: dev\n"
                    "      - iot_credentials_provider:\n"
                    "          endpoint: c1x2.credentials.iot.eu-west-1.amazonaws.com\n"
                    "          role_alias: thingmux-role\n"
                    "          ca: /etc/thingmux/AmazonRootCA1.pem\n"
                    "      - iot_credentials_provider: {endpoint: c1x2.credentials.iot.eu-west-1.amazonaws.com, "
                    "role_alias: other}\n"
                    "    transport: websocket\n"),
              "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
    const auto& t = r.config->things.at(0);
    EXPECT_EQ(t.auth, auth_method::sigv4);
    EXPECT_EQ(t.region, "eu-central-1");
    using kind = aws_credential_source::kind;
    ASSERT_EQ(t.aws_credentials.size(), 6U);
    const auto& s = t.aws_credentials;
    EXPECT_EQ(s[0].type, kind::file);
    EXPECT_EQ(s[0].file, "/etc/thingmux/aws-credentials");
    EXPECT_EQ(s[0].profile, "gateway");
    EXPECT_EQ(s[0].where, (source_location{10, 9}));
    EXPECT_EQ(s[1].type, kind::file);
    EXPECT_EQ(s[1].file, "credential:aws");
    EXPECT_EQ(s[1].profile, "default");
    EXPECT_EQ(s[2].type, kind::environment);
    EXPECT_EQ(s[3].type, kind::profile);
    EXPECT_EQ(s[3].profile, "dev");
    EXPECT_EQ(s[4].type, kind::iot_credentials_provider);
    EXPECT_EQ(s[4].endpoint, "c1x2.credentials.iot.eu-west-1.amazonaws.com");
    EXPECT_EQ(s[4].role_alias, "thingmux-role");
    EXPECT_EQ(s[4].ca, "/etc/thingmux/AmazonRootCA1.pem");
    EXPECT_TRUE(s[5].ca.empty());
    EXPECT_STREQ(to_string(s[2].type), "env");
}

TEST(ConfigSigV4, NeedsTheWebSocketTransport) {
    expect_error(parse(sigv4("    auth: sigv4\n    aws_credentials: [env]\n"), "t.yaml"), "things[0].auth", 7, 11,
                 "sigv4 signs a WebSocket connection", "transport: websocket");
}

TEST(ConfigSigV4, RegionComesFromTheEndpointWhenNotWritten) {
    const auto r = parse(sigv4("    transport: websocket\n    auth: sigv4\n    aws_credentials: [env]\n"), "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_EQ(r.config->things.at(0).region, "");  // the signer reads it from the endpoint
    expect_error(parse(minimal + "    auth: sigv4\n    aws_credentials: [env]\n", "t.yaml"), "things[0].region", 7, 11,
                 "auth: sigv4 needs the AWS region, and endpoint 'broker.example.com' does not name one",
                 "write region:");
    EXPECT_TRUE(parse(minimal + "    transport: websocket\n    auth: sigv4\n    region: us-east-1\n    aws_credentials: [env]\n", "t.yaml").ok());
    expect_error(parse(minimal + "    auth: sigv4\n    region: Europe\n    aws_credentials: [env]\n", "t.yaml"),
                 "things[0].region", 8, 13, "'Europe' is not an AWS region name");
}

TEST(ConfigSigV4, AuthIsOneOfThree) {
    expect_error(parse(minimal + "    auth: sigv5\n", "t.yaml"), "things[0].auth", 7, 11,
                 "'sigv5' is not one of x509, sigv4, custom-authorizer", "did you mean 'sigv4'?");
}

TEST(ConfigSigV4, SigV4NeedsSources) {
    expect_error(parse(sigv4("    auth: sigv4\n"), "t.yaml"), "things[0].aws_credentials", 2, 5,
                 "missing required key 'aws_credentials'");
    expect_error(parse(sigv4("    auth: sigv4\n    aws_credentials: []\n"), "t.yaml"), "things[0].aws_credentials", 8,
                 22, "is empty: auth: sigv4 needs at least one source");
}

TEST(ConfigSigV4, KeysWithoutSigV4AreErrors) {
    expect_error(parse(sigv4("    region: eu-west-1\n"), "t.yaml"), "things[0].region", 7, 5,
                 "has no effect without auth: sigv4");
    expect_error(parse(sigv4("    auth: x509\n    aws_credentials: [env]\n"), "t.yaml"), "things[0].aws_credentials", 8,
                 5, "has no effect without auth: sigv4");
}

TEST(ConfigSigV4, UnknownSourcesAreNamedWithASuggestion) {
    const auto head = std::string("    auth: sigv4\n    aws_credentials:\n");
    expect_error(parse(sigv4(head + "      - envv\n"), "t.yaml"), "things[0].aws_credentials[0]", 9, 9,
                 "'envv' is not a credentials source", "did you mean 'env'?");
    expect_error(parse(sigv4(head + "      - instance-metadata\n"), "t.yaml"), "things[0].aws_credentials[0]", 9, 9,
                 "is not a credentials source", "each entry is one of");
    expect_error(parse(sigv4(head + "      - file\n"), "t.yaml"), "things[0].aws_credentials[0]", 9, 9,
                 "source 'file' needs its settings");
    expect_error(parse(sigv4(head + "      - fille: /etc/x\n"), "t.yaml"), "things[0].aws_credentials[0].fille", 9, 9,
                 "unknown key 'fille'", "did you mean 'file'?");
    expect_error(parse(sigv4(head + "      - file: relative/path\n"), "t.yaml"), "things[0].aws_credentials[0].file", 9,
                 15, "is not an absolute path");
    expect_error(parse(sigv4(head + "      - profile: \"two words\"\n"), "t.yaml"),
                 "things[0].aws_credentials[0].profile", 9, 18, "is not a profile name");
    expect_error(parse(sigv4(head + "      - {file: /etc/x, iot_credentials_provider: {endpoint: e, role_alias: r}}\n"),
                       "t.yaml"),
                 "things[0].aws_credentials[0]", 9, 24, "one entry names one source");
}

TEST(ConfigSigV4, ProviderNeedsEndpointAndRoleAlias) {
    const auto head = std::string("    auth: sigv4\n    aws_credentials:\n      - iot_credentials_provider:\n");
    expect_error(parse(sigv4(head + "          role_alias: r\n"), "t.yaml"),
                 "things[0].aws_credentials[0].iot_credentials_provider.endpoint", 10, 11,
                 "missing required key 'endpoint'", "iot:CredentialProvider");
    expect_error(parse(sigv4(head + "          endpoint: e.example.com\n"), "t.yaml"),
                 "things[0].aws_credentials[0].iot_credentials_provider.role_alias", 10, 11,
                 "missing required key 'role_alias'");
    expect_error(parse(sigv4(head + "          endpoint: https://e.example.com\n          role_alias: r\n"), "t.yaml"),
                 "things[0].aws_credentials[0].iot_credentials_provider.endpoint", 10, 21, "is not a host name");
    expect_error(parse(sigv4(head + "          endpoint: e.example.com\n          role_alias: \"a b\"\n"), "t.yaml"),
                 "things[0].aws_credentials[0].iot_credentials_provider.role_alias", 11, 23, "is not a role alias");
    for (const char* port : {"0", "65536", "x1", ""}) {
        expect_error(parse(sigv4(head + "          endpoint: \"e.example.com:" + port + "\"\n          role_alias: r\n"),
                           "t.yaml"),
                     "things[0].aws_credentials[0].iot_credentials_provider.endpoint", 10, 21, "is not a port");
    }
}

TEST(ConfigSigV4, ProviderPortIs443UnlessWritten) {
    const auto head = std::string("    transport: websocket\n    auth: sigv4\n    aws_credentials:\n");
    const auto r = parse(sigv4(head + "      - iot_credentials_provider: {endpoint: e.example.com, role_alias: r}\n"
                                      "      - iot_credentials_provider: {endpoint: \"localhost:8443\", role_alias: r}\n"),
                         "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& s = r.config->things.at(0).aws_credentials;
    ASSERT_EQ(s.size(), 2U);
    EXPECT_EQ(s[0].endpoint, "e.example.com");
    EXPECT_EQ(s[0].port, 443);
    EXPECT_EQ(s[1].endpoint, "localhost");
    EXPECT_EQ(s[1].port, 8443);
}

TEST(ConfigSigV4, SecretsWrittenInlineAreRefusedWithoutBeingRepeated) {
    const auto head = std::string("    auth: sigv4\n    aws_credentials:\n");
    for (const char* key : {"aws_secret_access_key", "aws_access_key_id", "secret", "token"}) {
        SCOPED_TRACE(key);
        const auto r = parse(sigv4(head + "      - " + key + ": wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n"), "t.yaml");
        expect_error(r, std::string("things[0].aws_credentials[0].") + key, 9, 9, "is written in the configuration",
                     "file: credential:NAME");
        EXPECT_EQ(all(r).find("wJalr"), std::string::npos) << all(r);
    }
    const auto r = parse(sigv4(head + "      - AKIAIOSFODNN7EXAMPLE\n"), "t.yaml");
    expect_error(r, "things[0].aws_credentials[0]", 9, 9, "an access key id is written in the configuration");
    EXPECT_EQ(all(r).find("IOSFODNN"), std::string::npos) << all(r);
}

// load_file(): the files of aws_credentials, like the certificate files.
class ConfigSigV4Files : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() / ("thingmux-config-sigv4-" + std::to_string(::getpid()));
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        for (const char* f : {"ca.pem", "cert.pem", "key.pem"}) std::ofstream(dir_ / f) << "pem\n";
        ::chmod((dir_ / "key.pem").c_str(), 0600);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    load_result load(const std::string& sources) {
        const auto file = dir_ / "thingmux.yaml";
        std::ofstream(file) << "things:\n  - name: gw\n    endpoint: a-ats.iot.eu-west-1.amazonaws.com\n"
                            << "    ca: " << (dir_ / "ca.pem").string()
                            << "\n    cert: " << (dir_ / "cert.pem").string()
                            << "\n    key: " << (dir_ / "key.pem").string() << "\n    transport: websocket\n    auth: sigv4\n"
                            << "    aws_credentials:\n"
                            << sources;
        return load_file(file);
    }
    std::filesystem::path credentials(const std::string& text, unsigned mode = 0600) {
        const auto p = dir_ / "aws-credentials";
        std::ofstream(p) << text;
        ::chmod(p.c_str(), mode);
        return p;
    }

    std::filesystem::path dir_;
};

TEST_F(ConfigSigV4Files, AReadableFileWithItsProfileIsFine) {
    const auto f = credentials("[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = x\n");
    const auto r = load("      - file: " + f.string() + "\n");
    EXPECT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
}

TEST_F(ConfigSigV4Files, AMissingFileIsAnErrorWhenItIsTheOnlySource) {
    const auto missing = dir_ / "absent";
    const auto r = load("      - file: " + missing.string() + "\n");
    EXPECT_FALSE(r.ok());
    const auto* d = find(r, "things[0].aws_credentials[0].file");
    ASSERT_NE(d, nullptr) << all(r);
    EXPECT_FALSE(d->warning);
    EXPECT_EQ(d->line, 10);
    EXPECT_EQ(d->message, "file " + missing.string() + " does not exist");
}

TEST_F(ConfigSigV4Files, AFileProblemIsAWarningWhenAnotherSourceFollows) {
    const auto f = credentials("[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n", 0644);
    const auto r = load("      - file: " + f.string() + "\n      - env\n");
    EXPECT_TRUE(r.ok()) << all(r);
    ASSERT_EQ(r.diagnostics.size(), 2U) << all(r);
    for (const auto& d : r.diagnostics) {
        EXPECT_TRUE(d.warning);
        EXPECT_EQ(d.path, "things[0].aws_credentials[0].file");
    }
    EXPECT_NE(all(r).find("AWS credentials file " + f.string() + " is readable by other users"), std::string::npos)
        << all(r);
    EXPECT_NE(all(r).find("file " + f.string() +
                          ": line 2: profile [default] has aws_access_key_id but no aws_secret_access_key"),
              std::string::npos)
        << all(r);
}

TEST_F(ConfigSigV4Files, ProviderCaIsChecked) {
    const auto r = load(
        "      - iot_credentials_provider:\n          endpoint: c.credentials.iot.eu-west-1.amazonaws.com\n"
        "          role_alias: r\n          ca: " +
        (dir_ / "no-ca.pem").string() + "\n");
    EXPECT_FALSE(r.ok());
    EXPECT_NE(find(r, "things[0].aws_credentials[0].iot_credentials_provider.ca"), nullptr) << all(r);
}

}  // namespace
