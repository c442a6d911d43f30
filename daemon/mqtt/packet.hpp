// MQTT 3.1.1 and MQTT 5.0 control packets as plain values.
//
// One struct per packet type a client sends or receives, one `properties` struct shared by all
// of them (the decoder rejects properties that are not allowed in a given packet, so a decoded
// value only ever carries legal ones). Binary fields (payload, correlation data, passwords,
// authentication data) are held in std::string: it is binary-safe and cheap to move.
//
// This module is pure: no I/O, no Asio, no OpenSSL, no logging.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace thingmux::mqtt {

enum class protocol_version : std::uint8_t { v311 = 4, v5 = 5 };

enum class packet_type : std::uint8_t {
    connect = 1,
    connack = 2,
    publish = 3,
    puback = 4,
    pubrec = 5,
    pubrel = 6,
    pubcomp = 7,
    subscribe = 8,
    suback = 9,
    unsubscribe = 10,
    unsuback = 11,
    pingreq = 12,
    pingresp = 13,
    disconnect = 14,
    auth = 15,
};

enum class qos : std::uint8_t { at_most_once = 0, at_least_once = 1, exactly_once = 2 };

// MQTT 5 reason codes (spec 2.4) that the daemon acts on or reports. MQTT 3.1.1 CONNACK return
// codes (1..5) are kept in `connack::reason_code` as received; see connack_reason_v5().
namespace reason {
inline constexpr std::uint8_t success = 0x00;
inline constexpr std::uint8_t granted_qos_1 = 0x01;
inline constexpr std::uint8_t granted_qos_2 = 0x02;
inline constexpr std::uint8_t disconnect_with_will = 0x04;
inline constexpr std::uint8_t no_matching_subscribers = 0x10;
inline constexpr std::uint8_t no_subscription_existed = 0x11;
inline constexpr std::uint8_t unspecified_error = 0x80;
inline constexpr std::uint8_t malformed_packet = 0x81;
inline constexpr std::uint8_t protocol_error = 0x82;
inline constexpr std::uint8_t implementation_specific_error = 0x83;
inline constexpr std::uint8_t unsupported_protocol_version = 0x84;
inline constexpr std::uint8_t client_identifier_not_valid = 0x85;
inline constexpr std::uint8_t bad_user_name_or_password = 0x86;
inline constexpr std::uint8_t not_authorized = 0x87;
inline constexpr std::uint8_t server_unavailable = 0x88;
inline constexpr std::uint8_t server_busy = 0x89;
inline constexpr std::uint8_t banned = 0x8A;
inline constexpr std::uint8_t server_shutting_down = 0x8B;
inline constexpr std::uint8_t bad_authentication_method = 0x8C;
inline constexpr std::uint8_t keep_alive_timeout = 0x8D;
inline constexpr std::uint8_t session_taken_over = 0x8E;
inline constexpr std::uint8_t topic_filter_invalid = 0x8F;
inline constexpr std::uint8_t topic_name_invalid = 0x90;
inline constexpr std::uint8_t packet_identifier_in_use = 0x91;
inline constexpr std::uint8_t packet_identifier_not_found = 0x92;
inline constexpr std::uint8_t receive_maximum_exceeded = 0x93;
inline constexpr std::uint8_t topic_alias_invalid = 0x94;
inline constexpr std::uint8_t packet_too_large = 0x95;
inline constexpr std::uint8_t message_rate_too_high = 0x96;
inline constexpr std::uint8_t quota_exceeded = 0x97;
inline constexpr std::uint8_t administrative_action = 0x98;
inline constexpr std::uint8_t payload_format_invalid = 0x99;
inline constexpr std::uint8_t retain_not_supported = 0x9A;
inline constexpr std::uint8_t qos_not_supported = 0x9B;
inline constexpr std::uint8_t use_another_server = 0x9C;
inline constexpr std::uint8_t server_moved = 0x9D;
inline constexpr std::uint8_t shared_subscriptions_not_supported = 0x9E;
inline constexpr std::uint8_t connection_rate_exceeded = 0x9F;
inline constexpr std::uint8_t maximum_connect_time = 0xA0;
inline constexpr std::uint8_t subscription_identifiers_not_supported = 0xA1;
inline constexpr std::uint8_t wildcard_subscriptions_not_supported = 0xA2;
// MQTT 3.1.1 SUBACK failure return code.
inline constexpr std::uint8_t suback_failure_v311 = 0x80;
}  // namespace reason

