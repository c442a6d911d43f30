// The engine behind thingmux::client. It composes three parts and runs them on one loop:
//
//   transport              the socket to thingmuxd, IPC framing, the epoll/eventfd/timerfd
//                          (transport.hpp)
//   request_table          requests waiting to be sent and in flight, by request id
//                          (request_table.hpp)
//   subscription_registry  the app's filters and handlers, dispatch, what to subscribe again
//                          after a reconnect (subscription_registry.hpp)
//
// and adds what ties them together: the commands from app threads, the connection's state
// machine (connecting, welcomed, dropped, closed) and the queue of handler calls.
//
// Threading model
//
// - App threads (any public call, from any thread, also from inside a handler) touch only the
//   mailbox: they queue a command and wake the loop through the transport's eventfd, set a
//   handler, or read the state snapshot. They never touch the socket or the parts.
// - The loop runs on one thread at a time: the library thread after start(), or the app's
//   thread inside process() (or close()). It does all I/O, owns the three parts and the
//   connection state, and is the only one to call handlers, one at a time, from run_ready().
//   A handler may call close(); the loop re-checks `closed_` after every handler.
//
// Locks:
//
//   lifecycle_mutex_  the library thread: `thread_`, `started_`. Held while close() joins it.
//   loop_mutex_       held by whoever runs the loop; guards everything under "Loop state".
//   mailbox_mutex_    what app threads share with the loop: the command queue, the stop
//                     request, the handlers and the state snapshot. Held only briefly, never
//                     while a handler runs.
//
// mailbox_mutex_ is always the innermost: nothing else is locked while it is held. No thread
// holding lifecycle_mutex_ takes loop_mutex_ (close() lets go of the one before it takes the
// other); the loop may take lifecycle_mutex_ when a handler calls start() or destroys the client.
//
// `closed_` is written once, by the loop, holding both loop_mutex_ and mailbox_mutex_, so
// either lock is enough to read it. Whether the current thread is running a core's loop (a
// handler calling close() or process()) is kept per thread, not in the core, so no atomics.
#pragma once

#include "thingmux/client.hpp"

#include "ipc/messages.hpp"
#include "request_checks.hpp"
#include "request_table.hpp"
#include "subscription_registry.hpp"
#include "transport.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace thingmux::detail {

struct connect_cmd {
    completion_handler done;
};
struct publish_cmd {
    message msg;
    completion_handler done;
};
struct subscribe_cmd {
    std::string filter;
    int qos = 0;
    message_handler handler;
    completion_handler done;
};
struct unsubscribe_cmd {
    std::string filter;
    completion_handler done;
};
// Calls `fn` on the loop at `at` (steady_clock), or with the reason when it never will: the client
// closed, or the command was refused. For the deadlines of shadow and jobs requests.
struct timer_cmd {
    std::chrono::steady_clock::time_point at;
    std::function<void(const result* cancelled)> fn;
    completion_handler done;  // fn(&reason) if the command is refused
};
using command = std::variant<connect_cmd, publish_cmd, subscribe_cmd, unsubscribe_cmd, timer_cmd>;
[[nodiscard]] completion_handler& done_of(command& c);

// Calls `done` with `r` unless it is empty; an exception it throws is dropped (a handler's
// exception has nowhere to go: the library does not log, STYLE.md).
template <typename Handler, typename Arg>
void call_quietly(const Handler& done, const Arg& r) noexcept {
    if (!done) {
        return;
    }
    try {
        done(r);
    } catch (...) {
    }
}

class core : public std::enable_shared_from_this<core> {
public:
    explicit core(options opts);
    ~core();
    core(const core&) = delete;
    core& operator=(const core&) = delete;

    // Any thread.
    void set_state_handler(state_handler h);
    void set_subscription_lost_handler(subscription_lost_handler h);
    void start();
    [[nodiscard]] int epoll_fd() const noexcept { return transport_.epoll_fd(); }
    void process();
    void submit(command c);
    // submit(timer_cmd) for `fn`.
    void schedule(std::chrono::steady_clock::time_point at, std::function<void(const result*)> fn);
    void close();
    // For ~client: close(), then join the library thread (or let it go, when called on it).
    void shutdown_from_owner();
    [[nodiscard]] state current_state() const;
    [[nodiscard]] std::optional<daemon_info> daemon() const;
    [[nodiscard]] const std::string& socket_path() const noexcept { return socket_path_; }

private:
    // The loop (loop_mutex_ held).
    void run_thread();
    void process_guarded() noexcept;
    void process_locked();
    [[nodiscard]] bool on_loop_thread() const noexcept;
    [[nodiscard]] bool stop_requested() const;
    void drain_commands();
    void handle(connect_cmd&& c);
    void handle(publish_cmd&& c);
    void handle(subscribe_cmd&& c);
    void handle(unsubscribe_cmd&& c);
    void handle(timer_cmd&& c);
    void on_deadline();
    [[nodiscard]] request_context context() const;

