// The checks the library makes before a request of the app is queued (IPC-38: what the daemon
// would refuse anyway fails here, without a round trip), and the request they build.
//
// Pure: no socket, no thread, no state of the client beyond what the context says.
#pragma once

#include "thingmux/client.hpp"

#include "ipc/messages.hpp"
#include "request_table.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <variant>

namespace thingmux::detail {

// What the checks need to know about the connection.
struct request_context {
    const ipc::limits* limits = nullptr;  // the daemon's, once it welcomed us
    std::size_t max_frame = 0;
    // Set when a request must fail now because the daemon is away (and the app does not wait
    // for it): the result to fail with.
    std::optional<result> offline;
};

[[nodiscard]] result make_result(error_code code, std::string message);

// The publish request for `m` (its fields are moved out), or the result it fails with.
[[nodiscard]] std::variant<request, result> publish_request(message& m, const request_context& ctx);
// The subscribe request for `filter` (without its subscription_ref, which the caller adds once
// the filter is registered), or the result it fails with.
[[nodiscard]] std::variant<request, result> subscribe_request(const std::string& filter, int qos,
                                                              const request_context& ctx);

}  // namespace thingmux::detail
