// "HOST:PORT" values of the configuration file (mqtt.tcp, metrics.listen). Internal to config/.
#pragma once

#include "config/config.hpp"

#include <string>
#include <string_view>
#include <variant>

namespace thingmux::config::detail {

struct ip_endpoint {
    tcp_address address;
    bool loopback = false;  // 127.0.0.0/8 or ::1
};

// "127.0.0.1:1883" or "[::1]:1883" -> an IP address (a host name is refused, never resolved) and a
// port from 1 to 65535, or what is wrong with it ("is not HOST:PORT (…)", "has port '…': …",
// "'…' is not an IP address (host names are not resolved)"). `example` ("127.0.0.1:1883") shows
// the right form in the messages.
[[nodiscard]] std::variant<ip_endpoint, std::string> parse_ip_endpoint(std::string_view text,
                                                                        std::string_view example);

}  // namespace thingmux::config::detail
