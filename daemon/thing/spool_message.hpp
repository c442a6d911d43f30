// The conversion between an app's publish (IPC) and what the durable spool keeps of it
// (daemon/spool/message.hpp): the spool's file format depends on neither side's wire format.
#pragma once

#include "daemon/spool/message.hpp"
#include "ipc/messages.hpp"

namespace thingmux::thing {

// The message of a publish, to be spooled (the request id is the app's and is not kept).
[[nodiscard]] spool::message to_spool_message(const ipc::publish& p);

// A spooled message as a publish to send upstream, with request id 0.
[[nodiscard]] ipc::publish from_spool_message(spool::message&& m);

}  // namespace thingmux::thing
