// The C API (<thingmux/thingmux.h>) and its Python ctypes example against the real thingmuxd and
// the real AWS-like mosquitto: what an app sees, counted on both sides.
#include "tests/support/daemon_fixture.hpp"

#include <thingmux/thingmux.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/wait.h>

namespace thingmux::test {
namespace {

using namespace std::chrono_literals;

// A C API client of `daemon`, destroyed with the test.
struct c_client {
    explicit c_client(const daemon_fixture& daemon, std::uint32_t max_events = 0) {
        thingmux_options_t o;
        thingmux_options_init(&o);
        const std::string socket = daemon.socket_path().string();
        o.socket_path = socket.c_str();  // copied by create
        o.app_name = "c-api-test";
        o.reconnect_min_ms = 50;
        o.reconnect_max_ms = 200;
        o.max_events = max_events;
        EXPECT_EQ(thingmux_client_create(&o, &c), THINGMUX_OK);
    }
    ~c_client() {
        if (c != nullptr) {
            EXPECT_EQ(thingmux_client_destroy(c), THINGMUX_OK);
        }
    }
    c_client(const c_client&) = delete;
    c_client& operator=(const c_client&) = delete;

    // Runs callbacks in this thread until `pred` holds or `timeout_ms` passed.
    template <typename Pred>
    bool run_until(Pred pred, int timeout_ms = 20'000) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (!pred()) {
            if (std::chrono::steady_clock::now() > deadline) {
                return false;
            }
            if (thingmux_client_wait(c, 100, nullptr) != THINGMUX_OK) {
                return false;
            }
        }
        return true;
    }

    thingmux_client_t* c = nullptr;
};

// Results of the completions given this as user_data, and the threads they ran on.
struct outcomes {
    std::vector<int> codes;
    std::vector<std::string> messages;
    std::set<std::thread::id> threads;
    static void record(thingmux_client_t*, const thingmux_result_t* r, void* ud) {
        auto* self = static_cast<outcomes*>(ud);
        self->codes.push_back(r->code);
        self->messages.emplace_back(r->message);
        self->threads.insert(std::this_thread::get_id());
    }
};

// Messages a message callback received.
struct received {
    std::vector<std::string> payloads;
    std::set<std::thread::id> threads;
    int reentry_rc = -1;
    static void record(thingmux_client_t* c, const thingmux_message_t* m, void* ud) {
        auto* self = static_cast<received*>(ud);
        self->payloads.emplace_back(static_cast<const char*>(m->payload), m->payload_len);
        self->threads.insert(std::this_thread::get_id());
        self->reentry_rc = thingmux_client_process(c, 0, nullptr);
    }
    [[nodiscard]] std::size_t distinct() const { return std::set(payloads.begin(), payloads.end()).size(); }
};

bool connect(c_client& app) {
    outcomes connected;
    EXPECT_EQ(thingmux_connect(app.c, outcomes::record, &connected), THINGMUX_OK);
    if (!app.run_until([&] { return !connected.codes.empty(); })) {
        return false;
    }
    EXPECT_EQ(connected.codes.at(0), THINGMUX_OK) << connected.messages.at(0);
    return connected.codes.at(0) == THINGMUX_OK;
}

TEST(CApi, PublishingNQos1MessagesGivesNCompletionsOkAndTheBrokerGetsThemAll) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());
    c_client app(daemon);
    ASSERT_TRUE(connect(app));

    constexpr int n = 25;
    outcomes published;
    std::vector<std::string> expected;
    for (int i = 1; i <= n; ++i) {
        const std::string payload = "c-" + std::to_string(i);
        ASSERT_EQ(thingmux_publish(app.c, "dt/gateway-01/c", payload.data(), payload.size(), 1, 0, outcomes::record,
                                   &published),
                  THINGMUX_OK);
        expected.push_back("dt/gateway-01/c " + payload);
    }
    ASSERT_TRUE(app.run_until([&] { return published.codes.size() == n; })) << published.codes.size();
    EXPECT_EQ(std::count(published.codes.begin(), published.codes.end(), THINGMUX_OK), n);
    EXPECT_EQ(published.threads, std::set{std::this_thread::get_id()});
    EXPECT_EQ(cloud.wait_for_all(expected, 20'000), 0U);
    // No completion runs twice: nothing more comes.
    std::size_t ran = 0;
    ASSERT_EQ(thingmux_client_wait(app.c, 200, &ran), THINGMUX_OK);
    EXPECT_EQ(published.codes.size(), static_cast<std::size_t>(n));
}

TEST(CApi, SubscribedMessagesAreCountedInTheCallingThreadAndProcessFromTheCallbackIsRefused) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    c_client app(daemon);
    received got;
    outcomes subscribed;
    ASSERT_EQ(thingmux_subscribe(app.c, "cmd/gateway-01/#", 1, received::record, &got, outcomes::record, &subscribed),
              THINGMUX_OK);
    ASSERT_TRUE(connect(app));
    ASSERT_TRUE(app.run_until([&] { return !subscribed.codes.empty(); }));
    ASSERT_EQ(subscribed.codes.at(0), THINGMUX_OK) << subscribed.messages.at(0);

    publish_from_cloud(broker, "cmd/gateway-01/x", numbered(15, "m-"));
    ASSERT_TRUE(app.run_until([&] { return got.distinct() == 15; })) << got.distinct();
    EXPECT_EQ(got.threads, std::set{std::this_thread::get_id()});
    EXPECT_EQ(got.reentry_rc, THINGMUX_ERR_INVALID_ARGUMENT);

    // Unsubscribed: the callback is not called again.
    outcomes unsubscribed;
    ASSERT_EQ(thingmux_unsubscribe(app.c, "cmd/gateway-01/#", outcomes::record, &unsubscribed), THINGMUX_OK);
    ASSERT_TRUE(app.run_until([&] { return !unsubscribed.codes.empty(); }));
    EXPECT_EQ(unsubscribed.codes.at(0), THINGMUX_OK);
    const auto before = got.payloads.size();
    publish_from_cloud(broker, "cmd/gateway-01/x", numbered(3, "late-"));
    std::size_t ran = 0;
    ASSERT_EQ(thingmux_client_wait(app.c, 500, &ran), THINGMUX_OK);
    EXPECT_EQ(got.payloads.size(), before);
}

