// MQTT topic rules (MQTT 5 §4.7), as the library uses them to dispatch messages to handlers.
// Exposed because apps with one handler for several filters often need the same test.
#pragma once

#include "thingmux/export.hpp"

#include <string_view>

namespace thingmux {

// A topic name an app may publish to: non-empty, no '+' or '#', no U+0000, valid UTF-8.
[[nodiscard]] THINGMUX_API bool valid_topic_name(std::string_view topic) noexcept;

// A topic filter an app may subscribe to: non-empty, valid UTF-8 without U+0000, '+' only as a
// whole level, '#' only as the whole last level.
[[nodiscard]] THINGMUX_API bool valid_topic_filter(std::string_view filter) noexcept;

// Whether `topic` matches `filter`: '+' matches one level, '#' the parent level and any number
// of levels below, and a wildcard at the first level never matches a topic starting with '$'.
// False when either argument is not valid.
[[nodiscard]] THINGMUX_API bool topic_matches(std::string_view filter, std::string_view topic) noexcept;

}  // namespace thingmux
