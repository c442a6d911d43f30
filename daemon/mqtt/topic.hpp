// Topic names, topic filters and UTF-8 rules of MQTT (spec 1.5.4, 4.7).
#pragma once

#include <string_view>

namespace thingmux::mqtt {

// Well-formed UTF-8 as MQTT requires: no overlongs, no surrogates, no U+0000, length <= 65535.
[[nodiscard]] bool valid_utf8(std::string_view s) noexcept;

// A topic name for PUBLISH: non-empty, valid UTF-8, no '+' or '#'.
[[nodiscard]] bool valid_topic_name(std::string_view topic) noexcept;

// A topic filter for SUBSCRIBE: non-empty, valid UTF-8, '+' occupies a whole level, '#' only as
// the whole last level. Shared subscriptions ($share/NAME/filter) are accepted.
[[nodiscard]] bool valid_topic_filter(std::string_view filter) noexcept;

// True when `filter` matches `topic` under the MQTT specification's rules, including: '#' also
// matches the parent level ("a/#" matches "a"; AWS IoT Core differs here, see docs), and
// wildcards in the first level never match topics that start with '$'.
[[nodiscard]] bool topic_matches(std::string_view filter, std::string_view topic) noexcept;

// Why `topic` is not a valid topic name ("contains wildcard '+'"), or nullptr when it is one.
// The text completes a sentence about the topic name, for error messages.
[[nodiscard]] const char* topic_name_problem(std::string_view topic) noexcept;

// Why `filter` is not a valid topic filter ("has '#' not as the last level"), or nullptr.
[[nodiscard]] const char* topic_filter_problem(std::string_view filter) noexcept;

// True when the filter contains '+' or '#'.
[[nodiscard]] bool has_wildcard(std::string_view filter) noexcept;

}  // namespace thingmux::mqtt
