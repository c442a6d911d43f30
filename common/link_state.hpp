// The state of a Thing's MQTT connection (its "uplink"), defined once: the uplink reports it,
// the IPC protocol carries it (IPC-22: these numbers are on the wire), libthingmux mirrors it in
// thingmux::uplink_state, and D-Bus, the systemd status line and thingmuxctl show it.
#pragma once

#include <cstdint>

namespace thingmux {

enum class link_state : std::uint8_t {
    connecting = 0,   // a connection attempt is in progress
    connected = 1,    // the MQTT session is up
    backing_off = 2,  // waiting before the next attempt after a transient error
    failed = 3,       // the last error needs a change (certificate, key, policy); still retried
    stopped = 4,      // not connecting (stopped, or the daemon is shutting down)
};
inline constexpr link_state last_link_state = link_state::stopped;

// Its name, one spelling everywhere: the IPC protocol (docs/ipc-protocol.md), libthingmux,
// thingmuxctl, the D-Bus State property and StateChanged signal (docs/dbus.md), the systemd
// status line and the metrics all say "backing_off", so that a script written against one of
// them matches the others (thingmux 0.3 showed "backing-off" on D-Bus and in the status line).
[[nodiscard]] const char* link_state_name(link_state s) noexcept;
// The same as link_state_name(): what management interfaces show.
[[nodiscard]] const char* link_state_label(link_state s) noexcept;
// Both return "unknown" for a value past last_link_state.

}  // namespace thingmux
