// Tests of the AWS-IoT-like broker fixture itself, with the real mosquitto_pub / mosquitto_sub:
// if these pass, the broker behaves like AWS IoT Core where the daemon's tests rely on it.
#include "tests/support/broker_fixture.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace thingmux::test {
namespace {

using strings = std::vector<std::string>;

strings operator+(strings a, const strings& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
    return n;
}

// A zombie is not alive: the script's mosquitto is reparented to init, which reaps it late.
bool alive(int pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto paren = stat.rfind(") ");
    return paren != std::string::npos && stat.at(paren + 2) != 'Z';
}

class BrokerFixtureTest : public ::testing::Test {
protected:
    broker_fixture broker{{.things = {"gateway-01", "gateway-02"}}};

    // mosquitto_pub at QoS 1; returns its exit code.
    int pub(const identity& who, const std::string& client_id, const std::string& topic, const strings& more,
            std::string* out = nullptr) {
        return run_command(strings{"mosquitto_pub"} + broker.client_args(who, client_id) +
                               strings{"-t", topic, "-q", "1"} + more,
                           out, 20'000);
    }
    int pub(const std::string& thing, const std::string& topic, const std::string& payload) {
        return pub(broker.thing(thing), thing, topic, {"-m", payload});
    }
    std::filesystem::path write_payload(const std::string& name, std::size_t size) const {
        const auto p = broker.dir() / name;
        std::ofstream(p, std::ios::binary) << std::string(size, 'x');
        return p;
    }
};

// (a)
TEST_F(BrokerFixtureTest, ThingPublishIsSeenByObserver) {
    observer_subscription obs(broker, "dt/#");
    ASSERT_TRUE(obs.wait_ready());
    for (int i = 1; i <= 5; ++i) ASSERT_EQ(pub("gateway-01", "dt/gateway-01/x", std::to_string(i)), 0);
    ASSERT_EQ(obs.wait_for(5, 10'000), 5U);
    EXPECT_EQ(obs.lines(), (strings{"dt/gateway-01/x 1", "dt/gateway-01/x 2", "dt/gateway-01/x 3",
                                    "dt/gateway-01/x 4", "dt/gateway-01/x 5"}));
}

// (b) Sequential publishes are queued to the observer in order, so once the allowed message has
// arrived, a delivered denied one would already be there too.
TEST_F(BrokerFixtureTest, AclDropsPublishToAnotherThingsTopic) {
    observer_subscription obs(broker, "dt/#");
    ASSERT_TRUE(obs.wait_ready());
    // MQTT 3.1.1 cannot refuse a PUBLISH: mosquitto acknowledges it and drops it.
    EXPECT_EQ(pub("gateway-01", "dt/gateway-02/x", "1"), 0);
    EXPECT_EQ(pub("gateway-01", "dt/gateway-01/x", "2"), 0);
    ASSERT_EQ(obs.wait_for(1, 10'000), 1U);
    EXPECT_EQ(obs.lines(), strings{"dt/gateway-01/x 2"});
    EXPECT_NE(read_file(broker.log_file()).find("Denied PUBLISH from gateway-01"), std::string::npos);
}

// (c), (d), (e): each with a positive control, so a refusal is not a broken command line.
TEST_F(BrokerFixtureTest, ExpiredCertificateIsRefused) {
    std::string out;
    EXPECT_NE(pub(broker.expired(), "gateway-expired", "dt/gateway-expired/x", {"-m", "1"}, &out), 0) << out;
    EXPECT_EQ(pub("gateway-01", "dt/gateway-01/x", "1"), 0);
}

TEST_F(BrokerFixtureTest, CertificateFromUntrustedCaIsRefused) {
    std::string out;
    EXPECT_NE(pub(broker.wrong_ca(), "gateway-rogue", "dt/gateway-rogue/x", {"-m", "1"}, &out), 0) << out;
    EXPECT_EQ(pub("gateway-01", "dt/gateway-01/x", "1"), 0);
}

TEST_F(BrokerFixtureTest, ClientWithoutCertificateIsRefused) {
    std::string out;
    const strings args{"mosquitto_pub", "-h", broker.host(), "-p", std::to_string(broker.port()),
                       "--cafile", broker.ca_file().string(), "-i", "anonymous", "-t", "dt/x", "-m", "1", "-q", "1"};
    EXPECT_NE(run_command(args, &out), 0) << out;
    EXPECT_NE(read_file(broker.log_file()).find("peer did not return a certificate"), std::string::npos);
}

// (f) DESIGN.md §1: a second connection with the Thing's client ID kicks the first one off, and
// what is published in between is lost for it. Progress is read from the broker log: mosquitto_sub
// flushes its stdout for messages only, not for -d debug lines.
TEST_F(BrokerFixtureTest, SecondConnectionWithSameClientIdTakesOver) {
    const auto out = broker.dir() / "takeover-sub.out";
    const auto subacks = [&] { return count(read_file(broker.log_file()), "Sending SUBACK to gateway-01"); };
    child_process sub(strings{"mosquitto_sub"} + broker.client_args(broker.thing("gateway-01"), "gateway-01") +
                          strings{"-t", "cmd/gateway-01/#", "-q", "1", "-v"},
                      out);
    ASSERT_TRUE(eventually([&] { return subacks() == 1; }));

    EXPECT_EQ(pub("gateway-01", "cmd/gateway-01/x", "1"), 0);
    EXPECT_NE(read_file(broker.log_file()).find("Client gateway-01 already connected, closing old connection"),
              std::string::npos);
    // mosquitto_sub reconnects by itself (after 1 s) with a new clean session and subscribes again.
    ASSERT_TRUE(eventually([&] { return subacks() == 2; }));
    EXPECT_EQ(pub(broker.observer(), "observer-cmd", "cmd/gateway-01/x", {"-m", "2"}), 0);
    ASSERT_TRUE(eventually([&] { return read_file(out).find("cmd/gateway-01/x 2") != std::string::npos; }));
    EXPECT_EQ(read_file(out), "cmd/gateway-01/x 2\n");
}

// (g)
TEST_F(BrokerFixtureTest, PersistentSessionSurvivesRestart) {
    observer_subscription obs(broker, "dt/#");
    ASSERT_TRUE(obs.wait_ready());
    ASSERT_EQ(pub("gateway-01", "dt/gateway-01/x", "1"), 0);
    ASSERT_EQ(obs.wait_for(1, 10'000), 1U);
    // Message 1 counts as delivered once the broker has the observer's PUBACK; stopped before,
    // the broker keeps it in flight and sends it again after the restart (QoS 1 allows it), and
    // the lines would be 1, 1, 2 (as happened under load).
    ASSERT_TRUE(obs.wait_acknowledged());
    const auto port = broker.port();

    broker.restart();
    EXPECT_EQ(broker.port(), port);
    // Published before mosquitto_sub has reconnected: queued in the restored session.
    ASSERT_EQ(pub("gateway-01", "dt/gateway-01/x", "2"), 0);
    ASSERT_EQ(pub("gateway-01", "dt/gateway-01/x", "3"), 0);
    ASSERT_EQ(obs.wait_for(3, 20'000), 3U);
    EXPECT_EQ(obs.lines(), (strings{"dt/gateway-01/x 1", "dt/gateway-01/x 2", "dt/gateway-01/x 3"}));
}

// Without the clean-session wipe in its constructor, obs2 would inherit obs1's session and get
// message 1, which was queued for it while no observer was connected.
TEST_F(BrokerFixtureTest, NewObserverDoesNotInheritAnOldSession) {
    std::optional<observer_subscription> obs1;
    obs1.emplace(broker, "dt/#", "observer-x");
    ASSERT_TRUE(obs1->wait_ready());
    obs1.reset();
    ASSERT_EQ(pub("gateway-01", "dt/gateway-01/x", "1"), 0);
    observer_subscription obs2(broker, "dt/#", "observer-x");
    ASSERT_TRUE(obs2.wait_ready());
    ASSERT_EQ(pub("gateway-01", "dt/gateway-01/x", "2"), 0);
    ASSERT_EQ(obs2.wait_for(1, 10'000), 1U);
    EXPECT_EQ(obs2.lines(), strings{"dt/gateway-01/x 2"});
}

TEST_F(BrokerFixtureTest, KillAndStartComeBackOnTheSamePort) {
    const auto port = broker.port();
    broker.kill();
    EXPECT_FALSE(broker.running());
    EXPECT_NE(pub("gateway-01", "dt/gateway-01/x", "1"), 0);
    broker.start();
    EXPECT_TRUE(broker.running());
    EXPECT_EQ(broker.port(), port);
    EXPECT_EQ(pub("gateway-01", "dt/gateway-01/x", "2"), 0);
}

// (h) AWS IoT Core: payload ≤ 128 KiB; larger packets get the connection closed. -V mqttv311
// because an MQTT 5 mosquitto_pub learns the limit from CONNACK and silently sends nothing.
TEST_F(BrokerFixtureTest, PacketOverMaxPacketSizeIsRejected) {
    observer_subscription obs(broker, "dt/#");
    ASSERT_TRUE(obs.wait_ready());
    const auto big = write_payload("big", 150'000);
    const auto ok = write_payload("ok", 128 * 1024);
    const auto gw = broker.thing("gateway-01");
    EXPECT_NE(pub(gw, "gateway-01", "dt/gateway-01/big", {"-V", "mqttv311", "-f", big.string()}), 0);
    EXPECT_EQ(pub(gw, "gateway-01", "dt/gateway-01/ok", {"-V", "mqttv311", "-f", ok.string()}), 0);
    ASSERT_EQ(obs.wait_for(1, 10'000), 1U);
    EXPECT_EQ(obs.lines(), strings{"dt/gateway-01/ok " + std::string(128 * 1024, 'x')});
    EXPECT_NE(read_file(broker.log_file()).find("disconnected due to oversize packet"), std::string::npos);
}

// A certificate the test CA issues for a device's own key (what the fleet provisioning responder
// does) connects as its CN; a request that is not one is refused with openssl's words.
TEST_F(BrokerFixtureTest, SignedCsrConnectsAsItsCommonName) {
    const auto key = broker.dir() / "gateway-09.key", csr = broker.dir() / "gateway-09.csr",
               cert = broker.dir() / "gateway-09.crt";
    run_or_throw({"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key.string()});
    run_or_throw({"openssl", "req", "-new", "-key", key.string(), "-subj", "/CN=gateway-09", "-out", csr.string()});
    broker.sign_csr(csr, cert, 1);
    EXPECT_EQ(run_command({"openssl", "x509", "-in", cert.string(), "-noout", "-checkend", "172800"}), 1);  // 1 day

    observer_subscription obs(broker, "dt/#");
    ASSERT_TRUE(obs.wait_ready());
    EXPECT_EQ(pub({"gateway-09", cert, key}, "gateway-09", "dt/gateway-09/x", {"-m", "1"}), 0);
    ASSERT_EQ(obs.wait_for(1, 10'000), 1U);
    EXPECT_EQ(obs.lines(), strings{"dt/gateway-09/x 1"});

    std::ofstream(broker.dir() / "garbage.csr") << "not a request";
    EXPECT_THROW(broker.sign_csr(broker.dir() / "garbage.csr", broker.dir() / "garbage.crt"), std::runtime_error);
    EXPECT_FALSE(std::filesystem::exists(broker.dir() / "garbage.crt"));
}

TEST(BrokerFixture, TwoBrokersSideBySide) {
    broker_fixture a;
    broker_fixture b;
    EXPECT_NE(a.port(), b.port());
    EXPECT_NE(a.dir(), b.dir());
    EXPECT_TRUE(a.running());
    EXPECT_TRUE(b.running());
}

TEST(BrokerFixture, UnknownThingIsAnError) {
    broker_fixture broker;
    EXPECT_THROW((void)broker.thing("gateway-99"), std::invalid_argument);
}

// The script's own lifecycle, as the demo and benchmarks use it.
TEST(AwsLikeBrokerScript, StartEnvRestartStop) {
    broker_fixture scratch;  // only for its temporary directory
    const auto dir = (scratch.dir() / "script").string();
    struct stopper {
        std::string dir;
        ~stopper() { run_command({THINGMUX_BROKER_SCRIPT, "kill", dir}); }
    } guard{dir};

    std::string out;
    ASSERT_EQ(run_command({THINGMUX_BROKER_SCRIPT, "start", dir}, &out), 0) << out;
    const std::string port = out.substr(0, out.find('\n'));
    ASSERT_EQ(run_command({THINGMUX_BROKER_SCRIPT, "env", dir}, &out), 0) << out;
    EXPECT_NE(out.find("TMX_BROKER_PORT=" + port + "\n"), std::string::npos) << out;
    EXPECT_NE(out.find("TMX_CERT_GATEWAY_01="), std::string::npos) << out;
    ASSERT_EQ(run_command({THINGMUX_BROKER_SCRIPT, "restart", dir}, &out), 0) << out;
    EXPECT_EQ(out, port + "\n");
    const auto pid = std::stoi(read_file(dir + "/mosquitto.pid"));
    ASSERT_EQ(run_command({THINGMUX_BROKER_SCRIPT, "stop", dir}, &out), 0) << out;
    EXPECT_FALSE(alive(pid));
    EXPECT_NE(run_command({THINGMUX_BROKER_SCRIPT, "start", dir, "not-a-port"}, &out), 0);
}

TEST(Process, RunCommandReportsExitCodeOutputAndTimeout) {
    std::string out;
    EXPECT_EQ(run_command({"sh", "-c", "echo hello; echo oops >&2; exit 3"}, &out), 3);
    EXPECT_EQ(out, "hello\noops\n");
    EXPECT_EQ(run_command({"sleep", "10"}, &out, 100), -1);
    EXPECT_THROW(run_command({"/nonexistent/command"}), std::system_error);
}

TEST(Process, StopEscalatesToSigkill) {
    const auto marker = std::filesystem::temp_directory_path() / ("stop-test-" + std::to_string(getpid()));
    child_process p({"sh", "-c", "trap '' TERM; echo trapped; while :; do sleep 0.05; done"}, marker);
    ASSERT_TRUE(eventually([&] { return read_file(marker) == "trapped\n"; }));
    std::filesystem::remove(marker);
    const int status = p.stop(200);
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
    EXPECT_FALSE(p.running());
}

}  // namespace
}  // namespace thingmux::test
