// A custom authorizer's login read from its files at each attempt
// (daemon/uplink/custom_authorizer_login.hpp): real files in a temporary directory, the hostile
// ones (a FIFO, an oversized or multi-line token, a password over MQTT's limit) refused with a
// message that names the file and never quotes a secret.
#include "daemon/uplink/custom_authorizer_login.hpp"
#include "daemon/uplink/error.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace thingmux::uplink {
namespace {

class CustomAuthorizerLogin : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/thingmux-authz-login-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::filesystem::path write(const std::string& name, const std::string& text) {
        const auto p = dir_ / name;
        std::ofstream(p, std::ios::trunc | std::ios::binary) << text;
        return p;
    }

    // Signed token, user name and password, all from files.
    custom_authorizer_files files() {
        return {.name = "fleet",
                .token_key_name = "token",
                .username = "gw",
                .token_file = write("token", "tok-1\n"),
                .signature_file = write("signature", "c2ln+Zw==\r\n"),
                .password_file = write("password", "pw\n")};
    }

    std::filesystem::path dir_;
};

TEST_F(CustomAuthorizerLogin, FilesBecomeUserNameAndPassword) {
    const auto l = load_mqtt_login(files());
    ASSERT_FALSE(l.error) << l.detail;
    EXPECT_EQ(l.username,
              "gw?x-amz-customauthorizer-name=fleet&token=tok-1&x-amz-customauthorizer-signature=c2ln%2BZw%3D%3D");
    ASSERT_TRUE(l.password);
    EXPECT_EQ(*l.password, "pw");
}

TEST_F(CustomAuthorizerLogin, NoPasswordFileSendsNoPassword) {
    auto f = files();
    f.password_file.clear();
    const auto l = load_mqtt_login(f);
    ASSERT_FALSE(l.error) << l.detail;
    EXPECT_FALSE(l.password);
}

TEST_F(CustomAuthorizerLogin, FilesAreReadAtEveryCall) {
    const auto f = files();
    EXPECT_NE(load_mqtt_login(f).username.find("token=tok-1&"), std::string::npos);
    write("token", "tok-2\n");
    EXPECT_NE(load_mqtt_login(f).username.find("token=tok-2&"), std::string::npos);
}

TEST_F(CustomAuthorizerLogin, WebSocketParametersAreTheSameValues) {
    const auto w = load_websocket_login(files());
    ASSERT_FALSE(w.error) << w.detail;
    ASSERT_EQ(w.parameters.size(), 3U);
    EXPECT_EQ(w.parameters[0].name, "x-amz-customauthorizer-name");
    EXPECT_EQ(w.parameters[1].name, "token");
    EXPECT_EQ(w.parameters[1].value, "tok-1");
    EXPECT_EQ(w.parameters[2].value, "c2ln+Zw==");
    EXPECT_EQ(custom_authorizer::query_string(w.parameters),
              "x-amz-customauthorizer-name=fleet&token=tok-1&x-amz-customauthorizer-signature=c2ln%2BZw%3D%3D");
}

// Every refusal: errc::custom_authorizer_unusable (fatal), the file named, no secret quoted.
TEST_F(CustomAuthorizerLogin, HostileFilesAreRefusedClearly) {
    auto f = files();
    const auto refused = [&](const custom_authorizer_files& x, const std::string& expected) {
        const auto l = load_mqtt_login(x);
        EXPECT_EQ(l.error, errc::custom_authorizer_unusable) << expected;
        EXPECT_TRUE(is_fatal(l.error));
        EXPECT_NE(l.detail.find(expected), std::string::npos) << l.detail;
        EXPECT_EQ(l.detail.find("s3cret"), std::string::npos) << l.detail;
        EXPECT_TRUE(l.username.empty());
        const auto w = load_websocket_login(x);
        EXPECT_EQ(w.error, errc::custom_authorizer_unusable);
        EXPECT_TRUE(w.parameters.empty());
    };
    auto missing = f;
    missing.token_file = dir_ / "nope";
    refused(missing, "cannot read custom authorizer token file " + (dir_ / "nope").string() +
                         " (custom_authorizer.token): No such file or directory");

    ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
    auto fifo = f;
    fifo.signature_file = dir_ / "fifo";
    refused(fifo, "custom authorizer signature file " + (dir_ / "fifo").string() +
                      " (custom_authorizer.signature) is a FIFO");

    write("token", "s3cret\nsecond line\n");
    refused(f, "custom authorizer token file " + f.token_file.string() +
                   " (custom_authorizer.token): the token holds a control character (byte 10 at offset 6)");

    write("token", "\n");
    refused(f, "custom authorizer token file " + f.token_file.string() + " (custom_authorizer.token) is empty");

    write("token", std::string(70'000, 's'));
    refused(f, "is larger than");

    write("token", std::string(65'480, 's'));
    refused(f, "the MQTT user name would be");

    write("token", "tok\n");
    write("password", std::string(65'536, 'p'));
    refused(f, "custom authorizer password file " + f.password_file.string() +
                   " (custom_authorizer.password): the password is 65536 bytes long");
}

TEST_F(CustomAuthorizerLogin, DenialNamesTheAuthorizerAndItsFiles) {
    const auto f = files();
    const auto m = denied_message(f, "not authorized (reason 0x87)");
    EXPECT_EQ(
        m.rfind("custom authorizer fleet denied the connection (broker: not authorized (reason 0x87)): check the token "
                "and signature files (custom_authorizer.token " +
                    f.token_file.string() + ", custom_authorizer.signature " + f.signature_file.string() +
                    ", custom_authorizer.password " + f.password_file.string() + ")",
                0),
        0U)
        << m;
}

}  // namespace
}  // namespace thingmux::uplink
