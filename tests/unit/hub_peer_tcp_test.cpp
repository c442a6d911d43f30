// The NETLINK_SOCK_DIAG request and the parser of the kernel's answer (hub/peer_tcp.hpp), over
// bytes laid out as linux/inet_diag.h says: the owner found, the kernel's errors, and answers
// that are truncated, for another request or about another connection.
#include "daemon/hub/peer_tcp.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

namespace thingmux::hub {
namespace {

tcp_connection loopback_v4() {
    tcp_connection c;
    c.family = AF_INET;
    c.peer_address = {127, 0, 0, 1};
    c.peer_port = 43512;
    c.local_address = {127, 0, 0, 1};
    c.local_port = 1883;
    return c;
}

tcp_connection loopback_v6() {
    tcp_connection c;
    c.family = AF_INET6;
    c.peer_address[15] = 1;
    c.peer_port = 50000;
    c.local_address[15] = 1;
    c.local_port = 1883;
    return c;
}

template <class T>
void append(std::vector<std::uint8_t>& out, const T& value) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&value);
    out.insert(out.end(), p, p + sizeof value);
}

// One netlink message of `type` around `body`.
template <class Body>
std::vector<std::uint8_t> message(std::uint16_t type, std::uint32_t seq, const Body& body) {
    nlmsghdr h{};
    h.nlmsg_len = static_cast<std::uint32_t>(NLMSG_LENGTH(sizeof body));
    h.nlmsg_type = type;
    h.nlmsg_seq = seq;
    std::vector<std::uint8_t> out;
    append(out, h);
    append(out, body);
    out.resize(NLMSG_ALIGN(out.size()));
    return out;
}

// The kernel's description of the peer's socket of `c`, owned by `uid`.
inet_diag_msg socket_of(const tcp_connection& c, uid_t uid, std::uint32_t inode) {
    inet_diag_msg m{};
    m.idiag_family = static_cast<std::uint8_t>(c.family);
    m.idiag_state = 1;  // TCP_ESTABLISHED
    m.id.idiag_sport = htons(c.peer_port);
    m.id.idiag_dport = htons(c.local_port);
    std::memcpy(m.id.idiag_src, c.peer_address.data(), c.family == AF_INET ? 4 : 16);
    std::memcpy(m.id.idiag_dst, c.local_address.data(), c.family == AF_INET ? 4 : 16);
    m.idiag_uid = uid;
    m.idiag_inode = inode;
    return m;
}

nlmsgerr kernel_error(int err) {
    nlmsgerr e{};
    e.error = -err;
    return e;
}

TEST(HubPeerTcp, RequestAsksForThePeersEndOfTheConnection) {
    const auto c = loopback_v4();
    const auto bytes = sock_diag_request(c, 7);
    ASSERT_EQ(bytes.size(), sizeof(nlmsghdr) + sizeof(inet_diag_req_v2));
    nlmsghdr h{};
    std::memcpy(&h, bytes.data(), sizeof h);
    EXPECT_EQ(h.nlmsg_len, bytes.size());
    EXPECT_EQ(h.nlmsg_type, SOCK_DIAG_BY_FAMILY);
    EXPECT_EQ(h.nlmsg_flags, NLM_F_REQUEST) << "one socket, no dump";
    EXPECT_EQ(h.nlmsg_seq, 7U);
    inet_diag_req_v2 r{};
    std::memcpy(&r, bytes.data() + sizeof h, sizeof r);
    EXPECT_EQ(r.sdiag_family, AF_INET);
    EXPECT_EQ(r.sdiag_protocol, IPPROTO_TCP);
    EXPECT_EQ(ntohs(r.id.idiag_sport), 43512) << "the peer's port is its socket's source";
    EXPECT_EQ(ntohs(r.id.idiag_dport), 1883);
    EXPECT_EQ(r.id.idiag_src[0], htonl(INADDR_LOOPBACK));
    EXPECT_EQ(r.id.idiag_dst[0], htonl(INADDR_LOOPBACK));
    EXPECT_EQ(r.id.idiag_cookie[0], INET_DIAG_NOCOOKIE);
    EXPECT_EQ(r.id.idiag_cookie[1], INET_DIAG_NOCOOKIE);

    const auto v6 = sock_diag_request(loopback_v6(), 8);
    std::memcpy(&r, v6.data() + sizeof h, sizeof r);
    EXPECT_EQ(r.sdiag_family, AF_INET6);
    EXPECT_EQ(ntohs(r.id.idiag_sport), 50000);
    EXPECT_EQ(std::memcmp(r.id.idiag_src, &in6addr_loopback, 16), 0);
}

