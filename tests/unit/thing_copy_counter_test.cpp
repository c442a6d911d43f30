#include "daemon/thing/copy_counter.hpp"

#include <gtest/gtest.h>

namespace {

using thingmux::thing::copy_counter;
using thingmux::thing::fingerprint;
using thingmux::mqtt::publish;
using thingmux::mqtt::qos;

publish message(std::string topic, std::string payload, std::uint16_t packet_id = 1) {
    return publish{.topic = std::move(topic),
                   .payload = std::move(payload),
                   .qos = qos::at_least_once,
                   .retain = false,
                   .dup = false,
                   .packet_id = packet_id,
                   .props = {}};
}

TEST(CopyCounter, TheCopiesRightBehindTheOriginalAreDroppedAndNoMore) {
    copy_counter c;
    // Three upstream filters match: the broker sends it three times, each with its own packet id.
    EXPECT_FALSE(c.is_copy(message("a/b/c", "x", 1), 3));
    EXPECT_TRUE(c.is_copy(message("a/b/c", "x", 2), 3));
    EXPECT_TRUE(c.is_copy(message("a/b/c", "x", 3), 3));
    // The same content once more is a new message (published again).
    EXPECT_FALSE(c.is_copy(message("a/b/c", "x", 4), 3));
}

TEST(CopyCounter, AnotherMessageInBetweenMeansTheCopiesAreNotComing) {
    copy_counter c;
    EXPECT_FALSE(c.is_copy(message("a/b/c", "x"), 2));
    EXPECT_FALSE(c.is_copy(message("a/b/d", "y"), 1));
    // Not right behind its original: delivered (a duplicate at worst, never a loss).
    EXPECT_FALSE(c.is_copy(message("a/b/c", "x"), 2));
    EXPECT_TRUE(c.is_copy(message("a/b/c", "x"), 2));
}

TEST(CopyCounter, OneMatchingFilterMeansEveryMessageIsNew) {
    copy_counter c;
    for (int i = 0; i < 3; ++i) EXPECT_FALSE(c.is_copy(message("a/b", "same"), 1));
    for (int i = 0; i < 3; ++i) EXPECT_FALSE(c.is_copy(message("a/b", "same"), 0));
}

TEST(CopyCounter, ARetainedMessageIsNeverACopy) {
    copy_counter c;
    auto m = message("cfg/gw", "v1");
    m.retain = true;  // sent for one new subscription only
    EXPECT_FALSE(c.is_copy(m, 2));
    EXPECT_FALSE(c.is_copy(m, 2));
    m.retain = false;
    EXPECT_FALSE(c.is_copy(m, 2));
    EXPECT_TRUE(c.is_copy(m, 2));
}

TEST(CopyCounter, ResetForgetsTheCopiesStillDue) {
    copy_counter c;
    EXPECT_FALSE(c.is_copy(message("a/b/c", "x"), 2));
    c.reset();
    EXPECT_FALSE(c.is_copy(message("a/b/c", "x"), 2));
}

TEST(CopyCounter, MessagesThatDifferInWhatAClientSeesAreNotCopies) {
    const auto base = message("a/b", "payload");
    auto variant = [&](auto change) {
        auto m = base;
        change(m);
        return fingerprint(m);
    };
    EXPECT_EQ(fingerprint(base), variant([](publish& m) { m.packet_id = 99; }));
    EXPECT_EQ(fingerprint(base), variant([](publish& m) { m.dup = true; }));
    EXPECT_NE(fingerprint(base), variant([](publish& m) { m.topic = "a/c"; }));
    EXPECT_NE(fingerprint(base), variant([](publish& m) { m.payload = "payloae"; }));
    EXPECT_NE(fingerprint(base), variant([](publish& m) { m.qos = qos::at_most_once; }));
    EXPECT_NE(fingerprint(base), variant([](publish& m) { m.props.content_type = "text/plain"; }));
    EXPECT_NE(fingerprint(base), variant([](publish& m) { m.props.correlation_data = "1"; }));
    EXPECT_NE(fingerprint(base), variant([](publish& m) { m.props.user_properties.push_back({"k", "v"}); }));
    // Field boundaries count: the topic's end is not the payload's start.
    EXPECT_NE(fingerprint(message("ab", "c")), fingerprint(message("a", "bc")));

    copy_counter c;
    EXPECT_FALSE(c.is_copy(base, 2));
    auto other = base;
    other.props.correlation_data = "2";
    EXPECT_FALSE(c.is_copy(other, 2)) << "a request with another correlation id is a new message";
}

}  // namespace
