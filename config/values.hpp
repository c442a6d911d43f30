// Scalar value syntax of the configuration file: durations, sizes, names. Internal to config/
// (used by parse.cpp and its tests).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace thingmux::config::detail {

// A value, or why the text is not one (and a hint).
template <class T>
struct parsed {
    std::optional<T> value;
    std::string problem;
    std::string hint;
};

// Decimal digits only, no sign; nullopt on anything else or overflow.
[[nodiscard]] std::optional<std::uint64_t> parse_uint(std::string_view text);

// "500ms", "60s", "2m", "1h", "7d", "1h30m", or an integer number of seconds.
[[nodiscard]] parsed<std::chrono::milliseconds> parse_duration(std::string_view text);

// An integer number of bytes, or with a unit: "512KiB", "8 MiB", "1GiB", "100B".
[[nodiscard]] parsed<std::uint64_t> parse_size(std::string_view text);

// Levenshtein distance (bytes).
[[nodiscard]] std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is close enough to be a likely typo, else empty.
[[nodiscard]] std::string closest(std::string_view word, std::span<const std::string_view> candidates);

}  // namespace thingmux::config::detail