TEST(HubPeerTcp, TheOwnerOfTheSocket) {
    for (const auto& c : {loopback_v4(), loopback_v6()}) {
        const auto answer = parse_sock_diag_answer(message(SOCK_DIAG_BY_FAMILY, 3, socket_of(c, 1000, 4242)), c, 3);
        ASSERT_TRUE(answer.owner) << answer.error.message();
        EXPECT_EQ(answer.owner->uid, 1000U);
        EXPECT_EQ(answer.owner->inode, 4242U);
        EXPECT_FALSE(answer.error);
    }
}

TEST(HubPeerTcp, NotFoundAndOtherKernelErrors) {
    const auto c = loopback_v4();
    auto answer = parse_sock_diag_answer(message(NLMSG_ERROR, 3, kernel_error(ENOENT)), c, 3);
    EXPECT_FALSE(answer.owner);
    EXPECT_EQ(answer.error, std::error_code(ENOENT, std::generic_category()));
    answer = parse_sock_diag_answer(message(NLMSG_ERROR, 3, kernel_error(EPERM)), c, 3);
    EXPECT_EQ(answer.error, std::error_code(EPERM, std::generic_category()));
    // An acknowledgement (error 0) is no answer.
    answer = parse_sock_diag_answer(message(NLMSG_ERROR, 3, kernel_error(0)), c, 3);
    EXPECT_FALSE(answer.owner);
    EXPECT_EQ(answer.error, std::errc::bad_message);
}

TEST(HubPeerTcp, MalformedOrForeignAnswersGiveNoOwner) {
    const auto c = loopback_v4();
    const auto good = message(SOCK_DIAG_BY_FAMILY, 3, socket_of(c, 1000, 1));
    // Truncated anywhere: header, body, or a length past the end.
    for (const std::size_t size : {std::size_t{0}, std::size_t{8}, sizeof(nlmsghdr), good.size() - 1}) {
        SCOPED_TRACE(size);
        const auto answer = parse_sock_diag_answer(std::span(good.data(), size), c, 3);
        EXPECT_FALSE(answer.owner);
        EXPECT_EQ(answer.error, std::errc::bad_message);
    }
    // A length shorter than the header.
    auto short_len = good;
    short_len[0] = 4;
    short_len[1] = short_len[2] = short_len[3] = 0;
    EXPECT_EQ(parse_sock_diag_answer(short_len, c, 3).error, std::errc::bad_message);
    // For another request only.
    EXPECT_EQ(parse_sock_diag_answer(good, c, 4).error, std::errc::bad_message);
    // A message for another request first, then ours: ours counts.
    auto both = message(SOCK_DIAG_BY_FAMILY, 9, socket_of(c, 0, 2));
    both.insert(both.end(), good.begin(), good.end());
    const auto answer = parse_sock_diag_answer(both, c, 3);
    ASSERT_TRUE(answer.owner);
    EXPECT_EQ(answer.owner->uid, 1000U);
    // About another connection (another port, another address, another family).
    auto other = c;
    other.peer_port = 1;
    EXPECT_EQ(parse_sock_diag_answer(message(SOCK_DIAG_BY_FAMILY, 3, socket_of(other, 0, 1)), c, 3).error,
              std::errc::bad_message);
    other = c;
    other.peer_address = {127, 0, 0, 2};
    EXPECT_EQ(parse_sock_diag_answer(message(SOCK_DIAG_BY_FAMILY, 3, socket_of(other, 0, 1)), c, 3).error,
              std::errc::bad_message);
    EXPECT_EQ(parse_sock_diag_answer(message(SOCK_DIAG_BY_FAMILY, 3, socket_of(loopback_v6(), 0, 1)), c, 3).error,
              std::errc::bad_message);
    // Another message type, and an end of dump.
    EXPECT_EQ(parse_sock_diag_answer(message(NLMSG_NOOP, 3, socket_of(c, 0, 1)), c, 3).error, std::errc::bad_message);
    EXPECT_EQ(parse_sock_diag_answer(message(NLMSG_DONE, 3, 0), c, 3).error, std::errc::no_such_file_or_directory);
}

TEST(HubPeerTcp, PeerText) {
    EXPECT_EQ(loopback_v4().peer_text(), "127.0.0.1:43512");
    EXPECT_EQ(loopback_v6().peer_text(), "[::1]:50000");
}

}  // namespace
}  // namespace thingmux::hub
