// A wrong system clock (issue 19): a gateway without a real-time clock boots with a wrong time,
// and every certificate looks not valid yet (or expired). That is no configuration error: the
// daemon and thingmux-probe say the clock is the matter, keep retrying (backing_off, never
// failed), and connect as soon as time is right.
//
// The daemon's clock is faked with Debian's libfaketime (LD_PRELOAD, for the daemon process
// only), its offset read from a file the test rewrites (FAKETIME_NO_CACHE: read at every call).
// The monotonic clock stays real, so timers and back-off behave as on a device.
#include "tests/support/daemon_fixture.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <string>

#include <unistd.h>

namespace thingmux::test {
namespace {

const std::filesystem::path libfaketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

// "2026-12-03": the day part of a UTC time as the daemon's messages write it.
std::string utc_day(std::chrono::system_clock::time_point t) {
    const auto secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char text[16];
    std::strftime(text, sizeof text, "%Y-%m-%d", &tm);
    return text;
}

std::string probe_program() { return std::string(THINGMUX_BIN_DIR) + "/thingmux-probe"; }

// The daemon starts with its clock three days behind: the PKI, made just now, is not valid yet by
// it. It backs off (never `failed`), its log and its apps' state name the clock, and once the
// clock is right it connects at its next attempt, without a reload or restart.
TEST(ClockTest, DaemonWaitsForTheClockAndConnectsOnceItIsRight) {
    if (!std::filesystem::exists(libfaketime)) GTEST_SKIP() << libfaketime << " missing: apt-get install faketime";
    broker_fixture broker;
    const auto clock_file = broker.dir() / "faketime";
    write_file_atomically(clock_file, "-3d\n");
    daemon_setup setup;
    setup.thing = "backoff: { base: 200ms, cap: 1s }";
    setup.env = {"LD_PRELOAD=" + libfaketime.string(), "FAKETIME_TIMESTAMP_FILE=" + clock_file.string(),
                 "FAKETIME_NO_CACHE=1", "FAKETIME_DONT_FAKE_MONOTONIC=1"};
    daemon_fixture daemon(broker, setup);
    ipc_client app(daemon.socket_path());
    const auto welcome = app.hello("clock-watcher");
    ASSERT_NE(welcome.link, ipc::link_state::connected) << "the clock is three days behind";

    // At least two attempts, each refused by the clock and announced as such.
    ASSERT_TRUE(eventually(
        [&] {
            app.drain();
            return std::count_if(app.states.begin(), app.states.end(),
                                 [](const ipc::state& s) { return s.link == ipc::link_state::backing_off; }) >= 2;
        },
        20'000))
        << read_file(daemon.log_file());
    const auto faked_day = utc_day(std::chrono::system_clock::now() - std::chrono::hours(72));
    for (const auto& s : app.states) {
        EXPECT_NE(s.link, ipc::link_state::failed) << s.reason;
        EXPECT_NE(s.link, ipc::link_state::connected) << s.reason;
        if (s.link != ipc::link_state::backing_off) continue;
        EXPECT_FALSE(s.fatal) << s.reason;
        EXPECT_NE(s.reason.find("is not valid until"), std::string::npos) << s.reason;
        EXPECT_NE(s.reason.find("but the system clock says " + faked_day), std::string::npos) << s.reason;
        EXPECT_NE(s.reason.find("is the clock set?"), std::string::npos) << s.reason;
    }
    const auto log = read_file(daemon.log_file());
    EXPECT_NE(log.find("is the clock set?"), std::string::npos) << log;
    EXPECT_EQ(log.find("needs a configuration change"), std::string::npos) << log;
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 0U) << "no CONNECT reached the broker";

    // Time sync sets the clock: the next attempt connects.
    write_file_atomically(clock_file, "+0\n");
    EXPECT_TRUE(app.wait_state(ipc::link_state::connected, 20'000)) << read_file(daemon.log_file());
    EXPECT_TRUE(eventually([&] { return broker_connections(broker, "gateway-01") == 1U; }, 10'000));
}

// A server certificate valid only from 2030 (a real one, signed by the trusted CA) behind a TLS
// server: the probe names the broker's certificate, its date and the clock, keeps trying, and
// gives up with the exit code for "may pass by itself" (3), not 2 ("needs a configuration change").
TEST(ClockTest, ProbeCallsAFutureServerCertificateAClockProblem) {
    broker_fixture broker;
    const auto pki = broker.dir() / "pki";
    const std::string env = "TMX_PKI=" + pki.string();
    const auto cnf = (pki / "openssl.cnf").string();
    const auto csr = broker.dir() / "future-server.csr";
    const auto future = broker.dir() / "future-server.crt";
    run_or_throw({"env", env, "openssl", "req", "-config", cnf, "-new", "-key", (pki / "server.key").string(), "-subj",
                  "/CN=localhost", "-out", csr.string()});
    run_or_throw({"env", env, "openssl", "ca", "-config", cnf, "-batch", "-notext", "-extensions", "server_ext",
                  "-startdate", "20300101000000Z", "-enddate", "20310101000000Z", "-in", csr.string(), "-out",
                  future.string()});
    const auto port = free_tcp_port();
    child_process server({"openssl", "s_server", "-quiet", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                          future.string(), "-key", (pki / "server.key").string()},
                         broker.dir() / "s_server.log", broker.dir() / "s_server.log");
    ASSERT_TRUE(eventually([&] { return tcp_accepts(port); }, 10'000)) << read_file(broker.dir() / "s_server.log");

    const auto thing = broker.thing("gateway-01");
    std::string out;
    const int rc = run_command({probe_program(), "--host", "localhost", "--port", std::to_string(port), "--thing",
                                "gateway-01", "--ca", broker.ca_file().string(), "--cert", thing.cert.string(), "--key",
                                thing.key.string(), "--timeout", "4"},
                               &out, 30'000);
    EXPECT_EQ(rc, 3) << out;
    EXPECT_NE(out.find("server certificate for localhost is not valid until 2030-01-01 00:00 UTC but the system clock "
                       "says " + utc_day(std::chrono::system_clock::now())),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("retrying in"), std::string::npos) << "transient: the probe keeps trying: " << out;
    EXPECT_EQ(out.find("needs a configuration change"), std::string::npos) << out;
    EXPECT_NE(out.find("time sync"), std::string::npos) << out;
}

// Our own certificate expired by the clock: said when it is loaded, before the broker answers
// with a bare "certificate expired" alert; transient too.
TEST(ClockTest, ProbeCallsOurExpiredCertificateAClockProblem) {
    broker_fixture broker;
    const auto expired = broker.expired();
    std::string out;
    const int rc = run_command({probe_program(), "--host", broker.host(), "--port", std::to_string(broker.port()),
                                "--thing", "gateway-expired", "--ca", broker.ca_file().string(), "--cert",
                                expired.cert.string(), "--key", expired.key.string(), "--timeout", "3"},
                               &out, 30'000);
    EXPECT_EQ(rc, 3) << out;
    EXPECT_NE(out.find("client certificate file " + expired.cert.string() +
                       " expired on 2020-01-02 00:00 UTC but the system clock says"),
              std::string::npos)
        << out;
    EXPECT_EQ(broker_connections(broker, "gateway-expired"), 0U);
}

}  // namespace
}  // namespace thingmux::test
