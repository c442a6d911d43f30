// thingmuxd with transport: websocket (MQTT over wss, docs/connecting.md): the real daemon, the
// real AWS-like mosquitto behind wss_relay (a Boost.Beast WebSocket-over-TLS front that records
// every upgrade request), tinyproxy for the way through a proxy, and hostile fronts: a refused
// upgrade, another subprotocol, an oversized message.
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/dbus_fixture.hpp"
#include "tests/support/measure.hpp"
#include "tests/support/round_trip.hpp"
#include "tests/support/tinyproxy_fixture.hpp"
#include "tests/support/wss_front.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace thingmux::test {
namespace {

// The peak resident memory of a process (VmHWM), in bytes.
std::size_t peak_resident_bytes(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("VmHWM:")) return std::stoul(line.substr(6)) * 1024;
    }
    return 0;
}

class WebSocketTest : public ::testing::Test {
protected:
    broker_fixture broker;

    // A daemon whose Thing goes over WebSocket to `front` (more YAML lines in `thing`).
    [[nodiscard]] daemon_setup over(const wss_front& front, const std::string& thing = {}) const {
        daemon_setup setup;
        setup.port = front.port();
        setup.thing =
            "transport: websocket\nbackoff: { base: 100ms, cap: 300ms }" + (thing.empty() ? "" : "\n" + thing);
        return setup;
    }

    // Expects the upgrade request the front recorded to be the one AWS IoT Core wants.
    static void expect_mqtt_upgrade(const std::string& line, std::uint16_t port) {
        EXPECT_NE(line.find(R"("target":"/mqtt")"), std::string::npos) << line;
        EXPECT_NE(line.find(R"("sec-websocket-protocol":"mqtt")"), std::string::npos) << line;
        EXPECT_NE(line.find(R"("host":"localhost:)" + std::to_string(port) + "\""), std::string::npos) << line;
        EXPECT_NE(line.find(R"("upgrade":"websocket")"), std::string::npos) << line;
        EXPECT_NE(line.find(R"("client_cert":true)"), std::string::npos) << line;
    }
};

TEST_F(WebSocketTest, PublishAndSubscribeOverWss) {
    wss_front front(broker, {});
    dbus_fixture bus;
    auto setup = over(front);
    setup.bus = bus.address();
    daemon_fixture daemon(broker, setup);
    expect_round_trip(broker, daemon, 20, 1, "over-wss-qos1");
    expect_round_trip(broker, daemon, 20, 0, "over-wss-qos0");
    const auto upgrades = front.upgrades();
    ASSERT_EQ(upgrades.size(), 1U) << "one WebSocket for the one session";
    expect_mqtt_upgrade(upgrades.front(), front.port());
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);

    // D-Bus and thingmuxctl status show the transport.
    const auto r = bus.thing_property("Transport");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output, "s \"websocket\"\n");
    const auto out = ctl_status(bus.address(), daemon);
    EXPECT_NE(out.find("\nendpoint:          localhost:" + std::to_string(front.port()) +
                       " over WebSocket (wss), directly\n"),
              std::string::npos)
        << out;
}

// What the broker sends arrives in messages of 3 bytes: MQTT packets span WebSocket messages,
// and one read of the front may put several packets into one message.
TEST_F(WebSocketTest, PacketsSpanningMessages) {
    wss_front front(broker, {.fragment = 3});
    daemon_fixture daemon(broker, over(front));
    expect_round_trip(broker, daemon, 20);
    EXPECT_EQ(front.upgrades().size(), 1U);
}

// The front dies with the connection: the daemon reconnects over a new WebSocket, and nothing an
// app published meanwhile at QoS 1 is lost.
TEST_F(WebSocketTest, ReconnectsAfterTheFrontDiedAndLosesNothing) {
    wss_front front(broker, {});
    daemon_fixture daemon(broker, over(front));
    expect_round_trip(broker, daemon, 5);
    expect_nothing_lost_while_front_down(broker, daemon, front);
    const auto upgrades = front.upgrades();
    ASSERT_GE(upgrades.size(), 2U);
    expect_mqtt_upgrade(upgrades.back(), front.port());
}

TEST_F(WebSocketTest, ThroughTinyproxy) {
    wss_front front(broker, {});
    tinyproxy_fixture proxy({});
    daemon_fixture daemon(broker, over(front, "proxy: " + proxy.url()));
    expect_round_trip(broker, daemon, 20);
    EXPECT_EQ(proxy.connect_requests("localhost:" + std::to_string(front.port())), 1U);
    EXPECT_EQ(front.upgrades().size(), 1U);
}

