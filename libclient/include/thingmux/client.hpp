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
#include <string>

namespace thingmux {

// The daemon's socket when options::socket_path is empty and THINGMUX_SOCKET is not set.
inline constexpr const char* default_socket_path = "/run/thingmux/thingmux.sock";

struct options {
    // Empty: $THINGMUX_SOCKET if set, else default_socket_path.
    std::string socket_path;
    // Shown in the daemon's logs and D-Bus; not an identity (the daemon asks the kernel who we
    // are). Empty: the program's name.
    std::string app_name;
    // Thing to bind to when the daemon serves several. Empty: the daemon's default Thing.
    std::string thing;

    // A session that outlives the connection (IPC protocol version 2), at most 256 bytes of
    // UTF-8; empty: none. The daemon keeps the app's subscriptions and the QoS 1 messages for
    // them while the app or the daemon restarts, for up to session_expiry (capped by the
    // daemon's configuration), and delivers them after the reconnect; the library acknowledges a
    // QoS 1 message to the daemon once the message handlers it went to returned. The same user,
    // Thing and name resume the session (daemon()->session_present). A daemon that does not
    // speak version 2 refuses the hello: the library then connects with version 1, without a
    // session (daemon()->protocol_version is 1, session_expiry 0). A resumed session delivers
    // what waited right after the welcome: a QoS 1 message no handler takes yet is held,
    // unacknowledged, until a subscribe() whose filter matches it (or acknowledged when its
    // filter is unsubscribed); subscribe before connect() to have the handlers in place.
    std::string session_name;
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

using message_handler = std::function<void(const message&)>;
using completion_handler = std::function<void(const result&)>;
using state_handler = std::function<void(const state&)>;
// A filter the daemon refused when the library subscribed again after a reconnect (e.g. the
// local policy changed). The filter and its handler have been removed.
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
    // The handler may see messages before the result arrives. If the daemon refuses, the filter
    // and its handler are removed (the daemon does not hold a refused filter either). A message
    // matching several of the app's filters is passed to each of their handlers, in filter order.
    [[nodiscard]] std::future<result> subscribe(std::string filter, int qos, message_handler handler);
    void subscribe(std::string filter, int qos, message_handler handler, completion_handler done);

    // Removes the filter's handler at once and unsubscribes from it.
    [[nodiscard]] std::future<result> unsubscribe(std::string filter);
    void unsubscribe(std::string filter, completion_handler done);

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
