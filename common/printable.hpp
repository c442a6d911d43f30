// Text from outside (apps, the broker, configuration files) made safe to show in one log line:
// it can neither start a line of its own nor steer a terminal. Pure: no I/O, no logging.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace thingmux::text {

// Input bytes shown before the rest is summarized: enough for any topic AWS IoT accepts.
inline constexpr std::size_t default_max_bytes = 512;

// Appends `s` to `out`, escaped: newline, carriage return and tab become \n, \r and \t, other
// control characters (C0, DEL) and bytes that are not UTF-8 become \xNN, and the code points a
// terminal or log viewer treats as control (C1, line and paragraph separators, bidirectional
// overrides) become \uNNNN. Everything else, including well-formed UTF-8 and the backslash, is
// copied as is: escaping is idempotent, so text escaped where it entered (broker text in the
// session) is not escaped twice when a log line escapes it again. (The price: "\n" in a log
// line may also have been a backslash and an n.) Past `max_bytes` of input (at a character
// boundary) the rest is replaced by "... (N more bytes)".
void append_printable(std::string& out, std::string_view s, std::size_t max_bytes = default_max_bytes);

// append_printable() into a new string.
[[nodiscard]] std::string printable(std::string_view s, std::size_t max_bytes = default_max_bytes);

}  // namespace thingmux::text
