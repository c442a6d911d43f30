#include "daemon/hub/peer.hpp"

#include "daemon/hub/peer_unit.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace thingmux::hub {
namespace {

constexpr uid_t unknown_uid = static_cast<uid_t>(-1);
constexpr gid_t unknown_gid = static_cast<gid_t>(-1);

// Calls lookup(buffer, size) -- a getpwuid_r/getgrgid_r wrapper returning its error number --
// growing the buffer while it answers ERANGE. A group with thousands of members needs far more
// than the sysconf hint; the cap only stops a broken NSS module from making us loop forever.
template <typename Lookup>
void with_nss_buffer(int size_hint_name, Lookup lookup) {
    constexpr std::size_t max_size = std::size_t{16} << 20;
    const long hint = ::sysconf(size_hint_name);
    std::vector<char> buf(hint > 0 ? static_cast<std::size_t>(hint) : 1024);
    for (int attempt = 0; attempt < 64; ++attempt) {
        const int rc = lookup(buf.data(), buf.size());
        if (rc == EINTR) continue;
        if (rc != ERANGE || buf.size() >= max_size) return;
        buf.resize(std::min(buf.size() * 2, max_size));
    }
}

std::string user_name(uid_t uid) {
    std::string name;
    if (uid == unknown_uid) return name;
    with_nss_buffer(_SC_GETPW_R_SIZE_MAX, [&](char* buf, std::size_t size) {
        passwd pw{};
        passwd* found = nullptr;
        const int rc = ::getpwuid_r(uid, &pw, buf, size, &found);
        if (rc == 0 && found != nullptr && found->pw_name != nullptr) name = found->pw_name;
        return rc;
    });
    return name;
}

std::string group_name(gid_t gid) {
    std::string name;
    if (gid == unknown_gid) return name;
    with_nss_buffer(_SC_GETGR_R_SIZE_MAX, [&](char* buf, std::size_t size) {
        group gr{};
        group* found = nullptr;
        const int rc = ::getgrgid_r(gid, &gr, buf, size, &found);
        if (rc == 0 && found != nullptr && found->gr_name != nullptr) name = found->gr_name;
        return rc;
    });
    return name;
}

// The peer's supplementary groups as they were when it connected (SO_PEERGROUPS, Linux >= 4.13).
// Empty when the kernel cannot tell.
std::vector<gid_t> peer_groups(int fd) {
#ifdef SO_PEERGROUPS
    std::vector<gid_t> groups(32);
    // The list is fixed at connect time, so one retry with the size the kernel asks for is
    // enough; the bound only guards against a kernel that keeps answering ERANGE.
    for (int attempt = 0; attempt < 4; ++attempt) {
        auto len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
            groups.resize(len / sizeof(gid_t));
            groups.shrink_to_fit();  // kept for the whole connection
            return groups;
        }
        const std::size_t needed = len / sizeof(gid_t);
        if (errno != ERANGE || needed <= groups.size()) break;
        groups.resize(needed);
    }
#else
    (void)fd;
#endif
    return {};
}

// Everything but the unit: the names NSS gives the ids.
peer_credentials named_peer(pid_t pid, uid_t uid, gid_t gid, std::vector<gid_t> groups) {
    peer_credentials p;
    p.pid = pid;
    p.uid = uid;
    p.gid = gid;
    p.groups = std::move(groups);
    p.user = user_name(p.uid);

    // The primary group usually appears among the supplementary ones too; name each group once.
    std::vector<gid_t> named;
    auto add_group_name = [&](gid_t g) {
        if (g == unknown_gid || std::find(named.begin(), named.end(), g) != named.end()) return;
        named.push_back(g);
        if (auto name = group_name(g); !name.empty()) p.group_names.push_back(std::move(name));
    };
    add_group_name(p.gid);
    for (const gid_t g : p.groups) add_group_name(g);
    return p;
}

