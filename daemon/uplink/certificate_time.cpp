#include "daemon/uplink/certificate_time.hpp"

#include "common/utc_time.hpp"

namespace thingmux::uplink {

validity validity_at(wall_time not_before, wall_time not_after, wall_time now) noexcept {
    if (now < not_before) return validity::not_yet_valid;
    if (now > not_after) return validity::expired;
    return validity::valid;
}

std::string clock_problem(const std::string& what, validity v, wall_time not_before, wall_time not_after,
                          wall_time now) {
    const std::string clock = "the system clock says " + utc_text(now);
    // Said first because a wrong clock is by far the likelier cause on a device that just booted.
    const std::string check = "is the clock set? (time sync: NTP, systemd-timesyncd, chrony; `timedatectl` shows it)";
    switch (v) {
    case validity::not_yet_valid:
        return what + " is not valid until " + utc_text(not_before) + " but " + clock + ": " + check +
               "; retrying until it is";
    case validity::expired:
        return what + " expired on " + utc_text(not_after) + " but " + clock + ": " + check +
               "; retrying until it is (if the clock is right, the certificate must be renewed)";
    case validity::valid: break;
    }
    return what + " is valid by " + clock;
}

}  // namespace thingmux::uplink
