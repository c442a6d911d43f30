// text::printable: what outside text looks like in a log line.
#include "common/printable.hpp"

#include <gtest/gtest.h>

#include <string>

namespace thingmux::text {
namespace {

TEST(TextPrintable, PlainTextAndWellFormedUtf8AreKept) {
    EXPECT_EQ(printable("sensor/temperature 21.5 'ok'"), "sensor/temperature 21.5 'ok'");
    EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8c\xa1"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8c\xa1");
    EXPECT_EQ(printable(""), "");
}

TEST(TextPrintable, LineBreaksAndTerminalEscapesCannotStartALineOrSteerTheTerminal) {
    EXPECT_EQ(printable("app\n[info] client connected uid 0 (root)\x1b[31m"),
              "app\\n[info] client connected uid 0 (root)\\x1b[31m");
    EXPECT_EQ(printable("a\rb\tc\x7f" + std::string(1, '\0') + "d"), "a\\rb\\tc\\x7f\\x00d");
    // A backslash stays: escaping is idempotent.
    EXPECT_EQ(printable("C:\\n"), "C:\\n");
}

TEST(TextPrintable, DisplaySteeringCodePointsAreEscaped) {
    EXPECT_EQ(printable("\xc2\x9b"
                        "31m"),
              "\\u009b31m");  // C1 CSI
    EXPECT_EQ(printable("a\xe2\x80\xa8"
                        "b"),
              "a\\u2028b");  // line separator
    EXPECT_EQ(printable("\xe2\x80\xae"
                        "txt.exe"),
              "\\u202etxt.exe");                                           // right-to-left override
    EXPECT_EQ(printable("\xe2\x81\xa6x\xe2\x81\xa9"), "\\u2066x\\u2069");  // isolates
}

TEST(TextPrintable, BytesThatAreNotUtf8AreShownAsHex) {
    EXPECT_EQ(printable("a\xff"
                        "b"),
              "a\\xffb");
    EXPECT_EQ(printable("\xc0\x80"), "\\xc0\\x80");                    // overlong NUL
    EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // UTF-16 surrogate
    EXPECT_EQ(printable("\xe2\x82"), "\\xe2\\x82");                    // cut short
    EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // beyond U+10FFFF
}

TEST(TextPrintable, EscapingTwiceChangesNothing) {
    const std::string hostile = "a\nb\x1b[1m\xff\xe2\x80\xae\\x41\xc2\x9b";
    const auto once = printable(hostile);
    EXPECT_EQ(once, "a\\nb\\x1b[1m\\xff\\u202e\\x41\\u009b");
    EXPECT_EQ(printable(once), once);
}

TEST(TextPrintable, LongTextIsCutAtACharacterBoundaryAndSaysHowMuchIsLeft) {
    EXPECT_EQ(printable(std::string(10, 'a'), 4), "aaaa... (6 more bytes)");
    // The two-byte character would straddle the limit: it goes to the rest.
    EXPECT_EQ(printable("abc\xc3\xa9z", 4), "abc... (3 more bytes)");
    EXPECT_EQ(printable("abcd", 4), "abcd");
    std::string out = "prefix ";
    append_printable(out, "x\ny");
    EXPECT_EQ(out, "prefix x\\ny");
}

}  // namespace
}  // namespace thingmux::text
