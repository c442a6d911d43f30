// The MQTT face on loopback TCP (mqtt.tcp), end to end: the real thingmuxd against the AWS-like
// broker, unmodified clients (Debian's python3-paho-mqtt 1.6, tests/integration/paho_client.py)
// with MQTT 3.1.1 and 5. Identity from the owner of the peer's socket, usernames and passwords
// from a file made by the real mosquitto_passwd, wills on an abnormal close, a listener on a
// non-loopback address refused at load, and clients that never send CONNECT.
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/measure.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

const std::string thingmuxd = std::string(THINGMUX_BIN_DIR) + "/thingmuxd";
const std::string paho = PAHO_CLIENT;

bool has_line(const std::string& output, const std::string& line) {
    return ("\n" + output).find("\n" + line + "\n") != std::string::npos;
}

class MqttTcpTest : public ::testing::Test {
protected:
    // thingmuxd with the MQTT face on 127.0.0.1:port_ too.
    daemon_setup setup(const std::string& more_mqtt = {}) {
        daemon_setup s;
        s.mqtt = "tcp: [\"127.0.0.1:" + std::to_string(port_) + "\"]\n" + more_mqtt;
        return s;
    }

    // Runs paho_client.py to completion; its exit code, its output in `out`.
    int paho_run(const std::string& version, std::vector<std::string> args, std::string& out) {
        std::vector<std::string> argv{"/usr/bin/python3", paho, "127.0.0.1", std::to_string(port_), version};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(argv, &out, 60'000);
    }

    // Starts paho_client.py in the background, its output going to `out`.
    child_process paho_start(const std::string& version, std::vector<std::string> args,
                             const std::filesystem::path& out) {
        std::vector<std::string> argv{"/usr/bin/python3", paho, "127.0.0.1", std::to_string(port_), version};
        argv.insert(argv.end(), args.begin(), args.end());
        return child_process(argv, out, out.string() + ".err");
    }

    broker_fixture broker_;
    std::uint16_t port_ = free_tcp_port();
};

TEST_F(MqttTcpTest, PublishAndSubscribeWithQos0And1OverMqtt311And5) {
    observer_subscription cloud(broker_, "dt/#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_fixture daemon(broker_, setup());
    ASSERT_TRUE(eventually([&] {
        return read_file(daemon.log_file())
                   .find("MQTT face listening on 127.0.0.1:" + std::to_string(port_) + " (loopback TCP)") !=
               std::string::npos;
    })) << read_file(daemon.log_file());

    std::vector<std::string> expected;
    for (const std::string version : {"3", "5"}) {
        for (const std::string qos : {"0", "1"}) {
            SCOPED_TRACE("MQTT " + version + " QoS " + qos);
            const auto topic = "dt/gateway-01/tcp/v" + version + "/q" + qos;
            std::string out;
            EXPECT_EQ(paho_run(version, {"publish", topic, qos, "5"}, out), 0) << out;
            EXPECT_TRUE(has_line(out, "connack 0")) << out;
            EXPECT_TRUE(has_line(out, "published 5")) << out;
            for (int i = 1; i <= 5; ++i) expected.push_back(topic + " " + std::to_string(i));

            // A subscriber: SUBACK first, then three commands from the cloud.
            const auto sub_out = daemon.log_file().parent_path() / ("sub-" + version + "-" + qos + ".out");
            const auto cmd = "cmd/gateway-01/tcp/v" + version + "/q" + qos;
            auto sub = paho_start(version, {"subscribe", cmd, qos, "3"}, sub_out);
            ASSERT_TRUE(eventually([&] { return has_line(read_file(sub_out), "suback " + qos); }, 20'000))
                << read_file(sub_out);
            publish_from_cloud(broker_, cmd, numbered(3));
            const auto status = sub.wait(30'000);
            ASSERT_TRUE(status) << read_file(sub_out);
            EXPECT_EQ(WEXITSTATUS(*status), 0) << read_file(sub_out);
            const auto got = read_file(sub_out);
            for (int i = 1; i <= 3; ++i) EXPECT_TRUE(has_line(got, "message " + cmd + " " + std::to_string(i))) << got;
        }
    }
    EXPECT_EQ(cloud.wait_for_all(expected, 20'000), 0U) << "the cloud is missing some of the apps' messages";
    EXPECT_EQ(broker_connections(broker_, "gateway-01"), 1U) << "one upstream session for every TCP client";
    // Every client's identity is the owner of its socket: root, the test.
    const auto log = read_file(daemon.log_file());
    EXPECT_NE(log.find("TCP 127.0.0.1:"), std::string::npos) << log;
    EXPECT_NE(log.find("uid 0 (root) gid 0 (owner of the socket)"), std::string::npos) << log;
}

// Outbound topic aliases with a real client: paho (MQTT 5) announces Topic Alias Maximum 2 and
// receives 10 commands on each of three topics, the first topic again at the end. thingmuxd's
// policy (the lowest free alias, then the least recently used topic's) sets an alias 4 times
// with the topic name and uses one alone 36 times; every message arrives on its topic, no alias
// is above 2 and none is used before it was set.
TEST_F(MqttTcpTest, TopicAliasesToAPahoClientWithinItsTopicAliasMaximum) {
    daemon_fixture daemon(broker_, setup());
    const std::string base = "cmd/gateway-01/alias/";
    const auto out = daemon.log_file().parent_path() / "alias-sub.out";
    auto sub = paho_start("5", {"subscribe", base + "#", "1", "40", "--topic-alias-maximum", "2"}, out);
    ASSERT_TRUE(eventually([&] { return has_line(read_file(out), "suback 1"); }, 20'000)) << read_file(out);
    for (const char* topic : {"t1", "t2", "t3", "t1"}) publish_from_cloud(broker_, base + topic, numbered(10, topic));
    const auto status = sub.wait(60'000);
    ASSERT_TRUE(status) << read_file(out);
    EXPECT_EQ(WEXITSTATUS(*status), 0) << read_file(out);
    const auto got = read_file(out);
    for (const std::string topic : {"t1", "t2", "t3"}) {
        for (int i = 1; i <= 10; ++i)
            EXPECT_TRUE(has_line(got, "message " + base + topic + " " + topic + std::to_string(i))) << got;
    }
    EXPECT_EQ(count_of(got, "\nmessage " + base), 40U) << got;
    EXPECT_EQ(count_of(got, "\nalias 1 set "), 2U) << got;  // t1, then t3 (t1 was least recently used)
    EXPECT_EQ(count_of(got, "\nalias 2 set "), 2U) << got;  // t2, then t1 again (t2 was)
    EXPECT_EQ(count_of(got, "\nalias 1 used"), 18U) << got;
    EXPECT_EQ(count_of(got, "\nalias 2 used"), 18U) << got;
    EXPECT_EQ(count_of(got, " unknown"), 0U) << got;
    EXPECT_EQ(count_of(got, "\nalias "), 40U) << "an alias above the maximum, or a message without one:\n" << got;
}

// The kernel's word on a TCP peer: a client run as nobody gets the rights of the rule for user
// nobody, and not root's.
TEST_F(MqttTcpTest, AnotherUsersClientHasThatUsersRights) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as nobody (CI runs as root)";
    observer_subscription cloud(broker_, "dt/#");
    ASSERT_TRUE(cloud.wait_ready());
    auto s = setup();
    s.apps =
        "  - name: nobody-app\n"
        "    match: { user: nobody }\n"
        "    publish: ['dt/gateway-01/${user}/#']\n";
    daemon_fixture daemon(broker_, s);
    const auto as_nobody = [&](std::vector<std::string> args, std::string& out) {
        std::vector<std::string> argv{"setpriv",        "--reuid=nobody",      "--regid=nogroup",
                                      "--clear-groups", "/usr/bin/python3",    paho,
                                      "127.0.0.1",      std::to_string(port_), "5"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(argv, &out, 60'000);
    };
    std::string out;
    ASSERT_EQ(as_nobody({"publish", "dt/gateway-01/nobody/x", "1", "3"}, out), 0)
        << out << read_file(daemon.log_file());
    EXPECT_EQ(cloud.wait_for_all({"dt/gateway-01/nobody/x 1", "dt/gateway-01/nobody/x 2", "dt/gateway-01/nobody/x 3"},
                                 20'000),
              0U);
    const auto log = read_file(daemon.log_file());
    EXPECT_NE(log.find("uid 65534 (nobody) gid 65534 (owner of the socket)"), std::string::npos) << log;
    // Root's client: no rule.
    EXPECT_EQ(paho_run("5", {"connect"}, out), 2) << out;
    EXPECT_TRUE(has_line(out, "connack 135")) << out;
}

TEST_F(MqttTcpTest, AWillIsPublishedWhenTheClientIsKilled) {
    observer_subscription cloud(broker_, "dt/#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_fixture daemon(broker_, setup());
    for (const std::string version : {"3", "5"}) {
        SCOPED_TRACE("MQTT " + version);
        const auto out = daemon.log_file().parent_path() / ("will-" + version + ".out");
        const auto will_topic = "dt/gateway-01/will/v" + version;
        auto app = paho_start(
            version, {"hold", "--client-id", "will-" + version, "--will-topic", will_topic, "--will-payload", "gone"},
            out);
        ASSERT_TRUE(eventually([&] { return has_line(read_file(out), "holding"); }, 20'000)) << read_file(out);
        app.signal(SIGKILL);
        ASSERT_TRUE(app.wait(10'000));
        EXPECT_EQ(cloud.wait_for_all({will_topic + " gone"}, 20'000), 0U) << read_file(daemon.log_file());
    }
    // And not after a normal DISCONNECT.
    std::string out;
    ASSERT_EQ(paho_run("5", {"connect", "--will-topic", "dt/gateway-01/will/clean", "--will-payload", "gone"}, out), 0)
        << out;
    observer_subscription marker(broker_, "dt/gateway-01/marker", "observer-marker");
    ASSERT_TRUE(marker.wait_ready());
    ASSERT_EQ(paho_run("5", {"publish", "dt/gateway-01/marker", "1", "1"}, out), 0) << out;
    ASSERT_EQ(marker.wait_for(1, 20'000), 1U);
    ASSERT_EQ(cloud.wait_for_all({"dt/gateway-01/marker 1"}, 20'000), 0U);
    for (const auto& line : cloud.lines()) EXPECT_EQ(line.find("dt/gateway-01/will/clean"), std::string::npos) << line;
}

// The rights come from the mqtt_user rule: the test runs as root, and no rule matches root.
TEST_F(MqttTcpTest, UsernameAndPasswordFromMosquittoPasswdFile) {
    observer_subscription cloud(broker_, "dt/#");
    ASSERT_TRUE(cloud.wait_ready());
    const auto passwords = broker_.dir() / "mqtt.passwd";
    std::string out;
    ASSERT_EQ(run_command({"mosquitto_passwd", "-c", "-b", passwords.string(), "dashboard", "s3cret:pw"}, &out), 0)
        << out;
    ASSERT_EQ(run_command({"mosquitto_passwd", "-H", "sha512", "-b", passwords.string(), "legacy", "old"}, &out), 0)
        << out;
    auto s = setup("passwords: " + passwords.string() + "\n");
    s.apps =
        "  - name: dashboard\n"
        "    match: { mqtt_user: dashboard }\n"
        "    publish: ['dt/gateway-01/dashboard/#']\n"
        "  - name: legacy\n"
        "    match: { mqtt_user: legacy }\n"
        "    publish: ['dt/gateway-01/legacy/#']\n";
    daemon_fixture daemon(broker_, s);

    for (const std::string version : {"3", "5"}) {
        SCOPED_TRACE("MQTT " + version);
        const auto topic = "dt/gateway-01/dashboard/v" + version;
        EXPECT_EQ(
            paho_run(version, {"publish", topic, "1", "2", "--username", "dashboard", "--password", "s3cret:pw"}, out),
            0)
            << out;
        EXPECT_TRUE(has_line(out, "published 2")) << out;
        EXPECT_EQ(cloud.wait_for_all({topic + " 1", topic + " 2"}, 20'000), 0U);

        // A wrong password: 0x86 (MQTT 3.1.1: return code 4).
        EXPECT_EQ(paho_run(version, {"connect", "--username", "dashboard", "--password", "wrong"}, out), 2) << out;
        EXPECT_TRUE(has_line(out, version == "5" ? "connack 134" : "connack 4")) << out;
        EXPECT_EQ(paho_run(version, {"connect", "--username", "nobody-such", "--password", "s3cret:pw"}, out), 2)
            << out;
        EXPECT_TRUE(has_line(out, version == "5" ? "connack 134" : "connack 4")) << out;
        // No username: root's kernel identity matches no rule: 0x87 (3.1.1: 5).
        EXPECT_EQ(paho_run(version, {"connect"}, out), 2) << out;
        EXPECT_TRUE(has_line(out, version == "5" ? "connack 135" : "connack 5")) << out;
    }
    // The $6$ line of older files.
    EXPECT_EQ(
        paho_run("5", {"publish", "dt/gateway-01/legacy/x", "1", "1", "--username", "legacy", "--password", "old"},
                 out),
        0)
        << out;
    EXPECT_EQ(cloud.wait_for_all({"dt/gateway-01/legacy/x 1"}, 20'000), 0U);
    // dashboard's rule does not grant legacy's topic: MQTT 3.1.1 is disconnected (no negative PUBACK).
    EXPECT_EQ(
        paho_run("3",
                 {"publish", "dt/gateway-01/legacy/y", "1", "1", "--username", "dashboard", "--password", "s3cret:pw"},
                 out),
        4)
        << out;

    const auto log = read_file(daemon.log_file());
    EXPECT_NE(log.find("wrong password for MQTT user 'dashboard'"), std::string::npos) << log;
    EXPECT_NE(log.find("MQTT user dashboard"), std::string::npos) << log;

    // Re-read on reload: a new user works without a restart.
    ASSERT_EQ(run_command({"mosquitto_passwd", "-b", passwords.string(), "dashboard", "rotated"}, &out), 0) << out;
    daemon.reload();
    EXPECT_TRUE(eventually([&] {
        std::string o;
        return paho_run("5", {"connect", "--username", "dashboard", "--password", "rotated"}, o) == 0;
    })) << read_file(daemon.log_file());
    EXPECT_EQ(paho_run("5", {"connect", "--username", "dashboard", "--password", "s3cret:pw"}, out), 2) << out;
}

TEST_F(MqttTcpTest, ANonLoopbackListenerIsRefusedAtLoad) {
    daemon_fixture daemon(broker_, setup());
    for (const std::string address : {"0.0.0.0:1883", "[::]:1883", "192.0.2.1:1883"}) {
        auto s = setup();
        s.mqtt = "tcp: [\"" + address + "\"]\n";
        daemon.configure(s);
        std::string out;
        EXPECT_EQ(run_command({thingmuxd, "--check-config", "--config", daemon.config_file().string()}, &out, 30'000),
                  1)
            << out;
        EXPECT_NE(out.find("mqtt.tcp[0]: '" + address + "' is not a loopback address: the MQTT face has no TLS"),
                  std::string::npos)
            << out;
    }
    // A reload with it is refused too; the daemon keeps serving on its listener.
    daemon.reload();
    EXPECT_TRUE(eventually([&] {
        return read_file(daemon.log_file()).find("the new configuration has errors") != std::string::npos;
    })) << read_file(daemon.log_file());
    std::string out;
    EXPECT_EQ(paho_run("5", {"connect"}, out), 0) << out;
}

TEST_F(MqttTcpTest, ReloadSaysANewTcpListenerTakesEffectAtRestart) {
    daemon_fixture daemon(broker_, setup());
    auto s = setup();
    s.mqtt = "tcp: [\"127.0.0.1:" + std::to_string(port_) + "\", \"[::1]:" + std::to_string(port_) + "\"]\n";
    daemon.configure(s);
    daemon.reload();
    EXPECT_TRUE(eventually([&] {
        return read_file(daemon.log_file())
                   .find("mqtt.tcp changed to [127.0.0.1:" + std::to_string(port_) + ", [::1]:" +
                         std::to_string(port_) + "]; it takes effect when thingmuxd restarts") != std::string::npos;
    })) << read_file(daemon.log_file());
    std::string out;
    EXPECT_EQ(paho_run("5", {"connect"}, out), 0) << out;
}

// 500 connections that never send CONNECT: each is cut off at mqtt.connect_timeout, and the
// daemon holds no more descriptors than before.
TEST_F(MqttTcpTest, ConnectionsThatNeverSendConnectAreCutOffAndLeaveNoDescriptor) {
    daemon_fixture daemon(broker_, setup("connect_timeout: 1s\n"));
    std::string out;
    ASSERT_EQ(paho_run("5", {"connect"}, out), 0) << out;  // the listener is up
    const auto before = open_descriptors(daemon.pid());
    ASSERT_GT(before, 0U);

    constexpr int count = 500;
    std::vector<int> fds;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < count; ++i) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(fd, 0);
        fds.push_back(fd);
        ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0) << i;
    }
    // Every one is hung up on (the server closes: read gives 0 or an error).
    std::size_t hung = 0;
    for (const int fd : fds) hung += hung_up(fd, 30'000) ? 1U : 0U;
    EXPECT_EQ(hung, static_cast<std::size_t>(count));
    for (const int fd : fds) ::close(fd);
    EXPECT_TRUE(eventually([&] { return open_descriptors(daemon.pid()) <= before; }, 20'000))
        << open_descriptors(daemon.pid()) << " descriptors open, " << before << " before";
    // Still serving.
    EXPECT_EQ(paho_run("5", {"connect"}, out), 0) << out;
}

}  // namespace
}  // namespace thingmux::test
