// Who is on the other end of a local socket, as the kernel tells it (SO_PEERCRED), plus the
// systemd unit of that process when it runs in one. Used for authorization, logs and D-Bus.
#pragma once

#include <string>
#include <sys/types.h>

namespace thingmux::hub {

struct peer_credentials {
    pid_t pid = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::string unit;  // e.g. "sensor.service"; empty when not in a unit (or not known)

    // "pid 1234 uid 1000 unit sensor.service", for log lines.
    [[nodiscard]] std::string describe() const;
};

// Reads the credentials of a connected AF_UNIX socket. Never fails: fields the kernel does not
// provide keep their "unknown" values.
[[nodiscard]] peer_credentials read_peer_credentials(int fd);

}  // namespace thingmux::hub
