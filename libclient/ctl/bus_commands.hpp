// thingmuxctl's operator commands, which talk to thingmuxd's D-Bus management interface
// (docs/dbus.md) on the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured).
#pragma once

namespace thingmux::ctl {

// `thingmuxctl clients`: ListClients, as a table.
[[nodiscard]] int run_clients();
// `thingmuxctl reload`: Reload; prints every problem of a file that was refused.
[[nodiscard]] int run_reload();

}  // namespace thingmux::ctl
