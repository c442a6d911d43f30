// What the spool keeps of one message: everything needed to publish it upstream later, in the
// spool's own terms. It is independent of the IPC protocol and of the MQTT codec, so that neither
// can change the file format by changing a struct (docs/reliability.md, "The spool's file").
//
// Pure: standard library only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::spool {

struct user_property {
    std::string key;
    std::string value;
    friend bool operator==(const user_property&, const user_property&) = default;
};

// An MQTT publish as an app handed it over: topic, payload, QoS, retain, and the MQTT 5
// properties an app can set. An absent property is nullopt; an empty string is a property
// present with no bytes, and the spool keeps the difference.
struct message {
    std::string topic;
    std::string payload;  // binary
    std::uint8_t qos = 1;
    bool retain = false;
    std::optional<std::uint8_t> payload_format_indicator;  // 0 = bytes, 1 = UTF-8
    std::optional<std::uint32_t> message_expiry_interval;  // seconds, as the app gave it
    std::optional<std::string> content_type;
    std::optional<std::string> response_topic;
    std::optional<std::string> correlation_data;  // binary
    std::vector<user_property> user_properties;   // order and repeated keys kept
    friend bool operator==(const message&, const message&) = default;
};

}  // namespace thingmux::spool
