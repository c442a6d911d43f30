// Uplink against the real AWS-like mosquitto with mTLS: connect, subscribe, publish, receive
// (MQTT 5 and 3.1.1), a broker restart under load, session loss and re-subscription, and the
// errors a user must be able to act on.
#include "daemon/uplink/uplink.hpp"
#include "tests/support/broker_fixture.hpp"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <algorithm>
#include <fcntl.h>
#include <future>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>

namespace thingmux::test {
namespace {

using namespace std::chrono_literals;
using uplink::link_state;

std::string version_name(const ::testing::TestParamInfo<mqtt::protocol_version>& info) {
    return info.param == mqtt::protocol_version::v5 ? "mqtt5" : "mqtt311";
}

class uplink_fixture {
public:
    uplink_fixture(broker_fixture& broker, const identity& who, mqtt::protocol_version version = mqtt::protocol_version::v5) {
        cfg.thing_name = who.name;
        cfg.host = broker.host();
        cfg.port = broker.port();
        cfg.tls = {.ca_file = broker.ca_file(), .cert_file = who.cert, .key_file = who.key};
        cfg.session.version = version;
        cfg.session.keep_alive = 30s;
        // Short backoff keeps tests quick; the one-CONNECT-per-second rule stays in force.
        cfg.backoff.base = 100ms;
        cfg.backoff.cap = 1000ms;
    }

    uplink::uplink& start() {
        link = uplink::uplink::create(io, cfg);
        link->on_state([this](const uplink::state_event& ev) {
            events.push_back(ev);
            event_times.push_back(std::chrono::steady_clock::now());
        });
        link->on_message([this](const mqtt::publish& m, std::optional<mqtt::inbound_ticket> t) {
            messages.push_back(m);
            if (t) link->acknowledge(*t);
        });
        link->start();
        return *link;
    }

    // Runs the event loop until `pred` holds or `timeout` passes; returns pred().
    template <typename Pred>
    bool run_until(Pred pred, std::chrono::milliseconds timeout = 20s) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (!pred() && std::chrono::steady_clock::now() < end) io.run_for(5ms);
        return pred();
    }

    bool connected() const { return link && link->state() == link_state::connected; }

    std::size_t count_state(link_state s) const {
        return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [s](auto& e) { return e.state == s; }));
    }

    // However the attempts end, the uplink never sends two CONNECTs within a second.
    void expect_connects_paced() const {
        std::optional<std::chrono::steady_clock::time_point> last;
        for (std::size_t i = 0; i < events.size(); ++i) {
            if (events[i].state != link_state::connecting) continue;
            if (last) {
                EXPECT_GE(event_times[i] - *last, 999ms) << "attempts closer than the 1 s CONNECT limit";
            }
            last = event_times[i];
        }
    }

    std::vector<std::uint8_t> subscribe(const std::string& filter) {
        std::optional<std::vector<std::uint8_t>> codes;
        link->subscribe({{.filter = filter, .max_qos = mqtt::qos::at_least_once}}, [&](auto& c) { codes = c; });
        EXPECT_TRUE(run_until([&] { return codes.has_value(); })) << "no SUBACK for " << filter;
        return codes.value_or(std::vector<std::uint8_t>{});
    }

    std::size_t received_on(const std::string& topic) const {
        return static_cast<std::size_t>(
            std::count_if(messages.begin(), messages.end(), [&](auto& m) { return m.topic == topic; }));
    }

    void stop() {
        bool done = false;
        link->stop([&] { done = true; });
        EXPECT_TRUE(run_until([&] { return done; }));
    }

    boost::asio::io_context io;
    uplink::uplink_config cfg;
    std::shared_ptr<uplink::uplink> link;
    std::vector<uplink::state_event> events;
    std::vector<std::chrono::steady_clock::time_point> event_times;
    std::vector<mqtt::publish> messages;
};

class UplinkTest : public ::testing::TestWithParam<mqtt::protocol_version> {
protected:
    broker_fixture broker;
    void SetUp() override { broker.start(); }
};

