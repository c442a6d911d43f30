// What the WebSocket upgrade request of one connection attempt carries besides Host and the
// WebSocket headers themselves: the request target and extra headers. Plain MQTT over wss with a
// client certificate needs only the defaults; AWS IoT Core's own ways in put their proof here,
// made fresh for every attempt (a SigV4 presigned target "/mqtt?X-Amz-Algorithm=...", a custom
// authorizer's headers or query parameters).
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace thingmux::uplink {

struct websocket_request {
    std::string target = "/mqtt";                              // path and query, sent as is (already percent-encoded)
    std::vector<std::pair<std::string, std::string>> headers;  // added to the upgrade request
    // What a 401 or 403 answer to the upgrade most likely means with this way of signing in, for
    // the message ("the signature was refused or the AWS credentials expired (aws_credentials)");
    // empty: a general word about the server's refusal.
    std::string refusal_advice;
};

// A request for one attempt, or why none can be made (credentials unreadable or expired) with a
// message naming the setting; `error` as in transport_result (is_fatal() decides on retrying).
struct websocket_request_result {
    websocket_request request;
    std::error_code error;
    std::string detail;
    // When the proof in the request stops being good (temporary AWS credentials expire): the
    // uplink connects again, signed anew, shortly before (uplink::renewal_time()). None: never.
    std::optional<std::chrono::system_clock::time_point> expires;
};

using websocket_request_handler = std::function<void(websocket_request_result)>;

// Called by the uplink at the start of every attempt with transport: websocket, with the
// endpoint's host name and port (what the request's Host header says). It runs `done` once, on
// `io`, possibly inside the call (when nothing needs I/O) or later (the AWS IoT credentials
// provider answered). Empty: the defaults.
using websocket_request_source = std::function<void(boost::asio::io_context& io, const std::string& host,
                                                    std::uint16_t port, websocket_request_handler done)>;

}  // namespace thingmux::uplink