    // Sending.
    void enqueue(request&& r);
    void send_backlog();
    // Completes a request that will not be sent or has no result to wait for; a subscribe's
    // filter goes with it.
    void complete_failed(request&& r, const result& res);

    // The connection.
    void attempt_connect();
    void on_timer();
    void on_socket_event(std::uint32_t events);
    void read_socket();
    [[nodiscard]] bool decode_frames();
    void on_frame(ipc::daemon_message&& m);
    void on_welcome(ipc::welcome&& w);
    void on_publish_result(ipc::publish_result&& r);
    void on_subscribe_result(ipc::subscribe_result&& r);
    void on_unsubscribe_result(ipc::unsubscribe_result&& r);
    void on_message(ipc::message&& m);
    void on_state_frame(ipc::state&& s);
    // Sends the ack of a delivery once its handlers returned, if its connection is still the one.
    void acknowledge(std::uint64_t connection, std::uint32_t delivery_id);
    // Queues a message for its handlers, acknowledged once they all returned.
    void dispatch(std::vector<subscription_registry::handler_ptr> handlers, ipc::message&& m);
    // Unclaimed deliveries (below) that a handler now takes go to it; `unsubscribed`: those
    // matching this filter are no longer wanted, and are acknowledged.
    void claim(const std::string* unsubscribed = nullptr);
    // The hello of the next connection attempt: version 2 with the session when the app named
    // one and the daemon did not refuse version 2 (IPC-46), else version 1.
    [[nodiscard]] ipc::hello make_hello() const;
    // Ends the connection: fails/keeps requests by the rules in client.hpp, schedules a retry.
    // `refusal` is the error frame's code when the daemon refused or cut us off.
    void drop_connection(const std::string& reason, std::optional<ipc::errc> refusal = std::nullopt);
    void shutdown_locked();
    [[nodiscard]] std::size_t max_frame() const noexcept;
    [[nodiscard]] bool connected() const noexcept { return daemon_state_ == daemon_state::connected; }
    [[nodiscard]] std::string not_connected_text() const;

    // User code never runs in the middle of a state change: completions, message dispatches
    // and state events are queued here and run by run_ready() between events.
    struct ready_item {
        std::function<void()> fn;
        bool completion = false;  // still run by close(); the others are dropped
    };
    void queue_completion(completion_handler done, result r);
    void run_ready();
    void complete_connect_waiters(const result& r);
    void emit_state();

    // Configuration (immutable after construction).
    const options opts_;
    const std::string socket_path_;
    const std::string app_name_;

    // The library thread (lifecycle_mutex_).
    std::mutex lifecycle_mutex_;
    std::thread thread_;
    bool started_ = false;

    // Shared with app threads (mailbox_mutex_).
    mutable std::mutex mailbox_mutex_;
    std::deque<command> commands_;
    std::size_t command_bytes_ = 0;
    bool stop_requested_ = false;
    std::shared_ptr<const state_handler> state_handler_;
    std::shared_ptr<const subscription_lost_handler> lost_handler_;
    state snapshot_;
    std::optional<daemon_info> info_snapshot_;

    // Written holding loop_mutex_ and mailbox_mutex_; read holding either.
    bool closed_ = false;

    // Loop state (loop_mutex_). The transport's epoll_fd() and wake() are also used by app threads.
    std::mutex loop_mutex_;
    transport transport_;
    request_table requests_;
    subscription_registry subscriptions_;
    reconnect_backoff backoff_;

    bool want_connection_ = false;
    daemon_state daemon_state_ = daemon_state::idle;
    std::string daemon_reason_;
    std::chrono::milliseconds daemon_retry_in_{0};
    ipc::state uplink_;
    bool uplink_known_ = false;
    std::optional<ipc::welcome> welcome_;
    // The daemon refused version 2 (unsupported_version): connect with version 1 until a
    // connection that was welcomed ends (the daemon may come back upgraded).
    bool version1_fallback_ = false;
    std::vector<completion_handler> connect_waiters_;

    // QoS 1 deliveries of the session that came when no handler matched them: a resumed session
    // delivers what waited right after the welcome, before the app subscribed again. Held,
    // unacknowledged, until a handler takes them or the app unsubscribes their filter; the
    // daemon's bound of unacknowledged deliveries bounds them (IPC-46). Gone with the connection
    // (the daemon delivers them again).
    std::vector<ipc::message> unclaimed_;

    // Timers of timer_cmd, by time; the transport's deadline timer is armed for the first.
    std::multimap<std::chrono::steady_clock::time_point, std::function<void(const result*)>> timers_;

    std::deque<ready_item> ready_;
    state last_emitted_;
    bool emitted_once_ = false;
};

}  // namespace thingmux::detail
