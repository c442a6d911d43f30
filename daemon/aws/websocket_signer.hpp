// The upgrade request of a Thing with auth: sigv4 and transport: websocket, made anew for every
// connection attempt (uplink_config::websocket_request): the Thing's aws_credentials sources
// tried in order (files, environment and profiles read at each call; an
// iot_credentials_provider entry asked through its cached, self-renewing provider), then GET
// /mqtt presigned with the first credentials found (aws::presign_mqtt_target). The result says
// when those credentials expire, so that the uplink signs anew before.
#pragma once

#include "config/config.hpp"
#include "daemon/uplink/proxy_route.hpp"
#include "daemon/uplink/tls.hpp"
#include "daemon/uplink/websocket_request.hpp"

#include <chrono>
#include <optional>

namespace thingmux::aws {

// What the credentials provider of an iot_credentials_provider entry needs of its Thing.
struct thing_identity {
    uplink::tls_settings tls;                  // the Thing's ca, cert and key
    std::optional<uplink::proxy_route> proxy;  // the Thing's HTTP proxy
    std::chrono::milliseconds timeout{10'000};  // connect_timeout, for one whole exchange
};

// The request source of Thing `t` (auth: sigv4). A provider is made on the first attempt that
// reaches its entry and stopped when the source is destroyed (a reload that changes the
// Thing's settings, the Thing's removal, shutdown).
[[nodiscard]] uplink::websocket_request_source sigv4_request_source(const config::thing& t, thing_identity identity);

}  // namespace thingmux::aws