TEST_P(UplinkTest, ConnectsSubscribesPublishesAndReceivesOwnMessages) {
    uplink_fixture u(broker, broker.thing("gateway-01"), GetParam());
    u.start();
    ASSERT_TRUE(u.run_until([&] { return u.connected(); })) << u.link->last_event().reason;
    EXPECT_FALSE(u.events.back().fatal);

    const auto codes = u.subscribe("dt/gateway-01/#");
    ASSERT_EQ(codes.size(), 1U);
    EXPECT_EQ(codes[0], 1) << "granted QoS 1";

    std::map<mqtt::qos, unsigned> acked;
    for (auto q : {mqtt::qos::at_most_once, mqtt::qos::at_least_once}) {
        const std::string topic = q == mqtt::qos::at_most_once ? "dt/gateway-01/q0" : "dt/gateway-01/q1";
        for (int i = 0; i < 10; ++i) {
            u.link->publish({.topic = topic, .payload = std::to_string(i), .qos = q}, [&acked, q](auto& d) {
                EXPECT_EQ(d.error, mqtt::local_error::none);
                EXPECT_EQ(d.reason_code, mqtt::reason::success);
                ++acked[q];
            });
        }
    }
    ASSERT_TRUE(u.run_until([&] { return u.received_on("dt/gateway-01/q0") >= 10 && u.received_on("dt/gateway-01/q1") >= 10; }));
    EXPECT_EQ(acked[mqtt::qos::at_most_once], 10U);
    EXPECT_EQ(acked[mqtt::qos::at_least_once], 10U);
    EXPECT_EQ(u.received_on("dt/gateway-01/q0"), 10U);
    EXPECT_EQ(u.received_on("dt/gateway-01/q1"), 10U);
    EXPECT_EQ(u.link->counters().connects, 1U);
    u.stop();
    EXPECT_EQ(u.link->state(), link_state::stopped);
}

