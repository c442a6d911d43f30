// An MQTT application message as libthingmux sends and receives it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace thingmux {

struct user_property {
    std::string key{};
    std::string value{};
    friend bool operator==(const user_property&, const user_property&) = default;
};

// Topic, payload and the MQTT 5 properties. The properties travel end to end when the daemon's
// uplink speaks MQTT 5 and are dropped for MQTT 3.1.1. Unset optionals are not sent.
struct message {
    std::string topic{};
    std::string payload{};  // bytes; std::string is binary-safe
    int qos = 0;          // 0 or 1 (AWS IoT Core does not support 2)
    bool retain = false;

    std::optional<std::string> content_type{};      // e.g. "application/json"
    std::optional<std::string> response_topic{};    // request/response pattern
    std::optional<std::string> correlation_data{};  // bytes
    std::optional<std::uint32_t> message_expiry_seconds{};
    std::optional<std::uint8_t> payload_format_indicator{};  // 0 = bytes, 1 = UTF-8
    std::vector<user_property> user_properties{};           // order kept

    friend bool operator==(const message&, const message&) = default;
};

}  // namespace thingmux
