#include "daemon/mqtt/topic.hpp"

#include "common/utf8.hpp"

#include <cstddef>
#include <cstdint>

namespace thingmux::mqtt {

namespace {

constexpr std::size_t max_string_bytes = 65535;  // MQTT strings carry a 16-bit length
constexpr std::string_view share_prefix = "$share/";

// Splits off the first level of a topic or filter. `more` tells "a" (no separator left) apart
// from "a/" (an empty level follows), which matters for matching.
struct level_split {
    std::string_view level;
    std::string_view rest;
    bool more = false;
};

level_split split_level(std::string_view s) noexcept {
    const auto slash = s.find('/');
    if (slash == std::string_view::npos) {
        return {s, {}, false};
    }
    return {s.substr(0, slash), s.substr(slash + 1), true};
}

}  // namespace

bool valid_utf8(std::string_view s) noexcept { return s.size() <= max_string_bytes && text::valid_utf8(s); }

const char* topic_name_problem(std::string_view topic) noexcept {
    if (topic.empty()) {
        return "is empty";
    }
    if (!valid_utf8(topic)) {
        return "is not well-formed UTF-8 of at most 65535 bytes without U+0000";
    }
    if (topic.find('+') != std::string_view::npos) {
        return "contains wildcard '+'";
    }
    if (topic.find('#') != std::string_view::npos) {
        return "contains wildcard '#'";
    }
    return nullptr;
}

const char* topic_filter_problem(std::string_view filter) noexcept {
    if (filter.empty()) {
        return "is empty";
    }
    if (!valid_utf8(filter)) {
        return "is not well-formed UTF-8 of at most 65535 bytes without U+0000";
    }
    if (filter.starts_with(share_prefix)) {
        const auto [name, inner, more] = split_level(filter.substr(share_prefix.size()));
        if (name.empty()) {
            return "has an empty share name";
        }
        if (has_wildcard(name)) {
            return "has a wildcard in the share name";
        }
        if (!more || inner.empty()) {
            return "is a shared subscription without a topic filter";
        }
        filter = inner;
    }
    for (;;) {
        const auto [level, rest, more] = split_level(filter);
        if (level.find('#') != std::string_view::npos) {
            if (level.size() != 1) {
                return "has '#' not occupying a whole level";
            }
            if (more) {
                return "has '#' not as the last level";
            }
        }
        if (level.find('+') != std::string_view::npos && level.size() != 1) {
            return "has '+' not occupying a whole level";
        }
        if (!more) {
            return nullptr;
        }
        filter = rest;
    }
}

bool valid_topic_name(std::string_view topic) noexcept {
    return topic_name_problem(topic) == nullptr;
}

bool valid_topic_filter(std::string_view filter) noexcept {
    return topic_filter_problem(filter) == nullptr;
}

bool topic_matches(std::string_view filter, std::string_view topic) noexcept {
    // The broker delivers a shared subscription's messages under their own topic, so what has to
    // match is the filter after "$share/NAME/".
    if (filter.starts_with(share_prefix)) {
        const auto [name, inner, more] = split_level(filter.substr(share_prefix.size()));
        if (!more) {
            return false;
        }
        filter = inner;
    }
    if (filter.empty() || topic.empty()) {
        return false;
    }
    // Spec 4.7.2: "$SYS/..." and the like are only matched by filters that spell the first level.
    if (topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) {
        return false;
    }
    bool topic_done = false;  // every topic level has been matched
    for (;;) {
        const auto f = split_level(filter);
        if (f.level == "#" && !f.more) {
            return true;  // the rest of the topic, including no level at all ("a/#" matches "a")
        }
        if (topic_done) {
            return false;
        }
        const auto t = split_level(topic);
        if (f.level != "+" && f.level != t.level) {
            return false;
        }
        if (!f.more) {
            return !t.more;
        }
        filter = f.rest;
        topic = t.rest;
        topic_done = !t.more;
    }
}

bool has_wildcard(std::string_view filter) noexcept {
    return filter.find_first_of("+#") != std::string_view::npos;
}

}  // namespace thingmux::mqtt