// The user's name and primary group (NSS); the name is empty when the uid has no entry.
std::pair<std::string, gid_t> user_entry(uid_t uid) {
    std::pair<std::string, gid_t> out{std::string{}, unknown_gid};
    with_nss_buffer(_SC_GETPW_R_SIZE_MAX, [&](char* buf, std::size_t size) {
        passwd pw{};
        passwd* found = nullptr;
        const int rc = ::getpwuid_r(uid, &pw, buf, size, &found);
        if (rc == 0 && found != nullptr && found->pw_name != nullptr) out = {found->pw_name, found->pw_gid};
        return rc;
    });
    return out;
}

// The groups `user` belongs to (its primary group included), as NSS lists them.
std::vector<gid_t> group_list(const std::string& user, gid_t primary) {
    if (user.empty() || primary == unknown_gid) return {};
    // Bounded like the kernel's NGROUPS_MAX: a broken NSS module cannot make this loop forever.
    constexpr int max_groups = 65536;
    int count = 32;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    while (::getgrouplist(user.c_str(), primary, groups.data(), &count) < 0) {
        if (count <= static_cast<int>(groups.size()) || count > max_groups) return {};
        groups.resize(static_cast<std::size_t>(count));
    }
    groups.resize(static_cast<std::size_t>(count));
    return groups;
}

void set_unit(peer_credentials& p, unit_lookup found) {
    p.unit = std::move(found.unit);
    p.unit_withheld = std::move(found.withheld);
}

}  // namespace

std::string peer_credentials::describe() const {
    std::string s;
    if (source != identity_source::unix_socket) s = "TCP " + address + ", ";
    if (source == identity_source::none) {
        s += "no kernel identity (its socket is not in thingmuxd's network namespace)";
    } else {
        if (source == identity_source::unix_socket) s += "pid " + std::to_string(pid) + " ";
        s += "uid " + std::to_string(uid);
        if (!user.empty()) s += " (" + user + ")";
        s += " gid " + std::to_string(gid);
        if (source == identity_source::tcp_socket_owner) s += " (owner of the socket)";
        if (!unit.empty()) s += " unit " + unit;
        if (!unit_withheld.empty()) s += ", no unit: " + unit_withheld;
    }
    if (!mqtt_user.empty()) s += ", MQTT user " + mqtt_user;
    return s;
}

config::peer peer_credentials::identity() const {
    config::peer p;
    p.uid = uid;
    p.gid = gid;
    p.groups = groups;
    p.user = user;
    p.group_names = group_names;
    p.unit = unit;
    p.mqtt_user = mqtt_user;
    return p;
}

peer_credentials read_peer_credentials(int fd) {
    // The connection exists by now; a process that started later cannot have made it.
    const auto connected_by = boot_time_ns();
    ucred cred{.pid = 0, .uid = unknown_uid, .gid = unknown_gid};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
        cred = ucred{.pid = 0, .uid = unknown_uid, .gid = unknown_gid};
    auto p = named_peer(cred.pid, cred.uid, cred.gid, peer_groups(fd));
    // The unit comes from the peer's cgroup; a process outside any unit (or on a system without
    // systemd) simply has none.
    set_unit(p, peer_unit(fd, cred.pid, cred.uid, cred.gid, connected_by));
    return p;
}

peer_credentials make_peer_credentials(pid_t pid, uid_t uid, gid_t gid, std::vector<gid_t> groups) {
    auto p = named_peer(pid, uid, gid, std::move(groups));
    set_unit(p, unit_of_pid(pid, uid, gid, boot_time_ns()));
    return p;
}

peer_credentials socket_owner_credentials(uid_t uid, std::string address) {
    auto [name, gid] = user_entry(uid);
    auto p = named_peer(0, uid, gid, group_list(name, gid));
    p.source = identity_source::tcp_socket_owner;
    p.address = std::move(address);
    return p;
}

peer_credentials unidentified_tcp_peer(std::string address) {
    peer_credentials p;
    p.source = identity_source::none;
    p.address = std::move(address);
    return p;
}

}  // namespace thingmux::hub
