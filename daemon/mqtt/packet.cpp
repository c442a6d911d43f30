#include "daemon/mqtt/packet.hpp"

#include <array>
#include <initializer_list>
#include <type_traits>

namespace thingmux::mqtt {

namespace {

constexpr std::uint32_t in(std::initializer_list<packet_type> types) {
    std::uint32_t mask = 0;
    for (const auto t : types) {
        mask |= 1U << static_cast<unsigned>(t);
    }
    return mask;
}

struct reason_def {
    std::uint8_t code;
    const char* name;
    std::uint32_t packets;  // bit per packet_type in which MQTT 5 allows the code
};

// MQTT 5 spec 2.4, table 2-6. 0x00 is listed once under its generic name: the spec calls it
// "Normal disconnection" in DISCONNECT and "Granted QoS 0" in SUBACK.
consteval auto make_reason_table() {
    using enum packet_type;
    return std::array{
        reason_def{0x00, "Success", in({connack, puback, pubrec, pubrel, pubcomp, suback, unsuback, disconnect, auth})},
        reason_def{0x01, "Granted QoS 1", in({suback})},
        reason_def{0x02, "Granted QoS 2", in({suback})},
        reason_def{0x04, "Disconnect with Will Message", in({disconnect})},
        reason_def{0x10, "No matching subscribers", in({puback, pubrec})},
        reason_def{0x11, "No subscription existed", in({unsuback})},
        reason_def{0x18, "Continue authentication", in({auth})},
        reason_def{0x19, "Re-authenticate", in({auth})},
        reason_def{0x80, "Unspecified error", in({connack, puback, pubrec, suback, unsuback, disconnect})},
        reason_def{0x81, "Malformed Packet", in({connack, disconnect})},
        reason_def{0x82, "Protocol Error", in({connack, disconnect})},
        reason_def{0x83, "Implementation specific error", in({connack, puback, pubrec, suback, unsuback, disconnect})},
        reason_def{0x84, "Unsupported Protocol Version", in({connack})},
        reason_def{0x85, "Client Identifier not valid", in({connack})},
        reason_def{0x86, "Bad User Name or Password", in({connack})},
        reason_def{0x87, "Not authorized", in({connack, puback, pubrec, suback, unsuback, disconnect})},
        reason_def{0x88, "Server unavailable", in({connack})},
        reason_def{0x89, "Server busy", in({connack, disconnect})},
        reason_def{0x8A, "Banned", in({connack})},
        reason_def{0x8B, "Server shutting down", in({disconnect})},
        reason_def{0x8C, "Bad authentication method", in({connack, disconnect})},
        reason_def{0x8D, "Keep Alive timeout", in({disconnect})},
        reason_def{0x8E, "Session taken over", in({disconnect})},
        reason_def{0x8F, "Topic Filter invalid", in({suback, unsuback, disconnect})},
        reason_def{0x90, "Topic Name invalid", in({connack, puback, pubrec, disconnect})},
        reason_def{0x91, "Packet Identifier in use", in({puback, pubrec, suback, unsuback})},
        reason_def{0x92, "Packet Identifier not found", in({pubrel, pubcomp})},
        reason_def{0x93, "Receive Maximum exceeded", in({disconnect})},
        reason_def{0x94, "Topic Alias invalid", in({disconnect})},
        reason_def{0x95, "Packet too large", in({connack, disconnect})},
        reason_def{0x96, "Message rate too high", in({disconnect})},
        reason_def{0x97, "Quota exceeded", in({connack, puback, pubrec, suback, disconnect})},
        reason_def{0x98, "Administrative action", in({disconnect})},
        reason_def{0x99, "Payload format invalid", in({connack, puback, pubrec, disconnect})},
        reason_def{0x9A, "Retain not supported", in({connack, disconnect})},
        reason_def{0x9B, "QoS not supported", in({connack, disconnect})},
        reason_def{0x9C, "Use another server", in({connack, disconnect})},
        reason_def{0x9D, "Server moved", in({connack, disconnect})},
        reason_def{0x9E, "Shared Subscriptions not supported", in({suback, disconnect})},
        reason_def{0x9F, "Connection rate exceeded", in({connack, disconnect})},
        reason_def{0xA0, "Maximum connect time", in({disconnect})},
        reason_def{0xA1, "Subscription Identifiers not supported", in({suback, disconnect})},
        reason_def{0xA2, "Wildcard Subscriptions not supported", in({suback, disconnect})},
    };
}
constexpr auto reason_table = make_reason_table();

const reason_def* find_reason(std::uint8_t code) noexcept {
    for (const auto& def : reason_table) {
        if (def.code == code) {
            return &def;
        }
    }
    return nullptr;
}

}  // namespace

packet_type type_of(const packet& p) noexcept {
    // The variant's alternatives are declared in packet_type order, starting at CONNECT = 1.
    static_assert(std::is_same_v<std::variant_alternative_t<0, packet>, mqtt::connect>);
    static_assert(std::is_same_v<std::variant_alternative_t<14, packet>, mqtt::auth>);
    return static_cast<packet_type>(p.index() + 1);
}

const char* to_string(packet_type t) noexcept {
    using enum packet_type;
    switch (t) {
        case connect: return "CONNECT";
        case connack: return "CONNACK";
        case publish: return "PUBLISH";
        case puback: return "PUBACK";
        case pubrec: return "PUBREC";
        case pubrel: return "PUBREL";
        case pubcomp: return "PUBCOMP";
        case subscribe: return "SUBSCRIBE";
        case suback: return "SUBACK";
        case unsubscribe: return "UNSUBSCRIBE";
        case unsuback: return "UNSUBACK";
        case pingreq: return "PINGREQ";
        case pingresp: return "PINGRESP";
        case disconnect: return "DISCONNECT";
        case auth: return "AUTH";
    }
    return "reserved packet type";
}

const char* reason_string(std::uint8_t reason_code) noexcept {
    const auto* def = find_reason(reason_code);
    return def != nullptr ? def->name : "Unknown reason code";
}

bool reason_code_allowed(packet_type t, std::uint8_t reason_code) noexcept {
    const auto* def = find_reason(reason_code);
    return def != nullptr && (def->packets & (1U << static_cast<unsigned>(t))) != 0;
}

std::uint8_t connack_reason_v5(protocol_version v, std::uint8_t code) noexcept {
    if (v == protocol_version::v5) {
        return code;
    }
    switch (code) {
        case 0: return reason::success;
        case 1: return reason::unsupported_protocol_version;
        case 2: return reason::client_identifier_not_valid;
        case 3: return reason::server_unavailable;
        case 4: return reason::bad_user_name_or_password;
        case 5: return reason::not_authorized;
        default: return reason::unspecified_error;
    }
}

std::uint8_t connack_return_code_v311(std::uint8_t reason_code) noexcept {
    switch (reason_code) {
        case reason::success: return 0;
        case reason::unsupported_protocol_version: return 1;
        case reason::client_identifier_not_valid: return 2;
        case reason::bad_user_name_or_password: return 4;
        case reason::not_authorized: return 5;
        default: return 3;  // server unavailable (0x88, 0x89) and everything 3.1.1 cannot say
    }
}

}  // namespace thingmux::mqtt
