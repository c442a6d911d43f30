// The mosquitto_passwd file parser: the lines mosquitto_passwd writes ($7$ and $6$), and every
// way a line can be unusable, each reported with its line number.
#include "config/password_file.hpp"

#include <gtest/gtest.h>

#include <string>

namespace thingmux::config {
namespace {

// Written by mosquitto_passwd -b (2.0: $7$, and -H sha512: $6$).
const std::string pbkdf2_line =
    "alice:$7$101$SvyIYQnC6qtgKwv5$V1U3DklmLKQQrYTZBqSbdHpyYG1ja79AAlCxc9TOwY/5T/nTS/"
    "WPFlFcqWMrFQUug1QAp09MtL8GBlSBvgnFgQ==";
const std::string sha512_line =
    "bob:$6$vMfCs5ibCqQEUb9y$tLmYp7nna8uyRMgDlAgL+TFcYmeerI9naKw3czP/DZ0X7Q8eeAwz6ifJxrk86fPrRPraJXo51NTHeB0Zewvc9Q==";

TEST(ConfigPasswordFile, ReadsBothSchemes) {
    const auto t = parse_password_file(pbkdf2_line + "\n" + sha512_line + "\n");
    ASSERT_TRUE(t.problems.empty()) << t.problems.front().message;
    ASSERT_EQ(t.entries.size(), 2U);
    const auto* a = t.find("alice");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->scheme, password_scheme::pbkdf2_sha512);
    EXPECT_EQ(a->iterations, 101U);
    EXPECT_EQ(a->salt.size(), 12U);
    EXPECT_EQ(a->hash.size(), 64U);
    const auto* b = t.find("bob");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->scheme, password_scheme::sha512);
    EXPECT_EQ(b->salt.size(), 12U);
    EXPECT_EQ(t.find("carol"), nullptr);
    EXPECT_EQ(t.find("alic"), nullptr);
}

TEST(ConfigPasswordFile, SkipsCommentsEmptyLinesAndCarriageReturns) {
    const auto t = parse_password_file("# users\n\n" + pbkdf2_line + "\r\n");
    EXPECT_TRUE(t.problems.empty());
    ASSERT_EQ(t.entries.size(), 1U);
    EXPECT_EQ(t.entries[0].user, "alice");
    EXPECT_EQ(t.entries[0].hash.size(), 64U);
}

TEST(ConfigPasswordFile, ReportsEveryBadLineWithItsNumber) {
    const std::string text =
        "nocolon\n"  // 1
        ":$6$VB4Zr1yTiDxAc3+p$" +
        std::string(88, 'A') +
        "\n"              // 2 empty user
        "plain:secret\n"  // 3 plain text
        "zero:$7$0$SvyIYQnC6qtgKwv5$" +
        std::string(88, 'A') +
        "\n"  // 4
        "many:$7$99999999999$SvyIYQnC6qtgKwv5$" +
        std::string(88, 'A') +
        "\n"  // 5
        "salt:$7$101$S*yIYQnC6qtgKwv5$" +
        std::string(88, 'A') +
        "\n"                                // 6
        "short:$6$VB4Zr1yTiDxAc3+p$AAAA\n"  // 7 hash too short
        + pbkdf2_line + "\n"                // 8
        + pbkdf2_line +
        "\n"                                     // 9 twice
        "dollar:$7$101$SvyIYQnC6qtgKwv5$x$y\n";  // 10
    const auto t = parse_password_file(text);
    ASSERT_EQ(t.entries.size(), 1U);
    ASSERT_EQ(t.problems.size(), 9U);
    const std::vector<std::pair<int, std::string>> expected{
        {1, "no ':'"},          {2, "user name is empty"}, {3, "plain-text password"},
        {4, "iteration count"}, {5, "iteration count"},    {6, "salt is not base64"},
        {7, "64-byte SHA-512"}, {9, "listed twice"},       {10, "neither"}};
    for (std::size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(t.problems[i].line, expected[i].first) << i;
        EXPECT_NE(t.problems[i].message.find(expected[i].second), std::string::npos) << t.problems[i].message;
    }
}

TEST(ConfigPasswordFile, Base64) {
    EXPECT_EQ(decode_base64(""), "");
    EXPECT_EQ(decode_base64("Zg=="), "f");
    EXPECT_EQ(decode_base64("Zm8="), "fo");
    EXPECT_EQ(decode_base64("Zm9v"), "foo");
    EXPECT_EQ(decode_base64("+/+/"), std::string("\xfb\xff\xbf"));
    EXPECT_FALSE(decode_base64("Zm9"));       // not a multiple of 4
    EXPECT_FALSE(decode_base64("Z==="));      // too much padding
    EXPECT_FALSE(decode_base64("Zg==Zm9v"));  // padding in the middle
    EXPECT_FALSE(decode_base64("Zm=v"));
    EXPECT_FALSE(decode_base64("Zm9\n"));
}

}  // namespace
}  // namespace thingmux::config
