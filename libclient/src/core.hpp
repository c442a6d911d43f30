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

#include <atomic>
#include <chrono>
#include <condition_variable>
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
    std::shared_ptr<request_gate> gate;  // with request_options: `done` goes through it
};
struct subscribe_cmd {
    std::string filter;
    int qos = 0;
    message_handler handler;
    completion_handler done;
    std::shared_ptr<request_gate> gate;
    bool at_registration = false;  // subscribe_completion::registered
};
struct unsubscribe_cmd {
    std::string filter;
    completion_handler done;
    std::shared_ptr<request_gate> gate;
};
// request_handle::cancel() and request_options::cancel.
struct cancel_cmd {
    std::shared_ptr<request_gate> gate;
    completion_handler done;  // always empty
};
// A consumed session delivery: acknowledged on the loop, if its connection is still the one.
struct ack_cmd {
    std::uint64_t connection = 0;
    std::uint32_t delivery_id = 0;
    completion_handler done;  // always empty
};
// Calls `fn` on the loop at `at` (steady_clock), or with the reason when it never will: the client
// closed, or the command was refused. For the deadlines of shadow and jobs requests.
struct timer_cmd {
    std::chrono::steady_clock::time_point at;
    std::function<void(const result* cancelled)> fn;
    completion_handler done;  // fn(&reason) if the command is refused
};
using command =
    std::variant<connect_cmd, publish_cmd, subscribe_cmd, unsubscribe_cmd, timer_cmd, cancel_cmd, ack_cmd>;
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
    [[nodiscard]] listener_id add_state_listener(state_handler h);
    bool remove_state_listener(listener_id id);
    [[nodiscard]] listener_id add_message_listener(message_handler h, message_scope scope);
    bool remove_message_listener(listener_id id);
    void start_consuming(const consume_options& o);
    void stop_consuming();
    [[nodiscard]] std::optional<message> consume(std::chrono::milliseconds timeout);
    [[nodiscard]] client_counters counters() const;
    // A gate for a request with `o`: it takes `done`, which becomes the gate's entry. Then
    // submit() the command with the gate, then watch() it.
    [[nodiscard]] std::shared_ptr<request_gate> make_gate(completion_handler& done, const request_options& o);
    // Registers `o.cancel` for the gate, once its command is submitted (so a cancel comes after it).
    static void watch(const std::shared_ptr<request_gate>& gate, const request_options& o);
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
    void handle(cancel_cmd&& c);
    void handle(ack_cmd&& c);
    void on_deadline();
    // The gate's first completion runs the app's handler; later ones are dropped (and counted,
    // when they are a result that came too late).
    void finish(request_gate& gate, const result& r);
    // Ends a gate's wait with `r` (timed_out, cancelled): withdraws its request from the backlog
    // if it is still there.
    void expire(const std::shared_ptr<request_gate>& gate, result r);
    // Arms the gate's deadline, if it has one.
    void arm_gate_timer(const std::shared_ptr<request_gate>& gate);
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
    // Queues a message for its handlers and the message listeners (and the consume queue when
    // no handler took it), acknowledged once they all returned (or when it is consumed).
    void dispatch(std::vector<subscription_registry::handler_ptr> handlers, ipc::message&& m);
    // Whether a message no handler matches has somewhere to go: an unmatched listener or consume().
    [[nodiscard]] bool unmatched_taken() const;
    // Queues a message for consume(). True if the queue took it (it acknowledges it when
    // consumed); false when not consuming.
    bool push_consumed(const message& m, std::uint64_t connection, std::uint32_t delivery_id);
    // Unclaimed deliveries (below) that a handler now takes go to it; `unsubscribed`: those
    // matching this filter are no longer wanted, and are acknowledged.
    void claim(const std::string* unsubscribed = nullptr);
    // The hello of the next connection attempt: version 3 (IPC-60) unless the daemon refused it,
    // then version 2 with the session when the app named one (IPC-46), else version 1.
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
        std::function<void()> fn;  // a dispatch, a state event or a timer; empty for a completion
        bool completion = false;   // still run by close(); the others are dropped
        // A completion is kept as its handler and result, not wrapped in `fn`: that closure
        // would not fit std::function's small buffer, a heap allocation per publish.
        completion_handler done{};
        result res{};
        void run() const;
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
    std::vector<command> commands_;
    std::size_t command_bytes_ = 0;
    bool stop_requested_ = false;
    std::shared_ptr<const state_handler> state_handler_;
    std::shared_ptr<const subscription_lost_handler> lost_handler_;
    std::map<listener_id, std::shared_ptr<const state_handler>> state_listeners_;
    struct message_listener {
        std::shared_ptr<const message_handler> handler;
        message_scope scope = message_scope::unmatched;
    };
    std::map<listener_id, message_listener> message_listeners_;
    listener_id next_listener_id_ = 1;
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
    // The highest version the next hello may ask (IPC-46, IPC-60): 3, or lower after the daemon
    // refused a version (unsupported_version), until a connection that was welcomed ends (the
    // daemon may come back upgraded).
    ipc::wire_version version_ceiling_ = ipc::wire_version::v3;
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
    // drain_commands()'s batch, kept between calls so that a busy app's commands reuse its
    // capacity (a command is too large for std::deque to hold two per block: one allocation each).
    std::vector<command> drained_;
    state last_emitted_;
    bool emitted_once_ = false;

    // The consume() queue (consume_mutex_, innermost like mailbox_mutex_; never both held).
    struct consumed {
        message msg;
        std::uint64_t connection = 0;
        std::uint32_t delivery_id = 0;  // 0: nothing to acknowledge
    };
    mutable std::mutex consume_mutex_;
    std::condition_variable consume_ready_;
    std::deque<consumed> consume_queue_;
    bool consuming_ = false;
    bool consume_closed_ = false;
    std::size_t consume_capacity_ = 0;

    // client_counters; written on the loop (or by the thread a refusal runs on), read anywhere.
    std::atomic<std::uint64_t> timed_out_count_{0};
    std::atomic<std::uint64_t> cancelled_count_{0};
    std::atomic<std::uint64_t> late_results_{0};
    std::atomic<std::uint64_t> consume_dropped_{0};
};

}  // namespace thingmux::detail
