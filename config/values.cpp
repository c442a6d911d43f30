#include "config/values.hpp"

#include <algorithm>
#include <cctype>
#include <limits>
#include <vector>

namespace thingmux::config::detail {
namespace {

constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

std::optional<std::uint64_t> parse_uint(std::string_view text) {
    if (text.empty() || text.size() > 20) return std::nullopt;
    std::uint64_t v = 0;
    for (const char c : text) {
        if (!is_digit(c)) return std::nullopt;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (v > (max_u64 - d) / 10) return std::nullopt;
        v = v * 10 + d;
    }
    return v;
}

parsed<std::chrono::milliseconds> parse_duration(std::string_view text) {
    constexpr std::string_view hint = "write e.g. \"500ms\", \"60s\", \"2m\", \"1h\", \"7d\" or a number of seconds";
    // Far beyond any sensible setting; keeps the arithmetic clear of overflow.
    constexpr std::uint64_t max_ms = 100ULL * 365 * 24 * 3600 * 1000;
    if (text.empty()) return {{}, "is empty", std::string(hint)};
    if (auto whole = parse_uint(text)) {
        if (*whole > max_ms / 1000) return {{}, "is too long", std::string(hint)};
        return {std::chrono::milliseconds(*whole * 1000), {}, {}};
    }
    std::uint64_t total = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        const auto digits_start = i;
        while (i < text.size() && is_digit(text[i])) ++i;
        if (i == digits_start) {
            if (text[i] == '-') return {{}, "must not be negative", std::string(hint)};
            return {{}, "'" + std::string(text) + "' is not a duration", std::string(hint)};
        }
        const auto number = parse_uint(text.substr(digits_start, i - digits_start));
        if (i < text.size() && (text[i] == '.' || text[i] == ',')) {
            return {{}, "'" + std::string(text) + "' has a fraction", "use a smaller unit, e.g. \"1500ms\" for 1.5 s"};
        }
        const auto unit_start = i;
        while (i < text.size() && !is_digit(text[i]) && text[i] != ' ') ++i;
        const auto unit = text.substr(unit_start, i - unit_start);
        std::uint64_t factor = 0;
        if (unit == "ms") factor = 1;
        else if (unit == "s") factor = 1000;
        else if (unit == "m" || unit == "min") factor = 60'000;
        else if (unit == "h") factor = 3'600'000;
        else if (unit == "d") factor = 86'400'000;
        if (factor == 0) {
            if (unit.empty()) return {{}, "'" + std::string(text) + "' needs a unit after each number", std::string(hint)};
            return {{}, "unknown duration unit '" + std::string(unit) + "' in '" + std::string(text) + "'",
                    "units are ms, s, m, h, d"};
        }
        if (!number || *number > max_ms / factor || total + *number * factor > max_ms) {
            return {{}, "'" + std::string(text) + "' is too long", std::string(hint)};
        }
        total += *number * factor;
    }
    return {std::chrono::milliseconds(total), {}, {}};
}

parsed<std::uint64_t> parse_size(std::string_view text) {
    constexpr std::string_view hint = "write a number of bytes or e.g. \"512KiB\", \"8MiB\", \"1GiB\"";
    if (text.empty()) return {{}, "is empty", std::string(hint)};
    std::size_t i = 0;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i == 0) {
        if (text[0] == '-') return {{}, "must not be negative", std::string(hint)};
        return {{}, "'" + std::string(text) + "' is not a size", std::string(hint)};
    }
    const auto number = parse_uint(text.substr(0, i));
    if (i < text.size() && text[i] == '.') {
        return {{}, "'" + std::string(text) + "' has a fraction", "use a smaller unit, e.g. \"1536KiB\" for 1.5 MiB"};
    }
    auto unit = text.substr(i);
    if (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
    std::uint64_t factor = 0;
    if (unit.empty() || unit == "B") factor = 1;
    else if (unit == "KiB") factor = 1024;
    else if (unit == "MiB") factor = 1024ULL * 1024;
    else if (unit == "GiB") factor = 1024ULL * 1024 * 1024;
    if (factor == 0) {
        const auto l = lower(unit);
        std::string suggestion = "units are B, KiB, MiB, GiB (powers of 1024)";
        if (l == "k" || l == "kb" || l == "kib") suggestion = "did you mean 'KiB' (1024 bytes)?";
        else if (l == "m" || l == "mb" || l == "mib") suggestion = "did you mean 'MiB' (1024 KiB)?";
        else if (l == "g" || l == "gb" || l == "gib") suggestion = "did you mean 'GiB' (1024 MiB)?";
        return {{}, "unknown size unit '" + std::string(unit) + "' in '" + std::string(text) + "'", suggestion};
    }
    if (!number || *number > max_u64 / factor) return {{}, "'" + std::string(text) + "' is too large", std::string(hint)};
    return {*number * factor, {}, {}};
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const auto up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0U : 1U)});
            diag = up;
        }
    }
    return row[b.size()];
}

std::string closest(std::string_view word, std::span<const std::string_view> candidates) {
    if (word.size() > 256) return {};
    const auto w = lower(word);
    std::string best;
    std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
    for (const auto c : candidates) {
        const auto lc = lower(c);
        auto d = edit_distance(w, lc);
        // A truncated or extended name ("warning" for "warn", "drop_oldest" for "drop_oldest_qos0").
        if (std::min(w.size(), lc.size()) >= 3 && (w.starts_with(lc) || lc.starts_with(w))) d = std::min<std::size_t>(d, 1);
        if (d < best_distance) {
            best_distance = d;
            best = std::string(c);
        }
    }
    return best;
}

}  // namespace thingmux::config::detail
