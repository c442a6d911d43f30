#include "common/printable.hpp"

#include "common/utf8.hpp"

#include <cstdint>

namespace thingmux::text {

namespace {

// Code points that move the cursor, end a line or reorder text in a terminal or log viewer.
bool steers_display(std::uint32_t cp) noexcept {
    return (cp >= 0x80 && cp <= 0x9F)          // C1 controls (0x9B is a one-byte CSI)
           || cp == 0x200E || cp == 0x200F     // left-to-right / right-to-left marks
           || cp == 0x2028 || cp == 0x2029     // line and paragraph separators
           || (cp >= 0x202A && cp <= 0x202E)   // bidirectional embeddings and overrides
           || (cp >= 0x2066 && cp <= 0x2069);  // bidirectional isolates
}

void append_hex(std::string& out, const char* prefix, std::uint32_t value, int digits) {
    constexpr char hex[] = "0123456789abcdef";
    out += prefix;
    for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += hex[(value >> shift) & 0xFU];
}

}  // namespace

void append_printable(std::string& out, std::string_view s, std::size_t max_bytes) {
    std::size_t i = 0;
    while (i < s.size()) {
        std::uint32_t cp = 0;
        const std::size_t length = decode_utf8(s.substr(i), cp);
        if (i + (length == 0 ? 1 : length) > max_bytes) break;
        if (length == 0) {
            append_hex(out, "\\x", static_cast<std::uint8_t>(s[i]), 2);
            ++i;
            continue;
        }
        if (cp == '\n') {
            out += "\\n";
        } else if (cp == '\r') {
            out += "\\r";
        } else if (cp == '\t') {
            out += "\\t";
        } else if (cp < 0x20 || cp == 0x7F) {
            append_hex(out, "\\x", cp, 2);
        } else if (steers_display(cp)) {
            append_hex(out, "\\u", cp, 4);
        } else {
            out.append(s.substr(i, length));
        }
        i += length;
    }
    if (i < s.size()) out += "... (" + std::to_string(s.size() - i) + " more bytes)";
}

std::string printable(std::string_view s, std::size_t max_bytes) {
    std::string out;
    out.reserve(s.size() < max_bytes ? s.size() : max_bytes);
    append_printable(out, s, max_bytes);
    return out;
}

}  // namespace thingmux::text
