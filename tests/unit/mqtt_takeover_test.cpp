// Takeover detection: which early ends of a session make "another connection uses our client
// ID", and which have a cause of their own. Time is a parameter.
#include "daemon/mqtt/takeover.hpp"

#include <gtest/gtest.h>

namespace thingmux::mqtt {
namespace {

using namespace std::chrono_literals;
using kind = takeover_detector::end_kind;

class MqttTakeover : public ::testing::Test {
protected:
    takeover_detector d{{.threshold = 3, .stable_after = 10s}};
    takeover_detector::time_point now = takeover_detector::time_point{} + 1000h;

    // One attempt that gets a session, which ends after `lived` as `k`; returns the verdict.
    bool session(std::chrono::milliseconds lived, kind k, unsigned attempts = 1) {
        for (unsigned i = 0; i < attempts; ++i) d.on_attempt();
        d.on_connected(now);
        now += lived;
        const bool verdict = d.on_end(now, k);
        now += 1s;  // backoff
        return verdict;
    }
};

TEST_F(MqttTakeover, BrokerSayingTakenOverIsATakeoverAtOnce) { EXPECT_TRUE(session(30s, kind::taken_over)); }

TEST_F(MqttTakeover, ThreeShortUnexplainedClosesInARowAreATakeover) {
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_TRUE(session(2s, kind::closed));
    EXPECT_EQ(d.row(), 3U);
}

TEST_F(MqttTakeover, EndsWithACauseOfTheirOwnAreNoTakeoverAndBreakTheRow) {
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_FALSE(session(2s, kind::explained)) << "e.g. a protocol error of ours, or a refused publish";
    EXPECT_EQ(d.row(), 0U);
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_FALSE(session(2s, kind::closed));
    for (int i = 0; i < 10; ++i) EXPECT_FALSE(session(1s, kind::explained));
}

TEST_F(MqttTakeover, ALongSessionBreaksTheRow) {
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_FALSE(session(11s, kind::closed));
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_EQ(d.row(), 1U);
}

TEST_F(MqttTakeover, AReconnectThatNeededSeveralAttemptsMeansTheBrokerWasAway) {
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_FALSE(session(2s, kind::closed));
    // A restarting broker refuses the first reconnect: that session starts a new row.
    EXPECT_FALSE(session(2s, kind::closed, 2));
    EXPECT_EQ(d.row(), 1U);
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_TRUE(session(2s, kind::closed));
}

TEST_F(MqttTakeover, AttemptsWithoutASessionAreNotEnds) {
    d.on_attempt();
    EXPECT_FALSE(d.on_end(now, kind::closed));
    EXPECT_EQ(d.row(), 0U);
}

TEST_F(MqttTakeover, ResetForgetsTheRow) {
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_FALSE(session(2s, kind::closed));
    d.reset();
    EXPECT_FALSE(session(2s, kind::closed));
    EXPECT_EQ(d.row(), 1U);
}

}  // namespace
}  // namespace thingmux::mqtt
