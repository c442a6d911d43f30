// Who is on the other end of a local socket, as the kernel tells it (SO_PEERCRED, SO_PEERGROUPS)
// and NSS names it, plus the systemd unit of that process when it runs in one (peer_unit.hpp:
// never the unit of a process that took over a recycled pid). Used for authorization, logs and
// D-Bus.
#pragma once

#include "config/authorization.hpp"

#include <sys/types.h>
#include <string>
#include <vector>

namespace thingmux::hub {

struct peer_credentials {
    pid_t pid = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::vector<gid_t> groups;             // supplementary groups, as the kernel lists them
    std::string user;                      // name of uid; empty when unknown
    std::vector<std::string> group_names;  // names of gid and of the supplementary groups, each once; unknown skipped
    std::string unit;                      // e.g. "sensor.service"; empty when not in a unit (or not known)
    std::string unit_withheld;             // why `unit` is empty although the process may run in one

    // "pid 1234 uid 1000 (alice) gid 1000 unit sensor.service", or "... gid 1000, no unit: the
    // process that connected has exited": one line, for log lines and errors.
    [[nodiscard]] std::string describe() const;

    // What the authorization rules match on (config/authorization.hpp).
    [[nodiscard]] config::peer identity() const;
};

// Reads the credentials of a connected AF_UNIX socket and looks up the user and group names and
// the unit. Call it at once after accept(): the connection is known to exist from that moment
// (peer_unit.hpp). Never fails: fields the kernel or NSS do not provide keep their "unknown"
// values (supplementary groups stay empty before Linux 4.13). NSS lookups may block (LDAP,
// sssd): call once per connection, not per message.
[[nodiscard]] peer_credentials read_peer_credentials(int fd);
// Completes what another source (e.g. a D-Bus caller's credentials) told: names and unit. Known
// by pid only, the unit comes from unit_of_pid().
[[nodiscard]] peer_credentials make_peer_credentials(pid_t pid, uid_t uid, gid_t gid, std::vector<gid_t> groups);

}  // namespace thingmux::hub