TEST(CApi, AFullEventQueueHoldsTheLibraryBackAndLosesNoMessage) {
    // Two events at most between the library's thread and ours: while the test publishes from
    // the cloud without processing, the library's thread waits; afterwards every message comes.
    broker_fixture broker;
    daemon_fixture daemon(broker);
    c_client app(daemon, /*max_events=*/2);
    received got;
    outcomes subscribed;
    ASSERT_EQ(thingmux_subscribe(app.c, "cmd/gateway-01/#", 1, received::record, &got, outcomes::record, &subscribed),
              THINGMUX_OK);
    ASSERT_TRUE(connect(app));
    ASSERT_TRUE(app.run_until([&] { return !subscribed.codes.empty(); }));
    ASSERT_EQ(subscribed.codes.at(0), THINGMUX_OK);

    constexpr int n = 40;
    publish_from_cloud(broker, "cmd/gateway-01/x", numbered(n, "bp-"));
    ASSERT_TRUE(app.run_until([&] { return got.distinct() == n; })) << got.distinct();
    int daemon_state = -1;
    ASSERT_EQ(thingmux_client_state(app.c, &daemon_state, nullptr), THINGMUX_OK);
    EXPECT_EQ(daemon_state, THINGMUX_DAEMON_CONNECTED);
}

