// What the MQTT decoder (codec_decode.cpp) and encoder (codec_encode.cpp) share: the MQTT 5
// property table and the packet type of each packet struct. Internal to daemon/mqtt.
#pragma once

#include "daemon/mqtt/packet.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace thingmux::mqtt::detail {

// Property table (MQTT 5 spec 2.2.2.2)

constexpr std::uint32_t bit(packet_type t) {
    return 1U << static_cast<unsigned>(t);
}
// Will properties travel inside CONNECT but have an allowed set of their own. Packet type 0 is
// reserved, so its bit stands for them.
constexpr std::uint32_t will_bit = 1U;

enum class rule : std::uint8_t {
    plain,
    boolean,     // 0 or 1; anything else is a protocol error
    nonzero,     // 0 is a protocol error
    topic_name,  // a UTF-8 string that must be a valid topic name
    binary,      // binary data rather than a UTF-8 string
};

// The member's type gives the wire type: optional<uint8_t/uint16_t/uint32_t> are one/two/four
// byte integers, vector<uint32_t> is the variable byte integer of Subscription Identifier.
using property_member =
    std::variant<std::optional<std::uint8_t> properties::*, std::optional<std::uint16_t> properties::*,
                 std::optional<std::uint32_t> properties::*, std::optional<std::string> properties::*,
                 std::vector<std::uint32_t> properties::*, std::vector<user_property> properties::*>;

struct property_def {
    std::uint8_t id;
    const char* name;
    property_member member;
    rule check;
    std::uint32_t allowed;     // packets (bits) that may carry it
    std::uint32_t repeatable;  // packets that may carry it more than once
};

consteval auto make_property_table() {
    using enum packet_type;
    using p = properties;
    constexpr auto message = bit(publish) | will_bit;
    constexpr auto session = bit(connect) | bit(connack);
    constexpr auto authentication = session | bit(auth);
    constexpr auto reason = bit(connack) | bit(puback) | bit(pubrec) | bit(pubrel) | bit(pubcomp) | bit(suback) |
                            bit(unsuback) | bit(disconnect) | bit(auth);
    constexpr auto everywhere = reason | bit(connect) | bit(publish) | will_bit | bit(subscribe) | bit(unsubscribe);
    // Sorted by id: the encoder writes properties in table order, which makes its output canonical.
    return std::array{
        property_def{0x01, "Payload Format Indicator", &p::payload_format_indicator, rule::boolean, message, 0},
        property_def{0x02, "Message Expiry Interval", &p::message_expiry_interval, rule::plain, message, 0},
        property_def{0x03, "Content Type", &p::content_type, rule::plain, message, 0},
        property_def{0x08, "Response Topic", &p::response_topic, rule::topic_name, message, 0},
        property_def{0x09, "Correlation Data", &p::correlation_data, rule::binary, message, 0},
        property_def{0x0B, "Subscription Identifier", &p::subscription_identifiers, rule::nonzero,
                     bit(publish) | bit(subscribe), bit(publish)},
        property_def{0x11, "Session Expiry Interval", &p::session_expiry_interval, rule::plain,
                     session | bit(disconnect), 0},
        property_def{0x12, "Assigned Client Identifier", &p::assigned_client_identifier, rule::plain, bit(connack), 0},
        property_def{0x13, "Server Keep Alive", &p::server_keep_alive, rule::plain, bit(connack), 0},
        property_def{0x15, "Authentication Method", &p::authentication_method, rule::plain, authentication, 0},
        property_def{0x16, "Authentication Data", &p::authentication_data, rule::binary, authentication, 0},
        property_def{0x17, "Request Problem Information", &p::request_problem_information, rule::boolean, bit(connect),
                     0},
        property_def{0x18, "Will Delay Interval", &p::will_delay_interval, rule::plain, will_bit, 0},
        property_def{0x19, "Request Response Information", &p::request_response_information, rule::boolean,
                     bit(connect), 0},
        property_def{0x1A, "Response Information", &p::response_information, rule::plain, bit(connack), 0},
        property_def{0x1C, "Server Reference", &p::server_reference, rule::plain, bit(connack) | bit(disconnect), 0},
        property_def{0x1F, "Reason String", &p::reason_string, rule::plain, reason, 0},
        property_def{0x21, "Receive Maximum", &p::receive_maximum, rule::nonzero, session, 0},
        property_def{0x22, "Topic Alias Maximum", &p::topic_alias_maximum, rule::plain, session, 0},
        // 0 is refused by the PUBLISH reader: it ends the connection with its own reason code.
        property_def{0x23, "Topic Alias", &p::topic_alias, rule::plain, bit(publish), 0},
        property_def{0x24, "Maximum QoS", &p::maximum_qos, rule::boolean, bit(connack), 0},
        property_def{0x25, "Retain Available", &p::retain_available, rule::boolean, bit(connack), 0},
        property_def{0x26, "User Property", &p::user_properties, rule::plain, everywhere, everywhere},
        property_def{0x27, "Maximum Packet Size", &p::maximum_packet_size, rule::nonzero, session, 0},
        property_def{0x28, "Wildcard Subscription Available", &p::wildcard_subscription_available, rule::boolean,
                     bit(connack), 0},
        property_def{0x29, "Subscription Identifier Available", &p::subscription_identifier_available, rule::boolean,
                     bit(connack), 0},
        property_def{0x2A, "Shared Subscription Available", &p::shared_subscription_available, rule::boolean,
                     bit(connack), 0},
    };
}
inline constexpr auto property_table = make_property_table();

static_assert(std::ranges::is_sorted(property_table, {}, &property_def::id));
static_assert(property_table.back().id < 64, "duplicate detection keeps one bit per id in a uint64_t");

inline const property_def* find_property(std::uint8_t id) noexcept {
    const auto it = std::ranges::find(property_table, id, &property_def::id);
    return it != property_table.end() ? &*it : nullptr;
}

// The packet_type of a packet struct: the variant lists them in packet_type order from CONNECT = 1.
template <class Packet, std::size_t I = 0>
consteval packet_type type_for() {
    if constexpr (std::is_same_v<std::variant_alternative_t<I, packet>, Packet>) {
        return static_cast<packet_type>(I + 1);
    } else {
        return type_for<Packet, I + 1>();
    }
}

}  // namespace thingmux::mqtt::detail
