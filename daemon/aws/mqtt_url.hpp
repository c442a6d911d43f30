// The presigned request target of AWS IoT Core's MQTT-over-WebSocket endpoint
// (GET wss://ENDPOINT/mqtt?X-Amz-Algorithm=...&X-Amz-Signature=...[&X-Amz-Security-Token=...]),
// made anew for each connection attempt from the credentials of that moment. Pure, like the
// SigV4 core it builds on (sigv4.hpp).
#pragma once

#include "common/aws_credentials.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <system_error>

namespace thingmux::aws {

// The SigV4 service name of AWS IoT Core's device gateway.
inline constexpr std::string_view iot_service = "iotdevicegateway";

// How long a presigned URL is valid (X-Amz-Expires). It is used at once, for the WebSocket
// handshake of the attempt it was made for; a short life keeps a leaked URL from being replayed.
// The connection it opens is not bound by it (AWS IoT Core closes WebSocket connections after
// 24 hours whatever the URL said).
inline constexpr std::chrono::seconds default_url_lifetime{300};

struct presigned_target {
    std::string target;     // "/mqtt?X-Amz-Algorithm=...": the request target of the upgrade request
    std::error_code error;  // uplink::errc: aws_region_unknown, aws_credentials_malformed, aws_credentials_expired
};

// Presigns GET /mqtt for `host` (the endpoint, also the signed host header) with `c` at `now`.
// `region` empty: read from the endpoint name (common/aws_region.hpp). The session token, when
// there is one, is appended after the signature, as AWS IoT Core requires.
[[nodiscard]] presigned_target presign_mqtt_target(std::string_view host, std::string_view region, const credentials& c,
                                                   std::chrono::system_clock::time_point now,
                                                   std::chrono::seconds lifetime = default_url_lifetime);

}  // namespace thingmux::aws
