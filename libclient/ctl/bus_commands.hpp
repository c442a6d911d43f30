// thingmuxctl's operator commands, which talk to thingmuxd's D-Bus management interface
// (docs/dbus.md) on the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured).
#pragma once

#include "ipc/admin_clients.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace thingmux::ctl {

// How full a Thing's retained cache is: D-Bus RetainedMessages, RetainedBytes, RetainedDropped.
struct retained_cache_figures {
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
    std::uint64_t dropped = 0;
};
// Reads them from the Thing's object; why not, when thingmuxd's D-Bus interface cannot be read.
[[nodiscard]] std::variant<retained_cache_figures, std::string> read_retained_cache(const std::string& thing);

// How a Thing reaches its broker: D-Bus Endpoint ("host:port"), Transport ("mqtt" or
// "websocket") and Proxy ("http://host:port", empty when directly).
struct thing_route {
    std::string endpoint;
    std::string transport;
    std::string proxy;
    std::string auth;  // "x509", "custom-authorizer NAME", ...
};
// Reads them from the Thing's object; why not, when thingmuxd's D-Bus interface cannot be read.
[[nodiscard]] std::variant<thing_route, std::string> read_route(const std::string& thing);

// A Thing's certificate: D-Bus IdentityState, CertificateId, CertificateNotAfterUSec, IdentityError.
struct thing_identity {
    std::string state;
    std::string certificate_id;
    std::uint64_t not_after_usec = 0;  // 0: unknown
    std::string error;
};
[[nodiscard]] std::variant<thing_identity, std::string> read_identity(const std::string& thing);

// `thingmuxctl rotate-certificate`: RotateCertificate on the Thing's object, waiting up to `timeout`.
[[nodiscard]] int run_rotate_certificate(const std::string& thing, std::chrono::seconds timeout);

// Whether the system bus is reachable and org.thingmux.Thingmux1 owned there (thingmuxctl's
// --via auto); why not in `why`.
[[nodiscard]] bool management_on_bus(std::string& why);
// ListClients into `out`; on failure prints the error and returns the exit code.
[[nodiscard]] int bus_list_clients(std::vector<ipc::client_entry>& out);
// Reload; on failure prints the error (every problem of a file that was refused) and returns
// the exit code.
[[nodiscard]] int bus_reload();

}  // namespace thingmux::ctl
