// thingmuxctl's management commands, `clients` and `reload`: over D-Bus (docs/dbus.md) when the
// system bus is there, else over the IPC socket (docs/ipc-protocol.md section 9), with the same
// output either way.
#pragma once

#include "commands.hpp"

#include <string>

namespace thingmux::ctl {

enum class via { automatic, dbus, ipc };

struct admin_options {
    via way = via::automatic;  // --via auto|dbus|ipc
    bool verbose = false;           // say which path was used
};

// `thingmuxctl clients`: the connected apps, as a table.
[[nodiscard]] int run_clients(const common_options& common, const admin_options& opts);
// `thingmuxctl reload`: re-read the configuration; prints every problem of a file that was refused.
[[nodiscard]] int run_reload(const common_options& common, const admin_options& opts);

}  // namespace thingmux::ctl
