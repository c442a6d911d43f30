// The HTTP/1.1 CONNECT exchange that opens a tunnel through a proxy (RFC 9110 section 9.3.6,
// RFC 9112): the request we send, and a strict, bounded parser of the head of the proxy's answer.
// Pure: bytes in, values out; no I/O, no logging. What the proxy sent is kept as it came: escape
// it (text::printable) before it goes into a message.
#pragma once

#include "common/proxy_url.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace thingmux::http_connect {

// The most bytes the head of an answer (status line, header lines, the empty line) may have; a
// proxy's answer to CONNECT is a few hundred. Beyond it the answer is refused, not buffered.
inline constexpr std::size_t max_head_bytes = 8 * 1024;
// The most header lines an answer may have.
inline constexpr std::size_t max_header_lines = 64;
// Proxy-Authenticate values kept for messages, and the bytes kept of each.
inline constexpr std::size_t max_challenges = 4;
inline constexpr std::size_t max_challenge_bytes = 256;

// "CONNECT host:port HTTP/1.1", a Host header, and with `login` a Proxy-Authorization: Basic
// header. `host` is a validated host name or IP address (an IPv6 one without brackets).
[[nodiscard]] std::string request(std::string_view host, std::uint16_t port, const proxy::credentials* login);

// Standard base64 with padding (RFC 4648 section 4), as Basic authentication needs it.
[[nodiscard]] std::string base64(std::string_view bytes);

// Why an answer is not a well-formed HTTP/1.x response head.
enum class errc : std::uint8_t {
    not_http = 1,          // the first bytes are not "HTTP/": not an HTTP proxy (or one that wants TLS)
    bad_status_line,       // not "HTTP/1.x NNN reason"
    bad_header_line,       // no "name: value", a control character, or an obsolete folded line
    too_many_header_lines, // more than max_header_lines
    head_too_large,        // no end of the head within max_head_bytes
};

// The category of errc ("thingmux.http_connect").
[[nodiscard]] const std::error_category& category() noexcept;
[[nodiscard]] std::error_code make_error_code(errc e) noexcept;

// What a status code means for the tunnel, and whether trying again can help.
enum class verdict : std::uint8_t {
    tunnel,               // 2xx: the bytes that follow the head are the endpoint's
    auth_required,        // 407 (or 401): credentials missing or refused (a configuration change)
    forbidden,            // 403: the proxy does not allow this destination (a configuration change)
    refused,              // 5xx, 408, 429: the proxy or the way beyond it may recover
    refused_permanently,  // any other status: 1xx, 3xx, 4xx (a configuration change)
};
[[nodiscard]] verdict classify(int status) noexcept;

// Reads the head of the proxy's answer to CONNECT, in pieces as they arrive.
class response_parser {
public:
    enum class state : std::uint8_t { need_more, done, failed };

    // Takes bytes in arrival order up to the end of the head; returns how many of `bytes` it
    // took. The bytes after the head are the tunnel's (after a 2xx answer). Takes nothing once
    // done or failed. Fails as soon as the bytes cannot start an HTTP answer.
    std::size_t feed(std::span<const std::uint8_t> bytes);

    [[nodiscard]] state current() const noexcept { return state_; }
    [[nodiscard]] std::error_code error() const noexcept { return error_; }  // when failed
    [[nodiscard]] int status() const noexcept { return status_; }            // when done: 100..999
    // When done: the status line without its line end ("HTTP/1.1 407 Proxy Authentication Required").
    [[nodiscard]] std::string_view status_line() const noexcept { return status_line_; }
    // When done: the Proxy-Authenticate values (at most max_challenges, each cut to
    // max_challenge_bytes), e.g. `Basic realm="corp"`.
    [[nodiscard]] const std::vector<std::string>& challenges() const noexcept { return challenges_; }
    // The first line of what arrived so far, or its first bytes (at most 128), for a message
    // about an answer that is not HTTP.
    [[nodiscard]] std::string_view received_start() const noexcept;
    [[nodiscard]] std::size_t received_bytes() const noexcept { return head_.size(); }

private:
    void fail(errc e);
    void parse_head();
    bool parse_status_line(std::string_view line);
    bool parse_header_line(std::string_view line);

    state state_ = state::need_more;
    std::error_code error_;
    std::string head_;  // the head so far, at most max_head_bytes
    int status_ = 0;
    std::string status_line_;
    std::vector<std::string> challenges_;
    std::size_t header_lines_ = 0;
};

}  // namespace thingmux::http_connect

template <>
struct std::is_error_code_enum<thingmux::http_connect::errc> : std::true_type {};
