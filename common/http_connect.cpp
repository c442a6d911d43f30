#include "common/http_connect.hpp"

#include <algorithm>

namespace thingmux::http_connect {
namespace {

using std::string_view_literals::operator""sv;

class category_impl final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "thingmux.http_connect"; }
    [[nodiscard]] std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
        case errc::not_http: return "the answer does not start with \"HTTP/\"";
        case errc::bad_status_line: return "the answer's status line is not \"HTTP/1.x NNN reason\"";
        case errc::bad_header_line: return "the answer has a malformed header line";
        case errc::too_many_header_lines:
            return "the answer has more than " + std::to_string(max_header_lines) + " header lines";
        case errc::head_too_large:
            return "the answer's head is longer than " + std::to_string(max_head_bytes) + " bytes";
        }
        return "unknown HTTP CONNECT error " + std::to_string(value);
    }
};

constexpr auto http_name = "HTTP/"sv;

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// A control character other than horizontal tab: never part of a status line or field value.
bool is_forbidden(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
}

// RFC 9110 5.6.2 tchar.
bool is_token_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
           "!#$%&'*+-.^_`|~"sv.find(c) != std::string_view::npos;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) {
               return lower(x) == lower(y);
           });
}

std::string_view trim_whitespace(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

const std::error_category& category() noexcept {
    static const category_impl instance;
    return instance;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

std::string base64(std::string_view bytes) {
    static constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16U |
                       static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8U |
                       static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 2]));
        for (const unsigned shift : {18U, 12U, 6U, 0U}) out.push_back(alphabet[(n >> shift) & 0x3FU]);
    }
    if (const std::size_t left = bytes.size() - i; left > 0) {
        std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16U;
        if (left == 2) n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8U;
        out.push_back(alphabet[(n >> 18U) & 0x3FU]);
        out.push_back(alphabet[(n >> 12U) & 0x3FU]);
        out.push_back(left == 2 ? alphabet[(n >> 6U) & 0x3FU] : '=');
        out.push_back('=');
    }
    return out;
}

std::string request(std::string_view host, std::uint16_t port, const proxy::credentials* login) {
    const auto target = proxy::authority(host, port);
    std::string r = "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n";
    if (login != nullptr) r += "Proxy-Authorization: Basic " + base64(login->user + ":" + login->password) + "\r\n";
    r += "\r\n";
    return r;
}

verdict classify(int status) noexcept {
    if (status >= 200 && status <= 299) return verdict::tunnel;
    // 401 is an origin server's, which CONNECT has not reached yet: from the proxy it means the
    // same as 407 (tinyproxy answers wrong credentials with it).
    if (status == 407 || status == 401) return verdict::auth_required;
    if (status == 403) return verdict::forbidden;
    if ((status >= 500 && status <= 599) || status == 408 || status == 429) return verdict::refused;
    return verdict::refused_permanently;
}

std::size_t response_parser::feed(std::span<const std::uint8_t> bytes) {
    std::size_t taken = 0;
    for (const auto byte : bytes) {
        if (state_ != state::need_more) break;
        if (head_.size() == max_head_bytes) {
            fail(errc::head_too_large);
            break;
        }
        const auto c = static_cast<char>(byte);
        head_.push_back(c);
        ++taken;
        // Waiting for 8 KiB from a peer that is not an HTTP proxy (a TLS server answering with an
        // alert, an MQTT broker, SSH) would only delay the error.
        if (head_.size() <= http_name.size() && !http_name.starts_with(head_)) {
            fail(errc::not_http);
        } else if (c == '\n' && (head_.ends_with("\n\n") || head_.ends_with("\n\r\n"))) {
            parse_head();
        }
    }
    return taken;
}

void response_parser::fail(errc e) {
    state_ = state::failed;
    error_ = e;
}

void response_parser::parse_head() {
    // Lines end with CRLF; a bare LF is accepted as well (RFC 9112 section 2.2).
    std::string_view rest = head_;
    bool first = true;
    while (!rest.empty()) {
        const auto end = rest.find('\n');
        auto line = rest.substr(0, end);
        rest.remove_prefix(end + 1);
        if (line.ends_with('\r')) line.remove_suffix(1);
        if (first) {
            if (!parse_status_line(line)) return fail(errc::bad_status_line);
            first = false;
            continue;
        }
        if (line.empty()) break;  // the end of the head: feed() stopped right after it
        if (++header_lines_ > max_header_lines) return fail(errc::too_many_header_lines);
        if (!parse_header_line(line)) return fail(errc::bad_header_line);
    }
    state_ = state::done;
}

bool response_parser::parse_status_line(std::string_view line) {
    // HTTP-version SP status-code SP [reason-phrase]; a missing SP after the code is tolerated.
    if (line.size() < 12 || !line.starts_with("HTTP/1.") || !is_digit(line[7]) || line[8] != ' ') return false;
    if (!is_digit(line[9]) || line[9] == '0' || !is_digit(line[10]) || !is_digit(line[11])) return false;
    if (line.size() > 12 && line[12] != ' ') return false;
    if (std::any_of(line.begin(), line.end(), is_forbidden)) return false;
    status_ = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    status_line_ = std::string(line);
    return true;
}

bool response_parser::parse_header_line(std::string_view line) {
    // An obsolete folded line (starting with white space) is refused, as RFC 9112 5.2 allows.
    const auto colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    const auto name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char)) return false;
    const auto value = trim_whitespace(line.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), is_forbidden)) return false;
    if (equals_ignoring_case(name, "Proxy-Authenticate") && challenges_.size() < max_challenges)
        challenges_.emplace_back(value.substr(0, max_challenge_bytes));
    return true;
}

std::string_view response_parser::received_start() const noexcept {
    std::string_view s = head_;
    s = s.substr(0, std::min<std::size_t>(s.find('\n'), 128));
    if (s.ends_with('\r')) s.remove_suffix(1);
    return s;
}

}  // namespace thingmux::http_connect
