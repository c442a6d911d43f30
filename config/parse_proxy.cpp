// A Thing's way through an HTTP proxy (docs/config.md "things[].proxy", docs/connecting.md):
// proxy, proxy_credentials and proxy_ca.
#include "config/parser.hpp"

namespace thingmux::config::detail {
namespace {

constexpr const char* credentials_hint =
    "put user:password on one line in a file only thingmuxd may read, and name it in proxy_credentials "
    "(a path, or credential:NAME for a systemd credential)";

}  // namespace

void parser::parse_proxy(const fields& f, const std::string& path, thing& t) {
    const auto p = [&](std::string_view key) { return path + "." + std::string(key); };
    auto& proxy = t.proxy;
    const auto* url = find(f, "proxy");
    if (url != nullptr) {
        if (auto s = string(url->value, p("proxy"))) {
            if (*s == "env") {
                proxy.mode = proxy_mode::environment;
            } else if (auto parsed = proxy::parse_url(*s); parsed.value) {
                proxy.mode = proxy_mode::url;
                proxy.url = std::move(*parsed.value);
            } else {
                // Never quoted: the text may hold a password.
                error(url->value, p("proxy"), "is not a usable proxy URL: it " + parsed.problem,
                      "write http://HOST:PORT or https://HOST:PORT (an HTTP proxy), or env (https_proxy and no_proxy "
                      "of thingmuxd's environment)");
            }
        }
    }
    const auto* credentials = find(f, "proxy_credentials");
    if (credentials != nullptr) {
        if (auto v = file_or_credential(credentials->value, p("proxy_credentials"))) proxy.credentials = std::move(*v);
    }
    const auto* ca = find(f, "proxy_ca");
    if (ca != nullptr) {
        if (auto v = file_or_credential(ca->value, p("proxy_ca"))) proxy.ca = std::move(*v);
    }

    if (proxy.mode == proxy_mode::url && proxy.url.login) {
        if (credentials != nullptr) {
            error(credentials->value, p("proxy_credentials"),
                  "the proxy URL holds a user name and password already", "keep one of the two: proxy_credentials");
        } else {
            // Accepted, as every tool accepts it in a proxy URL; but the configuration file is
            // usually readable by more users than thingmuxd.
            warn(url->value, p("proxy"), "the proxy password is written in the configuration file", credentials_hint);
        }
    }
    // A key that cannot take effect is a mistake to point out, not to ignore.
    for (const auto& [key, x] : {std::pair<std::string_view, const field*>{"proxy_credentials", credentials},
                                 {"proxy_ca", ca}}) {
        if (x != nullptr && url == nullptr)
            error(x->value, p(key), "has no effect without proxy:", "add proxy: http://HOST:PORT (or env), or remove it");
    }
    if (ca != nullptr && proxy.mode == proxy_mode::url && proxy.url.scheme == proxy::scheme::http) {
        error(ca->value, p("proxy_ca"), "has no effect with an http:// proxy: thingmuxd speaks no TLS to it",
              "write https:// in proxy: when the proxy itself speaks TLS, or remove proxy_ca");
    }
}

}  // namespace thingmux::config::detail
