#pragma once
// Calendar dates in UTC without time_t: Debian 12's armhf (and other 32-bit ABIs) has a 32-bit
// time_t, which ends in January 2038, while AWS IoT's device certificates expire on 2049-12-31.
// These work on std::chrono::system_clock's 64-bit count on every architecture.

#include <chrono>
#include <ctime>
#include <optional>
#include <string>

namespace thingmux {

enum class utc_format {
    minutes,  // "2049-12-31 23:59 UTC": messages about certificate dates
    seconds,  // "2049-12-31 23:59:59 UTC"
    iso8601,  // "2049-12-31T23:59:59Z"
    compact,  // "20491231T235959Z": AWS Signature Version 4's X-Amz-Date, file name suffixes
};

// The instant as text, rounded down to the format's precision.
[[nodiscard]] std::string utc_text(std::chrono::system_clock::time_point t, utc_format format = utc_format::minutes);

// The instant a broken-down UTC time names (as ASN1_TIME_to_tm fills it: tm_year from 1900,
// tm_mon from 0), or nothing when a field is out of range (month 13, day 32, hour 24, ...).
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> utc_time_point(const std::tm& tm);

}  // namespace thingmux
