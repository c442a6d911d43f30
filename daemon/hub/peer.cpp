#include "daemon/hub/peer.hpp"

#include <systemd/sd-login.h>

#include <cstdlib>
#include <sys/socket.h>

namespace thingmux::hub {

std::string peer_credentials::describe() const {
    std::string s = "pid " + std::to_string(pid) + " uid " + std::to_string(uid);
    if (!unit.empty()) s += " unit " + unit;
    return s;
}

peer_credentials read_peer_credentials(int fd) {
    peer_credentials p;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof cred) {
        p.pid = cred.pid;
        p.uid = cred.uid;
        p.gid = cred.gid;
    }
    // The unit comes from the peer's cgroup; a process outside any unit (or on a system without
    // systemd) simply has none.
    char* unit = nullptr;
    if (p.pid > 0 && sd_pid_get_unit(p.pid, &unit) >= 0 && unit != nullptr) p.unit = unit;
    std::free(unit);
    return p;
}

}  // namespace thingmux::hub