// A server refusing the upgrade (AWS IoT Core answers 403 to a signature it refuses): the
// status and the advice once per attempt, and the daemon keeps trying.
TEST_F(WebSocketTest, UpgradeRefusedWith403OncePerAttempt) {
    wss_front front(broker, {.status = 403});
    daemon_fixture daemon(broker, over(front));
    const std::string refused = "wss://localhost:" + std::to_string(front.port()) +
                                "/mqtt refused the WebSocket upgrade with HTTP 403 \"Forbidden\"";
    ASSERT_TRUE(eventually([&] { return lines_containing(daemon.log_file(), refused) >= 3; }, 30'000))
        << read_file(daemon.log_file());
    EXPECT_TRUE(log_has(daemon, "AWS IoT Core takes WebSocket connections only with auth: sigv4"));
    daemon.stop();
    const auto reported = lines_containing(daemon.log_file(), refused);
    const auto requests = front.upgrades().size();
    EXPECT_TRUE(requests == reported || requests == reported + 1)
        << requests << " upgrades, " << reported << " reported";
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 0U);
}

TEST_F(WebSocketTest, AnotherSubprotocolIsRefusedAsNotMqtt) {
    wss_front front(broker, {.subprotocol = "wamp"});
    daemon_fixture daemon(broker, over(front));
    ASSERT_TRUE(
        eventually([&] { return log_has(daemon, "chose the WebSocket subprotocol \"wamp\" instead of mqtt"); }, 20'000))
        << read_file(daemon.log_file());
    EXPECT_TRUE(log_has(daemon, "(needs a configuration change)")) << read_file(daemon.log_file());
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 0U);
}

TEST_F(WebSocketTest, NoSubprotocolChosenIsRefused) {
    wss_front front(broker, {.subprotocol = ""});
    daemon_fixture daemon(broker, over(front));
    ASSERT_TRUE(eventually([&] { return log_has(daemon, "chose no WebSocket subprotocol instead of mqtt"); }, 20'000))
        << read_file(daemon.log_file());
}

// A hostile server sends one 256 MiB message: refused once it passes 1 MiB, and the daemon's
// memory never held it.
TEST_F(WebSocketTest, AnOversizedMessageIsRefusedWithBoundedMemory) {
    wss_front front(broker, {.oversized = 256U * 1024 * 1024});
    daemon_fixture daemon(broker, over(front));
    ASSERT_TRUE(
        eventually([&] { return log_has(daemon, "sent a message longer than 1048576 bytes; refused"); }, 30'000))
        << read_file(daemon.log_file());
    const auto peak = peak_resident_bytes(daemon.pid());
    EXPECT_GT(peak, 0U);
#ifndef THINGMUX_SANITIZED  // under ASan, the peak measures its shadow memory and quarantine
    EXPECT_LT(peak, 64U * 1024 * 1024) << "the daemon's peak resident memory";
#endif
}

// A refusal with a 1 MiB body: the answer is refused past 16 KiB, not read whole.
TEST_F(WebSocketTest, AnOversizedUpgradeAnswerIsRefused) {
    wss_front front(broker, {.status = 403, .body_bytes = 1024 * 1024});
    daemon_fixture daemon(broker, over(front));
    ASSERT_TRUE(eventually(
        [&] { return log_has(daemon, "to the WebSocket upgrade is longer than 16384 bytes; refused"); }, 20'000))
        << read_file(daemon.log_file());
}

// The server closes the WebSocket with a code and a reason of its own: both reported, the
// reason escaped (it cannot start a log line of its own).
TEST_F(WebSocketTest, ACloseFromTheServerIsReportedWithItsCodeAndEscapedReason) {
    wss_front front(broker, {.close_reason = "go away\nforged line"});
    daemon_fixture daemon(broker, over(front));
    const std::string closed = "closed the connection with code 1008 and reason \"go away\\nforged line\"";
    ASSERT_TRUE(eventually([&] { return log_has(daemon, closed); }, 20'000)) << read_file(daemon.log_file());
    EXPECT_FALSE(log_has(daemon, "\nforged line")) << "no raw line break from the server";
    EXPECT_EQ(lines_containing(daemon.log_file(), "forged line"), lines_containing(daemon.log_file(), "go away"));
}

}  // namespace
}  // namespace thingmux::test
