#include "daemon/mqtt/topic.hpp"

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

bool valid_utf8(std::string_view s) noexcept {
    if (s.size() > max_string_bytes) {
        return false;
    }
    std::size_t i = 0;
    while (i < s.size()) {
        const auto lead = static_cast<std::uint8_t>(s[i]);
        if (lead < 0x80) {
            if (lead == 0) {
                return false;
            }
            ++i;
            continue;
        }
        std::size_t length = 0;
        std::uint32_t cp = 0;
        std::uint32_t smallest = 0;  // below it the sequence is an overlong encoding
        if ((lead & 0xE0U) == 0xC0U) {
            length = 2;
            cp = lead & 0x1FU;
            smallest = 0x80;
        } else if ((lead & 0xF0U) == 0xE0U) {
            length = 3;
            cp = lead & 0x0FU;
            smallest = 0x800;
        } else if ((lead & 0xF8U) == 0xF0U) {
            length = 4;
            cp = lead & 0x07U;
            smallest = 0x10000;
        } else {
            return false;  // continuation byte without a lead, or 0xF8..0xFF
        }
        if (s.size() - i < length) {
            return false;
        }
        for (std::size_t k = 1; k < length; ++k) {
            const auto next = static_cast<std::uint8_t>(s[i + k]);
            if ((next & 0xC0U) != 0x80U) {
                return false;
            }
            cp = (cp << 6U) | (next & 0x3FU);
        }
        if (cp < smallest || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += length;
    }
    return true;
}

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
