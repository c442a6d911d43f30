#include "daemon/aws/mqtt_url.hpp"

#include "common/aws_region.hpp"
#include "daemon/aws/sigv4.hpp"
#include "daemon/uplink/error.hpp"

namespace thingmux::aws {

presigned_target presign_mqtt_target(std::string_view host, std::string_view region, const credentials& c,
                                     std::chrono::system_clock::time_point now, std::chrono::seconds lifetime) {
    const std::string scoped = region.empty() ? region_from_endpoint(host) : std::string(region);
    if (host.empty() || !valid_region(scoped)) return {{}, uplink::errc::aws_region_unknown};
    if (!problem(c).empty()) return {{}, uplink::errc::aws_credentials_malformed};
    if (c.expiration && *c.expiration <= now) return {{}, uplink::errc::aws_credentials_expired};
    sigv4::request r;
    r.method = "GET";
    r.path = "/mqtt";
    r.headers.emplace_back("host", std::string(host));
    return {sigv4::presign(r, c, scoped, iot_service, now, lifetime, sigv4::token_placement::after_signature), {}};
}

}  // namespace thingmux::aws
