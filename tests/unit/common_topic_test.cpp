// Topic names, topic filters, matching, coverage and the UTF-8 rules of MQTT strings (MQTT 3.1.1 /
// 5.0 sections 1.5.4 and 4.7), as common/ defines them for every module.
#include "common/topic.hpp"
#include "common/utf8.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::topic {
namespace {

using namespace std::string_view_literals;

bool valid_utf8(std::string_view s) { return text::valid_mqtt_string(s); }
const char* name_text(std::string_view name) {
    const auto e = name_problem(name);
    return e ? describe(static_cast<errc>(e.value())) : nullptr;
}
const char* subscription_text(std::string_view filter) {
    const auto e = subscription_problem(filter);
    return e ? describe(static_cast<errc>(e.value())) : nullptr;
}

// --- UTF-8 ---------------------------------------------------------------------------------------

TEST(TopicUtf8, AcceptsAsciiAndEmpty) {
    EXPECT_TRUE(valid_utf8(""));
    EXPECT_TRUE(valid_utf8("sport/tennis/player1"));
}

TEST(TopicUtf8, AcceptsMultiByteSequencesOfEveryLength) {
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

TEST(TopicUtf8, RejectsOverlongEncodings) {
    EXPECT_FALSE(valid_utf8("\xC0\xAF"));  // '/' in two bytes
    EXPECT_FALSE(valid_utf8("\xC1\xBF"));
    EXPECT_FALSE(valid_utf8("\xE0\x80\xAF"));      // '/' in three bytes
    EXPECT_FALSE(valid_utf8("\xE0\x9F\xBF"));      // U+07FF in three bytes
    EXPECT_FALSE(valid_utf8("\xF0\x80\x80\xAF"));  // '/' in four bytes
    EXPECT_FALSE(valid_utf8("\xF0\x8F\xBF\xBF"));  // U+FFFF in four bytes
}

TEST(TopicUtf8, RejectsOverlongNul) {
    EXPECT_FALSE(valid_utf8("\xC0\x80"));  // "modified UTF-8" NUL
}

TEST(TopicUtf8, RejectsSurrogates) {
    EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));  // U+D800
    EXPECT_FALSE(valid_utf8("\xED\xBF\xBF"));  // U+DFFF
    EXPECT_TRUE(valid_utf8("\xED\x9F\xBF"));   // U+D7FF, just below
    EXPECT_TRUE(valid_utf8("\xEE\x80\x80"));   // U+E000, just above
}

TEST(TopicUtf8, RejectsCodePointsAbove10FFFF) {
    EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // U+110000
    EXPECT_FALSE(valid_utf8("\xF7\xBF\xBF\xBF"));
    EXPECT_FALSE(valid_utf8("\xF8\x88\x80\x80\x80"));  // five-byte form
    EXPECT_FALSE(valid_utf8("\xFF"));
}

TEST(TopicUtf8, RejectsNul) {
    EXPECT_FALSE(valid_utf8("a\0b"sv));
    EXPECT_FALSE(valid_utf8("\0"sv));
}

TEST(TopicUtf8, RejectsBrokenSequences) {
    EXPECT_FALSE(valid_utf8("\x80"));              // lone continuation byte
    EXPECT_FALSE(valid_utf8("\xC3"));              // truncated two-byte
    EXPECT_FALSE(valid_utf8("\xE2\x82"));          // truncated three-byte
    EXPECT_FALSE(valid_utf8("\xF0\x9F\x98"));      // truncated four-byte
    EXPECT_FALSE(valid_utf8("\xC3\x41"));          // lead followed by ASCII
    EXPECT_FALSE(valid_utf8("\xE2\x82\xAC\xAC"));  // extra continuation byte
}

TEST(TopicUtf8, RejectsStringsLongerThan65535Bytes) {
    EXPECT_TRUE(valid_utf8(std::string(65535, 'a')));
    EXPECT_FALSE(valid_utf8(std::string(65536, 'a')));
}

// --- topic names -----------------------------------------------------------------------------------

TEST(TopicName, AcceptsOrdinaryNames) {
    for (const auto* name :
         {"a", "sport/tennis/player1", "/", "/finance", "a//b", "$SYS/broker", "$aws/things/t1", "caf\xC3\xA9"}) {
        EXPECT_TRUE(valid_name(name)) << name;
        EXPECT_EQ(name_text(name), nullptr) << name;
    }
}

