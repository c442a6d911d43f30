// An AWS IoT custom authorizer's login for one connection attempt (docs/connecting.md, "Custom
// authorizer"): the token, signature and password files read fresh (a rotated token is picked up
// at the next attempt), the MQTT user name and password built from them, and the words for a
// broker that refuses them. Never logs; no message quotes a token, signature or password.
#pragma once

#include "common/custom_authorizer.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace thingmux::uplink {

// things[].custom_authorizer, with its files resolved (credential:NAME -> the file).
struct custom_authorizer_files {
    std::string name;
    std::string token_key_name;
    std::string username;              // before '?'; empty: none
    std::filesystem::path token_file;  // empty: none
    std::filesystem::path signature_file;
    std::filesystem::path password_file;
    friend bool operator==(const custom_authorizer_files&, const custom_authorizer_files&) = default;
};

// The CONNECT's user name and password, or why there are none (errc::custom_authorizer_unusable
// with a message naming the file or setting; a system error when the process ran out of
// descriptors or memory).
struct mqtt_login {
    std::string username;
    std::optional<std::string> password;
    std::error_code error;
    std::string detail;
};
[[nodiscard]] mqtt_login load_mqtt_login(const custom_authorizer_files& files);

// The same values for a WebSocket upgrade request (as headers, or through
// custom_authorizer::query_string() as query parameters), or why there are none.
struct websocket_login {
    std::vector<custom_authorizer::parameter> parameters;
    std::error_code error;
    std::string detail;
};
[[nodiscard]] websocket_login load_websocket_login(const custom_authorizer_files& files);

// "custom authorizer NAME denied the connection (...): check ...": for a CONNACK refusal
// `broker_reason` ("not authorized (reason 0x87)").
[[nodiscard]] std::string denied_message(const custom_authorizer_files& files, const std::string& broker_reason);

}  // namespace thingmux::uplink
