// ipc::errc as std::error_code: the outcomes an app can be told (docs/ipc-protocol.md), with a
// category of their own ("thingmux.ipc"), so that front ends and the daemon compare and pass
// them as error codes and turn them into their own protocol's codes (D-Bus error names, MQTT
// reason codes) in one place each. The wire keeps the numeric value.
#pragma once

#include "ipc/messages.hpp"

#include <system_error>

namespace thingmux::ipc {

[[nodiscard]] const std::error_category& error_category() noexcept;
[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

}  // namespace thingmux::ipc

template <>
struct std::is_error_code_enum<thingmux::ipc::errc> : std::true_type {};
