#include "config/ip_endpoint.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>

namespace thingmux::config::detail {

std::variant<ip_endpoint, std::string> parse_ip_endpoint(std::string_view text, std::string_view example) {
    const auto port_of_example = example.substr(example.rfind(':') + 1);
    const auto brackets = "is not HOST:PORT (an IPv6 address goes in brackets: [::1]:" + std::string(port_of_example) + ")";
    std::string_view host;
    std::string_view port;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return brackets;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return "is not HOST:PORT (e.g. " + std::string(example) + ")";
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) return brackets;
    }
    ip_endpoint e;
    e.address.host = std::string(host);
    unsigned value = 0;
    const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || ptr != port.data() + port.size() || value == 0 || value > 65535)
        return "has port '" + std::string(port) + "': a port is a number from 1 to 65535";
    e.address.port = static_cast<std::uint16_t>(value);
    in_addr v4{};
    in6_addr v6{};
    if (::inet_pton(AF_INET, e.address.host.c_str(), &v4) == 1) {
        e.loopback = (ntohl(v4.s_addr) >> 24U) == 127U;
    } else if (::inet_pton(AF_INET6, e.address.host.c_str(), &v6) == 1) {
        e.loopback = IN6_IS_ADDR_LOOPBACK(&v6);
    } else {
        return "'" + e.address.host + "' is not an IP address (host names are not resolved)";
    }
    return e;
}

}  // namespace thingmux::config::detail
