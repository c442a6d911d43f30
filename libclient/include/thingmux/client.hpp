// libthingmux: the client library of thingmuxd.
//
// thingmuxd holds the one MQTT session of an AWS IoT Thing and shares it with local apps; a
// thingmux::client is one app's connection to it over the daemon's Unix socket.
//
//     thingmux::client c;                       // default socket, default Thing
//     c.start();                                // the library's own thread runs the I/O
//     if (auto r = c.connect().get(); !r) { std::cerr << r.message << '\n'; return 3; }
//     c.subscribe("cmd/gateway-01/#", 1, [](const thingmux::message& m) { ... }).get();
//     auto r = c.publish({.topic = "dt/gateway-01/temperature", .payload = "21.5", .qos = 1}).get();
//
// Threading. Every public member function may be called from any thread, including from inside
// a handler. Handlers (message, state, subscription-lost, completion callbacks) run one at a time
// on the thread that drives the client: the library thread after start(), or the thread that
// calls process() when the app runs its own event loop (poll fd(), call process() when it is
// readable). A handler must not block for long: it holds up every other handler. Exceptions
// thrown by a handler are caught and dropped; the library itself never throws from a handler.
//
// Reconnects. When the daemon goes away (restart, crash), the client reconnects with backoff,
// and after the daemon's welcome subscribes again to every filter the app holds; the handlers
// stay registered. While the daemon is away, requests fail at once with not_connected, or, with
// options::wait_for_daemon, wait in a bounded queue and go out after the reconnect. A publish
// already sent when the connection drops fails with session_closed: its outcome is unknown.
//
// A request the library refuses before queueing it (after close(): closed; queue bound reached:
// backlog_full) completes at once, on the calling thread, before the call returns.
#pragma once

#include "thingmux/error.hpp"
#include "thingmux/export.hpp"
#include "thingmux/message.hpp"
#include "thingmux/services.hpp"
#include "thingmux/state.hpp"
#include "thingmux/topic.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

namespace thingmux {

// The daemon's socket when options::socket_path is empty and THINGMUX_SOCKET is not set.
inline constexpr const char* default_socket_path = "/run/thingmux/thingmux.sock";

struct options {
    // Empty: $THINGMUX_SOCKET if set, else default_socket_path.
    std::string socket_path{};
    // Shown in the daemon's logs and D-Bus; not an identity (the daemon asks the kernel who we
    // are). Empty: the program's name.
    std::string app_name{};
    // Thing to bind to when the daemon serves several. Empty: the daemon's default Thing.
    std::string thing{};

    // A session that outlives the connection (IPC protocol version 2), at most 256 bytes of
    // UTF-8; empty: none. The daemon keeps the app's subscriptions and the QoS 1 messages for
    // them while the app or the daemon restarts, for up to session_expiry (capped by the
    // daemon's configuration), and delivers them after the reconnect; the library acknowledges a
    // QoS 1 message to the daemon once the message handlers it went to returned. The same user,
    // Thing and name resume the session (daemon()->session_present). The library asks for
    // version 3 (version 2 plus subscribe flags); a daemon that speaks neither 3 nor 2 refuses
    // the hello: the library then connects with version 1, without a session
    // (daemon()->protocol_version is 1, session_expiry 0). A resumed session delivers
    // what waited right after the welcome: a QoS 1 message no handler takes yet is held,
    // unacknowledged, until a subscribe() whose filter matches it (or acknowledged when its
    // filter is unsubscribed); subscribe before connect() to have the handlers in place.
    std::string session_name{};
    std::chrono::seconds session_expiry{24 * 3600};

    // false: requests made while the daemon is away fail at once with not_connected (those made
    // before the first connect() wait for its first attempt), and connect() completes with the
    // first attempt's outcome.
    // true: they wait in the backlog (bounded below) until the daemon is back, and connect()
    // completes once the daemon welcomed us (or refused us for good, e.g. unknown_thing).
    bool wait_for_daemon = false;
    // Requests waiting to be sent: while the daemon is away (wait_for_daemon) or while the
    // daemon's max_inflight requests are already out. Past either bound: backlog_full.
    std::size_t max_backlog = 1000;
    std::size_t max_backlog_bytes = 16 * 1024 * 1024;