TEST(CApi, DestroyWhileTheLibrarysThreadWaitsForRoomDoesNotHang) {
    // One event at most: the cloud's messages fill the queue and the library's thread waits for
    // room that the app never makes; destroy releases it, runs the one completion and returns.
    broker_fixture broker;
    daemon_fixture daemon(broker);
    auto app = std::make_unique<c_client>(daemon, /*max_events=*/1);
    received got;
    outcomes subscribed;
    ASSERT_EQ(thingmux_subscribe(app->c, "cmd/gateway-01/#", 1, received::record, &got, outcomes::record, &subscribed),
              THINGMUX_OK);
    ASSERT_TRUE(connect(*app));
    ASSERT_TRUE(app->run_until([&] { return !subscribed.codes.empty(); }));
    outcomes published;
    ASSERT_EQ(thingmux_publish(app->c, "dt/gateway-01/t", "1", 1, 1, 0, outcomes::record, &published), THINGMUX_OK);
    publish_from_cloud(broker, "cmd/gateway-01/x", numbered(20, "held-"));
    int fd = -1;
    ASSERT_EQ(thingmux_client_fd(app->c, &fd), THINGMUX_OK);
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10'000), 1);  // events wait, none processed
    const auto start = std::chrono::steady_clock::now();
    app.reset();  // thingmux_client_destroy()
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
    EXPECT_EQ(published.codes.size(), 1U);  // its completion ran once, in destroy
    EXPECT_TRUE(got.payloads.empty());      // messages are not delivered by destroy
}

TEST(CApi, TheDaemonGoingAwayAndComingBackReachesTheStateCallback) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    c_client app(daemon);
    std::vector<int> daemon_states;
    ASSERT_EQ(thingmux_client_set_state_callback(
                  app.c,
                  [](thingmux_client_t*, const thingmux_state_t* s, void* ud) {
                      static_cast<std::vector<int>*>(ud)->push_back(s->daemon);
                  },
                  &daemon_states),
              THINGMUX_OK);
    ASSERT_TRUE(connect(app));
    ASSERT_TRUE(app.run_until(
        [&] { return std::count(daemon_states.begin(), daemon_states.end(), THINGMUX_DAEMON_CONNECTED) == 1; }));

    daemon.kill();
    ASSERT_TRUE(app.run_until([&] { return daemon_states.back() == THINGMUX_DAEMON_UNAVAILABLE; }));
    outcomes refused;
    ASSERT_EQ(thingmux_publish(app.c, "dt/gateway-01/t", "1", 1, 1, 0, outcomes::record, &refused), THINGMUX_OK);
    ASSERT_TRUE(app.run_until([&] { return !refused.codes.empty(); }));
    EXPECT_EQ(refused.codes.at(0), THINGMUX_ERR_NOT_CONNECTED) << refused.messages.at(0);

    daemon.start();
    ASSERT_TRUE(app.run_until(
        [&] { return std::count(daemon_states.begin(), daemon_states.end(), THINGMUX_DAEMON_CONNECTED) == 2; }));
}

TEST(CApi, DestroyWithRequestsInFlightCallsEveryCompletionExactlyOnce) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    constexpr int n = 200;
    std::vector<int> calls(n, 0);
    std::vector<int> codes(n, -1);
    struct slot {
        std::vector<int>* calls;
        std::vector<int>* codes;
        std::size_t index;
    };
    std::vector<slot> slots;
    for (std::size_t i = 0; i < n; ++i) {
        slots.push_back({&calls, &codes, i});
    }
    {
        c_client app(daemon);
        ASSERT_TRUE(connect(app));
        for (auto& s : slots) {
            ASSERT_EQ(thingmux_publish(
                          app.c, "dt/gateway-01/t", "x", 1, 1, 0,
                          [](thingmux_client_t*, const thingmux_result_t* r, void* ud) {
                              auto* p = static_cast<slot*>(ud);
                              ++(*p->calls)[p->index];
                              (*p->codes)[p->index] = r->code;
                          },
                          &s),
                      THINGMUX_OK);
        }
        // Some answers may be queued, none processed: destroy runs them all.
    }
    for (std::size_t i = 0; i < n; ++i) {
        EXPECT_EQ(calls[i], 1) << i;
        EXPECT_TRUE(codes[i] == THINGMUX_OK || codes[i] == THINGMUX_ERR_CLOSED) << i << ": " << codes[i];
    }
    EXPECT_GT(std::count(codes.begin(), codes.end(), THINGMUX_ERR_CLOSED), 0) << "every answer came before destroy";
}

// ---------------------------------------------------------------------------------------------
// The C example (libclient/examples/c/pubsub.c)

