// MQTT 3.1.1 / 5.0 encoder and incremental decoder.
//
// decode() looks at the front of a byte span and answers one of three things: more bytes are
// needed, the bytes are malformed (with a reason fit for a log line), or a packet was decoded and
// how many bytes it used. Every length read from the wire is checked against the buffer and
// against `max_packet_size` before anything is allocated, so hostile input cannot make it
// allocate more than the caller allowed.
#pragma once

#include "daemon/mqtt/packet.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

namespace thingmux::mqtt {

struct need_more {
    // Lower bound on the total number of bytes needed before decode() can make progress.
    std::size_t at_least = 0;
};

// Why decode() refused bytes; an std::error_code of the category decode_category(). Numbered
// from 1, because an error_code of value 0 means success.
enum class decode_error : std::uint8_t {
    bad_fixed_header = 1,  // reserved flags, unknown packet type
    bad_remaining_length,  // more than 4 bytes, or non-minimal where it matters
    packet_too_large,      // fixed header + remaining length > max_packet_size
    truncated,             // a field runs past the packet's remaining length
    trailing_bytes,        // bytes left inside the packet after the last field
    bad_utf8,              // string not well-formed UTF-8 or contains U+0000
    bad_topic,             // invalid topic name / filter
    bad_property,          // unknown id, duplicate, not allowed in this packet, bad value
    protocol_violation,    // e.g. QoS 3, packet id 0, empty SUBSCRIBE, wrong protocol name
};

// The category of decode_error: name "mqtt.decode", message() in words ("a field runs past the
// end of the packet").
[[nodiscard]] const std::error_category& decode_category() noexcept;
[[nodiscard]] std::error_code make_error_code(decode_error e) noexcept;

struct malformed {
    decode_error code;
    std::string reason;  // e.g. "PUBLISH: topic name contains wildcard '+'"
    // The MQTT 5 reason code a server or client ends the connection with (DISCONNECT): Malformed
    // Packet, except Packet too large and Topic Alias invalid (a Topic Alias of 0, spec 3.3.2.3.4).
    std::uint8_t disconnect_reason = reason::malformed_packet;
};

struct decoded {
    mqtt::packet packet;
    std::size_t consumed = 0;  // bytes used from the front of the span
};

using decode_result = std::variant<need_more, malformed, decoded>;

// Default limit: the largest packet MQTT can express (remaining length 268,435,455).
inline constexpr std::size_t max_mqtt_packet_size = 268'435'455 + 5;

// Decodes one packet from the front of `bytes`. `version` is the protocol agreed for the
// connection; a CONNECT packet carries its own and is decoded whatever `version` says.
[[nodiscard]] decode_result decode(std::span<const std::uint8_t> bytes, protocol_version version,
                                   std::size_t max_packet_size = max_mqtt_packet_size);

// Appends the wire form of `p` to `out`. The value must be valid for `version` (properties are
// simply not written for 3.1.1); encoding never fails for values the decoder could produce.
void encode(const packet& p, protocol_version version, std::vector<std::uint8_t>& out);

[[nodiscard]] std::vector<std::uint8_t> encode(const packet& p, protocol_version version);

// Size in bytes of the wire form of `p` (what encode() would append).
[[nodiscard]] std::size_t encoded_size(const packet& p, protocol_version version);

// The same for a PUBLISH, the hot path: no packet variant to move the message into and out of.
void encode(const publish& p, protocol_version version, std::vector<std::uint8_t>& out);
[[nodiscard]] std::size_t encoded_size(const publish& p, protocol_version version);

}  // namespace thingmux::mqtt

template <>
struct std::is_error_code_enum<thingmux::mqtt::decode_error> : std::true_type {};