    // Reconnect to the daemon after the connection drops or an attempt fails. Delays double
    // from reconnect_min to reconnect_max (with jitter), and start over after a welcome.
    bool reconnect = true;
    std::chrono::milliseconds reconnect_min{100};
    std::chrono::milliseconds reconnect_max{5000};
    // A connected socket must get the daemon's welcome within this time.
    std::chrono::milliseconds handshake_timeout{5000};
};

// Per request: how long to wait for its result, how to cancel the wait, and (subscribe only)
// when it completes. Give the fields by name: {.timeout = std::chrono::seconds(5)}.
//
// Timeout and cancellation end the app's wait, exactly once: the completion runs with timed_out
// or cancelled, and the daemon's answer, if it comes later, is dropped (counted in
// client_counters::late_results). A request still waiting in the library's backlog is withdrawn
// and never sent. One the daemon has already taken goes on there: a QoS 1 publish that timed
// out locally may still reach the broker (and a QoS 0 one too); a subscribe may still be
// accepted (its handler stays registered; if the daemon refuses it later, the
// subscription-lost handler is told) — unsubscribe if you no longer want it.
enum class subscribe_completion : std::uint8_t {
    // With the daemon's result, which comes with the broker's SUBACK (the default): ok means the
    // broker accepted the filter. While the broker is unreachable this waits until the uplink
    // is back, which can take minutes: give a timeout, or complete at registration.
    acknowledged = 0,
    // As soon as thingmuxd registered the filter for this app (IPC protocol version 3; an older
    // thingmuxd answers at the SUBACK, as with `acknowledged`). Deliveries start once the broker
    // acknowledged the upstream SUBSCRIBE. If the broker refuses it then, the filter and its
    // handler are removed and the subscription-lost handler is told, as after a reconnect.
    registered = 1,
};

struct request_options {
    // 0: no limit.
    std::chrono::milliseconds timeout{0};
    // request_stop() on its source cancels the wait (completes with cancelled).
    std::stop_token cancel{};
    // subscribe only.
    subscribe_completion complete_at = subscribe_completion::acknowledged;
};

namespace detail {
struct request_gate;
}

// A pending request of a callback form with request_options. Copies refer to the same request;
// a default-constructed handle refers to none. The request does not depend on it: dropping the
// handle neither cancels nor waits.
class THINGMUX_API request_handle {
public:
    request_handle() = default;
    // Ends the wait with cancelled, unless the request completed already (then nothing
    // happens). Any thread; the completion runs on the thread that drives the client.
    void cancel() const;
    // The completion has been decided (it may not have run yet).
    [[nodiscard]] bool done() const noexcept;

private:
    friend class client;
    explicit request_handle(std::shared_ptr<detail::request_gate> gate) noexcept;
    std::shared_ptr<detail::request_gate> gate_;
};

// Which messages a message listener (client::add_message_listener) gets.
enum class message_scope : std::uint8_t {
    // Messages that no subscription handler took: those of filters subscribed with an empty
    // handler, and those arriving for a filter the app unsubscribed while they were on their way.
    unmatched = 0,
    // Every message, after the subscription handlers it went to.
    all = 1,
};

// What client::consume() reads from. The queue takes the messages no subscription handler took
// (as message_scope::unmatched): subscribe with an empty handler to consume a filter's messages.
struct consume_options {
    // Messages the queue holds. When it is full, the newest message is dropped (counted in
    // client_counters::consume_dropped), except a session's QoS 1 delivery: it is always
    // queued, and acknowledged to the daemon only when consume() returns it, so the daemon's
    // own bound of unacknowledged deliveries holds those back (it stops sending more).
    std::size_t capacity = 1000;
};

// Counts since the client was made.
struct client_counters {
    std::uint64_t timed_out = 0;        // requests completed with timed_out
    std::uint64_t cancelled = 0;        // requests completed with cancelled
    std::uint64_t late_results = 0;     // daemon answers dropped: their request had timed out or been cancelled
    std::uint64_t consume_dropped = 0;  // messages the full consume queue dropped
};

using listener_id = std::uint64_t;

using message_handler = std::function<void(const message&)>;
using completion_handler = std::function<void(const result&)>;
using state_handler = std::function<void(const state&)>;
// A filter the daemon refused when the library subscribed again after a reconnect (e.g. the
// local policy changed), or refused after the subscribe had completed already (the broker's
// SUBACK after subscribe_completion::registered) or after its wait ended (timeout, cancel).
// The filter and its handler have been removed.
using subscription_lost_handler = std::function<void(const std::string& filter, const result&)>;

class THINGMUX_API client {
public:
    explicit client(options opts = {});
    // close(), then joins the library thread.
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;
    client(client&&) = delete;
    client& operator=(client&&) = delete;

