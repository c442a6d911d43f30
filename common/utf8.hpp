// UTF-8 as MQTT and the IPC protocol require it (RFC 3629: shortest form, no surrogates, at
// most U+10FFFF), decoded in one place for every module. Pure: no I/O, no logging.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace thingmux::text {

// Length of the well-formed UTF-8 sequence at the start of `s`, with its code point in `cp`;
// 0 when `s` is empty or does not start with one (a stray continuation byte, a byte that never
// occurs in UTF-8, a sequence cut short, an overlong form, a surrogate, a value past U+10FFFF).
[[nodiscard]] std::size_t decode_utf8(std::string_view s, std::uint32_t& cp) noexcept;

// Well-formed UTF-8 without U+0000 (which C APIs would cut off and MQTT forbids).
[[nodiscard]] bool valid_utf8(std::string_view s) noexcept;

// The most bytes an MQTT UTF-8 string can hold: its length prefix has 16 bits (spec 1.5.4).
inline constexpr std::size_t max_mqtt_string_bytes = 65535;

// An MQTT UTF-8 string (spec 1.5.4): valid_utf8() and at most max_mqtt_string_bytes.
[[nodiscard]] inline bool valid_mqtt_string(std::string_view s) noexcept {
    return s.size() <= max_mqtt_string_bytes && valid_utf8(s);
}

}  // namespace thingmux::text
