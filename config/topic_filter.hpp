// MQTT topic names and filters as the configuration and the authorization checks need them: the
// rules of common/topic.hpp (matching as the MQTT specification says, '#' including the parent
// level), with problems worded for configuration errors and denials.
#pragma once

#include "common/topic.hpp"

#include <string>
#include <string_view>

namespace thingmux::config {

// Empty string when `topic` is a valid PUBLISH topic name (non-empty, no '+'/'#', no NUL, valid
// UTF-8, at most 65535 bytes), otherwise why not.
[[nodiscard]] std::string topic_name_problem(std::string_view topic);
// Same for a topic filter: '+' and '#' only as whole levels, '#' only last. "$share/..." is an
// ordinary filter here.
[[nodiscard]] std::string topic_filter_problem(std::string_view filter);

// True when the (valid) topic name matches the (valid) filter.
[[nodiscard]] inline bool topic_matches(std::string_view filter, std::string_view topic) noexcept {
    return topic::matches(filter, topic);
}

// True when every topic that `requested` can match is also matched by `granted` (both valid
// filters). E.g. "cmd/gw/#" covers "cmd/gw/+/x"; "cmd/+/x" does not cover "cmd/#".
using topic::filter_covers;

}  // namespace thingmux::config
