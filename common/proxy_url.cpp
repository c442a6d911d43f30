#include "common/proxy_url.hpp"

#include <algorithm>
#include <array>
#include <charconv>

namespace thingmux::proxy {
namespace {

using std::string_view_literals::operator""sv;

bool is_control(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowered(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), lower);
    return out;
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// RFC 3986 percent-decoding; nullopt when a '%' is not followed by two hex digits.
std::optional<std::string> percent_decoded(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        const int hi = hex_value(s[i + 1]);
        const int lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

std::optional<std::uint16_t> port_number(std::string_view s) {
    if (s.empty() || s.size() > 5) return std::nullopt;
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc{} || end != s.data() + s.size() || value == 0 || value > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(value);
}

bool is_ipv6_text(std::string_view s) {
    return s.find(':') != std::string_view::npos && std::all_of(s.begin(), s.end(), [](char c) {
               return hex_value(c) >= 0 || c == ':' || c == '.';
           });
}

bool is_ipv4_text(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// Empty when `host` may name a proxy: letters, digits, '-', '.', '_' (names inside a company's
// network use it), at most 253 characters.
std::string host_problem(std::string_view host) {
    if (host.empty()) return "has no host";
    if (host.size() > 253) return "has a host name longer than 253 characters";
    for (const char c : host) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                        c == '.' || c == '_';
        if (!ok) return "has '" + std::string(1, c) + "' in its host name";
    }
    return {};
}

// A credential's problem, never quoting it.
std::string credentials_problem(const credentials& c) {
    if (c.user.empty()) return "has an empty user name";
    if (c.user.find(':') != std::string::npos) return "has ':' in the user name (Basic authentication cannot carry it)";
    const auto has_control = [](const std::string& s) { return std::any_of(s.begin(), s.end(), is_control); };
    if (has_control(c.user) || has_control(c.password)) return "has a control character in the user name or password";
    return {};
}

parsed_url failed(std::string problem) { return {std::nullopt, std::move(problem)}; }

}  // namespace

const char* to_string(scheme s) noexcept { return s == scheme::https ? "https" : "http"; }

std::string authority(std::string_view host, std::uint16_t port) {
    const bool v6 = host.find(':') != std::string_view::npos;
    return (v6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" + std::to_string(port);
}

std::string to_string(const url& u) { return std::string(to_string(u.scheme)) + "://" + authority(u.host, u.port); }

parsed_url parse_url(std::string_view text, bool scheme_optional) {
    text = trim(text);
    if (text.empty()) return failed("is empty");
    for (const char c : text) {
        if (is_control(c) || c == ' ') return failed("has a space or control character");
        if (static_cast<unsigned char>(c) >= 0x80) return failed("has a non-ASCII character (percent-encode it)");
    }
    url u;
    std::string_view rest = text;
    if (const auto sep = rest.find("://"); sep != std::string_view::npos) {
        const auto name = lowered(rest.substr(0, sep));
        if (name == "https") {
            u.scheme = scheme::https;
        } else if (name != "http") {
            return failed("has scheme '" + name + "': thingmuxd speaks to http:// and https:// proxies only");
        }
        rest.remove_prefix(sep + 3);
    } else if (!scheme_optional) {
        return failed("has no scheme: write http://HOST:PORT or https://HOST:PORT");
    }
    if (rest.ends_with('/')) rest.remove_suffix(1);
    if (rest.find_first_of("/?#") != std::string_view::npos)
        return failed("has a path, query or fragment: write only scheme://[user:password@]host:port");
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        const auto info = rest.substr(0, at);
        const auto colon = info.find(':');
        auto user = percent_decoded(info.substr(0, colon));
        auto password = percent_decoded(colon == std::string_view::npos ? ""sv : info.substr(colon + 1));
        if (!user || !password) return failed("has a '%' that is not followed by two hex digits in its user or password");
        credentials login{std::move(*user), std::move(*password)};
        if (auto problem = credentials_problem(login); !problem.empty()) return failed(std::move(problem));
        u.login = std::move(login);
        rest.remove_prefix(at + 1);
    }
    std::string_view host = rest;
    std::string_view port;
    bool has_port = false;
    if (rest.starts_with('[')) {
        const auto close = rest.find(']');
        if (close == std::string_view::npos) return failed("has '[' without ']' around its IPv6 address");
        host = rest.substr(1, close - 1);
        if (!is_ipv6_text(host)) return failed("has no IPv6 address between '[' and ']'");
        const auto after = rest.substr(close + 1);
        if (!after.empty() && !after.starts_with(':')) return failed("has something other than ':PORT' after ']'");
        has_port = !after.empty();
        if (has_port) port = after.substr(1);
    } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        if (host.find(':') != std::string_view::npos) return failed("has an IPv6 address without [brackets]");
        has_port = true;
        port = rest.substr(colon + 1);
        if (auto problem = host_problem(host); !problem.empty()) return failed(std::move(problem));
    } else if (auto problem = host_problem(host); !problem.empty()) {
        return failed(std::move(problem));
    }
    u.host = lowered(host);
    if (has_port) {
        const auto number = port_number(port);
        // Not quoted: "http://user:password" without a host reads as a host and a port.
        if (!number) return failed("has a port that is not a number in 1..65535");
        u.port = *number;
    } else {
        u.port = u.scheme == scheme::https ? 443 : 80;
    }
    return {std::move(u), {}};
}

bool bypasses(std::string_view no_proxy, std::string_view host, std::uint16_t port) {
    std::string target = lowered(host);
    if (target.starts_with('[') && target.ends_with(']')) target = target.substr(1, target.size() - 2);
    if (target.ends_with('.')) target.pop_back();
    const bool address = is_ipv4_text(target) || is_ipv6_text(target);
    std::size_t start = 0;
    while (start < no_proxy.size()) {
        auto end = no_proxy.find_first_of(", \t\r\n", start);
        if (end == std::string_view::npos) end = no_proxy.size();
        std::string_view entry = no_proxy.substr(start, end - start);
        start = end + 1;
        if (entry.empty()) continue;
        if (entry == "*") return true;
        std::string_view name = entry;
        std::optional<std::uint16_t> only_port;
        if (entry.starts_with('[')) {
            const auto close = entry.find(']');
            if (close == std::string_view::npos) continue;
            name = entry.substr(1, close - 1);
            const auto after = entry.substr(close + 1);
            if (!after.empty()) {
                if (!after.starts_with(':') || !(only_port = port_number(after.substr(1)))) continue;
            }
        } else if (const auto colon = entry.find(':');
                   colon != std::string_view::npos && entry.find(':', colon + 1) == std::string_view::npos) {
            name = entry.substr(0, colon);
            if (!(only_port = port_number(entry.substr(colon + 1)))) continue;
        }
        if (only_port && *only_port != port) continue;
        if (name.starts_with("*.")) name.remove_prefix(1);
        const bool suffix_form = name.starts_with('.');
        if (suffix_form) name.remove_prefix(1);
        std::string want = lowered(name);
        if (want.ends_with('.')) want.pop_back();
        if (want.empty()) continue;
        if (target == want) return true;
        if (!address && target.size() > want.size() && target.ends_with(want) &&
            target[target.size() - want.size() - 1] == '.')
            return true;
    }
    return false;
}

environment_choice choose(const environment& env, std::string_view host, std::uint16_t port) {
    environment_choice choice;
    const bool lower_set = !trim(env.https_proxy).empty();
    const std::string& value = lower_set ? env.https_proxy : env.https_proxy_upper;
    if (trim(value).empty()) return choice;
    const bool no_lower_set = !trim(env.no_proxy).empty();
    const std::string& exempt = no_lower_set ? env.no_proxy : env.no_proxy_upper;
    if (bypasses(exempt, host, port)) {
        choice.variable = no_lower_set ? "no_proxy" : "NO_PROXY";
        return choice;
    }
    choice.variable = lower_set ? "https_proxy" : "HTTPS_PROXY";
    auto parsed = parse_url(value, true);
    choice.proxy = std::move(parsed.value);
    choice.problem = std::move(parsed.problem);
    return choice;
}

parsed_credentials parse_credentials(std::string_view text) {
    if (text.ends_with('\n')) text.remove_suffix(1);
    if (text.ends_with('\r')) text.remove_suffix(1);
    if (text.empty()) return {std::nullopt, "is empty: write user:password on one line"};
    if (text.find_first_of("\r\n") != std::string_view::npos)
        return {std::nullopt, "holds more than one line: write user:password on one line"};
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) return {std::nullopt, "holds no ':' between user name and password"};
    credentials c{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
    if (auto problem = credentials_problem(c); !problem.empty()) return {std::nullopt, std::move(problem)};
    return {std::move(c), {}};
}

}  // namespace thingmux::proxy