TEST_P(UplinkTest, BrokerRestartDuringThousandQos1MessagesLosesNothing) {
    observer_subscription observer(broker, "dt/gateway-01/#");
    ASSERT_TRUE(observer.wait_ready());

    uplink_fixture u(broker, broker.thing("gateway-01"), GetParam());
    u.start();
    ASSERT_TRUE(u.run_until([&] { return u.connected(); })) << u.link->last_event().reason;

    constexpr unsigned total = 1000;
    unsigned acked = 0, failed = 0;
    for (unsigned i = 1; i <= total; ++i) {
        u.link->publish({.topic = "dt/gateway-01/seq", .payload = std::to_string(i), .qos = mqtt::qos::at_least_once},
                        [&](const mqtt::action::publish_done& d) {
                            (d.error == mqtt::local_error::none && d.reason_code < 0x80 ? acked : failed) += 1;
                        });
    }
    ASSERT_TRUE(u.run_until([&] { return acked >= 300; }));
    ASSERT_LT(acked, total) << "the restart must happen while messages are still in flight";
    broker.restart();
    ASSERT_TRUE(u.run_until([&] { return acked + failed == total; }, 60s))
        << acked << " acked, " << failed << " failed; state " << uplink::to_string(u.link->state()) << ": "
        << u.link->last_event().reason;
    EXPECT_EQ(failed, 0U);
    EXPECT_EQ(acked, total);
    EXPECT_GE(u.link->counters().connects, 2U) << "the uplink reconnected after the restart";

    // Duplicates count as lines, so wait for the distinct ones.
    std::set<std::string> distinct;
    eventually([&] {
        distinct.clear();
        for (const auto& line : observer.lines()) distinct.insert(line);
        return distinct.size() >= total;
    }, 30'000);
    for (unsigned i = 1; i <= total; ++i)
        EXPECT_TRUE(distinct.count("dt/gateway-01/seq " + std::to_string(i))) << "message " << i << " lost";
    const auto duplicates = observer.lines().size() - distinct.size();
    RecordProperty("duplicates", static_cast<int>(duplicates));
    std::cout << "[ measured ] " << total << " QoS 1 messages across a broker restart: " << distinct.size()
              << " received, " << duplicates << " duplicates\n";
}

TEST_P(UplinkTest, ResubscribesWhenTheBrokerLostTheSession) {
    uplink_fixture u(broker, broker.thing("gateway-01"), GetParam());
    u.start();
    ASSERT_TRUE(u.run_until([&] { return u.connected(); }));
    ASSERT_EQ(u.subscribe("cmd/gateway-01/#").at(0), 1);

    // SIGKILL plus an empty persistence directory: the broker comes back without our session.
    broker.kill();
    std::filesystem::remove_all(broker.dir() / "data");
    std::filesystem::create_directories(broker.dir() / "data");
    broker.start();
    ASSERT_TRUE(u.run_until([&] { return u.link->counters().connects >= 2 && u.connected(); }, 30s))
        << u.link->last_event().reason;
    EXPECT_FALSE(u.events.back().session_present);

    // Published by the uplink itself: it only comes back if the subscription was renewed.
    unsigned acked = 0;
    u.link->publish({.topic = "cmd/gateway-01/after", .payload = "x", .qos = mqtt::qos::at_least_once},
                    [&](auto&) { ++acked; });
    ASSERT_TRUE(u.run_until([&] { return u.received_on("cmd/gateway-01/after") == 1; }));
    EXPECT_EQ(acked, 1U);
    EXPECT_EQ(u.link->session().live_subscriptions().count("cmd/gateway-01/#"), 1U);
}

TEST_P(UplinkTest, TakeoverLoopIsReportedAndPaced) {
    uplink_fixture u(broker, broker.thing("gateway-01"), GetParam());
    u.start();
    ASSERT_TRUE(u.run_until([&] { return u.connected(); }));
    // Another process with the Thing's identity and client ID; mosquitto_sub reconnects on its
    // own whenever it is kicked off, so the two keep taking the session from each other.
    auto args = broker.client_args(broker.thing("gateway-01"), "gateway-01");
    args.insert(args.begin(), "mosquitto_sub");
    for (const char* a : {"-t", "cmd/gateway-01/#", "-q", "1"}) args.emplace_back(a);
    child_process intruder(args);
    auto takeover = [&] {
        return std::any_of(u.events.begin(), u.events.end(), [](const auto& e) { return e.takeover; });
    };
    ASSERT_TRUE(u.run_until(takeover, 30s)) << u.link->last_event().reason;
    const auto ev = *std::find_if(u.events.begin(), u.events.end(), [](const auto& e) { return e.takeover; });
    EXPECT_NE(ev.reason.find("client ID 'gateway-01' is in use by another connection"), std::string::npos) << ev.reason;
    u.expect_connects_paced();
    std::cout << "[ measured ] takeover reported after " << u.count_state(link_state::connecting)
              << " connection attempts: " << ev.reason.substr(0, ev.reason.find("):") + 1) << "\n";
}

INSTANTIATE_TEST_SUITE_P(Versions, UplinkTest,
                         ::testing::Values(mqtt::protocol_version::v5, mqtt::protocol_version::v311), version_name);

// --- errors a user can act on ---

class UplinkErrorTest : public ::testing::Test {
protected:
    broker_fixture broker;
    void SetUp() override { broker.start(); }

    // Runs until `attempts` connection attempts were made; checks that the uplink never retried
    // faster than once per second (no busy loop) and returns the first failure it reported.
    static uplink::state_event expect_paced_failures(uplink_fixture& u, std::size_t attempts = 3) {
        u.start();
        EXPECT_TRUE(u.run_until([&] { return u.count_state(link_state::connecting) >= attempts; }, 15s));
        u.expect_connects_paced();
        EXPECT_EQ(u.count_state(link_state::connected), 0U);
        for (const auto& ev : u.events) {
            if (ev.state == link_state::failed || ev.state == link_state::backing_off) return ev;
        }
        ADD_FAILURE() << "no failure reported";
        return {};
    }
};

TEST_F(UplinkErrorTest, ServerCertificateFromAnotherCaIsNotTrusted) {
    uplink_fixture u(broker, broker.thing("gateway-01"));
    u.cfg.tls.ca_file = broker.other_ca_file();
    const auto ev = expect_paced_failures(u);
    EXPECT_EQ(ev.state, link_state::failed);
    EXPECT_TRUE(ev.fatal);
    EXPECT_NE(ev.reason.find("server certificate for localhost not trusted by CA file " + broker.other_ca_file().string()),
              std::string::npos) << ev.reason;
}

// Our certificate expired by the system clock: said as it is loaded, before the broker would
// refuse it with a bare "certificate expired" alert, naming the clock (which a device without a
// real-time clock may have wrong), and transient: retried at the back-off pace (issue 19).
TEST_F(UplinkErrorTest, ExpiredClientCertificateIsAClockProblemRetried) {
    uplink_fixture u(broker, broker.expired());
    const auto ev = expect_paced_failures(u);
    EXPECT_EQ(ev.state, link_state::backing_off) << ev.reason;
    EXPECT_FALSE(ev.fatal) << ev.reason;
    EXPECT_EQ(ev.error, uplink::errc::client_certificate_expired) << ev.error.message();
    EXPECT_NE(ev.reason.find("client certificate file " + broker.expired().cert.string() +
                             " expired on 2020-01-02 00:00 UTC but the system clock says"),
              std::string::npos)
        << ev.reason;
}

TEST_F(UplinkErrorTest, ClientCertificateFromUntrustedCaIsRejectedByTheBroker) {
    uplink_fixture u(broker, broker.wrong_ca());
    const auto ev = expect_paced_failures(u);
    EXPECT_TRUE(ev.fatal) << ev.reason;
    EXPECT_NE(ev.reason.find("broker rejected our client certificate"), std::string::npos) << ev.reason;
}

TEST_F(UplinkErrorTest, MissingKeyFileIsNamed) {
    uplink_fixture u(broker, broker.thing("gateway-01"));
    u.cfg.tls.key_file = broker.dir() / "no-such-key.pem";
    const auto ev = expect_paced_failures(u);
    EXPECT_TRUE(ev.fatal);
    EXPECT_EQ(ev.reason, "cannot read key file " + u.cfg.tls.key_file.string() + ": No such file or directory");
}

TEST_F(UplinkErrorTest, KeyFileWithoutAKeyIsNamed) {
    uplink_fixture u(broker, broker.thing("gateway-01"));
    u.cfg.tls.key_file = broker.dir() / "garbage-key.pem";
    std::ofstream(u.cfg.tls.key_file) << "not a key\n";
    const auto ev = expect_paced_failures(u, 2);
    EXPECT_TRUE(ev.fatal);
    EXPECT_NE(ev.reason.find("key file " + u.cfg.tls.key_file.string() + " holds no usable PEM private key"),
              std::string::npos) << ev.reason;
}

TEST_F(UplinkErrorTest, KeyOfAnotherThingDoesNotMatchTheCertificate) {
    uplink_fixture u(broker, broker.thing("gateway-01"));
    u.cfg.tls.key_file = broker.observer().key;
    const auto ev = expect_paced_failures(u, 2);
    EXPECT_TRUE(ev.fatal);
    EXPECT_NE(ev.reason.find("does not match certificate"), std::string::npos) << ev.reason;
}

TEST_F(UplinkErrorTest, UnreachableBrokerIsTransientAndRetriedWithBackoff) {
    uplink_fixture u(broker, broker.thing("gateway-01"));
    u.cfg.port = free_tcp_port();  // nothing listens there
    const auto ev = expect_paced_failures(u);
    EXPECT_EQ(ev.state, link_state::backing_off);
    EXPECT_FALSE(ev.fatal);
    EXPECT_NE(ev.reason.find("cannot connect to localhost:" + std::to_string(u.cfg.port) + ": Connection refused"),
              std::string::npos) << ev.reason;
}

// A FIFO at a credential path must be refused, not opened and waited on: the uplink runs on the
// daemon's only thread. (The writer below only unblocks a reader that did wait, so that a
// failing run ends.)
TEST_F(UplinkErrorTest, KeyPathHoldingAFifoIsRefusedWithoutWaitingForAWriter) {
    const auto id = broker.thing("gateway-01");
    const auto fifo = broker.dir() / "key-fifo.pem";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const uplink::tls_settings settings{.ca_file = broker.ca_file(), .cert_file = id.cert, .key_file = fifo, .alpn = {}};
    auto made = std::async(std::launch::async, [&] { return uplink::make_tls_context(settings); });
    const bool returned = made.wait_for(20s) == std::future_status::ready;
    if (!returned) {
        const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) ::close(fd);
    }
    EXPECT_TRUE(returned) << "make_tls_context waited for a writer on the FIFO";
    const auto result = made.get();
    EXPECT_EQ(result.context, nullptr);
    EXPECT_EQ(result.error, "key file " + fifo.string() + " is a FIFO (named pipe), not a regular file");
}

