#include "common/utf8.hpp"

namespace thingmux::text {

std::size_t decode_utf8(std::string_view s, std::uint32_t& cp) noexcept {
    if (s.empty()) return 0;
    const auto lead = static_cast<std::uint8_t>(s[0]);
    if (lead < 0x80U) {
        cp = lead;
        return 1;
    }
    std::size_t length = 0;
    std::uint32_t smallest = 0;  // below it the sequence is an overlong encoding
    if ((lead & 0xE0U) == 0xC0U) {
        length = 2;
        cp = lead & 0x1FU;
        smallest = 0x80;
    } else if ((lead & 0xF0U) == 0xE0U) {
        length = 3;
        cp = lead & 0x0FU;
        smallest = 0x800;
    } else if ((lead & 0xF8U) == 0xF0U) {
        length = 4;
        cp = lead & 0x07U;
        smallest = 0x10000;
    } else {
        return 0;  // a continuation byte without a lead, or 0xF8..0xFF
    }
    if (s.size() < length) return 0;
    for (std::size_t k = 1; k < length; ++k) {
        const auto next = static_cast<std::uint8_t>(s[k]);
        if ((next & 0xC0U) != 0x80U) return 0;
        cp = (cp << 6U) | (next & 0x3FU);
    }
    if (cp < smallest || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return length;
}

bool valid_utf8(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
        // ASCII, the common case, without a call.
        if (const auto byte = static_cast<std::uint8_t>(s[i]); byte < 0x80U) {
            if (byte == 0) return false;
            ++i;
            continue;
        }
        std::uint32_t cp = 0;
        const std::size_t length = decode_utf8(s.substr(i), cp);
        if (length == 0) return false;
        i += length;
    }
    return true;
}

}  // namespace thingmux::text
