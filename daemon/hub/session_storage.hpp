// A kept session in the spool's file, whatever its front end (kind "mqtt": mqtt_front.cpp; kind
// "ipc": libthingmux sessions, IPC-43): saving its row with who owns it, keeping the row's expiry
// up to date, and bringing it back when thingmuxd starts. What it holds is session_state's.
#pragma once

#include "daemon/hub/peer.hpp"
#include "daemon/hub/session_journal.hpp"
#include "daemon/hub/session_state.hpp"
#include "daemon/spool/sessions.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace thingmux::hub::session_storage {

// Who a session is, as its row keys it: the Thing, the front end, the name the client gave it
// (MQTT: client id; IPC: session name) and the credentials of the connection that made it.
struct owner {
    const std::string& thing;
    const char* kind;
    const std::string& name;
    const peer_credentials& peer;
};

// Brings the session's row in line with the expiry it was granted: 0 removes it (nothing of the
// session may come back after a restart); a stored session gets the new expiry; one not stored
// yet is saved with its subscriptions and every message it holds. No-op without a spool.
void keep(session_journal& journal, session_state& s, const owner& o, std::chrono::seconds expiry);

// The credentials a stored session was made with (no process: it is gone), for the app rules.
[[nodiscard]] peer_credentials peer_of(const spool::session_record& r);

// Seconds a stored session has left at `now` (Unix time); a session whose connection was open
// when thingmuxd stopped counts its expiry from now. 0 or less: it expired.
[[nodiscard]] std::int64_t seconds_left(const spool::session_record& r, std::int64_t now);

// A stored session with `left` seconds to go comes back into `s`: its expiry, its subscriptions,
// the messages that waited (rows the store could not read are logged and were deleted), and its
// row, to which it goes on writing. Returns how many messages came back, and its delayed will
// (an MQTT session's; its row stays until the front end forgets it).
struct restored {
    std::size_t messages = 0;
    std::optional<spool::session_message> will;
};
restored restore(session_journal& journal, session_state& s, const spool::session_record& r, std::int64_t now,
                 std::int64_t left, const std::string& spool_path);

}  // namespace thingmux::hub::session_storage
