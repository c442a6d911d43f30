#include "common/topic.hpp"

#include "common/utf8.hpp"

#include <algorithm>
#include <string>

namespace thingmux::topic {

namespace {

class topic_category_impl final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "thingmux.topic"; }
    [[nodiscard]] std::string message(int value) const override { return describe(static_cast<errc>(value)); }
};

// Splits off the first level of a topic or filter. `more` tells "a" (no separator left) apart
// from "a/" (an empty level follows), which matters for matching.
struct level_split {
    std::string_view level;
    std::string_view rest;
    bool more = false;
};

level_split split_level(std::string_view s) noexcept {
    const auto slash = s.find('/');
    if (slash == std::string_view::npos) return {s, {}, false};
    return {s.substr(0, slash), s.substr(slash + 1), true};
}

bool is_wildcard(std::string_view level) noexcept { return level == "+" || level == "#"; }

// A first level that only a filter spelling it out can match ("$SYS", "$aws"; spec 4.7.2).
bool dollar_level(std::string_view level) noexcept { return !is_wildcard(level) && level.starts_with('$'); }

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
    for (;;) {
        const auto [level, rest, more] = split_level(filter);
        if (level.find('#') != std::string_view::npos) {
            if (level.size() != 1) return errc::hash_not_whole_level;
            if (more) return errc::hash_not_last_level;
        }
        if (level.find('+') != std::string_view::npos && level.size() != 1) return errc::plus_not_whole_level;
        if (!more) return {};
        filter = rest;
    }
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
    const auto [name, inner, more] = split_level(filter.substr(share_prefix.size()));
    if (name.empty()) return errc::empty_share_name;
    if (has_wildcard(name)) return errc::wildcard_in_share_name;
    if (!more || inner.empty()) return errc::share_without_filter;
    return level_problem(inner);
}

std::optional<shared_subscription> split_shared(std::string_view filter) noexcept {
    if (!is_shared(filter)) return std::nullopt;
    const auto [name, inner, more] = split_level(filter.substr(share_prefix.size()));
    if (!more) return std::nullopt;
    return shared_subscription{.share_name = name, .filter = inner};
}

std::size_t level_count(std::string_view topic_or_filter) noexcept {
    return static_cast<std::size_t>(std::count(topic_or_filter.begin(), topic_or_filter.end(), '/')) + 1;
}

bool matches(std::string_view filter, std::string_view topic) noexcept {
    if (filter.empty() || topic.empty()) return false;
    if (topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) return false;
    bool topic_done = false;  // every topic level has been matched
    for (;;) {
        const auto f = split_level(filter);
        if (f.level == "#" && !f.more) return true;  // the rest of the topic, including no level at all
        if (topic_done) return false;
        const auto t = split_level(topic);
        if (f.level != "+" && f.level != t.level) return false;
        if (!f.more) return !t.more;
        filter = f.rest;
        topic = t.rest;
        topic_done = !t.more;
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
    if (is_wildcard(split_level(wider).level) && dollar_level(split_level(narrower).level)) return false;
    bool wider_done = false;
    bool narrower_done = false;
    for (bool first = true;; first = false) {
        const auto w = wider_done ? level_split{} : split_level(wider);
        if (!wider_done && w.level == "#") return true;  // covers the rest and the parent
        if (narrower_done) return wider_done;           // same depth; a deeper `wider` needs '#', handled above
        if (wider_done) return false;                   // `narrower` reaches deeper
        const auto n = split_level(narrower);
        if (n.level == "#") {
            // w.level is not '#'. Only "+/#" still covers a leading "#": every topic has a first
            // level, so "#" and "+/#" match the same topics.
            return first && w.level == "+" && w.more && split_level(w.rest).level == "#";
        }
        if (w.level != "+" && (n.level == "+" || n.level != w.level)) return false;  // a literal covers only itself
        wider = w.rest;
        narrower = n.rest;
        wider_done = !w.more;
        narrower_done = !n.more;
    }
}

}  // namespace thingmux::topic
