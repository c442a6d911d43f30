#include "common/aws_credentials.hpp"

#include <algorithm>
#include <charconv>

namespace thingmux::aws {
namespace {

using namespace std::string_view_literals;

constexpr std::size_t min_key_id_bytes = 16;

// Printable ASCII without white space: what secrets and tokens are made of (base64 and a few
// more), so that none can break a line, a header or a URL.
bool visible_ascii(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < '\x7f'; });
}

// Digits of a fixed width at `at`; nullopt when they are not there.
std::optional<int> digits(std::string_view s, std::size_t at, std::size_t width) {
    if (at + width > s.size()) return std::nullopt;
    int v = 0;
    const auto* first = s.data() + at;
    const auto [ptr, ec] = std::from_chars(first, first + width, v);
    if (ec != std::errc{} || ptr != first + width || *first == '-' || *first == '+') return std::nullopt;
    return v;
}

}  // namespace

std::string key_id_hint(std::string_view access_key_id) {
    return std::string(access_key_id.substr(0, std::min<std::size_t>(4, access_key_id.size()))) + "…";
}

std::string problem(const credentials& c) {
    const auto& id = c.access_key_id;
    if (id.empty()) return "the access key id is empty";
    if (id.size() < min_key_id_bytes || id.size() > max_key_id_bytes)
        return "the access key id has " + std::to_string(id.size()) + " characters; AWS key ids have 16 to 128";
    if (!std::all_of(id.begin(), id.end(), [](char ch) {
            return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
        }))
        return "the access key id holds a character other than A-Z, a-z, 0-9 and '_'";
    if (c.secret_access_key.empty()) return "the secret access key of " + key_id_hint(id) + " is empty";
    if (c.secret_access_key.size() > max_secret_bytes)
        return "the secret access key of " + key_id_hint(id) + " is longer than 128 characters";
    if (!visible_ascii(c.secret_access_key))
        return "the secret access key of " + key_id_hint(id) +
               " holds white space or a character that is not printable ASCII";
    if (c.session_token.size() > max_session_token_bytes)
        return "the session token of " + key_id_hint(id) + " is longer than 16384 characters";
    if (!visible_ascii(c.session_token))
        return "the session token of " + key_id_hint(id) +
               " holds white space or a character that is not printable ASCII";
    return {};
}

std::optional<std::chrono::system_clock::time_point> parse_timestamp(std::string_view s) {
    // YYYY-MM-DDTHH:MM:SS, then optional .fraction, then Z or +HH:MM / -HH:MM.
    if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return std::nullopt;
    const auto year = digits(s, 0, 4);
    const auto month = digits(s, 5, 2);
    const auto day = digits(s, 8, 2);
    const auto hour = digits(s, 11, 2);
    const auto minute = digits(s, 14, 2);
    const auto second = digits(s, 17, 2);
    if (!year || !month || !day || !hour || !minute || !second || *hour > 23 || *minute > 59 || *second > 59)
        return std::nullopt;
    const std::chrono::year_month_day date{std::chrono::year{*year}, std::chrono::month{static_cast<unsigned>(*month)},
                                           std::chrono::day{static_cast<unsigned>(*day)}};
    if (!date.ok()) return std::nullopt;
    std::size_t at = 19;
    if (at < s.size() && s[at] == '.') {
        const auto start = ++at;
        while (at < s.size() && s[at] >= '0' && s[at] <= '9' && at - start < 9) ++at;
        if (at == start) return std::nullopt;  // fractions of a second are dropped
    }
    std::chrono::minutes offset{0};
    const auto zone = s.substr(at);
    if (zone == "Z"sv || zone == "z"sv) {
    } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
        const auto h = digits(zone, 1, 2);
        const auto m = digits(zone, 4, 2);
        if (!h || !m || *h > 23 || *m > 59) return std::nullopt;
        offset = std::chrono::hours{*h} + std::chrono::minutes{*m};
        if (zone[0] == '-') offset = -offset;
    } else {
        return std::nullopt;
    }
    const auto local = std::chrono::sys_days{date} + std::chrono::hours{*hour} + std::chrono::minutes{*minute} +
                       std::chrono::seconds{*second};
    return std::chrono::time_point_cast<std::chrono::system_clock::duration>(local - offset);
}

}  // namespace thingmux::aws
