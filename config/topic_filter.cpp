#include "config/topic_filter.hpp"

#include <cstddef>
#include <vector>

namespace thingmux::config {
namespace {

std::vector<std::string_view> levels(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        const auto slash = s.find('/', start);
        if (slash == std::string_view::npos) {
            out.push_back(s.substr(start));
            return out;
        }
        out.push_back(s.substr(start, slash - start));
        start = slash + 1;
    }
}

// Empty when valid UTF-8 without NUL (MQTT: UTF-8 strings must not hold U+0000 or surrogates).
std::string utf8_problem(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == 0) return "contains a NUL character";
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        }
        if ((c & 0xE0U) == 0xC0U) {
            len = 2;
            cp = c & 0x1FU;
        } else if ((c & 0xF0U) == 0xE0U) {
            len = 3;
            cp = c & 0x0FU;
        } else if ((c & 0xF8U) == 0xF0U) {
            len = 4;
            cp = c & 0x07U;
        } else {
            return "is not valid UTF-8";
        }
        if (i + len > s.size()) return "is not valid UTF-8";
        for (std::size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0U) != 0x80U) return "is not valid UTF-8";
            cp = (cp << 6U) | (cc & 0x3FU);
        }
        const bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
        if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return "is not valid UTF-8";
        i += len;
    }
    return {};
}

std::string common_problem(std::string_view s) {
    if (s.empty()) return "is empty";
    if (s.size() > 65535) return "is longer than 65535 bytes";
    return utf8_problem(s);
}

bool starts_with_dollar(std::string_view topic) {
    return !topic.empty() && topic.front() == '$';
}

// The levels of a topic or filter one at a time, without allocating: the app rules match every
// publish and delivery against their filters.
class level_reader {
public:
    explicit level_reader(std::string_view s) noexcept : rest_(s) {}
    [[nodiscard]] bool done() const noexcept { return done_; }
    std::string_view next() noexcept {
        const auto slash = rest_.find('/');
        if (slash == std::string_view::npos) {
            done_ = true;
            return rest_;
        }
        const auto level = rest_.substr(0, slash);
        rest_.remove_prefix(slash + 1);
        return level;
    }

private:
    std::string_view rest_;
    bool done_ = false;
};

}  // namespace

std::string topic_name_problem(std::string_view topic) {
    if (auto p = common_problem(topic); !p.empty()) return p;
    // Two scans: find_first_of() would search the set once per character of the topic.
    if (topic.find('+') != std::string_view::npos || topic.find('#') != std::string_view::npos)
        return "contains a wildcard ('+' or '#')";
    return {};
}

std::string topic_filter_problem(std::string_view filter) {
    if (auto p = common_problem(filter); !p.empty()) return p;
    const auto parts = levels(filter);
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const auto level = parts[i];
        if (level == "#") {
            if (i + 1 != parts.size()) return "'#' must be the last level";
        } else if (level != "+" && level.find_first_of("+#") != std::string_view::npos) {
            return "'+' and '#' must stand alone in their level (\"a/+/b\", \"a/#\")";
        }
    }
    return {};
}

bool topic_matches(std::string_view filter, std::string_view topic) {
    level_reader f{filter};
    level_reader t{topic};
    for (bool first = true; !f.done(); first = false) {
        const auto level = f.next();
        if (first && starts_with_dollar(topic) && (level == "+" || level == "#")) return false;
        if (level == "#") return true;  // the rest, including the parent level
        if (t.done()) return false;
        if (const auto topic_level = t.next(); level != "+" && level != topic_level) return false;
    }
    return t.done();
}

bool filter_covers(std::string_view granted, std::string_view requested) {
    const auto g = levels(granted);
    const auto r = levels(requested);
    // Topics of `requested` that start with '$' exist only if its first level is a literal
    // starting with '$'; a leading wildcard in `granted` never matches those.
    if ((g[0] == "+" || g[0] == "#") && r[0] != "+" && r[0] != "#" && starts_with_dollar(r[0])) return false;
    for (std::size_t i = 0;; ++i) {
        if (i < g.size() && g[i] == "#") return true;     // covers the rest and the parent
        if (i == r.size()) return i == g.size();          // same depth; deeper g needs '#', handled above
        if (i == g.size()) return false;                  // requested reaches deeper
        if (r[i] == "#") {
            // g[i] is not '#'. Only "+/#" still covers a leading "#": every topic has a first
            // level, so "#" and "+/#" match the same topics.
            return i == 0 && g[0] == "+" && g.size() >= 2 && g[1] == "#";
        }
        if (g[i] == "+") continue;                        // one level: '+' or literal in r
        if (r[i] == "+" || r[i] != g[i]) return false;    // g literal
    }
}

}  // namespace thingmux::config