TEST(CApiExample, TheCExamplePublishesAndReceivesFromItsPollLoop) {
    broker_fixture broker;
    daemon_fixture daemon(broker);
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());
    const auto out = daemon.dir() / "pubsub.out";
    const auto err = daemon.dir() / "pubsub.err";
    child_process example({THINGMUX_C_EXAMPLE, "-s", daemon.socket_path().string(), "-n", "4", "-r", "3"}, out, err);
    ASSERT_TRUE(eventually([&] { return read_file(out).find("subscribe cmd: ok") != std::string::npos; }, 30'000))
        << read_file(out) << read_file(err);
    publish_from_cloud(broker, "cmd/gateway-01/c", numbered(3, "to-c-"));
    const auto status = example.wait(60'000);
    ASSERT_TRUE(status) << read_file(out) << read_file(err);
    const std::string output = read_file(out);
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << output << read_file(err);
    EXPECT_NE(output.find("published 4 of 4\n"), std::string::npos) << output;
    EXPECT_NE(output.find("received 3\n"), std::string::npos) << output;
    for (int i = 1; i <= 3; ++i) {
        EXPECT_NE(output.find("message on cmd/gateway-01/c (QoS 1): to-c-" + std::to_string(i) + "\n"),
                  std::string::npos)
            << output;
    }
    EXPECT_EQ(cloud.wait_for_all({"dt/gateway-01/pubsub 1", "dt/gateway-01/pubsub 2", "dt/gateway-01/pubsub 3",
                                  "dt/gateway-01/pubsub 4"},
                                 20'000),
              0U);
}

// ---------------------------------------------------------------------------------------------
// The Python ctypes example (libclient/examples/python/thingmux_ctypes.py)

TEST(CApiPython, TheCtypesExamplePublishesReceivesAndSeesARefusedPublishsCode) {
    broker_fixture broker;
    daemon_setup setup;
    // The app may publish under dt/ only: its publish elsewhere is refused by the daemon.
    setup.apps =
        "  - name: tests\n"
        "    match: { uid: 0 }\n"
        "    publish: ['dt/#']\n"
        "    subscribe: ['cmd/#']\n";
    daemon_fixture daemon(broker, setup);
    observer_subscription cloud(broker, "dt/gateway-01/#");
    ASSERT_TRUE(cloud.wait_ready());

    constexpr int sent = 7;
    constexpr int to_receive = 9;
    const auto out = daemon.dir() / "python.out";
    const auto err = daemon.dir() / "python.err";
    child_process python({"python3", THINGMUX_CTYPES_EXAMPLE, "--lib", THINGMUX_LIBRARY, "--socket",
                          daemon.socket_path().string(), "--count", std::to_string(sent), "--receive",
                          std::to_string(to_receive), "--refused-topic", "forbidden/gateway-01/x", "--timeout", "60"},
                         out, err);
    ASSERT_TRUE(eventually([&] { return read_file(out).find("ready\n") != std::string::npos; }, 30'000))
        << read_file(out) << read_file(err);
    publish_from_cloud(broker, "cmd/gateway-01/py", numbered(to_receive, "to-py-"));
    const auto status = python.wait(90'000);
    ASSERT_TRUE(status) << read_file(out) << read_file(err);
    const std::string output = read_file(out);
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << output << read_file(err);
    EXPECT_NE(output.find("published_ok " + std::to_string(sent) + "\n"), std::string::npos) << output;
    EXPECT_NE(output.find("refused " + std::to_string(THINGMUX_ERR_NOT_AUTHORIZED) + " not_authorized\n"),
              std::string::npos)
        << output;
    EXPECT_NE(output.find("received " + std::to_string(to_receive) + "\n"), std::string::npos) << output;

    std::vector<std::string> expected;
    for (int i = 1; i <= sent; ++i) {
        expected.push_back("dt/gateway-01/py py-" + std::to_string(i));
    }
    EXPECT_EQ(cloud.wait_for_all(expected, 20'000), 0U);
}

}  // namespace
}  // namespace thingmux::test
