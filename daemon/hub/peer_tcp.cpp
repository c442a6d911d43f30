#include "daemon/hub/peer_tcp.hpp"

#include "daemon/logging.hpp"

#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

namespace thingmux::hub {
namespace {

struct request_message {
    nlmsghdr header;
    inet_diag_req_v2 request;
};

// The peer's socket: its source is the peer's address, its destination ours.
inet_diag_sockid peer_socket_id(const tcp_connection& c) {
    inet_diag_sockid id{};
    id.idiag_sport = htons(c.peer_port);
    id.idiag_dport = htons(c.local_port);
    const std::size_t n = c.family == AF_INET ? 4 : 16;
    std::memcpy(id.idiag_src, c.peer_address.data(), n);
    std::memcpy(id.idiag_dst, c.local_address.data(), n);
    id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    return id;
}

bool same_connection(const inet_diag_msg& m, const tcp_connection& c) {
    const auto want = peer_socket_id(c);
    const std::size_t n = c.family == AF_INET ? 4 : 16;
    return m.idiag_family == c.family && m.id.idiag_sport == want.idiag_sport && m.id.idiag_dport == want.idiag_dport &&
           std::memcmp(m.id.idiag_src, want.idiag_src, n) == 0 && std::memcmp(m.id.idiag_dst, want.idiag_dst, n) == 0;
}

// The address bytes and the port (host order) of an IPv4 or IPv6 socket address.
void unpack(const sockaddr_storage& s, std::array<std::uint8_t, 16>& address, std::uint16_t& port) {
    if (s.ss_family == AF_INET) {
        const auto& a = reinterpret_cast<const sockaddr_in&>(s);
        std::memcpy(address.data(), &a.sin_addr, 4);
        port = ntohs(a.sin_port);
    } else {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(s);
        std::memcpy(address.data(), &a.sin6_addr, 16);
        port = ntohs(a.sin6_port);
    }
}

std::error_code bad_message() {
    return std::make_error_code(std::errc::bad_message);
}

std::error_code last_error() {
    return {errno, std::generic_category()};
}

}  // namespace

std::string tcp_connection::peer_text() const {
    char text[INET6_ADDRSTRLEN] = {};
    if (::inet_ntop(family, peer_address.data(), text, sizeof text) == nullptr) return "?";
    const std::string host = family == AF_INET6 ? "[" + std::string(text) + "]" : std::string(text);
    return host + ":" + std::to_string(peer_port);
}

std::optional<tcp_connection> connection_of(int fd) {
    sockaddr_storage local{};
    sockaddr_storage peer{};
    socklen_t local_len = sizeof local;
    socklen_t peer_len = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0 || local.ss_family != peer.ss_family)
        return std::nullopt;
    if (local.ss_family != AF_INET && local.ss_family != AF_INET6) return std::nullopt;
    tcp_connection c;
    c.family = local.ss_family;
    unpack(local, c.local_address, c.local_port);
    unpack(peer, c.peer_address, c.peer_port);
    return c;
}

std::vector<std::uint8_t> sock_diag_request(const tcp_connection& c, std::uint32_t sequence) {
    request_message m{};
    m.header.nlmsg_len = sizeof m;
    m.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    m.header.nlmsg_flags = NLM_F_REQUEST;  // one socket, not a dump
    m.header.nlmsg_seq = sequence;
    m.request.sdiag_family = static_cast<std::uint8_t>(c.family);
    m.request.sdiag_protocol = IPPROTO_TCP;
    m.request.idiag_states = ~0U;
    m.request.id = peer_socket_id(c);
    std::vector<std::uint8_t> out(sizeof m);
    std::memcpy(out.data(), &m, sizeof m);
    return out;
}

sock_diag_answer parse_sock_diag_answer(std::span<const std::uint8_t> bytes, const tcp_connection& c,
                                        std::uint32_t sequence) {
    // Walks the messages by hand (NLMSG_NEXT works on mutable pointers); each one is copied out
    // before it is read, so the buffer needs no alignment.
    std::size_t pos = 0;
    while (bytes.size() - pos >= sizeof(nlmsghdr)) {
        nlmsghdr h{};
        std::memcpy(&h, bytes.data() + pos, sizeof h);
        if (h.nlmsg_len < sizeof h || h.nlmsg_len > bytes.size() - pos) return {std::nullopt, bad_message()};
        const auto body =
            bytes.subspan(pos + NLMSG_HDRLEN, h.nlmsg_len - std::min<std::size_t>(h.nlmsg_len, NLMSG_HDRLEN));
        pos += std::min<std::size_t>(NLMSG_ALIGN(h.nlmsg_len), bytes.size() - pos);
        if (h.nlmsg_seq != sequence) continue;  // not the answer to this question
        if (h.nlmsg_type == NLMSG_ERROR) {
            nlmsgerr e{};
            if (body.size() < sizeof e.error) return {std::nullopt, bad_message()};
            std::memcpy(&e.error, body.data(), sizeof e.error);
            if (e.error == 0) return {std::nullopt, bad_message()};  // an acknowledgement, not an answer
            return {std::nullopt, std::error_code(-e.error, std::generic_category())};
        }
        if (h.nlmsg_type == NLMSG_DONE)
            return {std::nullopt, std::make_error_code(std::errc::no_such_file_or_directory)};
        if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY || body.size() < sizeof(inet_diag_msg))
            return {std::nullopt, bad_message()};
        inet_diag_msg m{};
        std::memcpy(&m, body.data(), sizeof m);
        if (!same_connection(m, c)) return {std::nullopt, bad_message()};
        return {socket_owner{.uid = m.idiag_uid, .inode = m.idiag_inode}, {}};
    }
    return {std::nullopt, bad_message()};
}

sock_diag_answer find_socket_owner(const tcp_connection& c) {
    static std::atomic<std::uint32_t> next_sequence{1};
    const std::uint32_t sequence = next_sequence++;
    const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) return {std::nullopt, last_error()};
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } close_it{fd};
    const auto request = sock_diag_request(c, sequence);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(fd, request.data(), request.size(), 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) < 0)
        return {std::nullopt, last_error()};
    // The kernel answers at once, with one message (the socket, or an error).
    alignas(nlmsghdr) std::array<std::uint8_t, 8192> buf{};
    for (int attempt = 0; attempt < 4; ++attempt) {
        const auto n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return {std::nullopt, last_error()};
        return parse_sock_diag_answer(std::span(buf.data(), static_cast<std::size_t>(n)), c, sequence);
    }
    return {std::nullopt, std::make_error_code(std::errc::interrupted)};
}

peer_credentials read_tcp_peer_credentials(int fd) {
    const auto c = connection_of(fd);
    if (!c) return unidentified_tcp_peer("?");
    const auto found = find_socket_owner(*c);
    if (!found.owner) {
        // ENOENT: the socket is in another network namespace. Anything else means thingmuxd
        // cannot ask (no sock_diag in the kernel, a system call filter): say so, the operator
        // would otherwise only see every TCP client lose its identity.
        static logging::rate_limiter lookup_failures{1, std::chrono::minutes(10)};
        if (found.error != std::errc::no_such_file_or_directory) {
            if (auto note = lookup_failures.admit())
                spdlog::warn(
                    "cannot look up the owner of the TCP connection from {} (NETLINK_SOCK_DIAG): {}; such "
                    "clients have no kernel identity and need a username and password{}",
                    c->peer_text(), found.error.message(), *note);
        }
        return unidentified_tcp_peer(c->peer_text());
    }
    return socket_owner_credentials(found.owner->uid, c->peer_text());
}

}  // namespace thingmux::hub
