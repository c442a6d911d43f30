// read_tcp_peer_credentials against real loopback TCP peers (hub/peer_tcp.hpp): the kernel's
// socket table (NETLINK_SOCK_DIAG) names the uid owning the peer's socket, for the test itself
// and for children running as other users (tests/support/as_user), over IPv4 and IPv6; a
// connection the table does not hold gives no owner.
#include "daemon/hub/peer_tcp.hpp"
#include "tests/support/as_user.hpp"
#include "tests/support/process.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

using ::testing::Contains;

// A listening socket on the loopback address of `family`, on a port the kernel picks.
class loopback_listener {
public:
    explicit loopback_listener(int family) : family_(family), fd_(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_storage a = address(0);
        if (fd_.fd < 0 || ::bind(fd_.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_.fd, 8) != 0)
            return;
        socklen_t len = sizeof a;
        ::getsockname(fd_.fd, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in&>(a).sin_port
                                        : reinterpret_cast<sockaddr_in6&>(a).sin6_port);
    }
    [[nodiscard]] bool ok() const { return port_ != 0; }
    [[nodiscard]] sockaddr_storage address(std::uint16_t port) const {
        sockaddr_storage s{};
        if (family_ == AF_INET) {
            auto& v4 = reinterpret_cast<sockaddr_in&>(s);
            v4.sin_family = AF_INET;
            v4.sin_port = htons(port);
            v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        } else {
            auto& v6 = reinterpret_cast<sockaddr_in6&>(s);
            v6.sin6_family = AF_INET6;
            v6.sin6_port = htons(port);
            v6.sin6_addr = in6addr_loopback;
        }
        return s;
    }
    // A connected socket of this process to the listener; -1 on failure.
    [[nodiscard]] int connect_to() const {
        const int fd = ::socket(family_, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const auto a = address(port_);
        if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return -1;
        return fd;
    }
    // The next connection, waited for up to 10 s; -1 when none came.
    [[nodiscard]] int accept_one() const {
        pollfd p{fd_.fd, POLLIN, 0};
        if (::poll(&p, 1, 10'000) != 1) return -1;
        return ::accept4(fd_.fd, nullptr, nullptr, SOCK_CLOEXEC);
    }
    [[nodiscard]] as_user_body connect_and_hold() const {
        return [this](std::string& out) {
            const int fd = connect_to();
            if (fd < 0) {
                out = std::string("connect: ") + std::strerror(errno);
                return 2;
            }
            char byte = 0;
            while (::read(fd, &byte, 1) < 0 && errno == EINTR) {
            }
            out = "held";
            return 0;
        };
    }

private:
    int family_;
    fd_guard fd_;
    std::uint16_t port_ = 0;
};

class PeerTcpTest : public ::testing::TestWithParam<int> {};

TEST_P(PeerTcpTest, TheTestsOwnSocketIsItsUid) {
    loopback_listener l(GetParam());
    ASSERT_TRUE(l.ok()) << std::strerror(errno);
    const fd_guard client(l.connect_to());
    ASSERT_GE(client.fd, 0);
    const fd_guard server(l.accept_one());
    ASSERT_GE(server.fd, 0);

    const auto c = hub::connection_of(server.fd);
    ASSERT_TRUE(c);
    const auto found = hub::find_socket_owner(*c);
    ASSERT_TRUE(found.owner) << found.error.message();
    EXPECT_EQ(found.owner->uid, ::getuid());
    struct stat st {};
    ASSERT_EQ(::fstat(client.fd, &st), 0);
    EXPECT_EQ(found.owner->inode, st.st_ino) << "the client's socket, not the accepted one";

    const auto creds = hub::read_tcp_peer_credentials(server.fd);
    EXPECT_EQ(creds.source, hub::identity_source::tcp_socket_owner);
    EXPECT_EQ(creds.uid, ::getuid());
    EXPECT_EQ(creds.pid, 0);
    EXPECT_EQ(creds.address, c->peer_text());
    EXPECT_NE(creds.describe().find("(owner of the socket)"), std::string::npos) << creds.describe();
    const passwd* pw = ::getpwuid(::getuid());
    ASSERT_NE(pw, nullptr);
    EXPECT_EQ(creds.user, pw->pw_name);
    EXPECT_EQ(creds.gid, pw->pw_gid);
    EXPECT_THAT(creds.groups, Contains(pw->pw_gid)) << "the user's group list, from NSS";
}

TEST_P(PeerTcpTest, AnotherUsersSocketIsTheirUidAndGroups) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as other users (CI runs as root)";
    loopback_listener l(GetParam());
    ASSERT_TRUE(l.ok());
    for (const uid_t uid : {uid_t{65534}, uid_t{1}}) {
        const passwd* pw = ::getpwuid(uid);
        ASSERT_NE(pw, nullptr) << "Debian's standard account " << uid;
        const std::string name = pw->pw_name;
        const gid_t gid = pw->pw_gid;
        user_process child(user_identity{uid, gid, {gid}}, l.connect_and_hold());
        const fd_guard server(l.accept_one());
        ASSERT_GE(server.fd, 0) << child.wait(1'000).output;
        const auto creds = hub::read_tcp_peer_credentials(server.fd);
        EXPECT_EQ(creds.source, hub::identity_source::tcp_socket_owner);
        EXPECT_EQ(creds.uid, uid);
        EXPECT_EQ(creds.user, name);
        EXPECT_EQ(creds.gid, gid);
        EXPECT_THAT(creds.groups, Contains(gid));
        const group* gr = ::getgrgid(gid);
        ASSERT_NE(gr, nullptr);
        EXPECT_THAT(creds.group_names, Contains(std::string(gr->gr_name)));
        EXPECT_EQ(creds.identity().uid, uid);
        ::shutdown(server.fd, SHUT_RDWR);
        EXPECT_EQ(child.wait().exit_code, 0);
    }
}

TEST_P(PeerTcpTest, AConnectionTheKernelDoesNotHoldHasNoOwner) {
    loopback_listener l(GetParam());
    ASSERT_TRUE(l.ok());
    const fd_guard client(l.connect_to());
    const fd_guard server(l.accept_one());
    ASSERT_GE(server.fd, 0);
    auto c = hub::connection_of(server.fd);
    ASSERT_TRUE(c);
    c->peer_port = static_cast<std::uint16_t>(c->peer_port == 1 ? 2 : 1);  // no such connection
    const auto found = hub::find_socket_owner(*c);
    EXPECT_FALSE(found.owner);
    EXPECT_EQ(found.error, std::error_code(ENOENT, std::generic_category()));
    const auto nobody = hub::unidentified_tcp_peer(c->peer_text());
    EXPECT_EQ(nobody.identity().uid, static_cast<uid_t>(-1));
    EXPECT_NE(nobody.describe().find("no kernel identity"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Loopback, PeerTcpTest, ::testing::Values(AF_INET, AF_INET6),
                         [](const auto& p) { return p.param == AF_INET ? "IPv4" : "IPv6"; });

}  // namespace
}  // namespace thingmux::test
