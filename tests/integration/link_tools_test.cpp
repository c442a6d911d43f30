// The link's tools for a field engineer and for scripts (issue 19): `thingmuxctl status --watch`,
// `thingmuxd --check-config` run as root for the daemon's user, and `thingmux-probe --config`.
#include "tests/support/daemon_fixture.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

namespace thingmux::test {
namespace {

std::string bin(const std::string& program) { return std::string(THINGMUX_BIN_DIR) + "/" + program; }

std::vector<std::string> lines_of(const std::filesystem::path& file) {
    std::vector<std::string> out;
    std::istringstream in(read_file(file));
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

// A configuration for the broker's gateway-01 with `key` as its key, in the broker's directory
// (0755, so that another user may read it).
std::filesystem::path write_config(const broker_fixture& broker, const std::filesystem::path& key,
                                   const std::string& name = "thingmux.yaml") {
    const auto id = broker.thing("gateway-01");
    const auto file = broker.dir() / name;
    std::ofstream(file) << "things:\n  - name: gateway-01\n    endpoint: " << broker.host()
                        << "\n    port: " << broker.port() << "\n    ca: " << broker.ca_file().string()
                        << "\n    cert: " << id.cert.string() << "\n    key: " << key.string()
                        << "\napps:\n  - name: tests\n    match: { uid: 0 }\n    publish: ['#']\n    subscribe: ['#']\n"
                        << "ipc:\n  socket: " << (broker.dir() / "thingmux.sock").string() << "\n  group: \"\"\n"
                        << "mqtt:\n  enabled: false\nspool:\n  path: " << (broker.dir() / "spool.db").string() << "\n";
    return file;
}

// status --watch --json: the current state first, then one object per change, in order, while
// the broker goes away and comes back; SIGINT ends it with 0.
TEST(StatusWatchTest, PrintsEachLinkStateChangeWithItsReasonInOrder) {
    broker_fixture broker;
    daemon_setup setup;
    setup.thing = "backoff: { base: 200ms, cap: 1s }";
    daemon_fixture daemon(broker, setup);
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "sensor"));

