// Topic names, topic filters, matching and UTF-8 rules (MQTT 3.1.1 / 5.0 sections 1.5.4 and 4.7).
#include "daemon/mqtt/topic.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace thingmux::mqtt {
namespace {

using namespace std::string_view_literals;

// --- UTF-8 ---------------------------------------------------------------------------------------

TEST(MqttUtf8, AcceptsAsciiAndEmpty) {
    EXPECT_TRUE(valid_utf8(""));
    EXPECT_TRUE(valid_utf8("sport/tennis/player1"));
}

TEST(MqttUtf8, AcceptsMultiByteSequencesOfEveryLength) {
    EXPECT_TRUE(valid_utf8("\xC3\xA9"));           // U+00E9 é
    EXPECT_TRUE(valid_utf8("\xE2\x82\xAC"));       // U+20AC €
    EXPECT_TRUE(valid_utf8("\xF0\x9F\x98\x80"));   // U+1F600
    EXPECT_TRUE(valid_utf8("\xEF\xBB\xBF"));       // U+FEFF, allowed (spec 1.5.4 MQTT-1.5.4-3)
    EXPECT_TRUE(valid_utf8("\xF4\x8F\xBF\xBF"));   // U+10FFFF, the last code point
    EXPECT_TRUE(valid_utf8("\xC2\x80"));           // U+0080, smallest two-byte form
    EXPECT_TRUE(valid_utf8("\xE0\xA0\x80"));       // U+0800, smallest three-byte form
    EXPECT_TRUE(valid_utf8("\xF0\x90\x80\x80"));   // U+10000, smallest four-byte form
    EXPECT_TRUE(valid_utf8("A\xF0\xAA\x9B\x94"));  // spec 1.5.4 example: "A" + U+2A6D4
}

TEST(MqttUtf8, RejectsOverlongEncodings) {
    EXPECT_FALSE(valid_utf8("\xC0\xAF"));  // '/' in two bytes
    EXPECT_FALSE(valid_utf8("\xC1\xBF"));
    EXPECT_FALSE(valid_utf8("\xE0\x80\xAF"));      // '/' in three bytes
    EXPECT_FALSE(valid_utf8("\xE0\x9F\xBF"));      // U+07FF in three bytes
    EXPECT_FALSE(valid_utf8("\xF0\x80\x80\xAF"));  // '/' in four bytes
    EXPECT_FALSE(valid_utf8("\xF0\x8F\xBF\xBF"));  // U+FFFF in four bytes
}

TEST(MqttUtf8, RejectsOverlongNul) {
    EXPECT_FALSE(valid_utf8("\xC0\x80"));  // "modified UTF-8" NUL
}

TEST(MqttUtf8, RejectsSurrogates) {
    EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));  // U+D800
    EXPECT_FALSE(valid_utf8("\xED\xBF\xBF"));  // U+DFFF
    EXPECT_TRUE(valid_utf8("\xED\x9F\xBF"));   // U+D7FF, just below
    EXPECT_TRUE(valid_utf8("\xEE\x80\x80"));   // U+E000, just above
}

TEST(MqttUtf8, RejectsCodePointsAbove10FFFF) {
    EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // U+110000
    EXPECT_FALSE(valid_utf8("\xF7\xBF\xBF\xBF"));
    EXPECT_FALSE(valid_utf8("\xF8\x88\x80\x80\x80"));  // five-byte form
    EXPECT_FALSE(valid_utf8("\xFF"));
}

TEST(MqttUtf8, RejectsNul) {
    EXPECT_FALSE(valid_utf8("a\0b"sv));
    EXPECT_FALSE(valid_utf8("\0"sv));
}

