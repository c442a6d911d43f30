// The OpenSSL side of certificate_time.hpp: a certificate's dates as read from it, and the
// uplink's condition for OpenSSL's verification result of the broker's certificate. Our own
// certificate's dates are checked as make_tls_context() loads it (errc::client_certificate_*:
// transient, as the system clock may be what is wrong).
#pragma once

#include "daemon/uplink/certificate_time.hpp"

#include <openssl/x509.h>

#include <optional>
#include <system_error>

namespace thingmux::uplink {

// A certificate's validity period; none when its dates cannot be read.
struct certificate_dates {
    wall_time not_before;
    wall_time not_after;
};
[[nodiscard]] std::optional<certificate_dates> dates_of(const X509* cert);

// The uplink condition for a failed verification of the broker's certificate (X509_V_ERR_*):
// errc::server_certificate_not_yet_valid / _expired for dates (the clock's), a name mismatch,
// else untrusted.
[[nodiscard]] std::error_code server_verify_error(long verify_result) noexcept;

}  // namespace thingmux::uplink
