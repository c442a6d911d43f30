#include "common/aws_credentials.hpp"

#include "common/plain_text.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <vector>

namespace thingmux::aws {
namespace {

using namespace std::string_view_literals;

constexpr std::size_t min_key_id_bytes = 16;
constexpr std::array<std::string_view, 3> credential_keys{"aws_access_key_id", "aws_secret_access_key",
                                                          "aws_session_token"};

// A stray carriage return (CR CR LF) counts as white space, so that a file's line ends never matter.
bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\r';
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

// Printable ASCII without white space: what secrets and tokens are made of (base64 and a few
// more), so that none can break a line, a header or a URL.
bool visible_ascii(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < '\x7f'; });
}

// A value without the comment that follows it after white space ("KEY  # rotated 2026-01").
std::string_view without_comment(std::string_view value) noexcept {
    for (std::size_t i = 1; i < value.size(); ++i) {
        if ((value[i] == '#' || value[i] == ';') && is_space(value[i - 1])) return trim(value.substr(0, i));
    }
    return value;
}

std::string at_line(int line) {
    return "line " + std::to_string(line) + ": ";
}

// One profile's credential keys as found, with the line of each.
struct found_keys {
    std::map<std::string, std::pair<std::string, int>, std::less<>> values;
    int line = 0;  // of the section header
};

