#pragma once
// Calendar dates in UTC without time_t: Debian 12's armhf (and other 32-bit ABIs) has a 32-bit
// time_t, which ends in January 2038, while AWS IoT's device certificates expire on 2049-12-31.
// These work on std::chrono::system_clock's 64-bit count on every architecture.

#include <chrono>
#include <ctime>
#include <optional>
#include <string>

namespace thingmux {

enum class utc_precision { minutes, seconds };

// "2049-12-31 23:59 UTC" (minutes) or "2049-12-31 23:59:59 UTC" (seconds).
[[nodiscard]] std::string utc_text(std::chrono::system_clock::time_point t,
                                   utc_precision precision = utc_precision::minutes);

// The instant a broken-down UTC time names (as ASN1_TIME_to_tm fills it: tm_year from 1900,
// tm_mon from 0), or nothing when a field is out of range (month 13, day 32, hour 24, ...).
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> utc_time_point(const std::tm& tm);

}  // namespace thingmux
