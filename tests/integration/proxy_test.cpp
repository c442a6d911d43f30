// thingmuxd through an HTTP proxy (docs/connecting.md): the real daemon, the real AWS-like
// mosquitto, Debian's tinyproxy started by the tests (with and without Basic authentication,
// behind socat's TLS for an https:// proxy), and the errors a user must be able to act on (the
// test-side tcp_proxy plays a proxy that answers nonsense or nothing).
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/dbus_fixture.hpp"
#include "tests/support/round_trip.hpp"
#include "tests/support/tcp_proxy.hpp"
#include "tests/support/tinyproxy_fixture.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

namespace thingmux::test {
namespace {

using namespace std::chrono_literals;

std::string ctl() { return std::string(THINGMUX_BIN_DIR) + "/thingmuxctl"; }

class ProxyTest : public ::testing::Test {
protected:
    broker_fixture broker;

    // The broker's endpoint as the CONNECT request names it.
    [[nodiscard]] std::string endpoint() const { return broker.host() + ":" + std::to_string(broker.port()); }

    // A file holding `text`, readable by its owner only (as thingmuxd wants a secret).
    [[nodiscard]] std::filesystem::path secret_file(const std::string& name, const std::string& text) const {
        return test::secret_file(broker.dir(), name, text);
    }
};

TEST_F(ProxyTest, ThroughTinyproxyWithoutAuthentication) {
    tinyproxy_fixture proxy({});
    daemon_setup setup;
    setup.thing = "proxy: " + proxy.url();
    daemon_fixture daemon(broker, setup);
    expect_round_trip(broker, daemon, 20);
    EXPECT_EQ(proxy.connect_requests(endpoint()), 1U) << "one tunnel for the one session";
    EXPECT_EQ(proxy.connect_requests(), 1U);
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
    EXPECT_TRUE(log_has(daemon, "connecting to " + endpoint() + " through proxy " + proxy.url()))
        << read_file(daemon.log_file());
}

TEST_F(ProxyTest, ThroughTinyproxyWithBasicAuthenticationFromAFile) {
    tinyproxy_fixture proxy({.user = "alice", .password = "s3cret-pw"});
    daemon_setup setup;
    setup.thing = "proxy: " + proxy.url() + "\nproxy_credentials: " +
                  secret_file("proxy-login", "alice:s3cret-pw\n").string();
    daemon_fixture daemon(broker, setup);
    expect_round_trip(broker, daemon, 20);
    EXPECT_EQ(proxy.connect_requests(endpoint()), 1U);
    EXPECT_FALSE(log_has(daemon, "s3cret-pw")) << "the password never reaches the log";
}

TEST_F(ProxyTest, CredentialsInTheUrlWorkWithAWarning) {
    tinyproxy_fixture proxy({.user = "alice", .password = "s3cret-pw"});
    daemon_setup setup;
    setup.thing = "proxy: " + proxy.url("alice:s3cret-pw");
    daemon_fixture daemon(broker, setup);
    expect_round_trip(broker, daemon, 5);
    EXPECT_TRUE(log_has(daemon, "the proxy password is written in the configuration file"))
        << read_file(daemon.log_file());
    EXPECT_FALSE(log_has(daemon, "s3cret-pw"));
}

// A wrong password: the refusal in the log and in the status, once per attempt, and attempts no
// faster than one a second (the CONNECT pacing), though the backoff here is short. tinyproxy
// answers wrong credentials with 401 (and missing ones with 407): both mean the proxy's login.
TEST_F(ProxyTest, WrongPasswordNamesTheFileWithoutATightLoop) {
    tinyproxy_fixture proxy({.user = "alice", .password = "s3cret-pw"});
    const auto login = secret_file("proxy-login", "alice:wrong-pw\n");
    daemon_setup setup;
    setup.thing = "proxy: " + proxy.url() + "\nproxy_credentials: " + login.string() +
                  "\nbackoff: { base: 100ms, cap: 300ms }";
    daemon_fixture daemon(broker, setup);
    const std::string logged = "requires authentication and refused our credentials (\"HTTP/1.0 401 Unauthorized\")";
    ASSERT_TRUE(eventually([&] { return log_lines(daemon, logged) >= 1; }, 20'000)) << read_file(daemon.log_file());
    const auto first = std::chrono::steady_clock::now();
    ASSERT_TRUE(eventually([&] { return log_lines(daemon, logged) >= 4; }, 30'000)) << read_file(daemon.log_file());
    const auto elapsed = std::chrono::steady_clock::now() - first;
    EXPECT_GE(elapsed, 2500ms) << "three more attempts came faster than one a second";

    const auto text = read_file(daemon.log_file());
    EXPECT_NE(text.find("fix the user name or password in " + login.string() + " (proxy_credentials)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("(needs a configuration change)"), std::string::npos) << text;
    // Once per attempt: as many 407 lines as attempts ended (one more may be under way).
    const auto attempts = log_lines(daemon, "connecting to " + endpoint() + " through proxy");
    const auto reported = log_lines(daemon, logged);
    EXPECT_TRUE(attempts == reported || attempts == reported + 1) << attempts << " attempts, " << reported << " reported";
    const auto requests = proxy.connect_requests(endpoint());
    EXPECT_TRUE(requests == reported || requests == reported + 1) << requests << " CONNECTs, " << reported << " reported";
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 0U);

    // thingmuxctl learns the reason from the state frame that follows its welcome.
    const std::string status_reason = "uplink reason:     proxy 127.0.0.1:" + std::to_string(proxy.port()) +
                                      " refused CONNECT to " + endpoint() +
                                      ": it requires authentication and refused our credentials";
    std::string out;
    EXPECT_TRUE(eventually(
        [&] {
            return run_command({ctl(), "--socket", daemon.socket_path().string(), "status"}, &out) == 0 &&
                   out.find(status_reason) != std::string::npos;
        },
        10'000))
        << out;
}

TEST_F(ProxyTest, NoCredentialsForAProxyThatWantsThemSaysWhichKeyToSet) {
    tinyproxy_fixture proxy({.user = "alice", .password = "s3cret-pw"});
    daemon_setup setup;
    setup.thing = "proxy: " + proxy.url();
    daemon_fixture daemon(broker, setup);
    ASSERT_TRUE(eventually([&] { return log_has(daemon, "requires authentication and we sent none"); }, 20'000))
        << read_file(daemon.log_file());
    EXPECT_TRUE(log_has(daemon, "(\"HTTP/1.0 407 Proxy Authentication Required\"; the proxy offers Basic "
                                "realm=\"Tinyproxy\"): put user:password in a file only thingmuxd may read and name "
                                "it in proxy_credentials"))
        << read_file(daemon.log_file());
}

TEST_F(ProxyTest, AProxyThatForbidsThePortNamesTheDestination) {
    tinyproxy_fixture proxy({.connect_ports = {443}});
    daemon_setup setup;
    setup.thing = "proxy: " + proxy.url();
    daemon_fixture daemon(broker, setup);
    const std::string forbidden = "forbids connections to " + endpoint() + " (\"HTTP/1.1 403 Access violation\")";
    ASSERT_TRUE(eventually([&] { return log_has(daemon, forbidden); }, 20'000)) << read_file(daemon.log_file());
    EXPECT_TRUE(log_has(daemon, "many proxies allow CONNECT to port 443 only"));
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 0U);
}

TEST_F(ProxyTest, AnUnreachableProxyIsTransient) {
    const auto port = free_tcp_port();
    daemon_setup setup;
    setup.thing = "proxy: http://127.0.0.1:" + std::to_string(port);
    daemon_fixture daemon(broker, setup);
    const std::string unreachable =
        "cannot connect to proxy 127.0.0.1:" + std::to_string(port) + ": Connection refused; retrying in";
    ASSERT_TRUE(eventually([&] { return log_has(daemon, unreachable); }, 20'000)) << read_file(daemon.log_file());
    EXPECT_FALSE(log_has(daemon, "(needs a configuration change)")) << "retrying can help: the proxy may come up";
}

// Any other status: the status line quoted, and no retry can help.
TEST_F(ProxyTest, AnotherStatusQuotesTheStatusLine) {
    tcp_proxy peer(broker.port());
    peer.set_mode(tcp_proxy::mode::garbage);  // answers every connection "HTTP/1.0 400 this is not an MQTT broker"
    daemon_setup setup;
    setup.thing = "proxy: http://127.0.0.1:" + std::to_string(peer.port());
    daemon_fixture daemon(broker, setup);
    const std::string refused = "proxy 127.0.0.1:" + std::to_string(peer.port()) + " refused CONNECT to " + endpoint() +
                                " (\"HTTP/1.0 400 this is not an MQTT broker\"); retrying in";
    ASSERT_TRUE(eventually([&] { return log_has(daemon, refused); }, 20'000)) << read_file(daemon.log_file());
    EXPECT_TRUE(log_has(daemon, "(needs a configuration change)"));
}

// A proxy that accepts and never answers: connect_timeout ends the attempt, which names the way.
TEST_F(ProxyTest, AProxyThatNeverAnswersTimesOut) {
    tcp_proxy peer(broker.port());
    peer.set_mode(tcp_proxy::mode::black_hole);
    daemon_setup setup;
    setup.thing = "proxy: http://127.0.0.1:" + std::to_string(peer.port()) + "\nconnect_timeout: 1s";
    daemon_fixture daemon(broker, setup);
    const std::string timed_out = "timed out after 1000 ms while connect to " + endpoint() +
                                  " through proxy http://127.0.0.1:" + std::to_string(peer.port()) + "; retrying in";
    ASSERT_TRUE(eventually([&] { return log_has(daemon, timed_out); }, 20'000)) << read_file(daemon.log_file());
    EXPECT_FALSE(log_has(daemon, "(needs a configuration change)"));
}

TEST_F(ProxyTest, EnvironmentProxyIsUsedUnlessNoProxyExemptsTheEndpoint) {
    tinyproxy_fixture proxy({});
    {
        daemon_setup setup;
        setup.thing = "proxy: env";
        setup.env = {"https_proxy=" + proxy.url(), "no_proxy=example.com"};
        daemon_fixture daemon(broker, setup);
        expect_round_trip(broker, daemon, 5);
        EXPECT_EQ(proxy.connect_requests(endpoint()), 1U);
        EXPECT_TRUE(log_has(daemon, "through proxy " + proxy.url() + " (from https_proxy)"))
            << read_file(daemon.log_file());
        EXPECT_EQ(daemon.stop(), 0);
    }
    const auto before = proxy.connections();
    daemon_setup setup;
    setup.thing = "proxy: env";
    // The lower-case variables would win: empty, they leave the decision to the upper-case ones.
    setup.env = {"https_proxy=", "no_proxy=", "HTTPS_PROXY=" + proxy.url(), "NO_PROXY=.example.com, " + broker.host()};
    daemon_fixture daemon(broker, setup);
    expect_round_trip(broker, daemon, 5);
    EXPECT_EQ(proxy.connections(), before) << "no_proxy exempts the endpoint: tinyproxy saw nothing";
    EXPECT_TRUE(log_has(daemon, "proxy: env: NO_PROXY exempts it; connecting to " + endpoint() + " directly"))
        << read_file(daemon.log_file());
}

TEST_F(ProxyTest, AMalformedEnvironmentProxyIsReportedNotBypassed) {
    daemon_setup setup;
    setup.thing = "proxy: env";
    setup.env = {"https_proxy=socks5://127.0.0.1:1080", "no_proxy="};
    daemon_fixture daemon(broker, setup);
    ASSERT_TRUE(eventually([&] { return log_has(daemon, "https_proxy names no usable proxy"); }, 20'000))
        << read_file(daemon.log_file());
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 0U);
}

// An https:// proxy: socat terminates TLS (with the broker PKI's localhost certificate) in front
// of tinyproxy; thingmuxd checks it against proxy_ca, then runs its own TLS to the broker inside.
TEST_F(ProxyTest, ThroughAnHttpsProxyCheckedAgainstProxyCa) {
    tinyproxy_fixture proxy({.user = "alice",
                             .password = "s3cret-pw",
                             .tls_cert = broker.dir() / "pki" / "server.crt",
                             .tls_key = broker.dir() / "pki" / "server.key"});
    ASSERT_TRUE(proxy.url().starts_with("https://localhost:"));
    dbus_fixture bus;
    daemon_setup setup;
    setup.bus = bus.address();
    setup.thing = "proxy: " + proxy.url() + "\nproxy_ca: " + broker.ca_file().string() +
                  "\nproxy_credentials: " + secret_file("proxy-login", "alice:s3cret-pw").string();
    daemon_fixture daemon(broker, setup);
    expect_round_trip(broker, daemon, 10);
    EXPECT_EQ(proxy.connect_requests(endpoint()), 1U);

    // D-Bus and thingmuxctl status show the proxy, never its credentials.
    const auto r = bus.thing_property("Proxy");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output, "s \"" + proxy.url() + "\"\n");
    const auto out = ctl_status(bus.address(), daemon);
    EXPECT_NE(out.find("\nendpoint:          " + endpoint() + ", through proxy " + proxy.url() + "\n"), std::string::npos)
        << out;
    EXPECT_NE(out.find("\nauth:              x509\n"), std::string::npos) << out;
    EXPECT_EQ(out.find("s3cret"), std::string::npos) << out;
}

TEST_F(ProxyTest, AnHttpsProxyWithAnUntrustedCertificateNeedsProxyCa) {
    tinyproxy_fixture proxy(
        {.tls_cert = broker.dir() / "pki" / "server.crt", .tls_key = broker.dir() / "pki" / "server.key"});
    daemon_setup setup;
    setup.thing = "proxy: " + proxy.url() + "\nproxy_ca: " + broker.other_ca_file().string();
    daemon_fixture daemon(broker, setup);
    const std::string untrusted = "TLS handshake with proxy localhost:" + std::to_string(proxy.port()) +
                                  " failed: server certificate for localhost not trusted by CA file " +
                                  broker.other_ca_file().string();
    ASSERT_TRUE(eventually([&] { return log_has(daemon, untrusted); }, 20'000)) << read_file(daemon.log_file());
    EXPECT_TRUE(log_has(daemon, "(needs a configuration change)"));
    EXPECT_EQ(proxy.connections(), 0U) << "nothing reached tinyproxy behind the TLS front";
}

// http:// written for a proxy that speaks TLS: it hangs up on the plain CONNECT (OpenSSL sends
// no alert to what looks like a request to a proxy), or answers with a TLS alert, not HTTP.
TEST_F(ProxyTest, PlainHttpToATlsProxySaysTheAnswerIsNotHttp) {
    tinyproxy_fixture proxy(
        {.tls_cert = broker.dir() / "pki" / "server.crt", .tls_key = broker.dir() / "pki" / "server.key"});
    daemon_setup setup;
    setup.thing = "proxy: http://127.0.0.1:" + std::to_string(proxy.port());
    daemon_fixture daemon(broker, setup);
    ASSERT_TRUE(eventually([&] { return log_has(daemon, "if the proxy expects TLS, write https:// in proxy"); }, 20'000))
        << read_file(daemon.log_file());
}

}  // namespace
}  // namespace thingmux::test
