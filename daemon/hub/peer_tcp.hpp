// Who is on the other end of a loopback TCP connection: the uid owning the peer's socket, as the
// kernel's socket table tells it (NETLINK_SOCK_DIAG, one exact lookup of the connection's
// 4-tuple, IPv4 or IPv6). TCP carries no credentials, so this is the only kernel word on a TCP
// peer; it holds for peers in thingmuxd's own network namespace. A peer elsewhere (a container
// reaching the port through NAT) is not in that table: it gets no kernel identity.
//
// A connection relayed by a process of this machine (socat, docker-proxy) is that process's
// socket: it carries the relay's uid, not the uid of whoever is behind it (docs/security.md).
#pragma once

#include "daemon/hub/peer.hpp"

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace thingmux::hub {

// One TCP connection as the accepting side sees it.
struct tcp_connection {
    int family = 0;                               // AF_INET or AF_INET6
    std::array<std::uint8_t, 16> peer_address{};  // network order; IPv4 in the first 4 bytes
    std::uint16_t peer_port = 0;                  // host order
    std::array<std::uint8_t, 16> local_address{};
    std::uint16_t local_port = 0;
    [[nodiscard]] std::string peer_text() const;  // "127.0.0.1:43512", "[::1]:43512"
};

// The peer's socket as the kernel describes it.
struct socket_owner {
    uid_t uid = static_cast<uid_t>(-1);
    std::uint32_t inode = 0;
};

// The connection of the accepted TCP socket `fd` (getsockname, getpeername); nullopt when it is
// not a connected IPv4/IPv6 socket.
[[nodiscard]] std::optional<tcp_connection> connection_of(int fd);

// The netlink message asking for the peer's end of `c` (SOCK_DIAG_BY_FAMILY, inet_diag_req_v2,
// the exact 4-tuple: source = the peer's address and port).
[[nodiscard]] std::vector<std::uint8_t> sock_diag_request(const tcp_connection& c, std::uint32_t sequence);

// What the kernel answered to sock_diag_request(c, sequence): the owner of the socket, or an
// error: the kernel's (ENOENT: no such socket here), or std::errc::bad_message for an answer that
// is truncated, for another request, or describes another connection.
struct sock_diag_answer {
    std::optional<socket_owner> owner;
    std::error_code error;
};
[[nodiscard]] sock_diag_answer parse_sock_diag_answer(std::span<const std::uint8_t> bytes, const tcp_connection& c,
                                                      std::uint32_t sequence);

// Asks the kernel (a NETLINK_SOCK_DIAG socket opened for the question).
[[nodiscard]] sock_diag_answer find_socket_owner(const tcp_connection& c);

// The credentials of the peer of the accepted TCP socket `fd`: socket_owner_credentials() of its
// owner, or unidentified_tcp_peer() when the kernel does not show its socket. NSS lookups may
// block: once per connection.
[[nodiscard]] peer_credentials read_tcp_peer_credentials(int fd);

}  // namespace thingmux::hub
