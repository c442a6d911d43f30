// The engine behind thingmux::client: one object that owns the daemon connection, the IPC
// decoder buffer, the requests in flight, the subscriptions and the command queue.
//
// Threads. Public calls (any thread) only touch the command queue under `cmd_mutex_` and wake the
// loop through an eventfd. Everything else is touched only by whoever holds `loop_mutex_` and
// runs process_locked(): the library thread after start(), or the app's thread calling
// process(). That thread is the only one calling handlers, and it re-checks `closed_` after
// every handler, since a handler may call close().
//
// I/O. One epoll fd (handed to apps by fd()) watches the eventfd, a timerfd (reconnect delay and
// handshake timeout) and the socket. Level-triggered: whatever process() leaves unread keeps the
// epoll fd readable.
#pragma once

#include "thingmux/client.hpp"

#include "ipc/messages.hpp"
#include "unique_fd.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
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
using command = std::variant<connect_cmd, publish_cmd, subscribe_cmd, unsubscribe_cmd>;

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
    [[nodiscard]] int epoll_fd() const noexcept { return epoll_.get(); }
    void process();
    void submit(command c);
    void close();
    // For ~client: close(), then join the library thread (or let it go, when called on it).
    void shutdown_from_owner();
    [[nodiscard]] state current_state() const;
    [[nodiscard]] std::optional<daemon_info> daemon() const;
    [[nodiscard]] const std::string& socket_path() const noexcept { return socket_path_; }

private:
    enum class request_kind : std::uint8_t { publish, subscribe, unsubscribe, resubscribe };

    // A request on its way: in the backlog, then in flight under its request id.
    struct request {
        request_kind kind = request_kind::publish;
        ipc::client_message frame;  // request_id set when it is sent
        std::size_t size = 0;       // encoded frame size
        completion_handler done;    // empty for resubscribe
        // subscribe: the filter and the generation of its entry; resubscribe: one per filter.
        std::vector<std::pair<std::string, std::uint64_t>> filters;
    };

    struct subscription_entry {
        std::shared_ptr<const message_handler> handler;
        std::uint8_t qos = 0;
        std::uint64_t generation = 0;  // bumped when the entry is (re)placed
        bool active = false;           // the daemon accepted it on this or an earlier connection
    };

    enum class timer_purpose : std::uint8_t { none, reconnect, handshake };

    // Loop thread (loop_mutex_ held).
    void process_locked();
    void process_guarded() noexcept;
    void run_thread();
    [[nodiscard]] bool on_loop_thread() const noexcept;
    void drain_commands();
    void handle(connect_cmd&& c);
    void handle(publish_cmd&& c);
    void handle(subscribe_cmd&& c);
    void handle(unsubscribe_cmd&& c);

    void attempt_connect();
    void on_socket_event(std::uint32_t events);
    void on_timer();
    void read_socket();
    void decode_frames();
    void on_frame(ipc::daemon_message&& m);
    void on_welcome(ipc::welcome&& w);
    void on_publish_result(ipc::publish_result&& r);
    void on_subscribe_result(ipc::subscribe_result&& r);
    void on_unsubscribe_result(ipc::unsubscribe_result&& r);
    void on_message(ipc::message&& m);
    void on_state_frame(ipc::state&& s);
    // Ends the connection: fails/keeps requests by the rules in client.hpp, schedules a retry.
    // `refusal` is the error frame's code when the daemon refused or cut us off.
    void drop_connection(const std::string& reason, std::optional<ipc::errc> refusal = std::nullopt);
    void shutdown_locked();

    void enqueue(request&& r);
    void pump();
    void flush();
    void update_socket_interest();
    void resubscribe_all();
    void arm_timer(timer_purpose p, std::chrono::milliseconds delay);
    [[nodiscard]] std::chrono::milliseconds next_backoff();
    [[nodiscard]] std::size_t max_frame() const noexcept;
    [[nodiscard]] bool connected() const noexcept { return daemon_state_ == daemon_state::connected; }

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
    [[nodiscard]] std::string not_connected_text() const;
    [[nodiscard]] static result make_result(error_code code, std::string message);

    // Configuration (immutable after construction).
    const options opts_;
    const std::string socket_path_;
    const std::string app_name_;

    // I/O objects. epoll_, event_ and timer_ live as long as the core; sock_ per connection.
    unique_fd epoll_;
    unique_fd event_;
    unique_fd timer_;
    unique_fd sock_;
    std::uint32_t sock_interest_ = 0;
    std::uint64_t conn_generation_ = 0;  // tags socket events, so a stale one is ignored

    // Public side.
    mutable std::mutex cmd_mutex_;
    std::deque<command> commands_;
    std::size_t command_bytes_ = 0;
    std::atomic<bool> closed_{false};
    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> started_{false};
    std::thread thread_;
    std::mutex close_mutex_;  // serializes joining the thread

    std::mutex loop_mutex_;
    std::atomic<std::thread::id> loop_owner_{};

    mutable std::mutex handler_mutex_;
    std::shared_ptr<const state_handler> state_handler_;
    std::shared_ptr<const subscription_lost_handler> lost_handler_;

    mutable std::mutex snapshot_mutex_;
    state snapshot_;
    std::optional<daemon_info> info_snapshot_;

    // Loop state.
    bool want_connection_ = false;
    daemon_state daemon_state_ = daemon_state::idle;
    std::string daemon_reason_;
    std::chrono::milliseconds daemon_retry_in_{0};
    ipc::state uplink_;
    bool uplink_known_ = false;
    std::optional<ipc::welcome> welcome_;
    std::vector<completion_handler> connect_waiters_;
    std::optional<ipc::errc> refusal_;  // set by an error frame, used when the socket closes
    std::string refusal_text_;

    timer_purpose timer_purpose_ = timer_purpose::none;
    std::chrono::milliseconds backoff_{0};
    std::minstd_rand rng_;

    std::vector<std::uint8_t> rbuf_;
    std::size_t rlen_ = 0;  // bytes of rbuf_ received and not yet decoded
    std::vector<std::uint8_t> wbuf_;
    std::size_t woff_ = 0;

    std::deque<ready_item> ready_;
    state last_emitted_;
    bool emitted_once_ = false;

    std::deque<request> backlog_;
    std::size_t backlog_bytes_ = 0;
    std::map<std::uint32_t, request> inflight_;  // ordered: failed in the order they were sent
    std::size_t inflight_publishes_ = 0;
    std::uint32_t next_request_id_ = 1;

    std::map<std::string, subscription_entry> subs_;
    std::uint64_t next_generation_ = 1;
};

}  // namespace thingmux::detail