struct user_property {
    std::string key;
    std::string value;
    friend bool operator==(const user_property&, const user_property&) = default;
};

// MQTT 5 properties (spec 2.2.2.2). Absent = not present on the wire. Ignored for MQTT 3.1.1.
struct properties {
    std::optional<std::uint8_t> payload_format_indicator;        // 0x01
    std::optional<std::uint32_t> message_expiry_interval;        // 0x02
    std::optional<std::string> content_type;                     // 0x03
    std::optional<std::string> response_topic;                   // 0x08
    std::optional<std::string> correlation_data;                 // 0x09 (binary)
    std::vector<std::uint32_t> subscription_identifiers;         // 0x0B (PUBLISH may carry several)
    std::optional<std::uint32_t> session_expiry_interval;        // 0x11
    std::optional<std::string> assigned_client_identifier;       // 0x12
    std::optional<std::uint16_t> server_keep_alive;              // 0x13
    std::optional<std::string> authentication_method;            // 0x15
    std::optional<std::string> authentication_data;              // 0x16 (binary)
    std::optional<std::uint8_t> request_problem_information;     // 0x17
    std::optional<std::uint32_t> will_delay_interval;            // 0x18
    std::optional<std::uint8_t> request_response_information;    // 0x19
    std::optional<std::string> response_information;             // 0x1A
    std::optional<std::string> server_reference;                 // 0x1C
    std::optional<std::string> reason_string;                    // 0x1F
    std::optional<std::uint16_t> receive_maximum;                // 0x21
    std::optional<std::uint16_t> topic_alias_maximum;            // 0x22
    std::optional<std::uint16_t> topic_alias;                    // 0x23
    std::optional<std::uint8_t> maximum_qos;                     // 0x24
    std::optional<std::uint8_t> retain_available;                // 0x25
    std::vector<user_property> user_properties;                  // 0x26 (repeatable, order kept)
    std::optional<std::uint32_t> maximum_packet_size;            // 0x27
    std::optional<std::uint8_t> wildcard_subscription_available; // 0x28
    std::optional<std::uint8_t> subscription_identifier_available; // 0x29
    std::optional<std::uint8_t> shared_subscription_available;   // 0x2A

    friend bool operator==(const properties&, const properties&) = default;
};

struct will_message {
    std::string topic;
    std::string payload;
    mqtt::qos qos = qos::at_most_once;
    bool retain = false;
    properties props;  // will properties (MQTT 5)
    friend bool operator==(const will_message&, const will_message&) = default;
};

struct connect {
    protocol_version version = protocol_version::v5;
    std::string client_id;
    bool clean_start = false;  // "clean session" in 3.1.1
    std::uint16_t keep_alive = 60;
    std::optional<std::string> username;
    std::optional<std::string> password;  // binary
    std::optional<will_message> will;
    properties props;
    friend bool operator==(const connect&, const connect&) = default;
};

struct connack {
    bool session_present = false;
    // MQTT 5 reason code, or the MQTT 3.1.1 return code (0..5) exactly as received.
    std::uint8_t reason_code = reason::success;
    properties props;
    friend bool operator==(const connack&, const connack&) = default;
};

struct publish {
    std::string topic;  // may be empty in MQTT 5 when a topic alias is used
    std::string payload;
    mqtt::qos qos = qos::at_most_once;
    bool retain = false;
    bool dup = false;
    std::uint16_t packet_id = 0;  // only for QoS > 0
    properties props;
    friend bool operator==(const publish&, const publish&) = default;
};