// --- the transports ---

// The plain transports (the benchmarks' local side: TCP to a local mosquitto, a Unix socket to
// thingmuxd's MQTT face) against the broker's plain listeners: the same session, subscription
// and QoS 0/1 traffic as over TLS, with no credential file loaded.
std::string transport_name(const ::testing::TestParamInfo<uplink::transport_kind>& param) {
    return param.param == uplink::transport_kind::tcp ? "tcp" : "unix";
}

class UplinkPlainTransportTest : public ::testing::TestWithParam<uplink::transport_kind> {
protected:
    broker_fixture broker{broker_fixture::options{.plain_listener = true}};

    // Points `u` (gateway-01) at the broker's plain listener of the parameter's kind.
    void use_plain_listener(uplink_fixture& u) {
        u.cfg.transport = GetParam();
        if (GetParam() == uplink::transport_kind::unix_socket) {
            u.cfg.host = broker.plain_socket().string();
            u.cfg.port = 0;
        } else {
            u.cfg.port = broker.plain_port();
        }
        u.cfg.tls = {};  // nothing to load: a TLS attempt would fail on the missing files
        u.cfg.session.username = "gateway-01";
        u.cfg.session.password = broker_fixture::plain_password();
    }
};

TEST_P(UplinkPlainTransportTest, TalksToAPlainListener) {
    uplink_fixture u(broker, broker.thing("gateway-01"));
    use_plain_listener(u);
    u.start();
    ASSERT_TRUE(u.run_until([&] { return u.connected(); })) << u.link->last_event().reason;
    ASSERT_EQ(u.subscribe("dt/gateway-01/#"), std::vector<std::uint8_t>{1});

    unsigned acked = 0;
    for (auto q : {mqtt::qos::at_most_once, mqtt::qos::at_least_once}) {
        for (int i = 0; i < 10; ++i) {
            u.link->publish({.topic = "dt/gateway-01/plain", .payload = std::to_string(i), .qos = q}, [&](auto& d) {
                EXPECT_EQ(d.error, mqtt::local_error::none);
                EXPECT_EQ(d.reason_code, mqtt::reason::success);
                ++acked;
            });
        }
    }
    ASSERT_TRUE(u.run_until([&] { return acked == 20 && u.received_on("dt/gateway-01/plain") == 20; }))
        << acked << " acked, " << u.received_on("dt/gateway-01/plain") << " received";
    EXPECT_EQ(u.link->counters().connects, 1U);
    u.stop();
    EXPECT_EQ(u.link->state(), link_state::stopped);
}