    const auto out = daemon.dir() / "watch.out";
    child_process watch({bin("thingmuxctl"), "--socket", daemon.socket_path().string(), "status", "--watch", "--json"},
                        out, daemon.dir() / "watch.err");
    ASSERT_TRUE(eventually([&] { return lines_of(out).size() >= 1; }, 10'000)) << read_file(daemon.dir() / "watch.err");
    broker.stop();
    ASSERT_TRUE(eventually([&] { return read_file(out).find("\"backing_off\"") != std::string::npos; }, 20'000));
    broker.start();
    ASSERT_TRUE(eventually(
        [&] {
            const auto l = lines_of(out);
            return l.size() >= 3 && l.back().find("\"state\":\"connected\"") != std::string::npos;
        },
        30'000))
        << read_file(out);
    watch.signal(SIGINT);
    const auto status = watch.wait(10'000);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status << read_file(daemon.dir() / "watch.err");

    std::vector<std::string> states;
    for (const auto& l : lines_of(out)) {
        boost::system::error_code ec;
        const auto v = boost::json::parse(l, ec);
        ASSERT_FALSE(ec) << l;
        const auto& o = v.as_object();
        ASSERT_EQ(o.size(), 6U) << l;
        EXPECT_EQ(o.at("thing").as_string(), "gateway-01") << l;
        EXPECT_TRUE(o.at("time").is_string()) << l;
        EXPECT_TRUE(o.at("fatal").is_bool()) << l;
        EXPECT_FALSE(o.at("fatal").as_bool()) << l;
        EXPECT_TRUE(o.at("retry_in_ms").is_number()) << l;
        const std::string state(o.at("state").as_string());
        const std::string reason(o.at("reason").as_string());
        if (state == "backing_off") {
            EXPECT_FALSE(reason.empty()) << l;
        }
        if (state == "connected") {
            EXPECT_TRUE(reason.empty()) << l;
        }
        states.push_back(state);
    }
    ASSERT_GE(states.size(), 3U);
    EXPECT_EQ(states.front(), "connected") << "the current state first";
    EXPECT_EQ(states[1], "backing_off") << "the broker went away";
    EXPECT_EQ(states.back(), "connected");
    for (std::size_t i = 1; i + 1 < states.size(); ++i)
        EXPECT_TRUE(states[i] == "backing_off" || states[i] == "connecting") << i << ": " << states[i];
    for (std::size_t i = 1; i < states.size(); ++i) {
        if (states[i] == "connecting") {
            EXPECT_EQ(states[i - 1], "backing_off") << i;
        }
    }
}

// Text lines, and the end of the watch when the daemon goes away: exit 3 (thingmuxd unavailable).
TEST(StatusWatchTest, EndsWhenTheDaemonGoesAway) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "sensor"));
    const auto out = daemon.dir() / "watch.out";
    const auto err = daemon.dir() / "watch.err";
    child_process watch({bin("thingmuxctl"), "--socket", daemon.socket_path().string(), "status", "--watch"}, out, err);
    ASSERT_TRUE(eventually([&] { return lines_of(out).size() == 1; }, 10'000)) << read_file(err);
    EXPECT_NE(lines_of(out).at(0).find(" gateway-01 connected"), std::string::npos) << read_file(out);
    EXPECT_EQ(daemon.stop(), 0);
    const auto status = watch.wait(15'000);
    ASSERT_TRUE(status.has_value()) << read_file(out) << read_file(err);
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 3) << *status << read_file(err);
    EXPECT_NE(read_file(err).find("lost thingmuxd"), std::string::npos) << read_file(err);
}

// --check-config as root checks each file as the daemon's user would open it.
TEST(CheckConfigTest, AsRootTheDaemonsUserMustBeAbleToReadTheKey) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (it changes to another user)";
    broker_fixture broker;
    const auto key = broker.thing("gateway-01").key;
    ASSERT_EQ(std::filesystem::status(key).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write)
        << "the PKI's keys are root's, 0600";
    const auto config = write_config(broker, key);
    std::string out;
    EXPECT_EQ(run_command({bin("thingmuxd"), "--check-config", "--config", config.string(), "--as-user", "nobody"}, &out),
              1)
        << out;
    EXPECT_NE(out.find("things[0].key: user nobody cannot read " + key.string() + ": Permission denied; fix: "),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("chmod 0640 " + key.string()), std::string::npos) << out;
    EXPECT_NE(out.find("LoadCredential="), std::string::npos) << out;
    EXPECT_EQ(out.find("things[0].cert: user nobody"), std::string::npos) << "the certificate is readable: " << out;

    // The same key, owned by that user: readable, so the file is usable.
    const auto own_key = broker.dir() / "nobody.key";
    std::filesystem::copy_file(key, own_key);
    ASSERT_EQ(::chown(own_key.c_str(), 65534, 65534), 0);
    const auto readable = write_config(broker, own_key, "readable.yaml");
    EXPECT_EQ(run_command({bin("thingmuxd"), "--check-config", "--config", readable.string(), "--as-user", "nobody"}, &out),
              0)
        << out;
    EXPECT_NE(out.find(": OK: 1 Thing(s)"), std::string::npos) << out;

    // A user that does not exist: named, an error; the default user missing is only a note.
    EXPECT_EQ(run_command({bin("thingmuxd"), "--check-config", "--config", config.string(), "--as-user",
                           "no-such-user-tmx"},
                          &out),
              1);
    EXPECT_NE(out.find("user no-such-user-tmx (--as-user) does not exist"), std::string::npos) << out;
    if (::getpwnam("thingmux") == nullptr) {
        EXPECT_EQ(run_command({bin("thingmuxd"), "--check-config", "--config", config.string()}, &out), 0) << out;
        EXPECT_NE(out.find("note: user thingmux does not exist"), std::string::npos) << out;
    }
}

// thingmux-probe --config: the Thing's settings from the daemon's file, with the takeover warning.
TEST(ProbeConfigTest, ProbesTheThingOfTheDaemonsConfiguration) {
    broker_fixture broker;
    const auto config = write_config(broker, broker.thing("gateway-01").key);
    std::string out;
    EXPECT_EQ(run_command({bin("thingmux-probe"), "--config", config.string(), "--count", "3", "--timeout", "20"}, &out,
                          30'000),
              0)
        << out;
    EXPECT_NE(out.find("warning: connecting as client ID 'gateway-01', the one thingmuxd uses for Thing gateway-01"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("connected to localhost:" + std::to_string(broker.port()) + " as gateway-01"), std::string::npos)
        << out;
    EXPECT_NE(out.find("published 3, acknowledged 3, failed 0, received 3"), std::string::npos) << out;
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);

    EXPECT_EQ(run_command({bin("thingmux-probe"), "--config", config.string(), "--thing", "gateway-02"}, &out, 30'000), 2)
        << out;
    EXPECT_NE(out.find("has no Thing 'gateway-02'"), std::string::npos) << out;
    // Without --config the old options stay required.
    EXPECT_EQ(run_command({bin("thingmux-probe"), "--thing", "gateway-01"}, &out, 30'000), 2) << out;
    EXPECT_NE(out.find("--host is required (unless --config is given)"), std::string::npos) << out;
}

}  // namespace
}  // namespace thingmux::test
