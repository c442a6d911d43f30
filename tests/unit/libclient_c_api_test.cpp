// The C API (<thingmux/thingmux.h>) without a daemon: argument checks, result codes and their
// texts, the options' size field, callbacks run only by process() on the calling thread, calls
// refused from inside a callback, destroy with requests pending, and the event queue's bound.
#include "c_api_event_queue.hpp"

#include <thingmux/thingmux.h>
#include <thingmux/error.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>

namespace {

using namespace std::chrono_literals;

// Every code of thingmux::error_code with its C constant and its name.
struct code_case {
    int c_value;
    thingmux::error_code cpp;
    const char* name;
};

const std::vector<code_case>& all_codes() {
    using thingmux::error_code;
    static const std::vector<code_case> codes{
        {THINGMUX_OK, error_code::ok, "ok"},
        {THINGMUX_ERR_BROKER_REFUSED, error_code::broker_refused, "broker_refused"},
        {THINGMUX_ERR_NOT_CONNECTED, error_code::not_connected, "not_connected"},
        {THINGMUX_ERR_INVALID_TOPIC, error_code::invalid_topic, "invalid_topic"},
        {THINGMUX_ERR_INVALID_FILTER, error_code::invalid_filter, "invalid_filter"},
        {THINGMUX_ERR_PAYLOAD_TOO_LARGE, error_code::payload_too_large, "payload_too_large"},
        {THINGMUX_ERR_QOS_NOT_SUPPORTED, error_code::qos_not_supported, "qos_not_supported"},
        {THINGMUX_ERR_NOT_AUTHORIZED, error_code::not_authorized, "not_authorized"},
        {THINGMUX_ERR_QUOTA_EXCEEDED, error_code::quota_exceeded, "quota_exceeded"},
        {THINGMUX_ERR_QUEUE_FULL, error_code::queue_full, "queue_full"},
        {THINGMUX_ERR_RATE_LIMITED, error_code::rate_limited, "rate_limited"},
        {THINGMUX_ERR_SPOOL_FULL, error_code::spool_full, "spool_full"},
        {THINGMUX_ERR_SESSION_CLOSED, error_code::session_closed, "session_closed"},
        {THINGMUX_ERR_UNSUPPORTED_VERSION, error_code::unsupported_version, "unsupported_version"},
        {THINGMUX_ERR_UNKNOWN_THING, error_code::unknown_thing, "unknown_thing"},
        {THINGMUX_ERR_MALFORMED_FRAME, error_code::malformed_frame, "malformed_frame"},
        {THINGMUX_ERR_PROTOCOL_VIOLATION, error_code::protocol_violation, "protocol_violation"},
        {THINGMUX_ERR_FRAME_TOO_LARGE, error_code::frame_too_large, "frame_too_large"},
        {THINGMUX_ERR_DAEMON_SHUTTING_DOWN, error_code::daemon_shutting_down, "daemon_shutting_down"},
        {THINGMUX_ERR_INTERNAL, error_code::internal_error, "internal_error"},
        {THINGMUX_SPOOLED, error_code::spooled, "spooled"},
        {THINGMUX_ERR_SESSION_TAKEN_OVER, error_code::session_taken_over, "session_taken_over"},
        {THINGMUX_ERR_INVALID_PAYLOAD, error_code::invalid_payload, "invalid_payload"},
        {THINGMUX_ERR_INVALID_CONFIGURATION, error_code::invalid_configuration, "invalid_configuration"},
        {THINGMUX_ERR_DAEMON_UNAVAILABLE, error_code::daemon_unavailable, "daemon_unavailable"},
        {THINGMUX_ERR_CLOSED, error_code::closed, "closed"},
        {THINGMUX_ERR_BACKLOG_FULL, error_code::backlog_full, "backlog_full"},
        {THINGMUX_ERR_INVALID_ARGUMENT, error_code::invalid_argument, "invalid_argument"},
        {THINGMUX_ERR_TIMED_OUT, error_code::timed_out, "timed_out"},
        {THINGMUX_ERR_CANCELLED, error_code::cancelled, "cancelled"},
    };
    return codes;
}

TEST(CApiCodes, EveryCodeEqualsTheLibrarysAndHasANameAndAText) {
    for (const auto& c : all_codes()) {
        SCOPED_TRACE(c.name);
        EXPECT_EQ(c.c_value, static_cast<int>(c.cpp));
        EXPECT_STREQ(thingmux_error_name(c.c_value), c.name);
        const std::string text = thingmux_strerror(c.c_value);
        EXPECT_FALSE(text.empty());
        EXPECT_NE(text, "unknown error code");
        EXPECT_EQ(text, thingmux::describe(c.cpp));
    }
    // Distinct texts: each code says something of its own.
    std::set<std::string> texts;
    for (const auto& c : all_codes()) {
        texts.insert(thingmux_strerror(c.c_value));
    }
    EXPECT_EQ(texts.size(), all_codes().size());
}

TEST(CApiCodes, UnknownValuesAreNamedUnknownNeverNull) {
    for (const int v : {-1, 24, 999, 1006, 65535, 65536, 1 << 30}) {
        SCOPED_TRACE(v);
        EXPECT_STREQ(thingmux_error_name(v), "unknown");
        EXPECT_STREQ(thingmux_strerror(v), "unknown error code");
    }
    EXPECT_EQ(thingmux_succeeded(THINGMUX_OK), 1);
    EXPECT_EQ(thingmux_succeeded(THINGMUX_SPOOLED), 1);
    EXPECT_EQ(thingmux_succeeded(THINGMUX_ERR_NOT_CONNECTED), 0);
    EXPECT_EQ(thingmux_c_api_version(), THINGMUX_C_API_VERSION);
    EXPECT_STREQ(thingmux_daemon_state_name(THINGMUX_DAEMON_UNAVAILABLE), "unavailable");
    EXPECT_STREQ(thingmux_uplink_state_name(THINGMUX_UPLINK_BACKING_OFF), "backing_off");
    EXPECT_STREQ(thingmux_daemon_state_name(99), "unknown");
    EXPECT_STREQ(thingmux_uplink_state_name(THINGMUX_UPLINK_UNKNOWN), "unknown");
    EXPECT_STREQ(thingmux_uplink_state_name(-3), "unknown");
}

TEST(CApiArguments, EveryFunctionRefusesANullClient) {
    constexpr int invalid = THINGMUX_ERR_INVALID_ARGUMENT;
    int fd = -1;
    int d = 0;
    char buf[8];
    std::size_t n = 7;
    const thingmux_message_t m{
        sizeof(thingmux_message_t), "a", nullptr, 0, 0, 0, nullptr, nullptr, nullptr, 0, 0, 0, 0, 0, nullptr, 0};
    const auto on_message = [](thingmux_client_t*, const thingmux_message_t*, void*) {};
    EXPECT_EQ(thingmux_options_init(nullptr), invalid);
    EXPECT_EQ(thingmux_client_create(nullptr, nullptr), invalid);
    EXPECT_EQ(thingmux_client_destroy(nullptr), invalid);
    EXPECT_EQ(thingmux_client_set_state_callback(nullptr, nullptr, nullptr), invalid);
    EXPECT_EQ(thingmux_client_set_subscription_lost_callback(nullptr, nullptr, nullptr), invalid);
    EXPECT_EQ(thingmux_client_state(nullptr, &d, &d), invalid);
    EXPECT_EQ(thingmux_client_thing(nullptr, buf, sizeof buf), invalid);
    EXPECT_EQ(thingmux_client_fd(nullptr, &fd), invalid);
    EXPECT_EQ(thingmux_client_process(nullptr, 0, &n), invalid);
    EXPECT_EQ(n, 0U);  // the count is set even on refusal
    EXPECT_EQ(thingmux_client_wait(nullptr, 0, nullptr), invalid);
    EXPECT_EQ(thingmux_connect(nullptr, nullptr, nullptr), invalid);
    EXPECT_EQ(thingmux_publish(nullptr, "a", "x", 1, 0, 0, nullptr, nullptr), invalid);
    EXPECT_EQ(thingmux_publish_message(nullptr, &m, nullptr, nullptr), invalid);
    EXPECT_EQ(thingmux_subscribe(nullptr, "a", 0, on_message, nullptr, nullptr, nullptr), invalid);
    EXPECT_EQ(thingmux_unsubscribe(nullptr, "a", nullptr, nullptr), invalid);
}

TEST(CApiOptions, TheSizeFieldGuardsTheLayout) {
    thingmux_options_t o;
    ASSERT_EQ(thingmux_options_init(&o), THINGMUX_OK);
    EXPECT_EQ(o.struct_size, sizeof o);
    EXPECT_EQ(o.reconnect, 1);
    EXPECT_EQ(o.max_events, THINGMUX_DEFAULT_MAX_EVENTS);
    thingmux_client_t* c = reinterpret_cast<thingmux_client_t*>(&o);  // must be overwritten with NULL

    // A zeroed struct (struct_size 0, never initialized) and one shorter than version 1.
    thingmux_options_t zero{};
    EXPECT_EQ(thingmux_client_create(&zero, &c), THINGMUX_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(c, nullptr);
    thingmux_options_t shorter = o;
    shorter.struct_size = offsetof(thingmux_options_t, max_events);
    EXPECT_EQ(thingmux_client_create(&shorter, &c), THINGMUX_ERR_INVALID_ARGUMENT);

    // A newer app's struct: fields past ours are accepted only while zero.
    struct newer {
        thingmux_options_t v1;
        std::uint64_t future_field;
    } n{};
    n.v1 = o;
    n.v1.struct_size = sizeof n;
    n.v1.socket_path = "/nonexistent/thingmux.sock";
    n.future_field = 42;
    EXPECT_EQ(thingmux_client_create(&n.v1, &c), THINGMUX_ERR_INVALID_ARGUMENT);
    n.future_field = 0;
    ASSERT_EQ(thingmux_client_create(&n.v1, &c), THINGMUX_OK);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(thingmux_client_destroy(c), THINGMUX_OK);

    // Out-of-range values.
    thingmux_options_t bad = o;
    bad.reconnect = 2;
    EXPECT_EQ(thingmux_client_create(&bad, &c), THINGMUX_ERR_INVALID_ARGUMENT);
    bad = o;
    bad.reconnect_min_ms = bad.reconnect_max_ms + 1;
    EXPECT_EQ(thingmux_client_create(&bad, &c), THINGMUX_ERR_INVALID_ARGUMENT);
    bad = o;
    bad.handshake_timeout_ms = 0;
    EXPECT_EQ(thingmux_client_create(&bad, &c), THINGMUX_ERR_INVALID_ARGUMENT);
}

// A client whose daemon is not there (a socket path nothing listens on).
struct offline_client {
    explicit offline_client(bool wait_for_daemon = false) {
        thingmux_options_t o;
        thingmux_options_init(&o);
        o.socket_path = "/nonexistent/thingmux-c-api-test.sock";
        o.wait_for_daemon = wait_for_daemon ? 1 : 0;
        o.reconnect_min_ms = 20;
        o.reconnect_max_ms = 50;
        EXPECT_EQ(thingmux_client_create(&o, &c), THINGMUX_OK);
    }
    ~offline_client() {
        if (c != nullptr) {
            EXPECT_EQ(thingmux_client_destroy(c), THINGMUX_OK);
        }
    }
    offline_client(const offline_client&) = delete;
    offline_client& operator=(const offline_client&) = delete;
    thingmux_client_t* c = nullptr;
};

// Completions recorded by a callback: code per call, and the thread it ran on.
struct completions {
    std::vector<int> codes;
    std::vector<std::string> messages;
    std::set<std::thread::id> threads;
    static void record(thingmux_client_t*, const thingmux_result_t* r, void* ud) {
        auto* self = static_cast<completions*>(ud);
        self->codes.push_back(r->code);
        self->messages.emplace_back(r->message);
        self->threads.insert(std::this_thread::get_id());
    }
};

void on_message_ignored(thingmux_client_t*, const thingmux_message_t*, void*) {}

TEST(CApiArguments, RequestsWithBadArgumentsAreRefusedAtOnceWithoutACallback) {
    offline_client oc;
    auto* c = oc.c;
    completions got;
    constexpr int invalid = THINGMUX_ERR_INVALID_ARGUMENT;
    EXPECT_EQ(thingmux_publish(c, nullptr, "x", 1, 0, 0, completions::record, &got), invalid);
    EXPECT_EQ(thingmux_publish(c, "a/b", nullptr, 1, 0, 0, completions::record, &got), invalid);
    EXPECT_EQ(thingmux_publish(c, "a/b", "x", 1, 2, 0, completions::record, &got), THINGMUX_ERR_QOS_NOT_SUPPORTED);
    EXPECT_EQ(thingmux_publish(c, "a/b", "x", 1, -1, 0, completions::record, &got), invalid);
    EXPECT_EQ(thingmux_publish(c, "a/b", "x", 1, 1, 7, completions::record, &got), invalid);
    EXPECT_EQ(thingmux_publish(c, "a/+/b", "x", 1, 1, 0, completions::record, &got), THINGMUX_ERR_INVALID_TOPIC);
    EXPECT_EQ(thingmux_publish(c, "", "x", 1, 1, 0, completions::record, &got), THINGMUX_ERR_INVALID_TOPIC);
    EXPECT_EQ(thingmux_publish(c, "a/\xff", "x", 1, 1, 0, completions::record, &got), THINGMUX_ERR_INVALID_TOPIC);
    EXPECT_EQ(thingmux_subscribe(c, nullptr, 1, on_message_ignored, nullptr, completions::record, &got), invalid);
    EXPECT_EQ(thingmux_subscribe(c, "a/#", 1, nullptr, nullptr, completions::record, &got), invalid);
    EXPECT_EQ(thingmux_subscribe(c, "a/#", 5, on_message_ignored, nullptr, completions::record, &got), invalid);
    EXPECT_EQ(thingmux_subscribe(c, "a/#/b", 1, on_message_ignored, nullptr, completions::record, &got),
              THINGMUX_ERR_INVALID_FILTER);
    EXPECT_EQ(thingmux_unsubscribe(c, nullptr, completions::record, &got), invalid);
    EXPECT_EQ(thingmux_unsubscribe(c, "a+", completions::record, &got), THINGMUX_ERR_INVALID_FILTER);
    EXPECT_EQ(thingmux_client_fd(c, nullptr), invalid);
    char small[1];
    EXPECT_EQ(thingmux_client_thing(c, small, 0), invalid);
    EXPECT_EQ(thingmux_client_thing(c, nullptr, 8), invalid);
    EXPECT_EQ(thingmux_client_thing(c, small, sizeof small), THINGMUX_ERR_NOT_CONNECTED);

    thingmux_message_t m{};
    m.struct_size = sizeof m;
    m.topic = "a/b";
    m.user_property_count = 1;  // without the array
    EXPECT_EQ(thingmux_publish_message(c, &m, completions::record, &got), invalid);
    m.user_property_count = 0;
    m.struct_size = sizeof m - 1;
    EXPECT_EQ(thingmux_publish_message(c, &m, completions::record, &got), invalid);
    const thingmux_user_property_t no_value{"k", nullptr};
    m.struct_size = sizeof m;
    m.user_properties = &no_value;
    m.user_property_count = 1;
    EXPECT_EQ(thingmux_publish_message(c, &m, completions::record, &got), invalid);

    std::size_t ran = 0;
    EXPECT_EQ(thingmux_client_wait(c, 50, &ran), THINGMUX_OK);
    EXPECT_TRUE(got.codes.empty()) << "a refused call must call no callback";
}

// Waits with thingmux_client_wait() until `pred` holds or ~10 s passed.
template <typename Pred>
bool wait_until(thingmux_client_t* c, Pred pred) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
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

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
}

TEST(CApiEvents, CallbacksRunOnlyInProcessOnTheCallingThreadAndTheFdSaysWhenTheyWait) {
    offline_client oc;
    completions got;
    int fd = -1;
    ASSERT_EQ(thingmux_client_fd(oc.c, &fd), THINGMUX_OK);
    ASSERT_GE(fd, 0);
    EXPECT_FALSE(readable(fd));
    ASSERT_EQ(thingmux_connect(oc.c, completions::record, &got), THINGMUX_OK);
    // The first attempt fails on the library's thread; its completion waits for us.
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10'000), 1);
    EXPECT_TRUE(got.codes.empty());
    std::size_t ran = 0;
    ASSERT_EQ(thingmux_client_process(oc.c, 0, &ran), THINGMUX_OK);
    EXPECT_GE(ran, 1U);
    ASSERT_TRUE(wait_until(oc.c, [&] { return !got.codes.empty(); }));
    EXPECT_EQ(got.codes.at(0), THINGMUX_ERR_DAEMON_UNAVAILABLE) << got.messages.at(0);
    EXPECT_FALSE(got.messages.at(0).empty());
    EXPECT_EQ(got.threads, std::set{std::this_thread::get_id()});

    int daemon = -1;
    int uplink = -1;
    ASSERT_EQ(thingmux_client_state(oc.c, &daemon, &uplink), THINGMUX_OK);
    EXPECT_TRUE(daemon == THINGMUX_DAEMON_UNAVAILABLE || daemon == THINGMUX_DAEMON_CONNECTING) << daemon;
    EXPECT_EQ(uplink, THINGMUX_UPLINK_UNKNOWN);
}

TEST(CApiEvents, StateChangesReachTheStateCallback) {
    offline_client oc;
    std::vector<int> daemon_states;
    std::vector<std::string> reasons;
    struct ctx {
        std::vector<int>* states;
        std::vector<std::string>* reasons;
    } x{&daemon_states, &reasons};
    ASSERT_EQ(thingmux_client_set_state_callback(
                  oc.c,
                  [](thingmux_client_t*, const thingmux_state_t* s, void* ud) {
                      auto* p = static_cast<ctx*>(ud);
                      p->states->push_back(s->daemon);
                      p->reasons->emplace_back(s->daemon_reason);
                  },
                  &x),
              THINGMUX_OK);
    ASSERT_EQ(thingmux_connect(oc.c, nullptr, nullptr), THINGMUX_OK);
    ASSERT_TRUE(wait_until(oc.c, [&] {
        return std::count(daemon_states.begin(), daemon_states.end(), THINGMUX_DAEMON_UNAVAILABLE) >= 1;
    }));
    const auto first = std::find(daemon_states.begin(), daemon_states.end(), THINGMUX_DAEMON_UNAVAILABLE);
    EXPECT_NE(reasons.at(static_cast<std::size_t>(first - daemon_states.begin())).find("thingmux-c-api-test.sock"),
              std::string::npos);
}

// From inside a callback: process, wait and destroy of the same client are refused; a request is fine.
struct reentry {
    int process_rc = -1;
    int wait_rc = -1;
    int destroy_rc = -1;
    int publish_rc = -1;
    int calls = 0;
    completions inner;
};

TEST(CApiHostile, ProcessWaitAndDestroyFromInsideACallbackAreRefused) {
    offline_client oc;
    reentry r;
    ASSERT_EQ(thingmux_connect(
                  oc.c,
                  [](thingmux_client_t* c, const thingmux_result_t*, void* ud) {
                      auto* p = static_cast<reentry*>(ud);
                      ++p->calls;
                      p->process_rc = thingmux_client_process(c, 0, nullptr);
                      p->wait_rc = thingmux_client_wait(c, 0, nullptr);
                      p->destroy_rc = thingmux_client_destroy(c);
                      p->publish_rc = thingmux_publish(c, "dt/x", "1", 1, 1, 0, completions::record, &p->inner);
                  },
                  &r),
              THINGMUX_OK);
    ASSERT_TRUE(wait_until(oc.c, [&] { return r.calls == 1; }));
    EXPECT_EQ(r.process_rc, THINGMUX_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(r.wait_rc, THINGMUX_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(r.destroy_rc, THINGMUX_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(r.publish_rc, THINGMUX_OK);
    // The publish made from the callback completes later, once (not connected: refused).
    ASSERT_TRUE(wait_until(oc.c, [&] { return r.inner.codes.size() == 1; }));
    EXPECT_NE(r.inner.codes.at(0), THINGMUX_OK);
    EXPECT_EQ(r.calls, 1);
}

TEST(CApiHostile, DestroyWithPendingRequestsCompletesEachExactlyOnceInsideDestroy) {
    // wait_for_daemon: the requests wait in the library's backlog for a daemon that never comes.
    auto* oc = new offline_client(/*wait_for_daemon=*/true);
    constexpr int n = 50;
    std::vector<int> calls(n, 0);
    std::vector<int> codes(n, -1);
    struct slot {
        std::vector<int>* calls;
        std::vector<int>* codes;
        int index;
    };
    std::vector<slot> slots;
    for (int i = 0; i < n; ++i) {
        slots.push_back({&calls, &codes, i});
    }
    const auto record = [](thingmux_client_t*, const thingmux_result_t* r, void* ud) {
        auto* s = static_cast<slot*>(ud);
        ++(*s->calls)[static_cast<std::size_t>(s->index)];
        (*s->codes)[static_cast<std::size_t>(s->index)] = r->code;
    };
    ASSERT_EQ(thingmux_connect(oc->c, nullptr, nullptr), THINGMUX_OK);
    for (int i = 0; i < n; ++i) {
        ASSERT_EQ(thingmux_publish(oc->c, "dt/gateway-01/t", "x", 1, 1, 0, record, &slots[static_cast<std::size_t>(i)]),
                  THINGMUX_OK);
    }
    thingmux_client_process(oc->c, 0, nullptr);
    EXPECT_EQ(std::count(calls.begin(), calls.end(), 0), n) << "nothing completed before destroy";
    delete oc;  // thingmux_client_destroy
    for (int i = 0; i < n; ++i) {
        EXPECT_EQ(calls[static_cast<std::size_t>(i)], 1) << i;
        EXPECT_EQ(codes[static_cast<std::size_t>(i)], THINGMUX_ERR_CLOSED) << i;
    }
}

// ---------------------------------------------------------------------------------------------
// The queue between the library's thread and the app's

using thingmux::detail::event_queue;

event_queue::item numbered_item(std::vector<int>& out, int i, std::size_t bytes = 1) {
    return {[&out, i] { out.push_back(i); }, bytes, false};
}

TEST(CApiEventQueue, AProducerAtTheBoundWaitsAndNothingIsLost) {
    event_queue q(3, 1'000'000);
    std::vector<int> ran;
    constexpr int total = 20;
    std::thread producer([&] {
        for (int i = 0; i < total; ++i) {
            q.push_waiting(numbered_item(ran, i));
        }
    });
    // The producer fills the queue to its bound and waits there.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (q.waiting() != 1 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(q.waiting(), 1U);
    EXPECT_EQ(q.size(), 3U);
    EXPECT_TRUE(readable(q.fd()));
    // The consumer makes room one event at a time; the queue never exceeds its bound.
    int popped = 0;
    while (popped < total) {
        EXPECT_LE(q.size(), 3U);
        if (auto e = q.pop()) {
            e->run();
            ++popped;
        } else {
            std::this_thread::yield();
        }
    }
    producer.join();
    ASSERT_EQ(ran.size(), static_cast<std::size_t>(total));
    for (int i = 0; i < total; ++i) {
        EXPECT_EQ(ran[static_cast<std::size_t>(i)], i);  // in order
    }
    EXPECT_FALSE(readable(q.fd()));
    EXPECT_EQ(q.size(), 0U);
}

TEST(CApiEventQueue, TheByteBoundAlsoHoldsButAnEmptyQueueTakesAnyEvent) {
    event_queue q(100, 10);
    std::vector<int> ran;
    q.push_waiting(numbered_item(ran, 0, 50));  // larger than the bound: taken, the queue was empty
    EXPECT_EQ(q.bytes(), 50U);
    std::atomic<bool> second_in{false};
    std::thread producer([&] {
        q.push_waiting(numbered_item(ran, 1, 5));
        second_in = true;
    });
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (q.waiting() != 1 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(q.waiting(), 1U);
    EXPECT_FALSE(second_in);
    q.pop()->run();
    producer.join();
    EXPECT_TRUE(second_in);
    EXPECT_EQ(q.bytes(), 5U);
}

TEST(CApiEventQueue, TheAppsOwnEventsNeverWaitAndCloseReleasesAWaitingProducer) {
    event_queue q(1, 1'000);
    std::vector<int> ran;
    q.push_now(numbered_item(ran, 0));
    q.push_now(numbered_item(ran, 1));  // past the bound, at once
    EXPECT_EQ(q.size(), 2U);
    std::thread producer([&] { q.push_waiting(numbered_item(ran, 2)); });
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (q.waiting() != 1 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(q.waiting(), 1U);
    q.close();
    producer.join();
    auto all = q.take_all();
    EXPECT_EQ(all.size(), 3U);
    EXPECT_FALSE(readable(q.fd()));
    q.push_waiting(numbered_item(ran, 3));  // closed: never waits again
    q.push_waiting(numbered_item(ran, 4));
    EXPECT_EQ(q.size(), 2U);
    EXPECT_TRUE(readable(q.fd()));
}

}  // namespace
