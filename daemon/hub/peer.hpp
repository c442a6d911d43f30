// Who is on the other end of a local socket, as the kernel tells it (SO_PEERCRED, SO_PEERGROUPS)
// and NSS names it, plus the systemd unit of that process when it runs in one (peer_unit.hpp:
// never the unit of a process that took over a recycled pid). Used for authorization, logs and
// D-Bus.
#pragma once

#include "config/authorization.hpp"

#include <sys/types.h>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::hub {

// Where a peer's kernel identity comes from.
enum class identity_source : std::uint8_t {
    unix_socket,       // SO_PEERCRED of an AF_UNIX connection (pid, uid, gid, groups)
    tcp_socket_owner,  // the uid owning the peer's TCP socket (peer_tcp.hpp); no pid
    none,              // a TCP peer whose socket the kernel does not show here (another network namespace)
};

struct peer_credentials {
    identity_source source = identity_source::unix_socket;
    std::string address;    // a TCP peer's address, "127.0.0.1:43512"; empty on a Unix socket
    std::string mqtt_user;  // the MQTT username whose password was checked (mqtt.passwords); empty if none
    pid_t pid = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::vector<gid_t> groups;  // supplementary groups, as the kernel lists them (TCP: the user's group list)
    std::string user;                      // name of uid; empty when unknown
    std::vector<std::string> group_names;  // names of gid and of the supplementary groups, each once; unknown skipped
    std::string unit;                      // e.g. "sensor.service"; empty when not in a unit (or not known)
    std::string unit_withheld;             // why `unit` is empty although the process may run in one

    // "pid 1234 uid 1000 (alice) gid 1000 unit sensor.service", or "... gid 1000, no unit: the
    // process that connected has exited"; on TCP "TCP 127.0.0.1:43512, uid 1000 (alice) gid 1000
    // (owner of the socket)" or "TCP 127.0.0.1:43512, no kernel identity (...)"; then ", MQTT user
    // NAME" once a password was checked. One line, for log lines and errors.
    [[nodiscard]] std::string describe() const;

    // What the authorization rules match on (config/authorization.hpp).
    [[nodiscard]] config::peer identity() const;

    // Its uid (when the kernel told one) and unit, as the per-app metrics count them.
    [[nodiscard]] std::optional<uid_t> known_uid() const noexcept {
        return uid == static_cast<uid_t>(-1) ? std::nullopt : std::optional<uid_t>(uid);
    }
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
// The identity of a TCP peer whose socket `uid` owns (peer_tcp.hpp): no pid, no unit; the
// primary group and the group list are the user's (NSS, getgrouplist), since TCP carries no
// credentials. `address` is the peer's "HOST:PORT".
[[nodiscard]] peer_credentials socket_owner_credentials(uid_t uid, std::string address);
// A TCP peer the kernel cannot place: only a checked MQTT username can identify it.
[[nodiscard]] peer_credentials unidentified_tcp_peer(std::string address);

}  // namespace thingmux::hub
