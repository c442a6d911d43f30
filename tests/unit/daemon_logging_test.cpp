// The daemon's logging helpers: the rate limiter every repeating line goes through, and the
// escaping of outside text in log lines.
#include "daemon/logging.hpp"

#include <gtest/gtest.h>

#include <spdlog/fmt/fmt.h>

namespace thingmux::logging {
namespace {

using namespace std::chrono_literals;

TEST(RateLimiter, BurstThenSuppressedThenCountedOnTheNextLine) {
    rate_limiter limit(3, 10s);
    const rate_limiter::clock::time_point t0{std::chrono::hours(1)};
    for (int i = 0; i < 3; ++i) EXPECT_EQ(limit.admit(t0 + std::chrono::seconds(i)), std::string{});
    for (int i = 0; i < 1000; ++i) EXPECT_FALSE(limit.admit(t0 + 5s));
    EXPECT_EQ(limit.suppressed(), 1000U);
    EXPECT_FALSE(limit.admit(t0 + 9s)) << "the window started at the first line";
    EXPECT_EQ(limit.admit(t0 + 10s), " (\u2026 1001 more suppressed)");
    EXPECT_EQ(limit.suppressed(), 0U);
    EXPECT_EQ(limit.admit(t0 + 11s), std::string{});
}

TEST(RateLimiter, OneLinePerIntervalKeepsCountingAcrossWindows) {
    rate_limiter limit(1, 1s);
    const rate_limiter::clock::time_point t0{std::chrono::hours(1)};
    EXPECT_EQ(limit.admit(t0), std::string{});
    EXPECT_FALSE(limit.admit(t0 + 500ms));
    EXPECT_EQ(limit.admit(t0 + 1500ms), " (\u2026 1 more suppressed)");
    EXPECT_FALSE(limit.admit(t0 + 1600ms));
    EXPECT_FALSE(limit.admit(t0 + 2000ms));
    EXPECT_EQ(limit.admit(t0 + 2500ms), " (\u2026 2 more suppressed)");
}

TEST(Escaped, FormatsOutsideTextEscapedAndCut) {
    EXPECT_EQ(fmt::format("app '{}'", escaped("a\nb\x1b[0m")), "app 'a\\nb\\x1b[0m'");
    EXPECT_EQ(fmt::format("{}", escaped("abcdef", 3)), "abc... (3 more bytes)");
}

}  // namespace
}  // namespace thingmux::logging
