#include "thingmux/topic.hpp"

#include "ipc/codec.hpp"
#include "topic_match.hpp"

#include <cstddef>

namespace thingmux {

namespace {

constexpr std::size_t max_topic_bytes = 65535;  // MQTT's u16 string length

// Cuts `s` at the next '/', returning the level and leaving the rest (without the '/') in s.
// `more` says whether a '/' followed, so "a/" yields "a" and then one empty level.
std::string_view next_level(std::string_view& s, bool& more) noexcept {
    const auto slash = s.find('/');
    if (slash == std::string_view::npos) {
        const auto level = s;
        s = {};
        more = false;
        return level;
    }
    const auto level = s.substr(0, slash);
    s.remove_prefix(slash + 1);
    more = true;
    return level;
}

}  // namespace

bool valid_topic_name(std::string_view topic) noexcept {
    // Two scans: find_first_of() would search the set once per character (every publish comes here).
    return !topic.empty() && topic.size() <= max_topic_bytes && topic.find('+') == std::string_view::npos &&
           topic.find('#') == std::string_view::npos && ipc::valid_utf8(topic);
}

bool valid_topic_filter(std::string_view filter) noexcept {
    if (filter.empty() || filter.size() > max_topic_bytes || !ipc::valid_utf8(filter)) {
        return false;
    }
    bool more = true;
    while (more) {
        const auto level = next_level(filter, more);
        if (level.find_first_of("+#") == std::string_view::npos) {
            continue;
        }
        if (level.size() != 1) {
            return false;  // "a+" or "#b": a wildcard must be the whole level
        }
        if (level == "#" && more) {
            return false;  // '#' must be the last level
        }
    }
    return true;
}

bool topic_matches(std::string_view filter, std::string_view topic) noexcept {
    return valid_topic_filter(filter) && valid_topic_name(topic) && detail::topic_matches_unchecked(filter, topic);
}

namespace detail {

bool topic_matches_unchecked(std::string_view filter, std::string_view topic) noexcept {
    if (filter.empty() || topic.empty()) {
        return false;
    }
    // Wildcards at the first level do not match $-topics ($SYS/..., $aws/...).
    if (topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) {
        return false;
    }
    bool filter_more = true;
    bool topic_more = true;
    while (filter_more) {
        const auto f = next_level(filter, filter_more);
        if (f == "#") {
            return true;  // the parent level and everything below ("a/#" matches "a")
        }
        if (!topic_more) {
            return false;  // the filter has levels the topic lacks
        }
        const auto t = next_level(topic, topic_more);
        if (f != "+" && f != t) {
            return false;
        }
    }
    return !topic_more;
}

}  // namespace detail

}  // namespace thingmux
