// Fault injection (docs/reliability.md): numbered QoS 1 messages from several apps through the
// real thingmuxd while the broker restarts, the daemon is killed with SIGKILL, an app crashes or
// the disk fills up; counted at the far end. Duplicates are allowed (at least once) and reported;
// a message the daemon accepted (ok or spooled) that never arrives is a failure.
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/tcp_proxy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sys/wait.h>
#include <unistd.h>

namespace thingmux::test {
namespace {

// Payloads received by an observer, as a set (duplicates counted separately).
struct tally {
    std::set<std::string> distinct;
    std::size_t duplicates = 0;
};

tally count(const observer_subscription& o) {
    tally t;
    for (const auto& line : o.lines()) {
        if (!t.distinct.insert(line).second) ++t.duplicates;
    }
    return t;
}

// Accepted messages the observer never saw.
std::size_t missing(const std::vector<std::string>& expected, const tally& got) {
    return static_cast<std::size_t>(
        std::count_if(expected.begin(), expected.end(), [&](const std::string& line) { return got.distinct.count(line) == 0; }));
}

// One app's numbered publishes, pipelined: up to `window` requests outstanding. With
// `numbered_topics`, message n goes to TOPIC/n, so the broker's log (which names topics, not
// payloads) shows which message it received.
class publisher {
public:
    publisher(const std::filesystem::path& socket, std::string name, std::string topic, bool numbered_topics = false)
        : client_(socket), name_(std::move(name)), topic_(std::move(topic)), numbered_topics_(numbered_topics) {
        client_.hello(name_);
    }

