// Reconnect pacing: full-jitter exponential backoff and the one-CONNECT-per-second rule.
#include "daemon/mqtt/backoff.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace thingmux::mqtt {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

const backoff::time_point t0 = backoff::time_point{} + 1000h;

// The delay drawn by next_attempt() when the interval rule does not bind.
ms draw(backoff& b, backoff::time_point now) {
    return std::chrono::duration_cast<ms>(b.next_attempt(now) - now);
}

backoff::config no_interval() {
    backoff::config c;
    c.min_connect_interval = 0ms;
    return c;
}

TEST(MqttBackoff, FullJitterStaysWithinBoundAndGrowsToCap) {
    backoff b{no_interval(), 42};
    for (unsigned attempt = 0; attempt < 20; ++attempt) {
        const ms bound = std::min<ms>(120'000ms, 1000ms * (std::int64_t{1} << attempt));
        EXPECT_EQ(b.attempts(), attempt);
        const ms d = draw(b, t0);
        EXPECT_GE(d, 0ms);
        EXPECT_LE(d, bound) << "attempt " << attempt;
    }
    EXPECT_EQ(b.attempts(), 20U);
}

TEST(MqttBackoff, ManyDrawsRespectEachBound) {
    for (unsigned attempt = 0; attempt < 10; ++attempt) {
        const ms bound = std::min<ms>(120'000ms, 1000ms * (std::int64_t{1} << attempt));
        for (std::uint64_t seed = 0; seed < 1000; ++seed) {
            backoff b{no_interval(), seed};
            for (unsigned i = 0; i < attempt; ++i) static_cast<void>(b.next_attempt(t0));
            const ms d = draw(b, t0);
            ASSERT_GE(d, 0ms);
            ASSERT_LE(d, bound);
        }
    }
}

TEST(MqttBackoff, LargeAttemptCountsDoNotOverflow) {
    auto cfg = no_interval();
    cfg.base = 1ms;
    cfg.cap = ms{std::int64_t{1} << 40};
    backoff b{cfg, 7};
    for (int i = 0; i < 200; ++i) {
        const ms d = draw(b, t0);
        ASSERT_GE(d, 0ms);
        ASSERT_LE(d, cfg.cap);
    }
    EXPECT_EQ(b.attempts(), 200U);
}

TEST(MqttBackoff, MeanIsAboutHalfTheBound) {
    auto cfg = no_interval();
    cfg.base = 10'000ms;
    backoff b{cfg, 0x5eed};
    double sum = 0;
    ms lo = ms::max();
    ms hi = ms::min();
    constexpr int draws = 10'000;
    for (int i = 0; i < draws; ++i) {
        b.reset();
        const ms d = draw(b, t0);
        sum += static_cast<double>(d.count());
        lo = std::min(lo, d);
        hi = std::max(hi, d);
    }
    const double mean = sum / draws;
    EXPECT_GT(mean, 4'700.0);
    EXPECT_LT(mean, 5'300.0);
    EXPECT_LT(lo, 100ms);
    EXPECT_GT(hi, 9'900ms);
}

TEST(MqttBackoff, NeverTwoAttemptsWithinMinConnectInterval) {
    auto cfg = backoff::config{};
    cfg.base = 10ms;  // jitter alone would often allow an immediate retry
    backoff b{cfg, 1};
    auto now = t0;
    for (int i = 0; i < 1000; ++i) {
        b.on_attempt(now);
        const auto attempt_at = now;
        now += 5ms;  // connection refused at once
        const auto next = b.next_attempt(now);
        ASSERT_GE(next - attempt_at, 1000ms);
        b.reset();  // keep the jitter small
        now = next;
    }
}

TEST(MqttBackoff, StableConnectionResetsAttempts) {
    backoff b{backoff::config{}, 3};
    auto now = t0;
    for (int i = 0; i < 5; ++i) {
        b.on_attempt(now);
        now = b.next_attempt(now + 1s);
    }
    EXPECT_EQ(b.attempts(), 5U);
    b.on_attempt(now);
    b.on_connected(now + 1s);
    now += 11s;  // up 10 s: stable
    static_cast<void>(b.next_attempt(now));
    EXPECT_EQ(b.attempts(), 1U);  // reset, then this attempt counted
}

TEST(MqttBackoff, FlappingConnectionKeepsBackingOff) {
    // Another process takes the client id over a few seconds after each CONNACK.
    backoff b{backoff::config{}, 4};
    auto now = t0;
    for (unsigned i = 0; i < 8; ++i) {
        b.on_attempt(now);
        b.on_connected(now + 200ms);
        now += 3s;
        now = b.next_attempt(now);
        EXPECT_EQ(b.attempts(), i + 1);
    }
}

TEST(MqttBackoff, ConnectedAtIsForgottenByTheNextAttempt) {
    backoff b{backoff::config{}, 5};
    b.on_attempt(t0);
    b.on_connected(t0);
    static_cast<void>(b.next_attempt(t0 + 1s));  // short: counts
    b.on_attempt(t0 + 2s);                       // fails before CONNACK, long after t0
    static_cast<void>(b.next_attempt(t0 + 60s));
    EXPECT_EQ(b.attempts(), 2U);
}

TEST(MqttBackoff, SameSeedSameSequenceDifferentSeedsDiffer) {
    auto sequence = [](std::uint64_t seed) {
        backoff b{no_interval(), seed};
        std::vector<ms> out;
        for (int i = 0; i < 16; ++i) out.push_back(draw(b, t0));
        return out;
    };
    EXPECT_EQ(sequence(99), sequence(99));
    EXPECT_NE(sequence(99), sequence(100));
    EXPECT_NE(sequence(0), sequence(1));
}

}  // namespace
}  // namespace thingmux::mqtt
