// MQTT topic names and filters as the configuration and the authorization checks need them.
// A small local implementation on purpose: config does not depend on daemon/mqtt.
//
// Matching follows the MQTT specification: '+' matches exactly one level (possibly empty), '#'
// matches the rest including the parent level ("a/#" matches "a"), and a filter that starts
// with a wildcard does not match topics that start with '$'.
#pragma once

#include <string>
#include <string_view>

namespace thingmux::config {

// Empty string when `topic` is a valid PUBLISH topic name (non-empty, no '+'/'#', no NUL, valid
// UTF-8, at most 65535 bytes), otherwise why not.
[[nodiscard]] std::string topic_name_problem(std::string_view topic);
// Same for a topic filter: '+' and '#' only as whole levels, '#' only last.
[[nodiscard]] std::string topic_filter_problem(std::string_view filter);

// True when the (valid) topic name matches the (valid) filter.
[[nodiscard]] bool topic_matches(std::string_view filter, std::string_view topic);

// True when every topic that `requested` can match is also matched by `granted` (both valid
// filters). E.g. "cmd/gw/#" covers "cmd/gw/+/x"; "cmd/+/x" does not cover "cmd/#".
[[nodiscard]] bool filter_covers(std::string_view granted, std::string_view requested);

}  // namespace thingmux::config