TEST(TopicName, RejectsEmptyWildcardsAndBadUtf8) {
    EXPECT_FALSE(valid_name(""));
    EXPECT_STREQ(name_text(""), "is empty");
    EXPECT_FALSE(valid_name("a/+/b"));
    EXPECT_STREQ(name_text("a/+/b"), "contains wildcard '+'");
    EXPECT_FALSE(valid_name("a/#"));
    EXPECT_STREQ(name_text("a/#"), "contains wildcard '#'");
    EXPECT_FALSE(valid_name("a+b"));  // even inside a level
    EXPECT_FALSE(valid_name("a\xC0\xAF"));
    EXPECT_FALSE(valid_name("a\0b"sv));
    EXPECT_FALSE(valid_name(std::string(65536, 'a')));
}

// --- topic filters -----------------------------------------------------------------------------------

TEST(TopicFilter, AcceptsSpecExamples) {
    for (const auto* filter : {"sport/tennis/player1/#", "sport/#", "#", "+", "+/tennis/#", "sport/+/player1", "/+",
                               "+/+", "sport/tennis/+", "$SYS/#", "a//b", "/", "a/b/"}) {
        EXPECT_TRUE(valid_filter(filter)) << filter;
        EXPECT_TRUE(valid_subscription(filter)) << filter;
    }
}

TEST(TopicFilter, RejectsMisplacedWildcards) {
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
        EXPECT_FALSE(valid_filter(filter)) << filter;
        EXPECT_STREQ(subscription_text(filter), problem) << filter;
    }
    EXPECT_FALSE(valid_filter("a\xED\xA0\x80"));
}

TEST(TopicFilter, AcceptsSharedSubscriptions) {
    EXPECT_TRUE(valid_subscription("$share/group/cmd/#"));
    EXPECT_TRUE(valid_subscription("$share/g/+"));
    EXPECT_TRUE(valid_subscription("$share/g//"));  // the inner filter "/" is valid
}