    // Handlers; set them before connect() to see every event. Replacing one is safe at any time.
    void on_state(state_handler h);
    void on_subscription_lost(subscription_lost_handler h);

    // More state handlers: each sees every change, after the on_state() handler, in the order
    // they were added. Returns the id for remove_state_listener(), never 0.
    listener_id add_state_listener(state_handler h);
    // False if no listener has this id. A listener removed while a change is being reported may
    // still see that one change (when another thread removes it).
    bool remove_state_listener(listener_id id);

    // A handler for messages beyond the subscription handlers (message_scope). A session's QoS 1
    // delivery is acknowledged once every handler and listener it went to returned. Returns the
    // id for remove_message_listener(), never 0.
    listener_id add_message_listener(message_handler h, message_scope scope = message_scope::unmatched);
    bool remove_message_listener(listener_id id);

    // Pull-style reading, for apps without callbacks:
    //     c.start_consuming();
    //     c.subscribe("cmd/gw/#", 1, nullptr).get();
    //     while (auto m = c.consume(std::chrono::seconds(1))) { ... }
    // start_consuming() turns the queue on (again: changes its capacity), stop_consuming() turns
    // it off and drops what it holds (a session delivers unacknowledged messages again after
    // the next reconnect).
    void start_consuming(consume_options o = {});
    void stop_consuming();
    // The oldest queued message, waiting up to `timeout` for one; nullopt when none came, when
    // not consuming, or after close(). Without start() (the app drives the client), consume()
    // drives it while it waits. Any thread, but not from inside a handler when waiting.
    [[nodiscard]] std::optional<message> consume(std::chrono::milliseconds timeout);
    [[nodiscard]] std::optional<message> try_consume() { return consume(std::chrono::milliseconds{0}); }

    [[nodiscard]] client_counters counters() const;

    // Starts the library thread, which runs the I/O and the handlers. Call at most once, and
    // not together with process().
    void start();

    // An epoll file descriptor, valid until the client is destroyed, for apps with their own
    // event loop: when it is readable, call process(). Do not read from it or close it.
    [[nodiscard]] int fd() const noexcept;
    // Does all I/O that is ready and runs due handlers, without blocking. No-op after start().
    void process();

    // Connects to the daemon (see options::wait_for_daemon for when it completes). Reconnects
    // after failures and drops until close(). Calling it again while connected completes at once.
    [[nodiscard]] std::future<result> connect();
    void connect(completion_handler done);

    // Publishes `m`. The result is end to end: QoS 1 completes with the broker's PUBACK (or the
    // daemon's "spooled"), QoS 0 once the daemon passed it on.
    [[nodiscard]] std::future<result> publish(message m);
    void publish(message m, completion_handler done);

    // Subscribes to `filter` with maximum QoS `qos` (0 or 1) and registers `handler` for the
    // messages that match it; subscribing to a held filter again replaces its handler and QoS.
    // An empty handler leaves the filter's messages to the message listeners and consume().
    // The result comes with the broker's SUBACK (request_options::complete_at): while the
    // broker is unreachable, that is after the uplink reconnects, however long that takes.
    // The handler may see messages before the result arrives. If the daemon refuses, the filter
    // and its handler are removed (the daemon does not hold a refused filter either). A message
    // matching several of the app's filters is passed to each of their handlers, in filter order.
    [[nodiscard]] std::future<result> subscribe(std::string filter, int qos, message_handler handler);
    void subscribe(std::string filter, int qos, message_handler handler, completion_handler done);

    // Removes the filter's handler at once and unsubscribes from it.
    [[nodiscard]] std::future<result> unsubscribe(std::string filter);
    void unsubscribe(std::string filter, completion_handler done);