lookup complete(const found_keys& keys, std::string_view profile) {
    const auto get = [&](std::string_view key) -> const std::pair<std::string, int>* {
        const auto it = keys.values.find(key);
        return it == keys.values.end() ? nullptr : &it->second;
    };
    const auto* id = get("aws_access_key_id");
    const auto* secret = get("aws_secret_access_key");
    const auto* token = get("aws_session_token");
    const auto name = "[" + std::string(profile) + "]";
    if (id == nullptr && secret == nullptr)
        return {std::nullopt, at_line(keys.line) + "profile " + name + " has no aws_access_key_id"};
    if (secret == nullptr)
        return {std::nullopt,
                at_line(id->second) + "profile " + name + " has aws_access_key_id but no aws_secret_access_key"};
    if (id == nullptr)
        return {std::nullopt,
                at_line(secret->second) + "profile " + name + " has aws_secret_access_key but no aws_access_key_id"};
    credentials c{id->first, secret->first, token != nullptr ? token->first : std::string{}, std::nullopt};
    if (auto why = problem(c); !why.empty()) return {std::nullopt, "profile " + name + ": " + why};
    return {std::move(c), {}};
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

bool valid_profile_name(std::string_view name) noexcept {
    return !name.empty() && name.size() <= max_profile_name_bytes && std::all_of(name.begin(), name.end(), [](char c) {
        return static_cast<unsigned char>(c) > ' ' && c != '\x7f' && c != '[' && c != ']';
    });
}

lookup parse_credentials_file(std::string_view text, std::string_view profile) {
    if (text.size() > max_credentials_file_bytes) return {std::nullopt, "is larger than 1 MiB"};
    std::map<std::string, int, std::less<>> sections;   // name -> line of its header
    std::map<std::string, int, std::less<>> keys_here;  // keys of the current section -> line
    std::optional<found_keys> wanted;
    std::string section;
    bool in_section = false;
    std::string last_key;  // the key an indented line would continue; empty: none
    text::line_reader lines(text);
    while (const auto next = lines.next()) {
        const auto line = *next;
        const int number = lines.number();
        const auto content = trim(line);
        if (content.empty()) {
            last_key.clear();
            continue;
        }
        if (content.front() == '#' || content.front() == ';') continue;
        if (is_space(line.front()) && !last_key.empty()) {
            // configparser reads an indented line as the previous value's continuation.
            if (std::find(credential_keys.begin(), credential_keys.end(), last_key) != credential_keys.end())
                return {std::nullopt, at_line(number) + "the value of " + last_key +
                                          " continues on an indented line; write it on one line"};
            continue;
        }
        if (content.front() == '[') {
            const auto close = content.find(']');
            const auto after = close == std::string_view::npos ? content : trim(content.substr(close + 1));
            if (close == std::string_view::npos || !(after.empty() || after.front() == '#' || after.front() == ';'))
                return {std::nullopt, at_line(number) + "a section header is '[NAME]' alone on its line"};
            section = std::string(trim(content.substr(1, close - 1)));
            if (section.empty()) return {std::nullopt, at_line(number) + "the section has no name"};
            if (const auto first = sections.find(section); first != sections.end())
                return {std::nullopt, at_line(number) + "section [" + section + "] is written twice (first at line " +
                                          std::to_string(first->second) + ")"};
            sections.emplace(section, number);
            keys_here.clear();
            last_key.clear();
            in_section = true;
            if (section == profile) wanted = found_keys{{}, number};
            continue;
        }
        const auto delimiter = content.find_first_of("=:");
        if (delimiter == std::string_view::npos || delimiter == 0)
            return {std::nullopt, at_line(number) + "expected 'key = value', a [section] or a comment"};
        if (!in_section) return {std::nullopt, at_line(number) + "'key = value' before the first [section]"};
        auto key = text::ascii_lower(trim(content.substr(0, delimiter)));
        if (const auto first = keys_here.find(key); first != keys_here.end())
            return {std::nullopt, at_line(number) + key + " is written twice in [" + section + "] (first at line " +
                                      std::to_string(first->second) + ")"};
        keys_here.emplace(key, number);
        if (wanted && section == profile &&
            std::find(credential_keys.begin(), credential_keys.end(), key) != credential_keys.end())
            wanted->values[key] = {std::string(without_comment(trim(content.substr(delimiter + 1)))), number};
        last_key = std::move(key);
    }
    if (!wanted) {
        std::string names;
        for (const auto& [name, line] : sections) {
            if (names.size() > 200) {
                names += ", ...";
                break;
            }
            names += (names.empty() ? "" : ", ") + name;
        }
        return {std::nullopt, "has no profile [" + std::string(profile) + "]" +
                                  (names.empty() ? std::string(" (no section at all)") : " (profiles: " + names + ")")};
    }
    return complete(*wanted, profile);
}

lookup credentials_from_environment(const environment& getenv) {
    const auto get = [&](const char* name) -> std::string_view {
        const char* v = getenv(name);
        return v == nullptr ? std::string_view{} : std::string_view{v};
    };
    const auto id = get("AWS_ACCESS_KEY_ID");
    const auto secret = get("AWS_SECRET_ACCESS_KEY");
    if (id.empty() && secret.empty()) return {std::nullopt, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"};
    if (secret.empty()) return {std::nullopt, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"};
    if (id.empty()) return {std::nullopt, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"};
    credentials c{std::string(id), std::string(secret), std::string(get("AWS_SESSION_TOKEN")), std::nullopt};
    if (const auto expiration = get("AWS_CREDENTIAL_EXPIRATION"); !expiration.empty()) {
        c.expiration = parse_timestamp(expiration);
        if (!c.expiration)
            return {std::nullopt, "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time such as 2026-01-31T12:00:00Z"};
    }
    if (auto why = problem(c); !why.empty()) return {std::nullopt, std::move(why)};
    return {std::move(c), {}};
}

std::string shared_credentials_file(const environment& getenv) {
    const char* home = getenv("HOME");
    const std::string_view home_dir = home == nullptr ? std::string_view{} : std::string_view{home};
    if (const char* file = getenv("AWS_SHARED_CREDENTIALS_FILE"); file != nullptr && *file != '\0') {
        const std::string_view f{file};
        if (f.starts_with("~/") && !home_dir.empty()) return std::string(home_dir) + std::string(f.substr(1));
        return std::string(f);
    }
    if (home_dir.empty()) return {};
    return std::string(home_dir) + "/.aws/credentials";
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