TEST(TopicFilter, RejectsMalformedSharedSubscriptions) {
    EXPECT_FALSE(valid_subscription("$share//a"));    // empty share name
    EXPECT_FALSE(valid_subscription("$share/g+/a"));  // wildcard in the share name
    EXPECT_FALSE(valid_subscription("$share/#/a"));
    EXPECT_FALSE(valid_subscription("$share/g"));     // no filter
    EXPECT_FALSE(valid_subscription("$share/g/"));    // empty filter
    EXPECT_FALSE(valid_subscription("$share/g/a#"));  // invalid inner filter
    EXPECT_TRUE(valid_subscription("$shared/g/a"));   // not the $share prefix: an ordinary filter
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

class TopicMatches : public testing::TestWithParam<match_case> {};

TEST_P(TopicMatches, FollowsTheSpecification) {
    const auto& c = GetParam();
    EXPECT_EQ(subscription_matches(c.filter, c.topic), c.matches)
        << "filter '" << c.filter << "' topic '" << c.topic << "'";
    if (!is_shared(c.filter)) {
        EXPECT_EQ(matches(c.filter, c.topic), c.matches) << "filter '" << c.filter << "' topic '" << c.topic << "'";
    }
}

INSTANTIATE_TEST_SUITE_P(SpecTable, TopicMatches, testing::ValuesIn(match_cases));

// AWS IoT Core's '#' needs a level of its own; otherwise it matches as the specification says.
TEST(TopicMatches, AsAwsIotCoreHashNeedsALevel) {
    EXPECT_FALSE(matches_as_aws_iot("a/#", "a"));
    EXPECT_TRUE(matches_as_aws_iot("a/#", "a/"));
    EXPECT_TRUE(matches_as_aws_iot("a/#", "a/b/c"));
    EXPECT_TRUE(matches_as_aws_iot("#", "a"));
    EXPECT_FALSE(matches_as_aws_iot("#", "$SYS/x"));
    EXPECT_FALSE(matches_as_aws_iot("+/x", "$aws/x"));
    EXPECT_TRUE(matches_as_aws_iot("$aws/#", "$aws/x"));
    // The specification's table, less the matches where '#' stood for no level at all.
    for (const auto& c : match_cases) {
        if (is_shared(c.filter)) continue;
        const bool only_the_parent = std::string_view(c.filter).ends_with("#") && *c.topic != '\0' &&
                                     level_count(c.topic) + 1 == level_count(c.filter);
        EXPECT_EQ(matches_as_aws_iot(c.filter, c.topic), c.matches && !only_the_parent)
            << "filter '" << c.filter << "' topic '" << c.topic << "'";
    }
}

TEST(TopicMatches, ExactFiltersOnlyMatchThemselves) {
    EXPECT_TRUE(matches("cmd/x", "cmd/x"));
    EXPECT_FALSE(matches("cmd/x", "cmd/y"));
    EXPECT_FALSE(matches("cmd/x", "cmd"));
    EXPECT_FALSE(matches("cmd", "cmd/x"));
}

// --- has_wildcard -----------------------------------------------------------------------------------

TEST(TopicHasWildcard, DetectsPlusAndHash) {
    EXPECT_TRUE(has_wildcard("#"));
    EXPECT_TRUE(has_wildcard("a/+/b"));
    EXPECT_TRUE(has_wildcard("a/#"));
    EXPECT_TRUE(has_wildcard("$share/g/+"));
    EXPECT_FALSE(has_wildcard("a/b"));
    EXPECT_FALSE(has_wildcard("$share/g/a"));
    EXPECT_FALSE(has_wildcard(""));
}

// --- hostile input ---------------------------------------------------------------------------------

TEST(TopicHostile, EmbeddedNulIsRefusedWhereverItIs) {
    for (const auto s : {"\0"sv, "a\0"sv, "\0a"sv, "a/\0/b"sv, "a\0b/#"sv}) {
        EXPECT_EQ(name_problem(s), errc::contains_nul) << s.size();
        EXPECT_EQ(filter_problem(s), errc::contains_nul) << s.size();
        EXPECT_EQ(subscription_problem(s), errc::contains_nul) << s.size();
    }
    EXPECT_EQ(subscription_problem("$share/g\0/a"sv), errc::contains_nul);
    // A NUL cannot hide behind what a C API would read: the text before it is a valid name.
    EXPECT_TRUE(valid_name("dt/gw"));
    EXPECT_FALSE(valid_name("dt/gw\0/../secret"sv));
}

TEST(TopicHostile, TheFirstUtf8ProblemIsReported) {
    EXPECT_EQ(name_problem("a\xC0\x80"), errc::not_utf8);  // U+0000 in two bytes is an overlong form
    EXPECT_EQ(name_problem("a\xFF\0"sv), errc::not_utf8);
    EXPECT_EQ(name_problem("a\0\xFF"sv), errc::contains_nul);
    EXPECT_EQ(name_problem("\xED\xA0\x80/x"), errc::not_utf8);  // a surrogate
    EXPECT_EQ(filter_problem("a/\xE2\x82/#"), errc::not_utf8);  // cut short before a '/'
    EXPECT_EQ(name_problem("a+\xFF"), errc::not_utf8);           // UTF-8 before wildcards
}

TEST(TopicHostile, LengthLimitIsTheMqttStringLimit) {
    EXPECT_TRUE(valid_name(std::string(65535, 'a')));
    EXPECT_EQ(name_problem(std::string(65536, 'a')), errc::too_long);
    EXPECT_EQ(filter_problem(std::string(65534, 'a') + "/#"), errc::too_long);
    EXPECT_TRUE(valid_filter(std::string(65533, 'a') + "/#"));
    std::string levels;  // the most levels an MQTT string can hold
    while (levels.size() + 2 <= 65535) levels += "+/";
    levels += "#";
    ASSERT_EQ(levels.size(), 65535U);
    EXPECT_TRUE(valid_filter(levels));
    EXPECT_EQ(level_count(levels), 32768U);
    EXPECT_TRUE(matches(levels, std::string(32767, '/')));
    EXPECT_FALSE(matches(levels, std::string(32765, '/')));  // 32767 '+' need as many levels
}

TEST(TopicHostile, WildcardsMustStandAlone) {
    EXPECT_EQ(filter_problem("a/#/"), errc::hash_not_last_level);  // an empty level after '#'
    EXPECT_EQ(filter_problem("#/#"), errc::hash_not_last_level);
    EXPECT_EQ(filter_problem("a/+#"), errc::hash_not_whole_level);
    EXPECT_EQ(filter_problem("a/#+"), errc::hash_not_whole_level);
    EXPECT_EQ(filter_problem("a/b+c"), errc::plus_not_whole_level);
    EXPECT_EQ(filter_problem("+a/b"), errc::plus_not_whole_level);
    EXPECT_EQ(filter_problem("a/ +"), errc::plus_not_whole_level);
    EXPECT_EQ(name_problem("a/b+c"), errc::plus_in_name);
    EXPECT_EQ(name_problem("a#"), errc::hash_in_name);
}

TEST(TopicHostile, DollarTopicsNeedTheirFirstLevelSpelledOut) {
    for (const auto* filter : {"#", "+", "+/#", "+/+", "+/x"}) {
        EXPECT_FALSE(matches(filter, "$SYS/x")) << filter;
        EXPECT_FALSE(matches(filter, "$x")) << filter;
    }
    EXPECT_TRUE(matches("$x", "$x"));
    EXPECT_TRUE(matches("$SYS/+", "$SYS/x"));
    EXPECT_TRUE(matches("+/$x", "a/$x"));  // only the first level counts
    EXPECT_TRUE(matches("#", "a$"));
    EXPECT_FALSE(filter_covers("#", "$SYS/#"));
    EXPECT_FALSE(filter_covers("+/x", "$SYS/x"));
    EXPECT_TRUE(filter_covers("$SYS/#", "$SYS/+"));
}

// --- error codes ---------------------------------------------------------------------------------

TEST(TopicErrors, AreErrorCodesOfTheirOwnCategory) {
    const std::error_code e = errc::hash_not_last_level;
    EXPECT_EQ(&e.category(), &category());
    EXPECT_STREQ(e.category().name(), "thingmux.topic");
    EXPECT_EQ(e.message(), "has '#' not as the last level");
    EXPECT_EQ(filter_problem("#/a"), e);
    EXPECT_FALSE(name_problem("a/b"));
    for (int v = static_cast<int>(errc::empty); v <= static_cast<int>(errc::share_without_filter); ++v) {
        EXPECT_STRNE(describe(static_cast<errc>(v)), "is not valid for an unknown reason") << v;
    }
}

// --- shared subscriptions, levels ------------------------------------------------------------------

TEST(TopicShared, SplitsShareNameAndFilter) {
    const auto s = split_shared("$share/group/cmd/#");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->share_name, "group");
    EXPECT_EQ(s->filter, "cmd/#");
    EXPECT_FALSE(split_shared("$share/g"));
    EXPECT_FALSE(split_shared("$shared/g/a"));
    EXPECT_FALSE(split_shared("cmd/#"));
    EXPECT_TRUE(is_shared("$share/g/a"));
    EXPECT_FALSE(is_shared("$SYS/a"));
    // Without the MQTT 5 rules, "$share/..." is an ordinary filter.
    EXPECT_TRUE(valid_filter("$share/g"));
    EXPECT_FALSE(valid_subscription("$share/g"));
    EXPECT_EQ(subscription_problem("$share//a"), errc::empty_share_name);
    EXPECT_EQ(subscription_problem("$share/g+/a"), errc::wildcard_in_share_name);
    EXPECT_EQ(subscription_problem("$share/g/"), errc::share_without_filter);
}

