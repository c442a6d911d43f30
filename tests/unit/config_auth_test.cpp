// things[].auth and custom_authorizer (docs/config.md, docs/connecting.md "Custom authorizer"):
// what they resolve to, every mistake at its file:line:column, and the secret files checked like
// a private key.
#include "config/config.hpp"
#include "tests/unit/config_test_support.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace {

using namespace thingmux::config;
using namespace thingmux::config::test;

// One Thing with a custom authorizer and no client certificate; tests append keys to it.
const std::string authorizer =
    "things:\n"                           // 1
    "  - name: gw\n"                      // 2
    "    endpoint: broker.example.com\n"  // 3
    "    port: 443\n"                     // 4
    "    ca: /etc/ca.pem\n"               // 5
    "    auth: custom-authorizer\n"       // 6
    "    custom_authorizer:\n"            // 7
    "      name: fleet-authorizer\n";     // 8

TEST(ConfigAuth, X509ByDefaultWithItsAlpnOn443) {
    const auto r =
        parse("things:\n  - {name: gw, endpoint: b.example, port: 443, ca: /c, cert: /d, key: /e}\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& t = r.config->things.at(0);
    EXPECT_EQ(t.auth, auth_method::x509);
    EXPECT_EQ(t.alpn, std::vector<std::string>{"x-amzn-mqtt-ca"});
    EXPECT_STREQ(to_string(t.auth), "x509");
}

TEST(ConfigAuth, EveryKeyOfACustomAuthorizer) {
    const auto r = parse(authorizer +
                             "      token_key_name: token\n"
                             "      token: /etc/thingmux/authz-token\n"
                             "      signature: credential:authz-signature\n"
                             "      username: gateway-01\n"
                             "      password: /etc/thingmux/authz-password\n",
                         "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
    const auto& t = r.config->things.at(0);
    EXPECT_EQ(t.auth, auth_method::custom_authorizer);
    EXPECT_STREQ(to_string(t.auth), "custom-authorizer");
    const auto& c = t.custom_authorizer;
    EXPECT_EQ(c.name, "fleet-authorizer");
    EXPECT_EQ(c.token_key_name, "token");
    EXPECT_EQ(c.token, std::filesystem::path("/etc/thingmux/authz-token"));
    EXPECT_EQ(c.signature, std::filesystem::path("credential:authz-signature"));
    EXPECT_EQ(c.username, "gateway-01");
    EXPECT_EQ(c.password, std::filesystem::path("/etc/thingmux/authz-password"));
    // AWS IoT Core takes a custom authorizer's MQTT on 443 only with ALPN "mqtt".
    EXPECT_EQ(t.alpn, std::vector<std::string>{"mqtt"});
    // No client certificate is needed.
    EXPECT_TRUE(t.cert.empty());
    EXPECT_TRUE(t.key.empty());
}

TEST(ConfigAuth, ClientCertificateMayStillBeSentButWithItsKey) {
    const auto both = parse(authorizer + "    cert: /etc/cert.pem\n    key: /etc/key.pem\n", "t.yaml");
    ASSERT_TRUE(both.ok()) << all(both);
    EXPECT_EQ(both.config->things.at(0).cert, std::filesystem::path("/etc/cert.pem"));
    expect_error(parse(authorizer + "    cert: /etc/cert.pem\n", "t.yaml"), "things[0].cert", 9, 11,
                 "cert and key go together");
    expect_error(parse(authorizer + "    key: /etc/key.pem\n", "t.yaml"), "things[0].key", 9, 10,
                 "cert and key go together");
    // Without a custom authorizer they stay required.
    expect_error(parse("things:\n  - {name: gw, endpoint: b.example, ca: /c}\n", "t.yaml"), "things[0].cert", 2, 5,
                 "missing required key 'cert'");
}

TEST(ConfigAuth, AlpnOtherThanMqttOn443IsAWarning) {
    const auto r = parse(authorizer + "    alpn: [x-amzn-mqtt-ca]\n", "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    ASSERT_EQ(r.diagnostics.size(), 1U) << all(r);
    EXPECT_TRUE(r.diagnostics[0].warning);
    EXPECT_EQ(r.diagnostics[0].path, "things[0].alpn");
    EXPECT_NE(r.diagnostics[0].message.find("only with ALPN mqtt"), std::string::npos);
    // On another port (another broker) no ALPN is set or expected.
    const auto other = parse(
        "things:\n  - name: gw\n    endpoint: b.example\n    port: 8883\n    ca: /c\n"
        "    auth: custom-authorizer\n    custom_authorizer: {name: a}\n",
        "t.yaml");
    ASSERT_TRUE(other.ok()) << all(other);
    EXPECT_TRUE(other.diagnostics.empty()) << all(other);
    EXPECT_TRUE(other.config->things.at(0).alpn.empty());
}

TEST(ConfigAuth, CustomAuthorizerNeedsItsNameAndTheOtherWayRound) {
    expect_error(parse("things:\n  - {name: gw, endpoint: b.example, ca: /c, auth: custom-authorizer}\n", "t.yaml"),
                 "things[0].auth", 2, 51, "needs custom_authorizer:");
    expect_error(parse("things:\n  - name: gw\n    endpoint: b.example\n    ca: /c\n    auth: custom-authorizer\n"
                       "    custom_authorizer:\n      token_key_name: k\n      token: /t\n",
                       "t.yaml"),
                 "things[0].custom_authorizer.name", 7, 7, "missing required key 'name'");
}

TEST(ConfigAuth, BlockWithoutAuthIsAnError) {
    const auto r = parse(
        "things:\n  - name: gw\n    endpoint: b.example\n    ca: /c\n    cert: /d\n    key: /e\n"
        "    custom_authorizer: {name: a}\n",
        "t.yaml");
    expect_error(r, "things[0].custom_authorizer", 7, 5, "has no effect without auth: custom-authorizer");
}

TEST(ConfigAuth, UnknownMethodIsAnError) {
    expect_error(parse(authorizer + "      tokenkey: x\n", "t.yaml"), "things[0].custom_authorizer.tokenkey", 9, 7, "");
    const auto r = parse(
        "things:\n  - {name: gw, endpoint: b.example, ca: /c, cert: /d, key: /e, auth: custom_authorizer}\n", "t.yaml");
    expect_error(r, "things[0].auth", 2, 70, "is not one of", "custom-authorizer");
}

TEST(ConfigAuth, TokenKeyAndSignatureGoTogether) {
    expect_error(parse(authorizer + "      token: /t\n", "t.yaml"), "things[0].custom_authorizer.token", 9, 14,
                 "needs token_key_name");
    expect_error(parse(authorizer + "      token_key_name: k\n", "t.yaml"),
                 "things[0].custom_authorizer.token_key_name", 9, 23, "has no token to name");
    expect_error(parse(authorizer + "      signature: /s\n", "t.yaml"), "things[0].custom_authorizer.signature", 9, 18,
                 "signs a token");
}

TEST(ConfigAuth, SecretsAreFilesAndAnInlineSecretIsNeverQuoted) {
    for (const auto* key : {"token", "signature", "password"}) {
        SCOPED_TRACE(key);
        const auto r =
            parse(authorizer + "      token_key_name: k\n      token: /t\n      " + key + ": s3cret-value\n", "t.yaml");
        if (std::string_view(key) == "token") {
            // token written twice: the mapping refuses the repeat; the first value is a path.
            EXPECT_FALSE(r.ok());
            continue;
        }
        expect_error(r, "things[0].custom_authorizer." + std::string(key), 11,
                     9 + static_cast<int>(std::string_view(key).size()),
                     "names neither a file nor a systemd credential", "credential:NAME");
        EXPECT_EQ(all(r).find("s3cret"), std::string::npos) << all(r);
    }
    const auto inline_token = parse(authorizer + "      token_key_name: k\n      token: s3cret-value\n", "t.yaml");
    expect_error(inline_token, "things[0].custom_authorizer.token", 10, 14, "names neither a file");
    EXPECT_EQ(all(inline_token).find("s3cret"), std::string::npos) << all(inline_token);
    expect_error(parse(authorizer + "      token_key_name: k\n      token: credential:../t\n", "t.yaml"),
                 "things[0].custom_authorizer.token", 10, 14, "does not name a credential");
}

TEST(ConfigAuth, ValuesAreCheckedByTheUserNameRules) {
    expect_error(parse(authorizer + "      username: 'a?b'\n", "t.yaml"), "things[0].custom_authorizer.username", 9, 17,
                 "holds '?'");
    expect_error(parse("things:\n  - name: gw\n    endpoint: b.example\n    ca: /c\n    auth: custom-authorizer\n"
                       "    custom_authorizer:\n      name: a/b\n",
                       "t.yaml"),
                 "things[0].custom_authorizer.name", 7, 13, "only A-Z a-z 0-9 _ = , @ -");
    expect_error(parse(authorizer + "      token_key_name: 'a b'\n      token: /t\n", "t.yaml"),
                 "things[0].custom_authorizer.token_key_name", 9, 23, "HTTP header name");
}

// The secret files are checked like a private key: present, readable, and not readable by others.
class ConfigAuthFiles : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/thingmux-config-auth-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        std::ofstream(dir_ / "ca.pem") << "x\n";
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::filesystem::path dir_;
};

TEST_F(ConfigAuthFiles, MissingAndExposedSecretsAreReported) {
    const auto cfg = dir_ / "thingmux.yaml";
    std::ofstream(cfg)
        << "things:\n  - name: gw\n    endpoint: b.example\n    ca: " << (dir_ / "ca.pem").string()
        << "\n    auth: custom-authorizer\n    custom_authorizer:\n      name: a\n      token_key_name: k\n"
        << "      token: " << (dir_ / "token").string() << "\n      signature: " << (dir_ / "signature").string()
        << "\n      password: " << (dir_ / "password").string() << "\n";
    auto r = load_file(cfg);
    ASSERT_FALSE(r.ok());
    ASSERT_EQ(r.diagnostics.size(), 3U) << all(r);
    int line = 9;
    for (const auto* key : {"token", "signature", "password"}) {
        const auto& d = r.diagnostics[static_cast<std::size_t>(line - 9)];
        EXPECT_EQ(d.path, "things[0].custom_authorizer." + std::string(key));
        EXPECT_EQ(d.line, line++);
        EXPECT_NE(d.message.find("does not exist"), std::string::npos) << all(r);
    }

    for (const auto* name : {"token", "signature", "password"}) {
        std::ofstream(dir_ / name) << "value\n";
        std::filesystem::permissions(dir_ / name,
                                     std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    }
    std::filesystem::permissions(dir_ / "token", std::filesystem::perms::others_read,
                                 std::filesystem::perm_options::add);
    r = load_file(cfg);
    ASSERT_TRUE(r.ok()) << all(r);
    ASSERT_EQ(r.diagnostics.size(), 1U) << all(r);
    EXPECT_TRUE(r.diagnostics[0].warning);
    EXPECT_EQ(r.diagnostics[0].path, "things[0].custom_authorizer.token");
    EXPECT_NE(r.diagnostics[0].message.find("custom authorizer token file"), std::string::npos) << all(r);
    EXPECT_NE(r.diagnostics[0].message.find("readable by other users"), std::string::npos) << all(r);
}

}  // namespace
