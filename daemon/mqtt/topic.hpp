// Topic names, topic filters and UTF-8 rules of MQTT (spec 1.5.4, 4.7), under the names the codec
// and the session use. The rules themselves are common/topic.hpp and common/utf8.hpp.
#pragma once

#include "common/topic.hpp"
#include "common/utf8.hpp"

#include <string_view>

namespace thingmux::mqtt {

// Well-formed UTF-8 as MQTT requires: no overlongs, no surrogates, no U+0000, length <= 65535.
[[nodiscard]] inline bool valid_utf8(std::string_view s) noexcept { return text::valid_mqtt_string(s); }

// A topic name for PUBLISH: non-empty, valid UTF-8, no '+' or '#'.
[[nodiscard]] inline bool valid_topic_name(std::string_view topic) noexcept { return topic::valid_name(topic); }

// A topic filter for SUBSCRIBE: non-empty, valid UTF-8, '+' occupies a whole level, '#' only as
// the whole last level. Shared subscriptions ($share/NAME/filter) are accepted.
[[nodiscard]] inline bool valid_topic_filter(std::string_view filter) noexcept {
    return topic::valid_subscription(filter);
}

// True when `filter` matches `topic` under the MQTT specification's rules, including: '#' also
// matches the parent level ("a/#" matches "a"; AWS IoT Core differs here, see docs), wildcards
// in the first level never match topics that start with '$', and a shared subscription matches
// with its filter after "$share/NAME/".
[[nodiscard]] inline bool topic_matches(std::string_view filter, std::string_view topic) noexcept {
    return topic::subscription_matches(filter, topic);
}

// Why `topic` is not a valid topic name ("contains wildcard '+'"), or nullptr when it is one.
// The text completes a sentence about the topic name, for error messages.
[[nodiscard]] const char* topic_name_problem(std::string_view topic) noexcept;

// Why `filter` is not a valid topic filter ("has '#' not as the last level"), or nullptr.
[[nodiscard]] const char* topic_filter_problem(std::string_view filter) noexcept;

// True when the filter contains '+' or '#'.
using topic::has_wildcard;

}  // namespace thingmux::mqtt