TEST(TopicLevels, NextLevelWalksEveryLevelIncludingEmptyOnes) {
    const std::string_view s = "/a//b/";
    std::vector<std::string_view> levels;
    for (std::size_t pos = 0; pos != no_next_level;) {
        const auto [level, next] = next_level(s, pos);
        levels.push_back(level);
        pos = next;
    }
    EXPECT_EQ(levels, (std::vector<std::string_view>{"", "a", "", "b", ""}));
    EXPECT_EQ(next_level("a", 0), (std::pair<std::string_view, std::size_t>{"a", no_next_level}));
    EXPECT_TRUE(dollar_level("$SYS"));
    EXPECT_FALSE(dollar_level("SYS$"));
    EXPECT_TRUE(is_wildcard_level("+"));
    EXPECT_FALSE(is_wildcard_level("++"));
}

TEST(TopicLevels, CountsSlashesPlusOne) {
    EXPECT_EQ(level_count("a"), 1U);
    EXPECT_EQ(level_count("/"), 2U);
    EXPECT_EQ(level_count("a//b"), 3U);
    EXPECT_EQ(level_count("dt/gw/+/x/#"), 5U);
}

// --- coverage ---------------------------------------------------------------------------------------

TEST(TopicFilterCovers, CoverageTable) {
    struct row {
        const char* granted;
        const char* requested;
        bool covers;
    };
    for (const auto& r : std::initializer_list<row>{
             {"cmd/gw/#", "cmd/gw/+/x", true},
             {"cmd/+/x", "cmd/#", false},
             {"cmd/#", "cmd/#", true},
             {"cmd/#", "cmd", true},
             {"cmd/+", "cmd/#", false},
             {"cmd/+", "cmd/+", true},
             {"cmd/+", "cmd/a", true},
             {"cmd/a", "cmd/+", false},
             {"#", "a/#", true},
             {"#", "$aws/x", false},
             {"+/#", "$aws/#", false},
             {"#", "+/#", true},
             {"#", "#", true},
             {"+/#", "#", true},  // every topic has a first level
             {"+/+/#", "#", false},
             {"a/+/#", "a/#", false},
             {"$aws/#", "$aws/things/+/shadow/#", true},
             {"a/+/#", "a/#", false},
             {"a/+/#", "a/b", true},   // "#" includes the parent level
             {"a/+/#", "a/b/c/d", true},
             {"a/b", "a/b/#", false},
             {"a/b", "a/b", true},
             {"a/b/c", "a/b", false},
         }) {
        EXPECT_EQ(filter_covers(r.granted, r.requested), r.covers) << r.granted << " covers " << r.requested;
    }
}

