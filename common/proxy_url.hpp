// Where an HTTP proxy is and how to log in to it: the proxy URLs of the configuration and of the
// standard environment (https_proxy / HTTPS_PROXY with no_proxy / NO_PROXY), and the
// "user:password" of a credentials file. Shared by config (which checks a URL where it is
// written) and the uplink (which connects through it). Pure: the caller reads the environment
// and the files and passes their values in. No I/O, no logging.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace thingmux::proxy {

// How the uplink talks to the proxy: plain HTTP, or HTTP inside TLS to the proxy itself.
enum class scheme : std::uint8_t { http, https };

[[nodiscard]] const char* to_string(scheme s) noexcept;  // "http", "https"

// Basic authentication (RFC 7617): the user holds no ':'; neither holds a control character.
struct credentials {
    std::string user;
    std::string password;
    friend bool operator==(const credentials&, const credentials&) = default;
};

struct url {
    proxy::scheme scheme = scheme::http;
    std::string host;  // DNS name or IP address; an IPv6 address without its brackets
    std::uint16_t port = 0;
    std::optional<credentials> login;  // "user:password@" written in the URL, percent-decoded
    friend bool operator==(const url&, const url&) = default;
};

// "proxy.example:3128", "[2001:db8::1]:3128": what messages and status show of a proxy (or of
// the endpoint a tunnel leads to).
[[nodiscard]] std::string authority(std::string_view host, std::uint16_t port);
// "http://proxy.example:3128": scheme, host and port; never the credentials.
[[nodiscard]] std::string to_string(const url& u);

// A URL, or what is wrong with it ("has no host", "port 99999 is not in 1..65535").
struct parsed_url {
    std::optional<url> value;
    std::string problem;
};

// Parses `http://[user[:password]@]host[:port][/]` and `https://...`. Without a port: 80 for
// http, 443 for https (as curl's https_proxy and the URL standard have it). User and password
// may be percent-encoded (a ':' or '@' in the password must be). With `scheme_optional`, text
// without "scheme://" is an http proxy, as most tools read `https_proxy=proxy.example:3128`.
[[nodiscard]] parsed_url parse_url(std::string_view text, bool scheme_optional = false);

// Whether a no_proxy list exempts `host` (to reach on `port`) from the proxy. Entries are
// separated by commas and/or white space and compared without regard to case:
//   `*`                    every host;
//   `example.com`, `.example.com`   example.com itself and every name under it;
//   `192.0.2.7`, `[2001:db8::1]`, `2001:db8::1`   that address, written exactly (no CIDR ranges);
//   any of these with `:PORT`       only connections to that port.
[[nodiscard]] bool bypasses(std::string_view no_proxy, std::string_view host, std::uint16_t port);

// The proxy variables of the environment, as the caller read them (empty: unset).
struct environment {
    std::string https_proxy;        // https_proxy
    std::string https_proxy_upper;  // HTTPS_PROXY
    std::string no_proxy;           // no_proxy
    std::string no_proxy_upper;     // NO_PROXY
};

// The proxy the environment names for a connection to host:port.
struct environment_choice {
    std::optional<url> proxy;  // none: connect directly
    // The variable that decided: "https_proxy" or "HTTPS_PROXY" (it names `proxy`, or holds
    // `problem`), "no_proxy" or "NO_PROXY" (it exempts the host); empty when none is set.
    std::string variable;
    std::string problem;  // the variable's value is not a proxy URL: what is wrong with it
};

// The lower-case variables win over the upper-case ones when both are set (as in curl and Python).
[[nodiscard]] environment_choice choose(const environment& env, std::string_view host, std::uint16_t port);

// The contents of a proxy credentials file: "user:password" on one line (a final line end is
// allowed), or what is wrong with it (never quoting the password).
struct parsed_credentials {
    std::optional<credentials> value;
    std::string problem;
};
[[nodiscard]] parsed_credentials parse_credentials(std::string_view text);

}  // namespace thingmux::proxy
