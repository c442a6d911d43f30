#include "common/topic.hpp"

#include "common/utf8.hpp"

#include <algorithm>
#include <string>
#include <tuple>

namespace thingmux::topic {

namespace {

class topic_category_impl final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "thingmux.topic"; }
    [[nodiscard]] std::string message(int value) const override { return describe(static_cast<errc>(value)); }
};

// The string rules every topic name and filter shares: length and UTF-8 (spec 1.5.4).
std::error_code string_problem(std::string_view s) noexcept {
    if (s.empty()) return errc::empty;
    if (s.size() > max_bytes) return errc::too_long;
    std::size_t i = 0;
    while (i < s.size()) {
        // ASCII, the common case, without a call.
        if (const auto byte = static_cast<std::uint8_t>(s[i]); byte < 0x80U) {
            if (byte == 0) return errc::contains_nul;
            ++i;
            continue;
        }
        std::uint32_t cp = 0;
        const std::size_t length = text::decode_utf8(s.substr(i), cp);
        if (length == 0) return errc::not_utf8;
        i += length;
    }
    return {};
}

// The wildcard rules of a filter's levels (spec 4.7.1).
std::error_code level_problem(std::string_view filter) noexcept {
    for (std::size_t pos = 0; pos != no_next_level;) {
        const auto [level, next] = next_level(filter, pos);
        if (level.find('#') != std::string_view::npos) {
            if (level.size() != 1) return errc::hash_not_whole_level;
            if (next != no_next_level) return errc::hash_not_last_level;
        }
        if (level.find('+') != std::string_view::npos && level.size() != 1) return errc::plus_not_whole_level;
        pos = next;
    }
    return {};
}

}  // namespace

const std::error_category& category() noexcept {
    static const topic_category_impl instance;
    return instance;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

const char* describe(errc e) noexcept {
    switch (e) {
    case errc::empty: return "is empty";
    case errc::too_long: return "is longer than 65535 bytes";
    case errc::contains_nul: return "contains U+0000";
    case errc::not_utf8: return "is not well-formed UTF-8";
    case errc::plus_in_name: return "contains wildcard '+'";
    case errc::hash_in_name: return "contains wildcard '#'";
    case errc::plus_not_whole_level: return "has '+' not occupying a whole level";
    case errc::hash_not_whole_level: return "has '#' not occupying a whole level";
    case errc::hash_not_last_level: return "has '#' not as the last level";
    case errc::empty_share_name: return "has an empty share name";
    case errc::wildcard_in_share_name: return "has a wildcard in the share name";
    case errc::share_without_filter: return "is a shared subscription without a topic filter";
    }
    return "is not valid for an unknown reason";
}

std::error_code name_problem(std::string_view name) noexcept {
    if (auto e = string_problem(name)) return e;
    // Two scans: find_first_of() would search the set once per character (every publish comes here).
    if (name.find('+') != std::string_view::npos) return errc::plus_in_name;
    if (name.find('#') != std::string_view::npos) return errc::hash_in_name;
    return {};
}

std::error_code filter_problem(std::string_view filter) noexcept {
    if (auto e = string_problem(filter)) return e;
    return level_problem(filter);
}

std::error_code subscription_problem(std::string_view filter) noexcept {
    if (!is_shared(filter)) return filter_problem(filter);
    if (auto e = string_problem(filter)) return e;
    const auto rest = filter.substr(share_prefix.size());
    const auto [name, inner] = next_level(rest, 0);
    if (name.empty()) return errc::empty_share_name;
    if (has_wildcard(name)) return errc::wildcard_in_share_name;
    if (inner == no_next_level || inner == rest.size()) return errc::share_without_filter;
    return level_problem(rest.substr(inner));
}

std::optional<shared_subscription> split_shared(std::string_view filter) noexcept {
    if (!is_shared(filter)) return std::nullopt;
    const auto rest = filter.substr(share_prefix.size());
    const auto [name, inner] = next_level(rest, 0);
    if (inner == no_next_level) return std::nullopt;
    return shared_subscription{.share_name = name, .filter = rest.substr(inner)};
}

std::size_t level_count(std::string_view topic_or_filter) noexcept {
    return static_cast<std::size_t>(std::count(topic_or_filter.begin(), topic_or_filter.end(), '/')) + 1;
}

bool matches(std::string_view filter, std::string_view topic) noexcept {
    if (filter.empty() || topic.empty()) return false;
    if (topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) return false;
    std::size_t f = 0;
    std::size_t t = 0;
    for (;;) {
        const auto [level, next_f] = next_level(filter, f);
        if (level == "#" && next_f == no_next_level) return true;  // the rest, including no level at all
        if (t == no_next_level) return false;                       // the filter has a level the topic lacks
        const auto [topic_level, next_t] = next_level(topic, t);
        if (level != "+" && level != topic_level) return false;
        if (next_f == no_next_level) return next_t == no_next_level;
        f = next_f;
        t = next_t;
    }
}

bool matches_as_aws_iot(std::string_view filter, std::string_view topic) noexcept {
    if (filter.empty() || topic.empty()) return false;
    std::size_t f = 0;
    std::size_t t = 0;
    for (bool first = true;; first = false) {
        const auto [level, next_f] = next_level(filter, f);
        if (t == no_next_level) return false;  // the filter has a level the topic lacks, even a '#'
        const auto [topic_level, next_t] = next_level(topic, t);
        if (first && is_wildcard_level(level) && topic_level.starts_with('$')) return false;
        if (level == "#") return true;
        if (level != "+" && level != topic_level) return false;
        if (next_f == no_next_level) return next_t == no_next_level;
        f = next_f;
        t = next_t;
    }
}

bool subscription_matches(std::string_view filter, std::string_view topic) noexcept {
    if (is_shared(filter)) {
        const auto shared = split_shared(filter);
        if (!shared) return false;
        filter = shared->filter;
    }
    return matches(filter, topic);
}

bool filter_covers(std::string_view wider, std::string_view narrower) noexcept {
    // Topics of `narrower` that start with '$' exist only if its first level is a literal
    // starting with '$'; a leading wildcard in `wider` never matches those.
    if (is_wildcard_level(next_level(wider, 0).first) && dollar_level(next_level(narrower, 0).first)) return false;
    std::size_t w = 0;  // no_next_level: `wider` has no more levels
    std::size_t n = 0;
    for (bool first = true;; first = false) {
        std::string_view wider_level;
        std::size_t next_w = no_next_level;
        if (w != no_next_level) {
            std::tie(wider_level, next_w) = next_level(wider, w);
            if (wider_level == "#") return true;  // covers the rest and the parent
        }
        if (n == no_next_level) return w == no_next_level;  // same depth; a deeper `wider` needs '#', handled above
        if (w == no_next_level) return false;                // `narrower` reaches deeper
        const auto [level, next_n] = next_level(narrower, n);
        if (level == "#") {
            // wider_level is not '#'. Only "+/#" still covers a leading "#": every topic has a
            // first level, so "#" and "+/#" match the same topics.
            return first && wider_level == "+" && next_w != no_next_level && next_level(wider, next_w).first == "#";
        }
        if (wider_level != "+" && (level == "+" || level != wider_level)) return false;  // a literal covers only itself
        w = next_w;
        n = next_n;
    }
}

}  // namespace thingmux::topic
