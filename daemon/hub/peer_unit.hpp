// The systemd unit of a local peer, looked up so that a recycled pid cannot lend a connection
// the unit of another process (docs/config.md, "How a peer is identified").
//
// SO_PEERCRED gives the pid of the process that called connect(), as a number. That process may
// exit while its socket lives on in another process (fork, SCM_RIGHTS), and the kernel may then
// give the number to a new process: asking sd_pid_get_unit() about the number would name the new
// process's unit. So the unit is looked up through a pidfd when the kernel can give one for the
// socket's peer (SO_PEERPIDFD, Linux >= 6.5), which designates the process that connected and no
// other; on older kernels through checks that narrow, but cannot close, that window.
#pragma once

#include <sys/types.h>
#include <cstdint>
#include <string>

namespace thingmux::hub {

struct unit_lookup {
    std::string unit;      // e.g. "sensor.service"; empty: none, or not trusted
    std::string withheld;  // why no unit is given although one may exist; empty when the answer is trusted
};

// Nanoseconds since boot (CLOCK_BOOTTIME), the clock of /proc/PID/stat's start time.
[[nodiscard]] std::uint64_t boot_time_ns();

// The unit of the process at the other end of the connected AF_UNIX socket `fd`, whose
// SO_PEERCRED said pid/uid/gid, the connection existing at `connected_by` (boot_time_ns(), e.g.
// taken when it was accepted). A peer that has exited gets no unit.
[[nodiscard]] unit_lookup peer_unit(int fd, pid_t pid, uid_t uid, gid_t gid, std::uint64_t connected_by);

// The unit of the process `pidfd` designates: none once that process has exited, and none when
// it exits while it is being looked up (its pid may then already name another process).
[[nodiscard]] unit_lookup unit_of_pidfd(int pidfd);

// The unit of the process that has `pid` now, given only if it can still be the one that had
// `uid`/`gid` (effective ids) at `connected_by`: it started no later, it runs with those ids,
// and it stayed alive during the lookup. For kernels without SO_PEERPIDFD and for callers known
// by pid only (D-Bus). A process of the same uid and gid that took over a recycled pid before
// `connected_by` is not detected.
[[nodiscard]] unit_lookup unit_of_pid(pid_t pid, uid_t uid, gid_t gid, std::uint64_t connected_by);

// The pid of the process `pidfd` designates, in the pid namespace of /proc (/proc/self/fdinfo):
// > 0 while it exists (also as a zombie), 0 when it is outside that namespace, -1 once it has
// been reaped or when the kernel does not tell.
[[nodiscard]] pid_t pidfd_pid(int pidfd);

// True once the process `pidfd` designates has exited (zombie or reaped); false while it runs.
[[nodiscard]] bool pidfd_exited(int pidfd);

}  // namespace thingmux::hub