    // Sends the next messages while fewer than `window` wait for results; collects results.
    void step(int total, std::size_t window = 20) {
        client_.drain();
        for (auto it = waiting_.begin(); it != waiting_.end();) {
            auto m = client_.result_of(it->first, 0);
            if (!m) {
                ++it;
                continue;
            }
            outcome_[it->second] = std::get<ipc::publish_result>(*m).outcome.code;
            it = waiting_.erase(it);
        }
        while (next_ <= total && waiting_.size() < window) {
            const auto id = request_++;
            client_.send(ipc::publish{.request_id = id, .topic = topic_of(next_), .payload = name_ + "-" + std::to_string(next_),
                                      .qos = 1, .retain = false, .props = {}});
            waiting_[id] = next_++;
        }
    }
    [[nodiscard]] bool done(int total) const { return next_ > total && waiting_.empty(); }
    // "topic payload" lines the observer must show: every accepted publish.
    [[nodiscard]] std::vector<std::string> accepted() const {
        std::vector<std::string> out;
        for (const auto& [n, code] : outcome_)
            if (ipc::accepted(code)) out.push_back(topic_of(n) + " " + name_ + "-" + std::to_string(n));
        return out;
    }
    [[nodiscard]] std::string topic_of(int n) const { return numbered_topics_ ? topic_ + "/" + std::to_string(n) : topic_; }
    [[nodiscard]] const std::map<int, ipc::errc>& outcomes() const { return outcome_; }

private:
    ipc_client client_;
    std::string name_;
    std::string topic_;
    bool numbered_topics_;
    std::uint32_t request_ = 1;
    int next_ = 1;
    std::map<std::uint32_t, int> waiting_;
    std::map<int, ipc::errc> outcome_;
};

class FaultTest : public ::testing::Test {
protected:
    broker_fixture broker;
};

// The broker is the witness: its log names every PUBLISH it received from the Thing and every
// one it sent the observer. A message accepted by thingmuxd (ok or spooled) that the broker never
// received is lost by thingmux and fails the test; one the broker received but the observer never
// got is a loss inside the broker (mosquitto's persistence across SIGTERM) or between the broker
// and the observer, reported separately (docs/reliability.md).
TEST_F(FaultTest, BrokerRestartedFiveTimesDuringTrafficFromTenAppsLosesNothingAccepted) {
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_setup setup;
    setup.limits = "publishes_per_second: unlimited\nbytes_per_second: unlimited";
    daemon_fixture daemon(broker, setup);
    // Steady traffic: each app publishes one message per 50 ms round; the broker restarts every
    // 30 rounds, five times, while the apps keep publishing.
    constexpr int apps = 10, each = 200;
    std::vector<std::unique_ptr<publisher>> pubs;
    for (int a = 0; a < apps; ++a)
        pubs.push_back(std::make_unique<publisher>(daemon.socket_path(), "app" + std::to_string(a),
                                                   "dt/gateway-01/app" + std::to_string(a), true));
    int restarts = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
    for (int round = 0; std::chrono::steady_clock::now() < deadline; ++round) {
        bool all_done = true;
        for (auto& p : pubs) {
            p->step(std::min(round + 1, each));
            all_done = all_done && p->done(each);
        }
        if (all_done) break;
        if (round % 30 == 15 && restarts < 5) {
            broker.restart();
            ++restarts;
        }
        ::usleep(50'000);
    }
    ASSERT_EQ(restarts, 5) << "the traffic ended before five restarts";
    std::vector<std::string> expected;
    std::size_t refused = 0;
    for (const auto& p : pubs) {
        ASSERT_TRUE(p->done(each)) << "some publishes never got a result";
        for (auto& line : p->accepted()) expected.push_back(std::move(line));
        refused += static_cast<std::size_t>(each) - p->accepted().size();
    }
    cloud.wait_for_all(expected, 60'000);
    const auto got = count(cloud);
    broker.stop();  // mosquitto writes its log through a stdio buffer: stopping it flushes every line
    const auto at_broker = broker_publishes(broker, "Received", "gateway-01");
    const std::set<std::string> received(at_broker.begin(), at_broker.end());
    std::vector<std::string> lost_by_thingmux, lost_after_broker;
    for (const auto& line : expected) {
        if (!received.contains(line.substr(0, line.find(' '))))
            lost_by_thingmux.push_back(line);
        else if (!got.distinct.contains(line))
            lost_after_broker.push_back(line);
    }
    const auto first = [](const std::vector<std::string>& v) { return v.empty() ? std::string{"-"} : v.front(); };
    EXPECT_EQ(lost_by_thingmux.size(), 0U) << lost_by_thingmux.size()
                                           << " accepted messages never reached the broker, e.g. " << first(lost_by_thingmux);
    std::cout << "[ measured ] " << apps * each << " publishes, 5 broker restarts: " << expected.size() << " accepted, "
              << refused << " refused with an error, " << lost_by_thingmux.size() << " lost by thingmux, "
              << lost_after_broker.size() << " received by the broker but never delivered to the observer (e.g. "
              << first(lost_after_broker) << "), " << at_broker.size() - received.size()
              << " duplicates at the broker, " << got.duplicates << " at the observer\n";
}

TEST_F(FaultTest, DaemonKilledWithSigkillLosesNothingItSpooled) {
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());
    broker.stop();  // the Thing is offline: QoS 1 publishes go to the durable spool
    daemon_fixture daemon(broker);
    std::vector<std::unique_ptr<publisher>> pubs;
    for (int a = 0; a < 3; ++a)
        pubs.push_back(std::make_unique<publisher>(daemon.socket_path(), "app" + std::to_string(a), "dt/gateway-01/app" + std::to_string(a)));
    constexpr int each = 200;
    ASSERT_TRUE(eventually([&] {
        bool all = true;
        for (auto& p : pubs) {
            p->step(each);
            all = all && p->done(each);
        }
        return all;
    }, 60'000));
    std::vector<std::string> expected;
    for (const auto& p : pubs) {
        for (const auto& [n, code] : p->outcomes()) EXPECT_EQ(code, ipc::errc::spooled) << "message " << n;
        for (auto& line : p->accepted()) expected.push_back(std::move(line));
    }
    ASSERT_EQ(expected.size(), 3U * each);

    daemon.kill();  // SIGKILL: no chance to flush anything
    broker.start();
    daemon.start();
    cloud.wait_for_all(expected, 60'000);
    const auto got = count(cloud);
    const auto lost = missing(expected, got);
    EXPECT_EQ(lost, 0U) << lost << " spooled messages were lost with the daemon";
    // Order per app is kept: the spool replays in the order the app published.
    std::map<std::string, int> last;
    for (const auto& line : cloud.lines()) {
        const auto dash = line.rfind('-');
        const auto app = line.substr(0, dash);
        const int n = std::stoi(line.substr(dash + 1));
        if (got.duplicates == 0) {
            EXPECT_GT(n, last[app]) << "out of order: " << line;
        }
        last[app] = n;
    }
    std::cout << "[ measured ] " << expected.size() << " spooled, daemon SIGKILLed and restarted: " << lost << " lost, "
              << got.duplicates << " duplicates\n";
}

TEST_F(FaultTest, AppCrashingMidPublishReleasesItsSubscriptionAndOthersGoOn) {
    daemon_fixture daemon(broker);
    ipc_client other(daemon.socket_path());
    ASSERT_TRUE(hello_connected(other, "other"));
    ASSERT_EQ(other.subscribe({"cmd/gateway-01/shared"}).at(0).code, ipc::errc::ok);
    const pid_t child = ::fork();
    if (child == 0) {
        // The crashing app: its own subscription, then publishes, then dies without closing.
        ipc_client c(daemon.socket_path());
        c.hello("crasher");
        c.subscribe({"cmd/gateway-01/crasher"});
        for (std::uint32_t i = 1; i <= 50; ++i)
            c.send(ipc::publish{.request_id = i, .topic = "dt/gateway-01/crash", .payload = "x", .qos = 1, .retain = false, .props = {}});
        ::kill(::getpid(), SIGKILL);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_TRUE(eventually([&] {
        const auto unsubscribed = broker_filters(broker, "gateway-01", "UNSUBSCRIBE");
        return std::find(unsubscribed.begin(), unsubscribed.end(), "cmd/gateway-01/crasher") != unsubscribed.end();
    }, 10'000)) << "the crashed app's upstream subscription was not released";
    publish_from_cloud(broker, "cmd/gateway-01/shared", {"still-here"});
    ASSERT_TRUE(other.wait_messages(1));
    EXPECT_EQ(other.publish("dt/gateway-01/other", "1").code, ipc::errc::ok);
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
}

// Runs the publisher until all `total` messages have a result (or `timeout_ms` passed).
bool finish(publisher& p, int total, int timeout_ms = 60'000) {
    return eventually([&] {
        p.step(total);
        return p.done(total);
    }, timeout_ms);
}

// Waits for a state frame whose reason contains `text`; returns it.
std::optional<ipc::state> state_saying(ipc_client& c, const std::string& text, int timeout_ms = 30'000) {
    std::optional<ipc::state> found;
    eventually([&] {
        c.drain();
        for (const auto& s : c.states)
            if (s.reason.find(text) != std::string::npos) found = s;
        return found.has_value();
    }, timeout_ms);
    return found;
}

TEST_F(FaultTest, BlackHoledNetworkIsDetectedByKeepAliveAndNothingIsLostWhenItHeals) {
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());
    tcp_proxy proxy(broker.port());
    daemon_setup setup;
    setup.port = proxy.port();
    setup.thing = "keep_alive: 2s\nconnect_timeout: 2s";
    daemon_fixture daemon(broker, setup);
    ipc_client watcher(daemon.socket_path());
    ASSERT_TRUE(hello_connected(watcher, "watcher"));
    publisher app(daemon.socket_path(), "app", "dt/gateway-01/app");
    ASSERT_TRUE(finish(app, 50));

    // The network stops delivering anything, without closing a connection.
    proxy.set_mode(tcp_proxy::mode::black_hole);
    const auto cut = std::chrono::steady_clock::now();
    const auto dead = state_saying(watcher, "no packet from broker for 3 s (keep-alive 2 s)");
    ASSERT_TRUE(dead) << "dead link not detected";
    // Reported, not asserted: the reason text above says the session applied 1.5 x keep-alive.
    const auto detected_after = std::chrono::duration<double>(std::chrono::steady_clock::now() - cut).count();
    ASSERT_TRUE(finish(app, 100)) << "publishes during the outage got no result";  // spooled meanwhile

    proxy.set_mode(tcp_proxy::mode::forward);
    ASSERT_TRUE(watcher.wait_state(ipc::link_state::connected, 30'000));
    ASSERT_TRUE(finish(app, 150));
    const auto expected = app.accepted();
    EXPECT_EQ(expected.size(), 150U) << "every publish was accepted (ok or spooled)";
    cloud.wait_for_all(expected, 30'000);
    const auto got = count(cloud);
    EXPECT_EQ(missing(expected, got), 0U);
    std::cout << "[ measured ] black hole detected after " << detected_after << " s (keep-alive 2 s); "
              << expected.size() << " accepted, " << missing(expected, got) << " lost, " << got.duplicates << " duplicates\n";
}

TEST_F(FaultTest, BrokerAnsweringGarbageIsAClearErrorRetriedWithBackoff) {
    tcp_proxy proxy(broker.port());
    proxy.set_mode(tcp_proxy::mode::garbage);
    daemon_setup setup;
    setup.port = proxy.port();
    daemon_fixture daemon(broker, setup);
    ipc_client app(daemon.socket_path());
    app.hello("app");
    const auto refused = state_saying(app, "TLS");
    ASSERT_TRUE(refused) << read_file(daemon.log_file());
    EXPECT_FALSE(refused->fatal) << "a broken peer may heal: " << refused->reason;
    ASSERT_TRUE(eventually([&] { return proxy.connections() >= 3; }, 20'000)) << "not retried";
    EXPECT_EQ(app.publish("dt/gateway-01/x", "kept").code, ipc::errc::spooled);
    proxy.set_mode(tcp_proxy::mode::forward);
    ASSERT_TRUE(app.wait_state(ipc::link_state::connected, 30'000));
    EXPECT_FALSE(app.closed());
    std::cout << "[ measured ] garbage answered " << proxy.connections() << " attempts: " << refused->reason << "\n";
}

TEST_F(FaultTest, FullSpoolRefusesWithTheLimitNamedAndKeepsWhatItHolds) {
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());
    broker.stop();
    daemon_setup setup;
    setup.spool = "max_messages: 3";
    daemon_fixture daemon(broker, setup);
    ipc_client app(daemon.socket_path());
    app.hello("app");
    for (int i = 1; i <= 3; ++i) EXPECT_EQ(app.publish("dt/gateway-01/s", std::to_string(i)).code, ipc::errc::spooled);
    const auto r = app.publish("dt/gateway-01/s", "4");
    EXPECT_EQ(r.code, ipc::errc::spool_full);
    EXPECT_NE(r.message.find("spool.max_messages 3"), std::string::npos) << r.message;
    broker.start();
    ASSERT_TRUE(app.wait_state(ipc::link_state::connected, 30'000));
    ASSERT_GE(cloud.wait_for(3, 30'000), 3U);
    const auto lines = cloud.lines();
    EXPECT_EQ(lines, (std::vector<std::string>{"dt/gateway-01/s 1", "dt/gateway-01/s 2", "dt/gateway-01/s 3"}));
    // Drained: room again.
    ASSERT_TRUE(eventually([&] { return app.publish("dt/gateway-01/s", "5").code == ipc::errc::ok; }, 10'000));
}

TEST_F(FaultTest, CorruptSpoolFileIsMovedAsideAndTheDaemonStarts) {
    broker.stop();
    daemon_setup setup;
    // The fixture's directory is made on construction; write the garbage, then start again.
    daemon_fixture daemon(broker, setup);
    const auto spool = daemon.log_file().parent_path() / "spool.db";
    // Stopped cleanly, once its spool is open: a daemon killed while creating the file could leave
    // a rollback journal that SQLite would replay over the damage this test is about.
    ASSERT_TRUE(eventually([&] { return read_file(daemon.log_file()).find("listening on") != std::string::npos; }, 10'000));
    ASSERT_EQ(daemon.stop(), 0);
    for (const char* suffix : {"-wal", "-shm", "-journal"}) std::filesystem::remove(spool.string() + suffix);
    std::ofstream(spool, std::ios::trunc) << std::string(8192, '\x5a');
    daemon.start();
    ASSERT_TRUE(eventually([&] { return read_file(daemon.log_file()).find(".corrupt-") != std::string::npos; }, 5'000))
        << read_file(daemon.log_file());
    ipc_client app(daemon.socket_path());
    app.hello("app");
    EXPECT_EQ(app.publish("dt/gateway-01/after", "1").code, ipc::errc::spooled) << "the fresh spool works";
    bool kept = false;
    for (const auto& e : std::filesystem::directory_iterator(spool.parent_path()))
        kept = kept || e.path().filename().string().starts_with("spool.db.corrupt-");
    EXPECT_TRUE(kept) << "the damaged file was not kept for inspection";
}

TEST_F(FaultTest, Qos0WhileOfflineIsRefusedOrHeldInMemoryAsConfigured) {
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());
    broker.stop();
    daemon_setup setup;
    daemon_fixture daemon(broker, setup);
    {
        ipc_client app(daemon.socket_path());
        app.hello("app");
        const auto r = app.publish("dt/gateway-01/q0", "dropped", 0);
        EXPECT_EQ(r.code, ipc::errc::not_connected);
        EXPECT_NE(r.message.find("spool.offline_qos0: queue"), std::string::npos) << r.message;
    }
    // spool.offline_qos0: queue holds them in memory until the link is back.
    setup.spool = "offline_qos0: queue";
    daemon.configure(setup);
    daemon.reload();
    ASSERT_TRUE(eventually([&] { return read_file(daemon.log_file()).find("configuration reloaded") != std::string::npos; }, 10'000));
    ipc_client app(daemon.socket_path());
    app.hello("app");
    app.send(ipc::publish{.request_id = 100, .topic = "dt/gateway-01/q0", .payload = "held", .qos = 0, .retain = false, .props = {}});
    EXPECT_FALSE(app.result_of(100, 1'000).has_value()) << "answered while the Thing is offline";
    broker.start();
    const auto r = app.result_of(100, 30'000);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(std::get<ipc::publish_result>(*r).outcome.code, ipc::errc::ok);
    ASSERT_GE(cloud.wait_for(1, 30'000), 1U);
    EXPECT_EQ(cloud.lines(), std::vector<std::string>{"dt/gateway-01/q0 held"});
}

TEST_F(FaultTest, SpoolWriteFailureIsAClearErrorAndNothingIsSilentlyDropped) {
    broker.stop();
    daemon_setup setup;
    // Files the daemon writes may not grow past 64 KiB: the spool's writes fail like a full disk.
    setup.launcher = {"prlimit", "--fsize=65536", "--"};
    daemon_fixture daemon(broker, setup);
    ipc_client app(daemon.socket_path());
    app.hello("app");
    std::map<ipc::errc, int> outcomes;
    std::string failure;
    for (int i = 1; i <= 40; ++i) {
        const auto r = app.publish("dt/gateway-01/big", std::string(8 * 1024, 'x'));
        ++outcomes[r.code];
        if (r.code != ipc::errc::spooled && failure.empty()) failure = r.message;
    }
    EXPECT_GT(outcomes[ipc::errc::spooled], 0) << "nothing was spooled before the limit";
    EXPECT_GT(outcomes[ipc::errc::spool_full], 0) << "the write failure never surfaced";
    EXPECT_EQ(outcomes[ipc::errc::spooled] + outcomes[ipc::errc::spool_full], 40) << "other outcomes: " << failure;
    EXPECT_NE(failure.find("could not store the message"), std::string::npos) << failure;
    // The daemon is alive and answers.
    EXPECT_EQ(app.publish("dt/gateway-01/qos0", "x", 0).code, ipc::errc::not_connected);
    EXPECT_FALSE(app.closed());
    std::cout << "[ measured ] spool write failure after " << outcomes[ipc::errc::spooled] << " spooled messages: " << failure << "\n";
}


// A message the broker will not take, on MQTT 3.1.1 (no way to refuse a PUBLISH but closing the
// connection): mosquitto with a 1000-byte packet limit gets a 2000-byte PUBLISH. It is retried a
// bounded number of times, alone, then failed to its app with a reason to act on; everything
// behind it flows, and the repeated closes are not taken for a client-ID takeover.
TEST(FaultRefusedMessage, MessageTheBrokerClosesTheConnectionForFailsAfterThreeSendsAndTheRestFlows) {
    broker_fixture broker({.things = {"gateway-01"}, .max_packet_size = 1000});
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_setup setup;
    setup.protocol = "mqtt311";
    daemon_fixture daemon(broker, setup);
    ipc_client good(daemon.socket_path());
    ASSERT_TRUE(hello_connected(good, "good"));
    ipc_client bad(daemon.socket_path());
    bad.hello("bad");
    for (int i = 1; i <= 5; ++i) ASSERT_EQ(good.publish("dt/gateway-01/good", std::to_string(i)).code, ipc::errc::ok);

    bad.send(ipc::publish{.request_id = 1, .topic = "dt/gateway-01/bad", .payload = std::string(2000, 'x'), .qos = 1,
                          .retain = false, .props = {}});
    // The others keep publishing while the broker keeps closing the connection.
    for (std::uint32_t i = 6; i <= 10; ++i)
        good.send(ipc::publish{.request_id = 100 + i, .topic = "dt/gateway-01/good", .payload = std::to_string(i), .qos = 1,
                               .retain = false, .props = {}});
    const auto refused = bad.result_of(1, 60'000);
    ASSERT_TRUE(refused) << "the refused message never got a result";
    const auto& outcome = std::get<ipc::publish_result>(*refused).outcome;
    EXPECT_EQ(outcome.code, ipc::errc::broker_refused);
    EXPECT_NE(outcome.message.find("each of the 3 times"), std::string::npos) << outcome.message;
    EXPECT_NE(outcome.message.find("limits.max_packet"), std::string::npos) << outcome.message;
    std::vector<std::string> expected;
    for (int i = 1; i <= 10; ++i) expected.push_back("dt/gateway-01/good " + std::to_string(i));
    for (std::uint32_t i = 6; i <= 10; ++i) {
        const auto r = good.result_of(100 + i, 30'000);
        ASSERT_TRUE(r) << "publish " << i << " got no result";
        EXPECT_TRUE(ipc::accepted(std::get<ipc::publish_result>(*r).outcome.code)) << i;
    }
    EXPECT_EQ(cloud.wait_for_all(expected, 30'000), 0U) << "messages behind the refused one were lost";
    EXPECT_EQ(good.publish("dt/gateway-01/good", "after").code, ipc::errc::ok);

    // Sent three times, one connection each, then one more connection that carries the rest.
    broker.stop();  // flushes mosquitto's log
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 4U);
    const auto log = read_file(daemon.log_file());
    EXPECT_EQ(log.find("in use by another connection"), std::string::npos) << "a refused message is no takeover";
    EXPECT_NE(log.find("sent alone (attempt 3 of 3)"), std::string::npos);
    std::cout << "[ measured ] refused message: " << broker_connections(broker, "gateway-01")
              << " connections; result: " << outcome.message << "\n";
}

// With limits.max_packet the same message never leaves: refused locally, no reconnect.
TEST(FaultRefusedMessage, ConfiguredPacketLimitRefusesLocallyWithoutDroppingTheSession) {
    broker_fixture broker({.things = {"gateway-01"}, .max_packet_size = 1000});
    daemon_setup setup;
    setup.protocol = "mqtt311";
    setup.limits = "max_packet: 1000";
    daemon_fixture daemon(broker, setup);
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "app"));
    const auto r = app.publish("dt/gateway-01/big", std::string(2000, 'x'));
    EXPECT_EQ(r.code, ipc::errc::payload_too_large);
    EXPECT_NE(r.message.find("the broker takes at most 1000"), std::string::npos) << r.message;
    EXPECT_EQ(app.publish("dt/gateway-01/small", "x").code, ipc::errc::ok);
    broker.stop();  // flushes mosquitto's log
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
}

}  // namespace
}  // namespace thingmux::test
