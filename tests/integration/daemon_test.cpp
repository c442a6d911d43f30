// thingmuxd end to end: the real daemon, the real AWS-like mosquitto, raw IPC clients over real
// Unix sockets. Test names cite docs/ipc-protocol.md requirements where one applies.
#include "daemon/thing/subscription_table.hpp"
#include "daemon/mqtt/topic.hpp"
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/idle_cost.hpp"
#include "tests/support/measure.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace thingmux::test {
namespace {

std::set<std::string> payloads(const std::vector<ipc::message>& ms, const std::string& topic) {
    std::set<std::string> s;
    for (const auto& m : ms)
        if (m.topic == topic) s.insert(m.payload);
    return s;
}

class DaemonTest : public ::testing::Test {
protected:
    broker_fixture broker;
};

TEST_F(DaemonTest, SeedScenarioThreeAppsShareOneSessionWithoutReconnects) {
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_fixture daemon(broker);

    // A: controller (raw IPC), B: sensor (raw IPC), C: the real thingmuxctl binary.
    ipc_client a(daemon.socket_path()), b(daemon.socket_path());
    const auto w = a.hello("controller");
    EXPECT_EQ(w.thing, "gateway-01");
    b.hello("sensor");
    if (w.link != ipc::link_state::connected) {
        ASSERT_TRUE(a.wait_state(ipc::link_state::connected));
    }
    ASSERT_EQ(a.subscribe({"cmd/gateway-01/temperature"}).at(0).code, ipc::errc::ok);

    constexpr int commands = 1000, readings = 100;
    publish_from_cloud(broker, "cmd/gateway-01/temperature", numbered(commands));
    for (int i = 1; i <= readings; ++i) {
        const auto r = b.publish("dt/gateway-01/temperature", "b" + std::to_string(i));
        ASSERT_EQ(r.code, ipc::errc::ok) << r.message;
        EXPECT_EQ(r.mqtt_reason_code, 0);
        std::string out;
        ASSERT_EQ(run_command({std::string(THINGMUX_BIN_DIR) + "/thingmuxctl", "--socket", daemon.socket_path().string(),
                               "pub", "-q", "1", "-t", "dt/gateway-01/temperature", "-m", "c" + std::to_string(i)},
                              &out),
                  0)
            << out;
    }
    EXPECT_TRUE(a.wait_messages(commands, 30'000));
    const auto got = payloads(a.messages, "cmd/gateway-01/temperature");
    EXPECT_EQ(got.size(), static_cast<std::size_t>(commands)) << "app A lost commands";
    std::cout << "[ measured ] app A: " << got.size() << " distinct of " << commands << " commands, "
              << a.messages.size() - got.size() << " duplicates\n";

    EXPECT_GE(cloud.wait_for(2 * readings, 30'000), static_cast<std::size_t>(2 * readings));
    std::set<std::string> seen;
    for (const auto& line : cloud.lines()) seen.insert(line);
    for (int i = 1; i <= readings; ++i) {
        EXPECT_TRUE(seen.count("dt/gateway-01/temperature b" + std::to_string(i))) << "B's reading " << i;
        EXPECT_TRUE(seen.count("dt/gateway-01/temperature c" + std::to_string(i))) << "C's reading " << i;
    }
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U) << "the shared session reconnected during the run";
    EXPECT_EQ(daemon.stop(), 0);
}

TEST_F(DaemonTest, HundredClientsThousandSubscriptionsUpstreamOnlyFiltersNoOtherCovers) {
    daemon_fixture daemon(broker);
    // A vocabulary with heavy overlap: 40 distinct filters, 10 per client, 100 clients.
    std::vector<std::string> vocabulary;
    for (const char* room : {"kitchen", "hall", "garage", "attic"}) {
        for (const char* leaf : {"temp", "humidity", "door"}) vocabulary.push_back(std::string("cmd/gateway-01/") + room + "/" + leaf);
        vocabulary.push_back(std::string("cmd/gateway-01/") + room + "/+");
        vocabulary.push_back(std::string("cmd/gateway-01/") + room + "/#");
    }
    for (const char* f : {"cmd/gateway-01/#", "cmd/gateway-01/+/temp", "cmd/gateway-01/+/door", "cmd/gateway-01/+/+"})
        vocabulary.push_back(f);
    while (vocabulary.size() < 40) vocabulary.push_back("cmd/gateway-01/extra/" + std::to_string(vocabulary.size()));

    std::mt19937 rng(42);
    std::vector<std::unique_ptr<ipc_client>> clients;
    std::vector<std::set<std::string>> filters(100);
    std::set<std::string> distinct;
    for (std::size_t i = 0; i < 100; ++i) {
        clients.push_back(std::make_unique<ipc_client>(daemon.socket_path()));
        clients.back()->hello("app-" + std::to_string(i));
        while (filters[i].size() < 10) filters[i].insert(vocabulary[rng() % vocabulary.size()]);
        const std::vector<std::string> mine(filters[i].begin(), filters[i].end());
        for (const auto& r : clients.back()->subscribe(mine)) ASSERT_EQ(r.code, ipc::errc::ok) << r.message;
        distinct.insert(mine.begin(), mine.end());
    }
    // What the broker holds in the end: the wildcard-free filters (each brings its own retained
    // message) and the wildcard filters no other held filter covers; never one twice.
    std::set<std::string> expected;
    for (const auto& f : distinct) {
        const bool covered = std::any_of(distinct.begin(), distinct.end(),
                                         [&](const std::string& g) { return g != f && thing::covers(g, f); });
        if (!mqtt::has_wildcard(f) || !covered) expected.insert(f);
    }
    ASSERT_LT(expected.size(), distinct.size()) << "the vocabulary should have covered filters";
    auto held_upstream = [&] {
        std::set<std::string> held;
        for (const auto& change : broker_filter_changes(broker, "gateway-01")) {
            const auto space = change.find(' ');
            const auto filter = change.substr(space + 1);
            if (change.starts_with("SUBSCRIBE ")) {
                EXPECT_TRUE(held.insert(filter).second) << filter << " subscribed twice";
            } else {
                held.erase(filter);
            }
        }
        return held;
    };
    ASSERT_TRUE(eventually([&] { return held_upstream() == expected; }));

    // One message per concrete topic, looped back through the broker.
    const std::vector<std::string> topics{"cmd/gateway-01/kitchen/temp", "cmd/gateway-01/hall/door",
                                          "cmd/gateway-01/garage/humidity", "cmd/gateway-01/attic/light",
                                          "cmd/gateway-01/extra/35", "cmd/gateway-01/kitchen/temp/raw"};
    ipc_client sender(daemon.socket_path());
    sender.hello("sender");
    // Each topic once with payload "1", then again with "2": the copies of a message come right
    // behind it, so once a client has every "2" it has had every copy of every "1".
    for (const char* round : {"1", "2"}) {
        for (const auto& t : topics) ASSERT_EQ(sender.publish(t, round).code, ipc::errc::ok);
    }
    // The broker sends a copy per matching upstream filter (the wildcard-free ones overlap the
    // wildcards that cover them); each client must see every matching message exactly once.
    std::size_t deliveries = 0;
    for (std::size_t i = 0; i < clients.size(); ++i) {
        std::multiset<std::string> expected_topics;
        for (const auto& t : topics) {
            if (std::any_of(filters[i].begin(), filters[i].end(),
                            [&](const std::string& f) { return mqtt::topic_matches(f, t); }))
                expected_topics.insert(t);
        }
        auto round = [&](const char* payload) {
            std::multiset<std::string> got;
            for (const auto& m : clients[i]->messages)
                if (m.payload == payload) got.insert(m.topic);
            return got;
        };
        const bool all = eventually([&] {
            clients[i]->drain();
            const auto second = round("2");
            return std::set<std::string>(second.begin(), second.end()) ==
                   std::set<std::string>(expected_topics.begin(), expected_topics.end());
        }, 10'000);
        EXPECT_TRUE(all) << "client " << i << " did not get every matching message";
        EXPECT_EQ(round("1"), expected_topics) << "client " << i << " got a message twice, or another's";
        deliveries += round("1").size();
    }
    std::size_t copies = 0;
    for (const auto& t : topics) copies += broker_sent(broker, "gateway-01", t);
    std::cout << "[ measured ] 100 clients, " << expected.size() << " upstream filters for 1000 subscriptions of "
              << distinct.size() << " distinct filters; the broker sent " << copies << " copies of "
              << 2 * topics.size() << " messages; " << deliveries << " deliveries of the first round, none twice\n";
}

// How many of `ms` carry `payload`.
std::size_t count_payload(const std::vector<ipc::message>& ms, const std::string& payload) {
    return static_cast<std::size_t>(
        std::count_if(ms.begin(), ms.end(), [&](const ipc::message& m) { return m.payload == payload; }));
}

// Waits until both clients have `last`; the copies of earlier messages come before it.
bool both_have(ipc_client& a, ipc_client& b, const std::string& last) {
    return eventually([&] {
        a.drain();
        b.drain();
        return count_payload(a.messages, last) > 0 && count_payload(b.messages, last) > 0;
    });
}

// IPC-31 against a hostile neighbour: app B holds ten distinct filters that all match app A's
// command topic. The broker sends a message once per matching upstream subscription, so without
// care A would get each command ten times.
TEST_F(DaemonTest, IPC31_TenOverlappingFiltersOfAnotherAppDeliverEachCommandOncePerClient) {
    daemon_fixture daemon(broker);
    ipc_client a(daemon.socket_path()), b(daemon.socket_path());
    ASSERT_TRUE(hello_connected(a, "app2"));
    b.hello("neighbour");
    const std::string topic = "cmd/gateway-01/app2/reboot";
    ASSERT_EQ(a.subscribe({"cmd/gateway-01/app2/#"}).at(0).code, ipc::errc::ok);
    const std::vector<std::string> overlapping{
        "cmd/#",                         // covers all the others, and A's filter
        "cmd/gateway-01/app2/#",         // A's filter
        "cmd/gateway-01/app2/+",         //   covered by A's filter
        "cmd/gateway-01/app2/reboot/#",  //   covered by A's filter
        "cmd/gateway-01/app2/+/#",       //   covered by A's filter
        "cmd/+/+/reboot",                // overlaps A's filter without covering it or being covered
        "cmd/gateway-01/+/reboot",       //   covered by cmd/+/+/reboot
        "cmd/+/app2/reboot",             //   covered by cmd/+/+/reboot
        "cmd/gateway-01/+/+",            // overlaps both
        "cmd/gateway-01/app2/reboot",    // no wildcard: upstream itself, for its retained message
    };
    for (const auto& f : overlapping) ASSERT_TRUE(mqtt::topic_matches(f, topic)) << f;
    for (const auto& r : b.subscribe(overlapping)) ASSERT_EQ(r.code, ipc::errc::ok) << r.message;

    // cmd/# goes upstream with the wildcard-free filter; A's filter goes once cmd/# is acknowledged.
    ASSERT_TRUE(eventually([&] { return !broker_filters(broker, "gateway-01", "UNSUBSCRIBE").empty(); }));
    std::vector<std::string> changes{"SUBSCRIBE cmd/gateway-01/app2/#", "SUBSCRIBE cmd/#",
                                     "SUBSCRIBE cmd/gateway-01/app2/reboot", "UNSUBSCRIBE cmd/gateway-01/app2/#"};
    EXPECT_EQ(broker_filter_changes(broker, "gateway-01"), changes);
    publish_from_cloud(broker, topic, {"1", "2"});
    ASSERT_TRUE(both_have(a, b, "2"));
    EXPECT_EQ(count_payload(a.messages, "1"), 1U) << "A got the command more than once";
    EXPECT_EQ(count_payload(b.messages, "1"), 1U) << "B got the command more than once";
    EXPECT_GE(broker_sent(broker, "gateway-01", topic), 3U) << "the broker sends a copy per matching upstream filter";

    // B drops the covering filter: what it covered goes upstream again (A's filter among them)
    // BEFORE cmd/# is unsubscribed, so no command is missed in between.
    ASSERT_EQ(b.unsubscribe({"cmd/#"}).at(0).code, ipc::errc::ok);
    ASSERT_TRUE(eventually([&] { return broker_filters(broker, "gateway-01", "UNSUBSCRIBE").size() == 2; }));
    for (const char* c : {"SUBSCRIBE cmd/+/+/reboot", "SUBSCRIBE cmd/gateway-01/+/+", "SUBSCRIBE cmd/gateway-01/app2/#",
                          "UNSUBSCRIBE cmd/#"})
        changes.emplace_back(c);
    EXPECT_EQ(broker_filter_changes(broker, "gateway-01"), changes);
    const auto sent_before = broker_sent(broker, "gateway-01", topic);
    publish_from_cloud(broker, topic, {"3", "4"});
    ASSERT_TRUE(both_have(a, b, "4"));
    EXPECT_EQ(count_payload(a.messages, "3"), 1U) << "A got the command more than once";
    EXPECT_EQ(count_payload(b.messages, "3"), 1U) << "B got the command more than once";
    // Four upstream filters match the topic now, none covering another: four copies, one delivery.
    EXPECT_TRUE(eventually([&] { return broker_sent(broker, "gateway-01", topic) - sent_before == 8; }));
    std::cout << "[ measured ] copies the broker sent per command: 2, then 4; deliveries per app: 1\n";
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
}

// Only a wildcard-free filter's own SUBSCRIBE makes the broker send its retained message (AWS
// IoT Core sends none for wildcard filters), so it goes upstream even while a wildcard filter of
// another app covers it; the two copies of each later message still reach each app once.
TEST_F(DaemonTest, ARetainedMessageReachesAWildcardFreeFilterAWildcardFilterAlreadyCovers) {
    daemon_fixture daemon(broker);
    ipc_client wide(daemon.socket_path()), exact(daemon.socket_path()), publisher(daemon.socket_path());
    ASSERT_TRUE(hello_connected(wide, "wide"));
    exact.hello("exact");
    publisher.hello("publisher");
    const std::string topic = "cmd/gateway-01/settings";
    ASSERT_EQ(wide.subscribe({"cmd/gateway-01/#"}).at(0).code, ipc::errc::ok);
    publisher.send(
        ipc::publish{.request_id = 100, .topic = topic, .payload = "v1", .qos = 1, .retain = true, .props = {}});
    const auto stored = publisher.result_of(100);
    ASSERT_TRUE(stored && std::holds_alternative<ipc::publish_result>(*stored));
    ASSERT_EQ(std::get<ipc::publish_result>(*stored).outcome.code, ipc::errc::ok);
    ASSERT_TRUE(wide.wait_messages(1));

    ASSERT_EQ(exact.subscribe({topic}).at(0).code, ipc::errc::ok);
    ASSERT_TRUE(exact.wait_messages(1));
    EXPECT_EQ(exact.messages.at(0).payload, "v1");
    EXPECT_TRUE(exact.messages.at(0).retain) << "the broker's retained message, sent for the new subscription";
    EXPECT_EQ(broker_filters(broker, "gateway-01"), (std::vector<std::string>{"cmd/gateway-01/#", topic}));

    ASSERT_EQ(publisher.publish(topic, "v2").code, ipc::errc::ok);
    ASSERT_EQ(publisher.publish(topic, "v3").code, ipc::errc::ok);
    ASSERT_TRUE(both_have(wide, exact, "v3"));
    EXPECT_EQ(count_payload(wide.messages, "v2"), 1U);
    EXPECT_EQ(count_payload(exact.messages, "v2"), 1U);
    EXPECT_GE(broker_sent(broker, "gateway-01", topic), 5U)
        << "v1 live, v1 retained, then two copies of v2 (and of v3)";
}

TEST_F(DaemonTest, IPC_EverySubscribeIsAnsweredEvenWhenUnsubscribedBeforeItsSuback) {
    daemon_fixture daemon(broker);
    ipc_client app(daemon.socket_path());
    app.hello("fickle");
    constexpr std::uint32_t n = 50;
    for (std::uint32_t i = 0; i < n; ++i) {
        const auto filter = "cmd/gateway-01/f" + std::to_string(i);
        app.send(ipc::subscribe{.request_id = 2 * i + 1, .subscriptions = {{.filter = filter, .max_qos = 1}}});
        app.send(ipc::unsubscribe{.request_id = 2 * i + 2, .filters = {filter}});
    }
    for (std::uint32_t id = 1; id <= 2 * n; ++id) {
        const auto r = app.result_of(id, 10'000);
        ASSERT_TRUE(r.has_value()) << "request " << id << " never answered";
        const auto& results = id % 2 ? std::get<ipc::subscribe_result>(*r).results
                                     : std::get<ipc::unsubscribe_result>(*r).results;
        ASSERT_EQ(results.size(), 1U);
        EXPECT_EQ(results[0].code, ipc::errc::ok) << "request " << id << ": " << results[0].message;
    }
}

TEST_F(DaemonTest, SubscriptionsAreReferenceCountedUpstream) {
    daemon_fixture daemon(broker);
    auto a = std::make_unique<ipc_client>(daemon.socket_path());
    auto b = std::make_unique<ipc_client>(daemon.socket_path());
    a->hello("a");
    b->hello("b");
    ASSERT_EQ(a->subscribe({"cmd/gateway-01/shared"}).at(0).code, ipc::errc::ok);
    ASSERT_EQ(b->subscribe({"cmd/gateway-01/shared"}).at(0).code, ipc::errc::ok);
    EXPECT_EQ(broker_filters(broker, "gateway-01", "SUBSCRIBE"), std::vector<std::string>{"cmd/gateway-01/shared"});

    ASSERT_EQ(a->unsubscribe({"cmd/gateway-01/shared"}).at(0).code, ipc::errc::ok);
    // B still holds it, so nothing went upstream; a message still reaches B (and not A).
    ASSERT_EQ(a->publish("cmd/gateway-01/shared", "1").code, ipc::errc::ok);
    ASSERT_TRUE(b->wait_messages(1));
    EXPECT_TRUE(broker_filters(broker, "gateway-01", "UNSUBSCRIBE").empty());
    EXPECT_TRUE(a->messages.empty());

    b.reset();  // the last holder disconnects
    ASSERT_TRUE(eventually([&] { return !broker_filters(broker, "gateway-01", "UNSUBSCRIBE").empty(); }));
    EXPECT_EQ(broker_filters(broker, "gateway-01", "UNSUBSCRIBE"), std::vector<std::string>{"cmd/gateway-01/shared"});
}

TEST_F(DaemonTest, ClientThatStopsReadingIsCutOffWithoutDelayingOthers) {
    daemon_fixture daemon(broker, {.ipc = "client_queue: 65536"});
    ipc_client stalled(daemon.socket_path()), reader(daemon.socket_path()), sender(daemon.socket_path());
    stalled.hello("stalled");
    reader.hello("reader");
    sender.hello("sender");
    ASSERT_EQ(stalled.subscribe({"cmd/gateway-01/flood"}).at(0).code, ipc::errc::ok);
    ASSERT_EQ(reader.subscribe({"cmd/gateway-01/flood"}).at(0).code, ipc::errc::ok);

    constexpr std::size_t n = 2000;
    const std::string kilobyte(1024, 'x');
    for (std::size_t i = 0; i < n; ++i) {
        ASSERT_EQ(sender.publish("cmd/gateway-01/flood", std::to_string(i) + kilobyte).code, ipc::errc::ok);
        // The reader reads as a healthy app does; the stalled client never reads.
        if (i % 50 == 0) reader.drain();
    }
    EXPECT_TRUE(reader.wait_messages(n, 30'000));
    EXPECT_EQ(reader.messages.size(), n) << "the healthy reader was held up or lost messages";
    // The stalled client is closed; its error frame cannot overtake the bytes stuck in its
    // socket, so the daemon's log is where the reason shows.
    EXPECT_TRUE(stalled.wait_closed(10'000));
    EXPECT_LT(stalled.messages.size(), n);
    if (stalled.last_error) {
        EXPECT_EQ(stalled.last_error->code, ipc::errc::queue_full);
    }
    EXPECT_TRUE(eventually([&] {
        return read_file(daemon.log_file()).find("('stalled', pid") != std::string::npos &&
               read_file(daemon.log_file()).find("disconnected: queue_full: client is not reading") != std::string::npos;
    }));
    EXPECT_FALSE(sender.closed());
    EXPECT_FALSE(reader.closed());
    std::cout << "[ measured ] reader got " << reader.messages.size() << "/" << n << "; stalled client got "
              << stalled.messages.size() << " before being cut off\n";
}

// IPC-35: ten clients flood pings and never read a pong. Each queued pong is charged the heap it
// takes, and a client whose answers pile up is no longer read: its socket fills and it blocks,
// instead of the daemon buffering hundreds of megabytes for it. Meanwhile a client that reads is
// served, and the memory stays bounded during the attack and after it.
TEST_F(DaemonTest, IPC35_ClientsThatSendWithoutReadingAreBlockedNotBuffered) {
    daemon_fixture daemon(broker);
    ipc_client good(daemon.socket_path());
    ASSERT_TRUE(hello_connected(good, "good"));
    ASSERT_EQ(good.subscribe({"cmd/gateway-01/good"}).at(0).code, ipc::errc::ok);
    const std::size_t idle = resident_bytes(daemon.pid());
    ASSERT_GT(idle, 0U);
    constexpr std::size_t limit = 64 * 1024 * 1024;  // above the idle figure

    constexpr std::size_t attackers = 10;
    constexpr std::size_t pings = 200'000;  // each: about 19 MB of queued pongs if all were buffered
    std::vector<std::uint8_t> batch;        // 1000 pings back to back
    for (std::uint32_t k = 0; k < 1000; ++k) ipc::encode(ipc::client_message{ipc::ping{.token = k}}, batch);
    const std::size_t total = batch.size() * (pings / 1000);
    std::vector<std::unique_ptr<ipc_client>> flood;
    for (std::size_t i = 0; i < attackers; ++i) {
        flood.push_back(std::make_unique<ipc_client>(daemon.socket_path()));
        flood.back()->hello("flood-" + std::to_string(i));
    }
    // Write without ever reading, until every attacker is done or none can write for 2 s.
    std::vector<std::size_t> sent(attackers, 0);
    for (;;) {
        std::vector<pollfd> waiting;
        for (std::size_t i = 0; i < attackers; ++i) {
            while (sent[i] < total) {
                const std::size_t at = sent[i] % batch.size();
                const auto n = ::send(flood[i]->fd(), batch.data() + at, std::min(batch.size() - at, total - sent[i]),
                                      MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n > 0) {
                    sent[i] += static_cast<std::size_t>(n);
                    continue;
                }
                ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << "attacker " << i << ": " << std::strerror(errno);
                waiting.push_back({.fd = flood[i]->fd(), .events = POLLOUT, .revents = 0});
                break;
            }
        }
        if (waiting.empty()) break;
        if (::poll(waiting.data(), waiting.size(), 2000) == 0) break;  // all blocked
    }
    std::size_t pings_sent = 0;
    for (std::size_t i = 0; i < attackers; ++i) {
        EXPECT_LT(sent[i], total) << "attacker " << i << " was read to the end: no back-pressure";
        pings_sent += sent[i] / 9;
    }
    const std::size_t during = resident_bytes(daemon.pid());
    EXPECT_LT(during, idle + limit) << "VmRSS " << during << " bytes during the attack, idle " << idle;

    // A client that reads is served meanwhile: answers, and a message through the broker.
    for (std::uint32_t k = 1; k <= 20; ++k) {
        good.send(ipc::ping{.token = k});
        const auto m = good.receive(10'000);
        ASSERT_TRUE(m && std::holds_alternative<ipc::pong>(*m)) << "ping " << k << " not answered during the attack";
        EXPECT_EQ(std::get<ipc::pong>(*m).token, k);
    }
    ASSERT_EQ(good.publish("cmd/gateway-01/good", "served").code, ipc::errc::ok);
    ASSERT_TRUE(good.wait_messages(1));
    EXPECT_EQ(good.messages.at(0).payload, "served");
    const auto flood_lines = [&] { return lines_with(read_file(daemon.log_file()), "('flood-"); };
    EXPECT_EQ(count_of(flood_lines(), "disconnected: "), 0U) << "back-pressure, not cut-offs:\n" << flood_lines();

    flood.clear();
    ASSERT_TRUE(eventually([&] { return count_of(flood_lines(), "disconnected: ") == attackers; })) << flood_lines();
    const std::size_t after = resident_bytes(daemon.pid());
    EXPECT_LT(after, idle + limit) << "VmRSS " << after << " bytes after the attackers left, idle " << idle;
    good.send(ipc::ping{.token = 99});
    EXPECT_TRUE(good.receive().has_value());
    std::cout << "[ measured ] " << attackers << " clients wrote " << pings_sent << " pings in all before blocking; VmRSS idle "
              << idle / 1024 << " KiB, during " << during / 1024 << " KiB, after " << after / 1024 << " KiB\n";
}

// IPC-35: the queues of all clients together have a limit too (ipc.client_queue_total). Four
// subscribers of four streams stop reading; together they reach the total while none of them
// reaches its own limit: one holding more than its share is cut off, and a subscriber of all
// four streams that reads still gets every message.
TEST_F(DaemonTest, IPC35_SlowSubscribersTogetherStayWithinTheTotalQueueLimit) {
    daemon_fixture daemon(broker, {.ipc = "client_queue: 1MiB\nclient_queue_total: 1MiB"});
    ipc_client reader(daemon.socket_path()), sender(daemon.socket_path());
    reader.hello("reader");
    sender.hello("sender");
    constexpr std::size_t stalled_count = 4;
    std::vector<std::string> streams;
    for (std::size_t i = 0; i < stalled_count; ++i) streams.push_back("cmd/gateway-01/flood/" + std::to_string(i));
    for (const auto& r : reader.subscribe(streams)) ASSERT_EQ(r.code, ipc::errc::ok);
    std::vector<std::unique_ptr<ipc_client>> stalled;
    for (std::size_t i = 0; i < stalled_count; ++i) {
        stalled.push_back(std::make_unique<ipc_client>(daemon.socket_path()));
        stalled.back()->hello("stalled-" + std::to_string(i));
        ASSERT_EQ(stalled.back()->subscribe({streams[i]}).at(0).code, ipc::errc::ok);
    }

    // 115 messages of 8 KiB per stream: each stalled subscriber could hold its 0.96 MB in its own
    // 1 MiB even if its socket took none, but all four cannot hold theirs in 1 MiB together
    // unless each socket took more than 0.7 MB.
    constexpr std::size_t n = 115 * stalled_count;
    const std::string payload(8 * 1024, 'x');
    for (std::size_t i = 0; i < n; ++i) {
        ASSERT_EQ(sender.publish(streams[i % stalled_count], std::to_string(i) + payload).code, ipc::errc::ok);
        if (i % 10 == 0) reader.drain();
    }
    EXPECT_TRUE(reader.wait_messages(n, 30'000));
    EXPECT_EQ(reader.messages.size(), n) << "the reader was held up or lost messages";
    EXPECT_TRUE(eventually([&] { return count_of(read_file(daemon.log_file()), "(ipc.client_queue_total)") >= 1; }))
        << "no subscriber was cut off by the total limit";
    const auto log = read_file(daemon.log_file());
    EXPECT_EQ(count_of(log, "(ipc.client_queue)"), 0U) << "a subscriber reached its own limit:\n" << lines_with(log, "queue_full");
    EXPECT_FALSE(reader.closed());
    EXPECT_FALSE(sender.closed());
    std::cout << "[ measured ] " << count_of(log, "(ipc.client_queue_total)") << " of " << stalled_count
              << " stalled subscribers cut off by ipc.client_queue_total, none by ipc.client_queue\n";
}

// What an idle IPC client costs: 1,000 clients say hello and each subscribes to the same 10
// filters (as scripts/bench.sh's idle scenario does with 100), then stay. The daemon's VmRSS
// grows by at most max_kib_per_client KiB per client (2.0 measured; 4.1 before the clients'
// filters were views of the subscription table's copy, equal grants were shared, the queue was
// a list and the hello timeout's wait ended with the hello).
TEST_F(DaemonTest, IdleIpcClientsEachCostAFewKiB) {
    constexpr std::size_t clients = 1000, filters = 10;
    [[maybe_unused]] constexpr double max_kib_per_client = 3;  // asserted without sanitizers only
    if (!raise_open_file_limit(clients + 200)) GTEST_SKIP() << "the open-file limit cannot hold " << clients << " connections";
    daemon_setup setup;
    setup.ipc = "max_clients: " + std::to_string(clients + 10) + "\nmax_clients_per_uid: " + std::to_string(clients + 10);
    daemon_fixture daemon(broker, setup);
    std::vector<std::string> idle_filters;
    for (std::size_t k = 0; k < filters; ++k) idle_filters.push_back("cmd/gateway-01/idle/" + std::to_string(k));
    const auto join = [&](const std::string& name) {
        auto c = std::make_unique<ipc_client>(daemon.socket_path());
        c->hello(name);
        const auto results = c->subscribe(idle_filters);
        EXPECT_EQ(results.size(), filters) << name;
        for (const auto& r : results) EXPECT_EQ(r.code, ipc::errc::ok) << name;
        return c;
    };
    [[maybe_unused]] const double kib_per_client = kib_per_idle_client(
        daemon.pid(), clients, "idle IPC clients with " + std::to_string(filters) + " subscriptions each", join);
    ASSERT_FALSE(HasFailure());
#ifndef THINGMUX_SANITIZED  // under ASan, VmRSS measures its quarantine and shadow memory
    EXPECT_LE(kib_per_client, max_kib_per_client);
#endif
}

// IPC-35: ten subscribers stop reading while 40,000 small messages arrive. Their queues stay
// within the limits, a reader gets everything, and once they are gone the daemon's memory goes
// back to its idle figure instead of staying at its high-water mark (glibc keeps freed small
// blocks unless the heap is trimmed).
TEST_F(DaemonTest, IPC35_MemoryOfSlowSubscribersGoesBackWhenTheyLeave) {
#ifdef THINGMUX_SANITIZED
    GTEST_SKIP() << "measures glibc's allocator giving memory back; under ASan freed blocks stay in its quarantine "
                    "(the normal build runs it)";
#endif
    daemon_fixture daemon(broker);
    ipc_client reader(daemon.socket_path());
    reader.hello("reader");
    ASSERT_EQ(reader.subscribe({"cmd/gateway-01/flood"}).at(0).code, ipc::errc::ok);
    std::vector<std::unique_ptr<ipc_client>> stalled;
    for (std::size_t i = 0; i < 10; ++i) {
        stalled.push_back(std::make_unique<ipc_client>(daemon.socket_path()));
        stalled.back()->hello("stalled-" + std::to_string(i));
        ASSERT_EQ(stalled.back()->subscribe({"cmd/gateway-01/flood"}).at(0).code, ipc::errc::ok);
    }
    const std::size_t idle = resident_bytes(daemon.pid());
    ASSERT_GT(idle, 0U);

    constexpr int n = 40'000;
    bool all = false;
    std::thread reading([&] { all = reader.wait_messages(n, 30'000); });  // reads while the cloud publishes
    publish_from_cloud(broker, "cmd/gateway-01/flood", numbered(n, std::string(100, 'p')));
    reading.join();
    EXPECT_TRUE(all);
    EXPECT_EQ(reader.messages.size(), static_cast<std::size_t>(n));
    EXPECT_FALSE(reader.closed());
    const std::size_t during = resident_bytes(daemon.pid());
    EXPECT_LT(during, idle + 64 * 1024 * 1024) << "more than ipc.client_queue_total";

    stalled.clear();
    ASSERT_TRUE(eventually([&] { return count_of(lines_with(read_file(daemon.log_file()), "('stalled-"), "disconnected: ") == 10; }));
    constexpr std::size_t slack = 4 * 1024 * 1024;  // code and buffers first used during the run
    std::size_t after = 0;
    EXPECT_TRUE(eventually([&] {
        after = resident_bytes(daemon.pid());
        return after < idle + slack;
    })) << "VmRSS " << after / 1024 << " KiB after the slow subscribers left, " << during / 1024 << " KiB with them, idle "
        << idle / 1024 << " KiB";
    std::cout << "[ measured ] VmRSS idle " << idle / 1024 << " KiB, with 10 stalled subscribers " << during / 1024
              << " KiB, after they left " << after / 1024 << " KiB; "
              << count_of(read_file(daemon.log_file()), "(ipc.client_queue_total)") << " cut off by ipc.client_queue_total\n";
}

TEST_F(DaemonTest, IPC_MalformedAndOversizedFramesCloseOnlyThatClient) {
    daemon_fixture daemon(broker);
    ipc_client good(daemon.socket_path());
    good.hello("good");
    ASSERT_EQ(good.subscribe({"cmd/gateway-01/still"}).at(0).code, ipc::errc::ok);

    struct bad_case {
        const char* what;
        std::vector<std::uint8_t> bytes;
        ipc::errc expected;
    };
    const std::vector<bad_case> cases{
        {"zero length", {0, 0, 0, 0}, ipc::errc::malformed_frame},
        {"unknown type", {0, 0, 0, 1, 0x7f}, ipc::errc::malformed_frame},
        {"daemon-direction type", {0, 0, 0, 5, 0x87, 0, 0, 0, 1}, ipc::errc::protocol_violation},
        {"oversized", {0x10, 0, 0, 0, 0x02}, ipc::errc::frame_too_large},
        {"truncated hello", {0, 0, 0, 4, 0x01, 0, 1, 0}, ipc::errc::malformed_frame},
    };
    for (const auto& c : cases) {
        ipc_client bad(daemon.socket_path());
        bad.send_raw(c.bytes);
        EXPECT_TRUE(bad.wait_closed()) << c.what;
        ASSERT_TRUE(bad.last_error.has_value()) << c.what;
        EXPECT_EQ(bad.last_error->code, c.expected) << c.what << ": " << bad.last_error->message;
    }
    // Everyone else is unaffected.
    ASSERT_EQ(good.publish("cmd/gateway-01/still", "alive").code, ipc::errc::ok);
    ASSERT_TRUE(good.wait_messages(1));
    EXPECT_EQ(good.messages.at(0).payload, "alive");
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
}

TEST_F(DaemonTest, IPC_HandshakeRefusalsSayWhy) {
    daemon_fixture daemon(broker);
    {
        ipc_client c(daemon.socket_path());
        c.send(ipc::publish{.request_id = 1, .topic = "dt/gateway-01/x", .payload = "early", .qos = 1});
        EXPECT_TRUE(c.wait_closed());
        ASSERT_TRUE(c.last_error);
        EXPECT_EQ(c.last_error->code, ipc::errc::protocol_violation);
    }
    {
        ipc_client c(daemon.socket_path());
        c.send(ipc::hello{.version = 99, .app_name = "future", .thing = ""});
        EXPECT_TRUE(c.wait_closed());
        ASSERT_TRUE(c.last_error);
        EXPECT_EQ(c.last_error->code, ipc::errc::unsupported_version) << c.last_error->message;
        EXPECT_EQ(c.last_error->message, "client speaks IPC version 99, thingmuxd speaks 1, 2 and 3") << "IPC-9";
    }
    {
        // Version 2 (sessions, IPC-46) is spoken: a well-formed version 2 hello is not refused but
        // welcomed in version 2, with a new session.
        ipc_client c(daemon.socket_path());
        const auto w = c.hello(
            ipc::hello{.version = 2, .app_name = "sessions", .thing = "", .session_name = "s", .session_expiry = 60});
        EXPECT_EQ(w.version, 2);
        EXPECT_FALSE(w.session_present);
        EXPECT_EQ(w.session_expiry, 60U);
        EXPECT_FALSE(c.last_error.has_value());
    }
    {
        ipc_client c(daemon.socket_path());
        c.send(ipc::hello{.version = ipc::protocol_version, .app_name = "lost", .thing = "gateway-99"});
        EXPECT_TRUE(c.wait_closed());
        ASSERT_TRUE(c.last_error);
        EXPECT_EQ(c.last_error->code, ipc::errc::unknown_thing);
        EXPECT_NE(c.last_error->message.find("gateway-99"), std::string::npos) << c.last_error->message;
    }
}

TEST_F(DaemonTest, BadPublishesAreRefusedLocallyAndNeverReachTheBroker) {
    observer_subscription cloud(broker, "#");
    ASSERT_TRUE(cloud.wait_ready());
    daemon_fixture daemon(broker);
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "app"));  // the marker below must go out, not to the spool
    EXPECT_EQ(app.publish("dt/gateway-01/q2", "x", 2).code, ipc::errc::qos_not_supported);
    EXPECT_EQ(app.publish("dt/gateway-01/+", "x").code, ipc::errc::invalid_topic);
    EXPECT_EQ(app.publish("dt/gateway-01/" + std::string(300, 'a'), "x").code, ipc::errc::invalid_topic);
    EXPECT_EQ(app.publish("dt/gateway-01/big", std::string(128 * 1024 + 1, 'x')).code, ipc::errc::payload_too_large);
    // A marker that does go through: once it arrived, nothing refused can still be on its way.
    ASSERT_EQ(app.publish("dt/gateway-01/marker", "m").code, ipc::errc::ok);
    ASSERT_GE(cloud.wait_for(1, 10'000), 1U);
    EXPECT_EQ(cloud.lines(), std::vector<std::string>{"dt/gateway-01/marker m"});
    EXPECT_EQ(broker_connections(broker, "gateway-01"), 1U);
}

TEST_F(DaemonTest, SigtermDisconnectsUpstreamCleanlyAndExitsZero) {
    daemon_fixture daemon(broker);
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "app"));  // offline, the publish would be spooled instead
    ASSERT_EQ(app.publish("dt/gateway-01/last", "1").code, ipc::errc::ok);
    EXPECT_EQ(daemon.stop(), 0);
    EXPECT_TRUE(app.wait_closed());
    ASSERT_TRUE(app.last_error);
    EXPECT_EQ(app.last_error->code, ipc::errc::daemon_shutting_down);
    // mosquitto says "disconnected." for a DISCONNECT packet, "closed its connection." otherwise.
    EXPECT_TRUE(eventually([&] { return read_file(broker.log_file()).find("Client gateway-01 disconnected.") != std::string::npos; }));
    EXPECT_FALSE(std::filesystem::exists(daemon.socket_path()));
}

// The MQTT face's socket when thingmuxd binds it: mqtt.sock next to the IPC socket, with the IPC
// socket's mode (the fixture's "0666"), accepting connections, removed at stop.
TEST_F(DaemonTest, MqttSocketIsBoundNextToTheIpcSocketAcceptsAndIsRemovedAtStop) {
    daemon_fixture daemon(broker);
    ipc_client app(daemon.socket_path());
    EXPECT_EQ(app.hello("app").thing, "gateway-01") << "the event loop runs: both sockets are set up";
    const auto mqtt_socket = daemon.socket_path().parent_path() / "mqtt.sock";
    struct stat st {};
    ASSERT_EQ(::lstat(mqtt_socket.c_str(), &st), 0) << read_file(daemon.log_file());
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0666U);
    EXPECT_TRUE(eventually([&] {
        return read_file(daemon.log_file()).find("MQTT face listening on " + mqtt_socket.string() + " (mode 666)") !=
               std::string::npos;
    })) << read_file(daemon.log_file());

    EXPECT_TRUE(mqtt_socket_accepts(mqtt_socket)) << "thingmuxd did not accept from the MQTT socket";

    EXPECT_EQ(daemon.stop(), 0);
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(mqtt_socket)));
}

// The MQTT socket's path and the face itself are read at startup only; a reload says so and
// keeps serving on the socket it has.
TEST_F(DaemonTest, ReloadSaysANewMqttSocketOrSwitchTakesEffectAtRestart) {
    daemon_fixture daemon(broker);
    ipc_client app(daemon.socket_path());
    EXPECT_EQ(app.hello("app").thing, "gateway-01");
    const auto mqtt_socket = daemon.socket_path().parent_path() / "mqtt.sock";
    const auto elsewhere = daemon.socket_path().parent_path() / "elsewhere.sock";
    const auto log_has = [&](const std::string& text) {
        return read_file(daemon.log_file()).find(text) != std::string::npos;
    };

    daemon_setup moved;
    moved.mqtt = "socket: " + elsewhere.string();
    daemon.configure(moved);
    daemon.reload();
    ASSERT_TRUE(eventually([&] { return log_has("configuration reloaded"); })) << read_file(daemon.log_file());
    EXPECT_TRUE(log_has("mqtt.socket changed to " + elsewhere.string() + "; it takes effect when thingmuxd restarts"));
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(elsewhere)));
    EXPECT_TRUE(mqtt_socket_accepts(mqtt_socket));

    daemon_setup off;
    off.mqtt = "enabled: false";
    daemon.configure(off);
    daemon.reload();
    ASSERT_TRUE(eventually([&] {
        return log_has("mqtt.enabled changed to false; it takes effect when thingmuxd restarts");
    })) << read_file(daemon.log_file());
    EXPECT_TRUE(mqtt_socket_accepts(mqtt_socket));
    EXPECT_EQ(daemon.stop(), 0);
}

TEST_F(DaemonTest, MqttFaceThatIsOffBindsNoSocket) {
    daemon_setup setup;
    setup.mqtt = "enabled: false";
    daemon_fixture daemon(broker, setup);
    ipc_client app(daemon.socket_path());
    EXPECT_EQ(app.hello("app").thing, "gateway-01");
    EXPECT_FALSE(
        std::filesystem::exists(std::filesystem::symlink_status(daemon.socket_path().parent_path() / "mqtt.sock")));
    EXPECT_EQ(read_file(daemon.log_file()).find("MQTT face listening"), std::string::npos);
    EXPECT_EQ(daemon.stop(), 0);
}

}  // namespace
}  // namespace thingmux::test
