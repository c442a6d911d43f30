// The HTTP proxy an uplink goes through (docs/connecting.md), as the composition root resolved
// it from the configuration (things[].proxy) or the environment (https_proxy, no_proxy).
#pragma once

#include "common/proxy_url.hpp"

#include <filesystem>
#include <string>

namespace thingmux::uplink {

struct proxy_route {
    proxy::url url;  // the proxy; its login is used when credentials_file is empty
    // The setting that named the proxy, for messages: "proxy" (the configuration), "https_proxy"
    // or "HTTPS_PROXY" (the environment).
    std::string named_by = "proxy";
    // The file holding "user:password" (proxy_credentials, resolved), read at every attempt;
    // empty: the URL's login, or none.
    std::filesystem::path credentials_file;
    // https:// proxies: the CA file for the proxy's certificate (proxy_ca, resolved); empty: the
    // system's CA store.
    std::filesystem::path ca_file;
    // Set when the setting names no usable proxy (a malformed https_proxy): every attempt fails
    // with this message, since connecting directly may be exactly what the network forbids.
    std::string unusable;
    friend bool operator==(const proxy_route&, const proxy_route&) = default;
};

// "http://proxy.corp:3128 (from https_proxy)": what logs and status show; never credentials.
[[nodiscard]] std::string describe(const proxy_route& r);

}  // namespace thingmux::uplink
