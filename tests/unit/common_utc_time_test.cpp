// UTC dates without time_t, which has 32 bits on Debian 12's armhf: the instants a certificate
// names (AWS IoT's expire on 2049-12-31) must print and convert the same on every architecture.
// scripts/cross-test.sh runs these under emulation for arm64 and armhf.
#include "common/utc_time.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>

namespace thingmux {
namespace {

using namespace std::chrono;

system_clock::time_point at(int y, unsigned m, unsigned d, int hh = 0, int mm = 0, int ss = 0) {
    return system_clock::time_point{sys_days{year{y} / month{m} / day{d}} + hours{hh} + minutes{mm} + seconds{ss}};
}

std::tm broken_down(int y, int mon0, int mday, int hh = 0, int mm = 0, int ss = 0) {
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mon0;
    tm.tm_mday = mday;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    return tm;
}

TEST(UtcTime, TextToTheMinuteAndToTheSecond) {
    EXPECT_EQ(utc_text(system_clock::time_point{}), "1970-01-01 00:00 UTC");
    EXPECT_EQ(utc_text(at(2027, 3, 4, 5, 6, 7)), "2027-03-04 05:06 UTC");
    EXPECT_EQ(utc_text(at(2027, 3, 4, 5, 6, 7), utc_format::seconds), "2027-03-04 05:06:07 UTC");
    EXPECT_EQ(utc_text(at(2027, 3, 4, 5, 6, 7) + milliseconds{999}, utc_format::seconds), "2027-03-04 05:06:07 UTC")
        << "rounded down, never up into the next second";
}

TEST(UtcTime, TextInTheMachineFormats) {
    EXPECT_EQ(utc_text(at(2049, 12, 31, 23, 59, 59), utc_format::iso8601), "2049-12-31T23:59:59Z");
    EXPECT_EQ(utc_text(at(2049, 12, 31, 23, 59, 59), utc_format::compact), "20491231T235959Z");
    EXPECT_EQ(utc_text(at(2015, 8, 30, 12, 36), utc_format::compact), "20150830T123600Z")
        << "AWS Signature Version 4's example date";
}

TEST(UtcTime, TextPastTheEndOfA32BitTimeT) {
    // 2038-01-19 03:14:07 is the last second a signed 32-bit time_t holds.
    EXPECT_EQ(utc_text(at(2038, 1, 19, 3, 14, 8), utc_format::seconds), "2038-01-19 03:14:08 UTC");
    EXPECT_EQ(utc_text(at(2049, 12, 31, 23, 59, 59), utc_format::seconds), "2049-12-31 23:59:59 UTC");
    EXPECT_EQ(utc_text(at(2106, 2, 7, 6, 28, 16), utc_format::seconds), "2106-02-07 06:28:16 UTC")
        << "past an unsigned 32-bit count too";
}

TEST(UtcTime, TextBefore1970) {
    EXPECT_EQ(utc_text(system_clock::time_point{} - seconds{1}, utc_format::seconds), "1969-12-31 23:59:59 UTC");
    EXPECT_EQ(utc_text(at(1950, 6, 15, 12, 0)), "1950-06-15 12:00 UTC");
}

TEST(UtcTime, InstantOfABrokenDownTime) {
    EXPECT_EQ(utc_time_point(broken_down(1970, 0, 1)), system_clock::time_point{});
    EXPECT_EQ(utc_time_point(broken_down(2049, 11, 31, 23, 59, 59)), at(2049, 12, 31, 23, 59, 59));
    EXPECT_EQ(utc_time_point(broken_down(2038, 0, 19, 3, 14, 8)), at(2038, 1, 19, 3, 14, 8));
    EXPECT_EQ(utc_time_point(broken_down(2024, 1, 29)), at(2024, 2, 29)) << "a leap day";
    EXPECT_EQ(utc_time_point(broken_down(2016, 11, 31, 23, 59, 60)), at(2017, 1, 1)) << "a leap second";
}

TEST(UtcTime, BrokenDownTimesOutOfRangeAreRefused) {
    EXPECT_FALSE(utc_time_point(broken_down(2027, 12, 1))) << "month 13";
    EXPECT_FALSE(utc_time_point(broken_down(2027, -1, 1))) << "month 0";
    EXPECT_FALSE(utc_time_point(broken_down(2027, 0, 0))) << "day 0";
    EXPECT_FALSE(utc_time_point(broken_down(2027, 0, 32))) << "January 32";
    EXPECT_FALSE(utc_time_point(broken_down(2027, 1, 29))) << "February 29 in a common year";
    EXPECT_FALSE(utc_time_point(broken_down(2027, 0, 1, 24))) << "hour 24";
    EXPECT_FALSE(utc_time_point(broken_down(2027, 0, 1, 0, 60))) << "minute 60";
    EXPECT_FALSE(utc_time_point(broken_down(2027, 0, 1, 0, 0, 61))) << "second 61";
    EXPECT_FALSE(utc_time_point(broken_down(2027, 0, 1, -1))) << "a negative hour";
}

}  // namespace
}  // namespace thingmux