TEST(MqttUtf8, RejectsBrokenSequences) {
    EXPECT_FALSE(valid_utf8("\x80"));              // lone continuation byte
    EXPECT_FALSE(valid_utf8("\xC3"));              // truncated two-byte
    EXPECT_FALSE(valid_utf8("\xE2\x82"));          // truncated three-byte
    EXPECT_FALSE(valid_utf8("\xF0\x9F\x98"));      // truncated four-byte
    EXPECT_FALSE(valid_utf8("\xC3\x41"));          // lead followed by ASCII
    EXPECT_FALSE(valid_utf8("\xE2\x82\xAC\xAC"));  // extra continuation byte
}

TEST(MqttUtf8, RejectsStringsLongerThan65535Bytes) {
    EXPECT_TRUE(valid_utf8(std::string(65535, 'a')));
    EXPECT_FALSE(valid_utf8(std::string(65536, 'a')));
}

// --- topic names -----------------------------------------------------------------------------------

TEST(MqttTopicName, AcceptsOrdinaryNames) {
    for (const auto* name :
         {"a", "sport/tennis/player1", "/", "/finance", "a//b", "$SYS/broker", "$aws/things/t1", "caf\xC3\xA9"}) {
        EXPECT_TRUE(valid_topic_name(name)) << name;
        EXPECT_EQ(topic_name_problem(name), nullptr) << name;
    }
}

TEST(MqttTopicName, RejectsEmptyWildcardsAndBadUtf8) {
    EXPECT_FALSE(valid_topic_name(""));
    EXPECT_STREQ(topic_name_problem(""), "is empty");
    EXPECT_FALSE(valid_topic_name("a/+/b"));
    EXPECT_STREQ(topic_name_problem("a/+/b"), "contains wildcard '+'");
    EXPECT_FALSE(valid_topic_name("a/#"));
    EXPECT_STREQ(topic_name_problem("a/#"), "contains wildcard '#'");
    EXPECT_FALSE(valid_topic_name("a+b"));  // even inside a level
    EXPECT_FALSE(valid_topic_name("a\xC0\xAF"));
    EXPECT_FALSE(valid_topic_name("a\0b"sv));
    EXPECT_FALSE(valid_topic_name(std::string(65536, 'a')));
}

// --- topic filters -----------------------------------------------------------------------------------

TEST(MqttTopicFilter, AcceptsSpecExamples) {
    for (const auto* filter : {"sport/tennis/player1/#", "sport/#", "#", "+", "+/tennis/#", "sport/+/player1", "/+",
                               "+/+", "sport/tennis/+", "$SYS/#", "a//b", "/", "a/b/"}) {
        EXPECT_TRUE(valid_topic_filter(filter)) << filter;
    }
}

TEST(MqttTopicFilter, RejectsMisplacedWildcards) {
    struct bad_filter {
        const char* filter;
        const char* problem;
    };
    for (const auto& [filter, problem] : {
             bad_filter{"", "is empty"},
             bad_filter{"sport/tennis#", "has '#' not occupying a whole level"},
             bad_filter{"sport/tennis/#/ranking", "has '#' not as the last level"},
             bad_filter{"#/a", "has '#' not as the last level"},
             bad_filter{"sport+", "has '+' not occupying a whole level"},
             bad_filter{"sport/+tennis", "has '+' not occupying a whole level"},
             bad_filter{"a/++", "has '+' not occupying a whole level"},
             bad_filter{"a/##", "has '#' not occupying a whole level"},
         }) {
        EXPECT_FALSE(valid_topic_filter(filter)) << filter;
        EXPECT_STREQ(topic_filter_problem(filter), problem) << filter;
    }
    EXPECT_FALSE(valid_topic_filter("a\xED\xA0\x80"));
}

TEST(MqttTopicFilter, AcceptsSharedSubscriptions) {
    EXPECT_TRUE(valid_topic_filter("$share/group/cmd/#"));
    EXPECT_TRUE(valid_topic_filter("$share/g/+"));
    EXPECT_TRUE(valid_topic_filter("$share/g//"));  // the inner filter "/" is valid
}

