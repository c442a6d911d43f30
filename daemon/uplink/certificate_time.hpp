// A certificate's validity period against the system clock, and the message that says so.
//
// A gateway without a real-time clock boots with a wrong time (1970, or the date its image was
// built) until time sync corrects it. Every certificate then looks "not yet valid" (or expired),
// which is not a configuration error: the words name the clock, and the uplink retries until
// the clock is right. Pure: no OpenSSL (tls.cpp reads the dates), no logging.
#pragma once

#include <chrono>
#include <string>

namespace thingmux::uplink {

using wall_time = std::chrono::system_clock::time_point;

enum class validity { valid, not_yet_valid, expired };

// Where `now` lies against [not_before, not_after] (both ends inclusive, as in RFC 5280).
[[nodiscard]] validity validity_at(wall_time not_before, wall_time not_after, wall_time now) noexcept;

// Dates to the minute (common/utc_time.hpp), enough against a clock that is off by days:
// "<what> is not valid until 2027-01-01 00:00 UTC but the system clock says 2025-03-01 12:00
// UTC: is the clock set? (…)", or "… expired on …" with what to do when the clock is right.
// `what` names the certificate: "server certificate for HOST", "client certificate FILE".
[[nodiscard]] std::string clock_problem(const std::string& what, validity v, wall_time not_before,
                                        wall_time not_after, wall_time now);

}  // namespace thingmux::uplink
