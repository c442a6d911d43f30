// MQTT topic names and topic filters (MQTT 3.1.1 and 5.0, sections 1.5.4 and 4.7): validation,
// matching and coverage, written once for every module (daemon/mqtt, ipc users, config,
// libthingmux). Pure: no I/O, no logging, no allocation.
//
// Matching follows the specification: '+' matches exactly one level (which may be empty), '#'
// matches the rest including the parent level ("a/#" matches "a"; AWS IoT Core differs here),
// and a filter whose first level is a wildcard never matches a topic that starts with '$'.
#pragma once

#include "common/utf8.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

namespace thingmux::topic {

// Why a topic name or filter is not valid.
enum class errc : std::uint8_t {
    empty = 1,               // a topic name or filter has at least one character
    too_long,                // more than 65535 bytes, the most an MQTT string can hold
    contains_nul,            // U+0000, which MQTT forbids in strings
    not_utf8,                // not well-formed UTF-8
    plus_in_name,            // a topic name holds no wildcard
    hash_in_name,
    plus_not_whole_level,    // "a+" or "+a": '+' is a level of its own
    hash_not_whole_level,    // "a#"
    hash_not_last_level,     // "#/a"
    empty_share_name,        // "$share//a"
    wildcard_in_share_name,  // "$share/g+/a"
    share_without_filter,    // "$share/g" or "$share/g/"
};

// The category of errc ("thingmux.topic"); its messages are those of describe().
[[nodiscard]] const std::error_category& category() noexcept;
[[nodiscard]] std::error_code make_error_code(errc e) noexcept;

// What is wrong, as the end of a sentence about the topic name or filter ("contains wildcard
// '+'"), for error messages: "topic 'a/+' contains wildcard '+'". Never null.
[[nodiscard]] const char* describe(errc e) noexcept;

// The most bytes a topic name or filter can have: the 16-bit length of an MQTT string.
inline constexpr std::size_t max_bytes = text::max_mqtt_string_bytes;

// The prefix of an MQTT 5 shared subscription: "$share/NAME/FILTER" (spec 4.8.2).
inline constexpr std::string_view share_prefix = "$share/";

// Why `name` is not a valid topic name for PUBLISH (non-empty, at most max_bytes, well-formed
// UTF-8 without U+0000, no '+' or '#'); no error when it is one. Of several problems the first
// in this order is reported, and of the UTF-8 ones the first in the text.
[[nodiscard]] std::error_code name_problem(std::string_view name) noexcept;

// Why `filter` is not a valid topic filter: the rules of a name, except that '+' may stand as a
// whole level and '#' as the whole last level. "$share/..." is an ordinary filter here (as in
// MQTT 3.1.1); see subscription_problem().
[[nodiscard]] std::error_code filter_problem(std::string_view filter) noexcept;

// Why `filter` cannot be subscribed to under MQTT 5: filter_problem(), and a filter that starts
// with share_prefix must be a shared subscription with a share name free of wildcards and a
// non-empty filter after it.
[[nodiscard]] std::error_code subscription_problem(std::string_view filter) noexcept;

[[nodiscard]] inline bool valid_name(std::string_view name) noexcept { return !name_problem(name); }
[[nodiscard]] inline bool valid_filter(std::string_view filter) noexcept { return !filter_problem(filter); }
[[nodiscard]] inline bool valid_subscription(std::string_view filter) noexcept {
    return !subscription_problem(filter);
}

// "$share/NAME/FILTER" taken apart.
struct shared_subscription {
    std::string_view share_name;
    std::string_view filter;
};

// The parts of a shared subscription, or nullopt when `filter` does not start with share_prefix
// or has no '/' after the share name. The parts are not validated (see subscription_problem()).
[[nodiscard]] std::optional<shared_subscription> split_shared(std::string_view filter) noexcept;

// True when `filter` starts with share_prefix: the broker, not the filter, decides which of the
// sessions sharing it gets a message.
[[nodiscard]] inline bool is_shared(std::string_view filter) noexcept { return filter.starts_with(share_prefix); }

// True when the filter contains '+' or '#'.
[[nodiscard]] inline bool has_wildcard(std::string_view filter) noexcept {
    return filter.find_first_of("+#") != std::string_view::npos;
}

// The number of levels: the slashes plus one ("a//b" has three).
[[nodiscard]] std::size_t level_count(std::string_view topic_or_filter) noexcept;

// What next_level() answers after the last level.
inline constexpr std::size_t no_next_level = std::string_view::npos;

// The level of `s` that starts at `pos`, and where the next one starts (no_next_level after the
// last), for walking levels without allocating. Empty levels are real levels: "a/" is {"a", ""},
// "/a" is {"", "a"}.
[[nodiscard]] inline std::pair<std::string_view, std::size_t> next_level(std::string_view s, std::size_t pos) noexcept {
    const std::size_t slash = s.find('/', pos);
    if (slash == std::string_view::npos) return {s.substr(pos), no_next_level};
    return {s.substr(pos, slash - pos), slash + 1};
}

// True for the level "+" or "#".
[[nodiscard]] inline bool is_wildcard_level(std::string_view level) noexcept { return level == "+" || level == "#"; }

// True for a first level that only a filter spelling it out can match ("$SYS", "$aws"; spec
// 4.7.2): a filter whose first level is a wildcard never matches it.
[[nodiscard]] inline bool dollar_level(std::string_view level) noexcept {
    return !is_wildcard_level(level) && level.starts_with('$');
}

// True when `filter` matches the topic name `topic` (see the top of this file). Neither is
// validated: a caller checks them once (a subscription when it is made, a topic when it
// arrives) and matches often. An empty filter or topic matches nothing.
[[nodiscard]] bool matches(std::string_view filter, std::string_view topic) noexcept;

// Matching as AWS IoT Core does it: like matches(), except that '#' needs at least one level
// ("a/#" does not match "a"). It never matches more than matches().
[[nodiscard]] bool matches_as_aws_iot(std::string_view filter, std::string_view topic) noexcept;

// What a subscription to `filter` receives: matches(), where a shared subscription matches with
// the filter after "$share/NAME/" (the broker delivers its messages under their own topic).
[[nodiscard]] bool subscription_matches(std::string_view filter, std::string_view topic) noexcept;

// True when every topic that `narrower` matches is also matched by `wider` (both valid filters,
// matched as above). E.g. "cmd/gw/#" covers "cmd/gw/+/x" and "cmd/gw"; "cmd/+/x" does not cover
// "cmd/#".
[[nodiscard]] bool filter_covers(std::string_view wider, std::string_view narrower) noexcept;

}  // namespace thingmux::topic

template <>
struct std::is_error_code_enum<thingmux::topic::errc> : std::true_type {};