// Brute force: `granted` covers `requested` iff every sample topic matched by requested is matched
// by granted. With topics up to one level deeper than the filters, built from the filters' literal
// levels plus one level no filter uses ("z") and the empty level, the sample is exhaustive.
TEST(TopicFilterCovers, CoverageAgreesWithBruteForce) {
    const std::vector<std::string> filter_levels{"a", "b", "$x", "", "+", "#"};
    const std::vector<std::string> topic_levels{"a", "b", "$x", "", "z"};
    std::vector<std::string> topics;
    std::vector<std::string> prefix{""};
    for (int depth = 1; depth <= 5; ++depth) {
        std::vector<std::string> next;
        for (const auto& p : prefix) {
            for (const auto& l : topic_levels) next.push_back(depth == 1 ? l : p + "/" + l);
        }
        topics.insert(topics.end(), next.begin(), next.end());
        prefix = std::move(next);
    }
    std::mt19937 rng(12345);
    const auto random_filter = [&] {
        std::string f;
        const auto depth = 1 + rng() % 4;
        for (unsigned i = 0; i < depth; ++i) {
            const auto& l = filter_levels[rng() % filter_levels.size()];
            f += (i == 0 ? "" : "/") + l;
            if (l == "#") break;
        }
        return f.empty() ? std::string("a") : f;
    };
    int covered = 0;
    for (int n = 0; n < 4000; ++n) {
        const auto g = random_filter();
        auto r = random_filter();
        if (n % 2 == 0) {  // derive r from g by specializing one level, so many pairs do cover
            r = g;
            if (const auto pos = r.find('+'); pos != std::string::npos) r.replace(pos, 1, "a");
            else if (const auto hash = r.find('#'); hash != std::string::npos) r.replace(hash, 1, "b/+");
        }
        ASSERT_TRUE(valid_filter(g)) << g;
        ASSERT_TRUE(valid_filter(r)) << r;
        bool brute = true;
        for (const auto& t : topics) {
            if (matches(r, t) && !matches(g, t)) {
                brute = false;
                break;
            }
        }
        ASSERT_EQ(filter_covers(g, r), brute) << "granted " << g << " requested " << r;
        covered += brute ? 1 : 0;
    }
    EXPECT_GT(covered, 400);
}
}  // namespace
}  // namespace thingmux::topic