    // The same three with request_options (timeout, cancellation, when a subscribe completes).
    // The callback forms return a handle to cancel the request with.
    [[nodiscard]] std::future<result> publish(message m, request_options o);
    request_handle publish(message m, request_options o, completion_handler done);
    [[nodiscard]] std::future<result> subscribe(std::string filter, int qos, message_handler handler, request_options o);
    request_handle subscribe(std::string filter, int qos, message_handler handler, request_options o,
                             completion_handler done);
    [[nodiscard]] std::future<result> unsubscribe(std::string filter, request_options o);
    request_handle unsubscribe(std::string filter, request_options o, completion_handler done);

    // AWS IoT Device Shadows (services.hpp). `shadow_name` empty: the classic shadow. Each call
    // subscribes, the first time, to the operation's answer topics of that shadow
    // ($aws/things/THING/shadow[/name/NAME]/OPERATION/+, kept until close(); do not subscribe to
    // that same filter yourself: it would replace the library's handler), then publishes the
    // request with a clientToken of the library and completes with the answer that carries it,
    // or with timed_out after the service timeout. THING is the Thing the daemon bound this
    // connection to (daemon()->thing, else options::thing): while not connected without
    // options::thing, requests fail with not_connected. At most max_pending_service_requests
    // shadow and jobs requests wait for their answer; past it: quota_exceeded. A request the
    // library refuses (bad name or document, too many pending) completes at once, on the calling
    // thread; every other completion runs on the thread that drives the client, like handlers.
    [[nodiscard]] std::future<shadow_reply> shadow_get(std::string shadow_name = {});
    void shadow_get(std::string shadow_name, service_handler done);
    // `document`: the request's JSON object, e.g. {"state":{"reported":{"temp":21}}}, with an
    // optional "version" (a mismatch is rejected with code 409). Its clientToken, if any, is
    // replaced by the library's.
    [[nodiscard]] std::future<shadow_reply> shadow_update(std::string shadow_name, std::string document);
    void shadow_update(std::string shadow_name, std::string document, service_handler done);
    [[nodiscard]] std::future<shadow_reply> shadow_delete(std::string shadow_name = {});
    void shadow_delete(std::string shadow_name, service_handler done);

    // AWS IoT Jobs. Registers `handler` for the jobs whose document's "operation" is `operation`:
    // subscribes to the local topic $thingmux/jobs/OPERATION, where thingmuxd hands over each job
    // execution it started for that operation (the daemon's jobs: block must be configured, and the
    // app rules must let the app subscribe and receive there). The handler then reports progress
    // and the end with update_job(). Completes with the subscribe's result. Registering the same
    // operation again replaces the handler.
    [[nodiscard]] std::future<result> on_job(std::string operation, job_handler handler);
    void on_job(std::string operation, job_handler handler, completion_handler done);
    // Publishes $aws/things/THING/jobs/JOB_ID/update with `status` (IN_PROGRESS, SUCCEEDED,
    // FAILED, REJECTED, ...), the optional statusDetails (strings, as AWS wants them) and
    // expectedVersion; completes with AWS's answer (409 when expected_version is stale).
    [[nodiscard]] std::future<job_update_reply> update_job(std::string job_id, std::string status,
                                                           std::map<std::string, std::string> details = {},
                                                           std::optional<std::int64_t> expected_version = {});
    void update_job(std::string job_id, std::string status, std::map<std::string, std::string> details,
                    std::optional<std::int64_t> expected_version, service_handler done);
    // The Thing's pending job executions ($aws/things/THING/jobs/get).
    [[nodiscard]] std::future<jobs_list_reply> jobs_get();
    void jobs_get(jobs_list_handler done);

    // How long a later shadow or jobs request waits for its answer (default_service_timeout);
    // at least 1 ms.
    void set_service_timeout(std::chrono::milliseconds timeout);

    // Stops the client for good: requests not completed yet complete with `closed` (their
    // completion handlers run before close() returns), the connection closes, and no handler runs
    // after close() returns. Later requests complete at once with `closed`. Idempotent.
    void close();

    // The current state (also passed to the state handler).
    [[nodiscard]] state current_state() const;
    // The daemon's welcome, while connected.
    [[nodiscard]] std::optional<daemon_info> daemon() const;
    // The socket path in use (after the THINGMUX_SOCKET / default resolution).
    [[nodiscard]] std::string socket_path() const;

private:
    class impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace thingmux