// PUBACK, PUBREC, PUBREL, PUBCOMP share one layout; the tag keeps them distinct types.
template <packet_type Type>
struct basic_ack {
    static constexpr packet_type type = Type;
    std::uint16_t packet_id = 0;
    std::uint8_t reason_code = reason::success;  // MQTT 5 only
    properties props;
    friend bool operator==(const basic_ack&, const basic_ack&) = default;
};
using puback = basic_ack<packet_type::puback>;
using pubrec = basic_ack<packet_type::pubrec>;
using pubrel = basic_ack<packet_type::pubrel>;
using pubcomp = basic_ack<packet_type::pubcomp>;

struct subscription {
    std::string filter;
    mqtt::qos max_qos = qos::at_least_once;
    bool no_local = false;              // MQTT 5
    bool retain_as_published = false;   // MQTT 5
    std::uint8_t retain_handling = 0;   // MQTT 5, 0..2
    friend bool operator==(const subscription&, const subscription&) = default;
};

struct subscribe {
    std::uint16_t packet_id = 0;
    std::vector<subscription> subscriptions;  // at least one
    properties props;
    friend bool operator==(const subscribe&, const subscribe&) = default;
};

struct suback {
    std::uint16_t packet_id = 0;
    std::vector<std::uint8_t> reason_codes;  // one per requested filter
    properties props;
    friend bool operator==(const suback&, const suback&) = default;
};

struct unsubscribe {
    std::uint16_t packet_id = 0;
    std::vector<std::string> filters;  // at least one
    properties props;
    friend bool operator==(const unsubscribe&, const unsubscribe&) = default;
};

struct unsuback {
    std::uint16_t packet_id = 0;
    std::vector<std::uint8_t> reason_codes;  // MQTT 5 only; empty for 3.1.1
    properties props;
    friend bool operator==(const unsuback&, const unsuback&) = default;
};

struct pingreq {
    friend bool operator==(const pingreq&, const pingreq&) = default;
};
struct pingresp {
    friend bool operator==(const pingresp&, const pingresp&) = default;
};

struct disconnect {
    std::uint8_t reason_code = reason::success;  // MQTT 5 only
    properties props;
    friend bool operator==(const disconnect&, const disconnect&) = default;
};

struct auth {  // MQTT 5 only
    std::uint8_t reason_code = reason::success;
    properties props;
    friend bool operator==(const auth&, const auth&) = default;
};

using packet = std::variant<connect, connack, publish, puback, pubrec, pubrel, pubcomp, subscribe, suback,
                            unsubscribe, unsuback, pingreq, pingresp, disconnect, auth>;

// The packet type of a variant value.
[[nodiscard]] packet_type type_of(const packet& p) noexcept;

// Human-readable name of a packet type ("PUBLISH") and of a reason code ("Not authorized").
[[nodiscard]] const char* to_string(packet_type t) noexcept;
[[nodiscard]] const char* reason_string(std::uint8_t reason_code) noexcept;

// Whether MQTT 5 allows `reason_code` in packets of type `t` (spec 2.4, table 2-6).
[[nodiscard]] bool reason_code_allowed(packet_type t, std::uint8_t reason_code) noexcept;

// Maps an MQTT 3.1.1 CONNACK return code (1..5) to the equivalent MQTT 5 reason code, so callers
// handle one set: 1 -> unsupported protocol version, 2 -> client id not valid, 3 -> server
// unavailable, 4 -> bad user name or password, 5 -> not authorized.
[[nodiscard]] std::uint8_t connack_reason_v5(protocol_version v, std::uint8_t code) noexcept;

// The other way, for a server answering an MQTT 3.1.1 client: 0x84 -> 1, 0x85 -> 2, 0x88 and
// 0x89 -> 3, 0x86 -> 4, 0x87 -> 5, success -> 0, any other refusal -> 3 (server unavailable).
[[nodiscard]] std::uint8_t connack_return_code_v311(std::uint8_t reason_code) noexcept;

}  // namespace thingmux::mqtt