INSTANTIATE_TEST_SUITE_P(Transports, UplinkPlainTransportTest,
                         ::testing::Values(uplink::transport_kind::tcp, uplink::transport_kind::unix_socket),
                         transport_name);

// A Unix socket path with nothing listening is a connect failure named by the path alone (no
// port), and retried: the peer may not have started yet.
TEST(UplinkTransportTest, UnixSocketWithNoListenerIsATransientConnectFailureNamingThePath) {
    broker_fixture broker;  // only for its directory and credentials
    uplink_fixture u(broker, broker.thing("gateway-01"));
    u.cfg.transport = uplink::transport_kind::unix_socket;
    u.cfg.host = (broker.dir() / "nobody-listens.sock").string();
    u.cfg.port = 0;
    u.cfg.tls = {};
    u.start();
    ASSERT_TRUE(u.run_until([&] { return u.count_state(link_state::backing_off) >= 1; }, 10s));
    const auto& ev = u.link->last_event();
    EXPECT_FALSE(ev.fatal);
    EXPECT_EQ(ev.error, std::errc::no_such_file_or_directory) << ev.error.message();
    EXPECT_EQ(ev.reason.find("cannot connect to " + u.cfg.host + ": "), 0U) << ev.reason;
    EXPECT_EQ(ev.reason.find(u.cfg.host + ":0"), std::string::npos) << ev.reason;
    u.stop();
}

