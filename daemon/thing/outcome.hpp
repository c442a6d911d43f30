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
// A local MQTT client's PUBLISH as the pipeline takes it (QoS as sent; properties the IPC
// schema has no room for, such as topic aliases and subscription identifiers, are dropped).
[[nodiscard]] ipc::publish to_ipc(mqtt::publish&& m);

// The MQTT 5 reason code a local MQTT client is answered with for a result, among those the
// specification allows in `answer` (PUBACK, PUBREC, SUBACK, UNSUBACK): the broker's own code
// when it gave one, 0x87 for the app rules, 0x90 / 0x8F for a topic / filter, 0x97 for quotas,
// rates, a full spool and payloads over the Thing's limit, 0x99 for a service request's
// payload that is not the JSON it must be, 0x80 for the rest.
[[nodiscard]] std::uint8_t mqtt_reason_for(const ipc::result& r, mqtt::packet_type answer);

}  // namespace thingmux::thing
