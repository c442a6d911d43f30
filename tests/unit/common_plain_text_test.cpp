// Plain text taken apart (common/plain_text.hpp): lines with LF or CRLF ends, fields, ASCII case.
#include "common/plain_text.hpp"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace {

using namespace thingmux::text;

std::vector<std::pair<int, std::string>> lines_of(std::string_view s) {
    std::vector<std::pair<int, std::string>> out;
    line_reader lines(s);
    while (const auto line = lines.next()) out.emplace_back(lines.number(), std::string(*line));
    return out;
}

TEST(PlainText, LinesWithoutTheirEnds) {
    using L = std::vector<std::pair<int, std::string>>;
    EXPECT_EQ(lines_of(""), L{});
    EXPECT_EQ(lines_of("a"), (L{{1, "a"}}));
    EXPECT_EQ(lines_of("a\r\n\nb\r\r\n"), (L{{1, "a"}, {2, ""}, {3, "b\r"}}));
    EXPECT_EQ(lines_of("\n"), (L{{1, ""}}));
}

TEST(PlainText, Split) {
    using V = std::vector<std::string_view>;
    EXPECT_EQ(split("a.b", '.'), (V{"a", "b"}));
    EXPECT_EQ(split("a..b.", '.'), (V{"a", "", "b", ""}));
    EXPECT_EQ(split("", '.'), (V{""}));
}

TEST(PlainText, AsciiLowerLeavesOtherBytes) {
    EXPECT_EQ(ascii_lower("AWS_Access_Key_ID-\xC3\x89"), "aws_access_key_id-\xC3\x89");
}

}  // namespace
