// The password check of the MQTT face (hub/mqtt_passwords.hpp) against files made at test time
// by the real mosquitto_passwd: its default PBKDF2-SHA512 ($7$) and the SHA-512 ($6$) of older
// versions, with passwords that hold ':' and non-ASCII bytes.
#include "daemon/hub/mqtt_passwords.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace thingmux::hub {
namespace {

class HubMqttPasswords : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/thingmux-passwords-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        file_ = dir_ / "passwd";
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    void add(const std::vector<std::string>& options, const std::string& user, const std::string& password) {
        std::vector<std::string> argv{"mosquitto_passwd"};
        argv.insert(argv.end(), options.begin(), options.end());
        argv.insert(argv.end(), {"-b", file_.string(), user, password});
        std::string out;
        ASSERT_EQ(test::run_command(argv, &out), 0) << out;
    }

    config::password_table table() {
        std::string error;
        auto t = config::read_password_file(file_, error);
        EXPECT_TRUE(t) << error;
        if (!t) return {};
        EXPECT_TRUE(t->problems.empty()) << t->problems.front().message;
        return *t;
    }

    std::filesystem::path dir_;
    std::filesystem::path file_;
};

// One file with both kinds of lines, as after mosquitto 2.0 added users to a 1.6 file.
TEST_F(HubMqttPasswords, LinesOfBothSchemesFromMosquittoPasswd) {
    add({"-c"}, "alice", "correct horse");
    add({}, "colon", "a:b:c");
    add({}, "utf8", "p\xc3\xa4sswort");
    add({"-H", "sha512"}, "legacy", "old secret");
    add({"-H", "sha512-pbkdf2"}, "modern", "new secret");
    const auto t = table();
    ASSERT_EQ(t.entries.size(), 5U);
    EXPECT_EQ(t.find("alice")->scheme, config::password_scheme::pbkdf2_sha512);
    EXPECT_EQ(t.find("legacy")->scheme, config::password_scheme::sha512);
    EXPECT_EQ(t.find("modern")->scheme, config::password_scheme::pbkdf2_sha512);
    struct attempt {
        const char* user;
        const char* password;
        bool accepted;
    };
    const attempt attempts[] = {
        {"alice", "correct horse", true},
        {"alice", "correct horsE", false},
        {"alice", "correct horse ", false},
        {"alice", "", false},
        {"colon", "a:b:c", true},
        {"colon", "a:b", false},
        {"utf8", "p\xc3\xa4sswort", true},
        {"legacy", "old secret", true},
        {"legacy", "new secret", false},
        {"modern", "new secret", true},
        {"modern", "old secret", false},
        // Someone else's password, an unknown user, a name that only starts like one.
        {"colon", "correct horse", false},
        {"bob", "correct horse", false},
        {"alic", "correct horse", false},
        {"", "", false},
    };
    for (const auto& a : attempts)
        EXPECT_EQ(check_password(t, a.user, a.password), a.accepted) << a.user << " / " << a.password;
}

TEST_F(HubMqttPasswords, ATamperedHashMatchesNothing) {
    add({"-c"}, "alice", "pw");
    auto t = table();
    ASSERT_EQ(t.entries.size(), 1U);
    auto e = t.entries[0];
    EXPECT_TRUE(password_matches(e, "pw"));
    e.hash[63] = static_cast<char>(e.hash[63] ^ 1);
    EXPECT_FALSE(password_matches(e, "pw"));
    e = t.entries[0];
    e.iterations += 1;
    EXPECT_FALSE(password_matches(e, "pw"));
    e = t.entries[0];
    e.hash.resize(32);
    EXPECT_FALSE(password_matches(e, "pw"));
}

}  // namespace
}  // namespace thingmux::hub
