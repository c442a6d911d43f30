// Conversions between the public types and the IPC protocol's message structs.
#pragma once

#include "thingmux/error.hpp"
#include "thingmux/message.hpp"
#include "thingmux/state.hpp"

#include "ipc/messages.hpp"

namespace thingmux::detail {

[[nodiscard]] ipc::message_properties to_ipc_properties(message& m);
[[nodiscard]] message from_ipc(ipc::message&& m);
// Fills an empty message with a readable text, so every failure says something.
[[nodiscard]] result from_ipc(ipc::result&& r);
[[nodiscard]] daemon_info from_ipc(const ipc::welcome& w);
[[nodiscard]] uplink_state from_ipc(ipc::link_state s) noexcept;

}  // namespace thingmux::detail
