// libthingmux's topic rules (MQTT 5 §4.7), used to dispatch `message` frames to handlers
// (IPC-31: one frame per message, the library finds the handlers).
#include <thingmux/error.hpp>
#include <thingmux/topic.hpp>

#include <gtest/gtest.h>

#include <string>

namespace {

using thingmux::topic_matches;
using thingmux::valid_topic_filter;
using thingmux::valid_topic_name;

struct match_case {
    const char* filter;
    const char* topic;
    bool matches;
};

class TopicMatch : public ::testing::TestWithParam<match_case> {};

TEST_P(TopicMatch, FollowsMqttRules) {
    const auto& c = GetParam();
    EXPECT_EQ(topic_matches(c.filter, c.topic), c.matches) << "filter \"" << c.filter << "\" topic \"" << c.topic << '"';
}

INSTANTIATE_TEST_SUITE_P(
    Cases, TopicMatch,
    ::testing::Values(
        // exact
        match_case{"a/b", "a/b", true}, match_case{"a/b", "a/c", false}, match_case{"a/b", "a/b/c", false},
        match_case{"a/b/c", "a/b", false}, match_case{"a", "a/", false}, match_case{"a/", "a/", true},
        match_case{"/a", "/a", true}, match_case{"/a", "a", false}, match_case{"A", "a", false},
        // '+': exactly one level, which may be empty
        match_case{"a/+", "a/b", true}, match_case{"a/+", "a/b/c", false}, match_case{"a/+", "a", false},
        match_case{"a/+", "a/", true}, match_case{"+/+", "/finance", true}, match_case{"/+", "/finance", true},
        match_case{"+", "/finance", false}, match_case{"+", "a", true}, match_case{"a/+/c", "a/b/c", true},
        match_case{"a/+/c", "a/b/d", false}, match_case{"+/b/+", "x/b/y", true},
        // '#': the parent level and everything below
        match_case{"#", "a", true}, match_case{"#", "a/b/c", true}, match_case{"#", "/", true},
        match_case{"a/#", "a", true}, match_case{"a/#", "a/b", true}, match_case{"a/#", "a/b/c", true},
        match_case{"a/#", "ab", false}, match_case{"a/#", "b/a", false}, match_case{"a/+/#", "a/b", true},
        match_case{"a/+/#", "a", false},
        // $-topics: no wildcard at the first level matches them
        match_case{"#", "$SYS/x", false}, match_case{"+/x", "$SYS/x", false}, match_case{"$SYS/#", "$SYS/x", true},
        match_case{"$SYS/+", "$SYS/x", true}, match_case{"$aws/things/+/shadow/#", "$aws/things/gw/shadow/update", true},
        match_case{"a/#", "a/$b", true},
        // invalid arguments never match
        match_case{"a/b#", "a/b#", false}, match_case{"a/#/b", "a/x/b", false}, match_case{"a+", "a+", false},
        match_case{"", "a", false}, match_case{"a", "", false}, match_case{"+", "+", false},
        match_case{"#", "#", false}));

TEST(TopicRules, ValidNames) {
    EXPECT_TRUE(valid_topic_name("dt/gw/temperature"));
    EXPECT_TRUE(valid_topic_name("/"));
    EXPECT_TRUE(valid_topic_name("$aws/things/gw/shadow/update"));
    EXPECT_TRUE(valid_topic_name("caf\xc3\xa9"));
    EXPECT_FALSE(valid_topic_name(""));
    EXPECT_FALSE(valid_topic_name("a/+"));
    EXPECT_FALSE(valid_topic_name("a/#"));
    EXPECT_FALSE(valid_topic_name(std::string("a\0b", 3)));
    EXPECT_FALSE(valid_topic_name("\xff"));
    EXPECT_FALSE(valid_topic_name(std::string(65536, 'a')));
    EXPECT_TRUE(valid_topic_name(std::string(65535, 'a')));
}

TEST(TopicRules, ValidFilters) {
    for (const char* ok : {"#", "+", "a/#", "+/+", "a/+/b", "/", "a//b", "+/#", "$SYS/#"}) {
        EXPECT_TRUE(valid_topic_filter(ok)) << ok;
    }
    for (const char* bad : {"", "a#", "a/#/b", "#/a", "a+", "+a/b", "a/b+", "##", "++"}) {
        EXPECT_FALSE(valid_topic_filter(bad)) << bad;
    }
    EXPECT_FALSE(valid_topic_filter(std::string("a\0", 2)));
    EXPECT_FALSE(valid_topic_filter("\xc0\x80"));  // overlong U+0000
}

// error_code mirrors ipc::errc numerically (IPC-12) and has library-only codes from 1000.
TEST(ErrorCodes, NamesAndNumbering) {
    using thingmux::error_code;
    EXPECT_STREQ(to_string(error_code::ok), "ok");
    EXPECT_STREQ(to_string(error_code::not_connected), "not_connected");
    EXPECT_STREQ(to_string(error_code::spooled), "spooled");
    EXPECT_STREQ(to_string(error_code::daemon_unavailable), "daemon_unavailable");
    EXPECT_STREQ(to_string(error_code::backlog_full), "backlog_full");
    EXPECT_STREQ(to_string(static_cast<error_code>(999)), "unknown");
    EXPECT_STREQ(to_string(static_cast<error_code>(1999)), "unknown");
    EXPECT_EQ(static_cast<int>(error_code::session_closed), 12);
    EXPECT_EQ(static_cast<int>(error_code::spooled), 20);
    EXPECT_GE(static_cast<int>(error_code::daemon_unavailable), 1000);
    EXPECT_STRNE(describe(error_code::rate_limited), "");
    EXPECT_TRUE((thingmux::result{error_code::spooled, 0, {}}.ok()));
    EXPECT_FALSE((thingmux::result{error_code::broker_refused, 0x87, {}}.ok()));
}

}  // namespace