TEST(MqttTopicFilter, RejectsMalformedSharedSubscriptions) {
    EXPECT_FALSE(valid_topic_filter("$share//a"));    // empty share name
    EXPECT_FALSE(valid_topic_filter("$share/g+/a"));  // wildcard in the share name
    EXPECT_FALSE(valid_topic_filter("$share/#/a"));
    EXPECT_FALSE(valid_topic_filter("$share/g"));     // no filter
    EXPECT_FALSE(valid_topic_filter("$share/g/"));    // empty filter
    EXPECT_FALSE(valid_topic_filter("$share/g/a#"));  // invalid inner filter
    EXPECT_TRUE(valid_topic_filter("$shared/g/a"));   // not the $share prefix: an ordinary filter
}

// --- matching -----------------------------------------------------------------------------------

struct match_case {
    const char* filter;
    const char* topic;
    bool matches;
};

// Spec 4.7.1 and 4.7.2 examples, plus edge cases around empty levels.
constexpr match_case match_cases[] = {
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/#", "sport", true},
    {"sport/#", "sports", false},
    {"#", "sport/tennis", true},
    {"#", "/", true},
    {"a/#", "a", true},
    {"a/#", "a/", true},
    {"a/#", "ab", false},
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/tennis/+", "sport/tennis", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"+", "finance", true},
    {"+/tennis/#", "sport/tennis/player1", true},
    {"+/tennis/#", "sport/tennis", true},
    {"sport/+/player1", "sport/tennis/player1", true},
    {"sport/+/player1", "sport//player1", true},
    {"+/+/+", "a/b", false},
    {"a/b", "a/b", true},
    {"a/b", "a/b/", false},
    {"a/b/", "a/b/", true},
    {"a/b", "A/b", false},
    {"a//b", "a//b", true},
    {"a/+/b", "a//b", true},
    // Topics starting with '$' (spec 4.7.2).
    {"#", "$SYS/broker/clients", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$aws/things/+/shadow/#", "$aws/things/t1/shadow/update", true},
    {"a/#", "a/$b", true},  // the rule only concerns the first level
    // Shared subscriptions match on the filter after "$share/NAME/".
    {"$share/group/cmd/#", "cmd/reboot", true},
    {"$share/group/cmd/+", "other/reboot", false},
    {"$share/group/#", "$SYS/x", false},
    {"", "a", false},
    {"#", "", false},
};

class MqttTopicMatches : public testing::TestWithParam<match_case> {};

TEST_P(MqttTopicMatches, FollowsTheSpecification) {
    const auto& c = GetParam();
    EXPECT_EQ(topic_matches(c.filter, c.topic), c.matches) << "filter '" << c.filter << "' topic '" << c.topic << "'";
}

INSTANTIATE_TEST_SUITE_P(SpecTable, MqttTopicMatches, testing::ValuesIn(match_cases));

TEST(MqttTopicMatches, ExactFiltersOnlyMatchThemselves) {
    EXPECT_TRUE(topic_matches("cmd/x", "cmd/x"));
    EXPECT_FALSE(topic_matches("cmd/x", "cmd/y"));
    EXPECT_FALSE(topic_matches("cmd/x", "cmd"));
    EXPECT_FALSE(topic_matches("cmd", "cmd/x"));
}

// --- has_wildcard -----------------------------------------------------------------------------------

TEST(MqttHasWildcard, DetectsPlusAndHash) {
    EXPECT_TRUE(has_wildcard("#"));
    EXPECT_TRUE(has_wildcard("a/+/b"));
    EXPECT_TRUE(has_wildcard("a/#"));
    EXPECT_TRUE(has_wildcard("$share/g/+"));
    EXPECT_FALSE(has_wildcard("a/b"));
    EXPECT_FALSE(has_wildcard("$share/g/a"));
    EXPECT_FALSE(has_wildcard(""));
}

}  // namespace
}  // namespace thingmux::mqtt
