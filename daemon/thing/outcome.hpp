// Results of requests as the pipeline answers them, and conversions between the IPC schema's
// message and the MQTT session's.
#pragma once

#include "daemon/mqtt/packet.hpp"
#include "daemon/mqtt/session.hpp"
#include "ipc/messages.hpp"

#include <cstdint>
#include <string>

namespace thingmux::thing {

[[nodiscard]] ipc::result ok(std::uint8_t reason_code = 0);
[[nodiscard]] ipc::result fail(ipc::errc code, std::string message,
                               std::uint8_t reason_code = mqtt::reason::unspecified_error);
// What an app is told about its publish once the session is done with it.
[[nodiscard]] ipc::result publish_outcome(const mqtt::action::publish_done& d);

[[nodiscard]] mqtt::properties to_mqtt(ipc::message_properties&& p);
[[nodiscard]] ipc::message_properties to_ipc(const mqtt::properties& m);
[[nodiscard]] mqtt::publish to_mqtt(ipc::publish&& m);

}  // namespace thingmux::thing