// A path longer than a Unix socket address holds fails the attempt as a connect error, through
// the io_context like any other failure, instead of throwing out of the endpoint.
TEST(UplinkTransportTest, UnixSocketPathTooLongForTheAddressIsRefused) {
    broker_fixture broker;  // only for its credentials
    uplink_fixture u(broker, broker.thing("gateway-01"));
    u.cfg.transport = uplink::transport_kind::unix_socket;
    u.cfg.host = "/" + std::string(200, 'a') + ".sock";
    u.cfg.port = 0;
    u.cfg.tls = {};
    u.start();
    ASSERT_TRUE(u.run_until([&] { return u.count_state(link_state::backing_off) >= 1; }, 10s));
    const auto& ev = u.link->last_event();
    EXPECT_EQ(ev.error, std::errc::filename_too_long) << ev.error.message();
    EXPECT_EQ(ev.reason.find("cannot connect to /aaa"), 0U) << ev.reason;
    EXPECT_EQ(u.link->counters().connects, 0U);
    u.stop();
}

// A TLS server whose certificate our CA signed, but for another name (`openssl s_server`).
class wrong_name_server {
public:
    explicit wrong_name_server(const broker_fixture& broker) : port_(free_tcp_port()) {
        const auto pki = broker.dir() / "pki";
        const auto crt = broker.dir() / "wrong-name.crt", key = broker.dir() / "wrong-name.key";
        std::string out;
        const int rc = run_command({"openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key.string(), "-out", crt.string(),
                                    "-subj", "/CN=broker.example", "-addext", "subjectAltName=DNS:broker.example",
                                    "-addext", "extendedKeyUsage=serverAuth", "-CA", (pki / "ca.crt").string(),
                                    "-CAkey", (pki / "ca.key").string(), "-days", "1"},
                                   &out);
        if (rc != 0) throw std::runtime_error("openssl req failed: " + out);
        server_.emplace(std::vector<std::string>{"openssl", "s_server", "-www", "-accept",
                                                 "127.0.0.1:" + std::to_string(port_), "-cert", crt.string(), "-key",
                                                 key.string()},
                        broker.dir() / "s_server.out", broker.dir() / "s_server.err");
        const bool listening = eventually([&] {
            boost::asio::io_context io;
            boost::asio::ip::tcp::socket s(io);
            boost::system::error_code ec;
            s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
            return !ec;
        });
        if (!listening) throw std::runtime_error("openssl s_server does not listen on port " + std::to_string(port_));
    }
    [[nodiscard]] std::uint16_t port() const { return port_; }

private:
    std::uint16_t port_;
    std::optional<child_process> server_;
};

// Host name verification: the broker's certificate must name the host we connect to, whether
// that is a DNS name (checked with SNI sent) or an IP literal.
TEST_F(UplinkErrorTest, ServerCertificateForAnotherNameIsRefused) {
    wrong_name_server server(broker);
    for (const std::string host : {"localhost", "127.0.0.1"}) {
        uplink_fixture u(broker, broker.thing("gateway-01"));
        u.cfg.host = host;
        u.cfg.port = server.port();
        const auto ev = expect_paced_failures(u, 2);
        EXPECT_EQ(ev.state, link_state::failed) << host;
        EXPECT_TRUE(ev.fatal) << host;
        EXPECT_EQ(ev.error, uplink::errc::server_name_mismatch) << host << ": " << ev.error.message();
        EXPECT_EQ(ev.reason, "server certificate does not match host name " + host);
    }
}

}  // namespace
}  // namespace thingmux::test
