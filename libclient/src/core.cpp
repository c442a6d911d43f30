// The core's public side, its loop, the commands of the app and the sending of requests. The
// connection's life (connect, frames, drop, close) is in core_connection.cpp; the app's listeners
// and the consume queue in core_listeners.cpp.
#include "core.hpp"

#include "convert.hpp"
#include "ipc/codec.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <utility>

namespace thingmux::detail {

namespace {

constexpr std::size_t min_send_buffer = 256 * 1024;
// Requests are sent once per process() call, or as soon as this many bytes are queued: big enough
// to save most system calls, small enough that the daemon works on a burst while it is encoded.
constexpr std::size_t eager_send_bytes = 16 * 1024;
constexpr std::size_t max_app_name = 255;
constexpr std::size_t max_events_per_process = 16;

// The cores whose loop the current thread is running, innermost first: a handler of one client
// may drive another one's process().
struct loop_scope {
    const core* owner;
    loop_scope* outer;
};
thread_local loop_scope* innermost_loop = nullptr;

class running_loop {
public:
    explicit running_loop(const core* c) noexcept : scope_{c, innermost_loop} { innermost_loop = &scope_; }
    ~running_loop() { innermost_loop = scope_.outer; }
    running_loop(const running_loop&) = delete;
    running_loop& operator=(const running_loop&) = delete;

private:
    loop_scope scope_;
};

std::string resolve_socket_path(const options& o) {
    if (!o.socket_path.empty()) {
        return o.socket_path;
    }
    if (const char* env = std::getenv("THINGMUX_SOCKET"); env != nullptr && *env != '\0') {
        return env;
    }
    return default_socket_path;
}

std::string resolve_app_name(const options& o) {
    std::string name = o.app_name.empty() ? std::string(program_invocation_short_name) : o.app_name;
    if (name.size() > max_app_name) {
        name.resize(max_app_name);
    }
    if (!ipc::valid_utf8(name)) {
        name = "app";  // a label only (IPC-2); never let it break the hello
    }
    return name;
}

std::size_t command_bytes(const command& c) {
    struct visitor {
        std::size_t operator()(const connect_cmd&) const { return 0; }
        std::size_t operator()(const publish_cmd& p) const {
            std::size_t n = p.msg.topic.size() + p.msg.payload.size();
            n += p.msg.content_type.value_or("").size() + p.msg.response_topic.value_or("").size() +
                 p.msg.correlation_data.value_or("").size();
            for (const auto& up : p.msg.user_properties) {
                n += up.key.size() + up.value.size();
            }
            return n;
        }
        std::size_t operator()(const subscribe_cmd& s) const { return s.filter.size(); }
        std::size_t operator()(const unsubscribe_cmd& u) const { return u.filter.size(); }
        std::size_t operator()(const timer_cmd&) const { return 0; }
        std::size_t operator()(const cancel_cmd&) const { return 0; }
        std::size_t operator()(const ack_cmd&) const { return 0; }
    };
    return std::visit(visitor{}, c);
}

// Commands not yet taken by the loop: room for a full backlog and then some, so a burst from
// app threads is not refused just because the loop has not run yet.
std::size_t max_commands(std::size_t max_backlog) noexcept {
    constexpr std::size_t cap = std::numeric_limits<std::size_t>::max() / 4;
    return max_backlog >= cap ? cap : 2 * max_backlog + 64;
}

}  // namespace

completion_handler& done_of(command& c) {
    return std::visit([](auto& cmd) -> completion_handler& { return cmd.done; }, c);
}

// ---------------------------------------------------------------------------------------------
// Construction and the public side

core::core(options opts)
    : opts_(std::move(opts)),
      socket_path_(resolve_socket_path(opts_)),
      app_name_(resolve_app_name(opts_)),
      backoff_(opts_.reconnect_min, opts_.reconnect_max) {}

core::~core() {
    if (thread_.joinable()) {
        thread_.detach();  // only reachable if the owner did not shut down; never join ourselves
    }
}

std::shared_ptr<request_gate> core::make_gate(completion_handler& done, const request_options& o) {
    auto gate = std::make_shared<request_gate>();
    gate->done = std::move(done);
    if (o.timeout.count() > 0) {
        gate->deadline = std::chrono::steady_clock::now() + o.timeout;
    }
    gate->cancel = [weak = weak_from_this()](std::shared_ptr<request_gate> g) {
        if (auto self = weak.lock()) {
            self->submit(cancel_cmd{std::move(g), {}});
        }
    };
    done = [this, gate](const result& r) { finish(*gate, r); };
    return gate;
}

void core::watch(const std::shared_ptr<request_gate>& gate, const request_options& o) {
    if (!o.cancel.stop_possible() || gate->finished.load()) {
        return;
    }
    // Runs at once when stop was requested already; the command then follows the request's.
    gate->on_stop.emplace(o.cancel, [weak = std::weak_ptr<request_gate>(gate)] {
        if (auto g = weak.lock(); g && g->cancel) {
            g->cancel(g);
        }
    });
}

void core::start() {
    std::lock_guard life(lifecycle_mutex_);
    {
        std::lock_guard mail(mailbox_mutex_);
        if (started_ || closed_) {
            return;
        }
    }
    // The library thread takes no signals: they belong to the app's threads.
    sigset_t all;
    sigset_t old;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
        thread_ = std::thread([self = shared_from_this()] { self->run_thread(); });
    } catch (...) {
        ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
        throw;
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    started_ = true;
}

void core::run_thread() {
    for (;;) {
        pollfd p{transport_.epoll_fd(), POLLIN, 0};
        if (::poll(&p, 1, -1) < 0 && errno != EINTR) {
            // Cannot happen with a valid fd; do not spin if it does.
            ::usleep(10'000);
        }
        std::lock_guard lk(loop_mutex_);
        process_guarded();
        if (closed_) {
            return;
        }
    }
}

void core::process_guarded() noexcept {
    running_loop scope(this);
    try {
        process_locked();
    } catch (const std::exception& e) {
        // Out of memory, in practice. Start over with a fresh connection rather than let the
        // exception end the library thread (std::terminate) or escape into the app's loop.
        try {
            drop_connection(std::string("internal error in libthingmux: ") + e.what());
            run_ready();
        } catch (...) {
        }
    } catch (...) {
    }
}

bool core::on_loop_thread() const noexcept {
    for (const loop_scope* s = innermost_loop; s != nullptr; s = s->outer) {
        if (s->owner == this) {
            return true;
        }
    }
    return false;
}

void core::process() {
    if (on_loop_thread()) {
        return;  // a handler called process(): the loop is already running
    }
    {
        std::lock_guard life(lifecycle_mutex_);
        if (started_) {
            return;  // the library thread drives it
        }
    }
    std::lock_guard lk(loop_mutex_);
    process_guarded();
}

void core::submit(command c) {
    const std::size_t bytes = command_bytes(c);
    std::unique_lock lk(mailbox_mutex_);
    std::optional<result> refused;
    if (closed_) {
        refused = make_result(error_code::closed, "the client was closed");
    } else if (!commands_.empty() && (commands_.size() >= max_commands(opts_.max_backlog) ||
                                      command_bytes_ + bytes > opts_.max_backlog_bytes)) {
        refused = make_result(error_code::backlog_full,
                              "too many requests waiting for the library's event loop (is it running?)");
    }
    if (refused) {
        lk.unlock();
        call_quietly(done_of(c), *refused);
        return;
    }
    // Only the first command of a batch wakes the loop: the loop reads the eventfd before it
    // takes the whole queue (drain_commands), so later ones ride on that wake-up. A burst of
    // publishes then costs one eventfd write, not one per message.
    const bool wake = commands_.empty();
    commands_.push_back(std::move(c));
    command_bytes_ += bytes;
    lk.unlock();
    if (wake) {
        transport_.wake();
    }
}

void core::schedule(std::chrono::steady_clock::time_point at, std::function<void(const result*)> fn) {
    auto shared = std::make_shared<std::function<void(const result*)>>(std::move(fn));
    submit(timer_cmd{at, [shared](const result* r) { (*shared)(r); }, [shared](const result& r) { (*shared)(&r); }});
}

void core::close() {
    if (on_loop_thread()) {
        shutdown_locked();  // from a handler: we already hold the loop
        return;
    }
    {
        std::lock_guard life(lifecycle_mutex_);
        if (started_) {
            {
                std::lock_guard mail(mailbox_mutex_);
                stop_requested_ = true;
            }
            transport_.wake();
            if (thread_.joinable()) {
                thread_.join();
            }
            return;
        }
    }
    std::lock_guard lk(loop_mutex_);
    running_loop scope(this);
    shutdown_locked();
}

void core::shutdown_from_owner() {
    close();
    std::lock_guard life(lifecycle_mutex_);
    if (thread_.joinable()) {
        if (thread_.get_id() == std::this_thread::get_id()) {
            thread_.detach();  // destroyed from its own handler: the thread holds the core alive
        } else {
            thread_.join();
        }
    }
}

state core::current_state() const {
    std::lock_guard lk(mailbox_mutex_);
    return snapshot_;
}

std::optional<daemon_info> core::daemon() const {
    std::lock_guard lk(mailbox_mutex_);
    return info_snapshot_;
}

// ---------------------------------------------------------------------------------------------
// The loop

bool core::stop_requested() const {
    std::lock_guard lk(mailbox_mutex_);
    return stop_requested_;
}

void core::process_locked() {
    if (closed_) {
        return;
    }
    if (stop_requested()) {
        shutdown_locked();
        return;
    }
    io_event events[max_events_per_process];
    const std::size_t n = transport_.poll(events);
    for (std::size_t i = 0; i < n; ++i) {
        const auto& ev = events[i];
        if (ev.from == io_event::source::timer) {
            on_timer();
        } else if (ev.from == io_event::source::deadline) {
            on_deadline();
        } else if (transport_.current(ev)) {
            on_socket_event(ev.events);
        }
        run_ready();
        if (closed_) {
            return;
        }
    }
    drain_commands();
    run_ready();
    if (!closed_ && stop_requested()) {
        shutdown_locked();
        return;
    }
    // Everything this call queued (the publishes of a batch of commands, those released by a
    // read's worth of results) leaves in one send.
    if (!closed_) {
        transport_.flush();
    }
}

void core::drain_commands() {
    // One batch per call: commands that handlers queue now are taken by the next process(), so
    // a handler that always issues a new request cannot keep this call from returning.
    std::vector<command> batch = std::move(drained_);  // empty if a handler got here first
    batch.clear();
    {
        std::lock_guard lk(mailbox_mutex_);
        batch.swap(commands_);
        command_bytes_ = 0;
    }
    for (auto& c : batch) {
        if (closed_) {
            call_quietly(done_of(c), make_result(error_code::closed, "the client was closed"));
            continue;
        }
        std::visit([this](auto&& cmd) { handle(std::move(cmd)); }, std::move(c));
    }
    batch.clear();
    drained_ = std::move(batch);
}

void core::queue_completion(completion_handler done, result r) {
    if (!done) {
        return;
    }
    ready_.push_back({{}, true, std::move(done), std::move(r)});
}

void core::ready_item::run() const {
    if (fn) {
        fn();
    } else {
        call_quietly(done, res);
    }
}

void core::run_ready() {
    while (!ready_.empty() && !closed_) {
        auto item = std::move(ready_.front());
        ready_.pop_front();
        try {
            item.run();
        } catch (...) {
            // see call_quietly()
        }
    }
}

void core::complete_connect_waiters(const result& r) {
    for (auto& w : connect_waiters_) {
        queue_completion(std::move(w), r);
    }
    connect_waiters_.clear();
}

void core::emit_state() {
    state st;
    st.daemon = daemon_state_;
    st.daemon_reason = daemon_reason_;
    st.daemon_retry_in = daemon_retry_in_;
    if (uplink_known_ && connected()) {
        st.uplink = from_ipc(uplink_.link);
        st.uplink_reason = uplink_.reason;
        st.uplink_fatal = uplink_.fatal;
        st.uplink_retry_in = std::chrono::milliseconds{uplink_.retry_in_ms};
    }
    {
        std::lock_guard lk(mailbox_mutex_);
        snapshot_ = st;
        if (welcome_ && connected()) {
            info_snapshot_ = from_ipc(*welcome_);
        } else {
            info_snapshot_.reset();
        }
    }
    // Retries that fail for the same reason are not news; a changed retry delay alone is not
    // reported (current_state() has it).
    const bool same =
        emitted_once_ && st.daemon == last_emitted_.daemon && st.daemon_reason == last_emitted_.daemon_reason &&
        st.uplink == last_emitted_.uplink && st.uplink_reason == last_emitted_.uplink_reason &&
        st.uplink_fatal == last_emitted_.uplink_fatal && st.uplink_retry_in == last_emitted_.uplink_retry_in;
    if (same) {
        return;
    }
    emitted_once_ = true;
    last_emitted_ = st;
    ready_.push_back({[this, s = std::move(st)] {
                          std::vector<std::shared_ptr<const state_handler>> hs;
                          {
                              std::lock_guard lk(mailbox_mutex_);
                              if (state_handler_) {
                                  hs.push_back(state_handler_);
                              }
                              for (const auto& [id, h] : state_listeners_) {
                                  hs.push_back(h);
                              }
                          }
                          for (const auto& h : hs) {
                              if (closed_) {
                                  return;
                              }
                              try {
                                  (*h)(s);
                              } catch (...) {
                                  // see call_quietly()
                              }
                          }
                      },
                      false});
}

// ---------------------------------------------------------------------------------------------
// Commands

request_context core::context() const {
    request_context ctx;
    ctx.limits = welcome_ ? &welcome_->limits : nullptr;
    ctx.max_frame = max_frame();
    // Before the first connect(), requests wait for it: an app registers its handlers first, so
    // that they see what a resumed session delivers right after the welcome.
    if (!connected() && !opts_.wait_for_daemon && want_connection_) {
        ctx.offline = make_result(error_code::not_connected, not_connected_text());
    }
    return ctx;
}

void core::handle(connect_cmd&& c) {
    if (connected()) {
        queue_completion(std::move(c.done), make_result(error_code::ok, "already connected to thingmuxd"));
        return;
    }
    const ipc::client_message hello = make_hello();
    if (auto problem = ipc::encode_problem(hello)) {
        queue_completion(std::move(c.done),
                         make_result(error_code::invalid_argument, "options::thing or session_name: " + *problem));
        return;
    }
    want_connection_ = true;
    connect_waiters_.push_back(std::move(c.done));
    if (!transport_.is_open()) {
        attempt_connect();  // also "try now" while waiting to retry
    }
}

void core::handle(publish_cmd&& c) {
    auto checked = publish_request(c.msg, context());
    if (auto* refused = std::get_if<result>(&checked)) {
        queue_completion(std::move(c.done), std::move(*refused));
        return;
    }
    auto& r = std::get<request>(checked);
    r.done = std::move(c.done);
    r.gate = c.gate;
    enqueue(std::move(r));
    arm_gate_timer(c.gate);
}

void core::handle(subscribe_cmd&& c) {
    auto checked = subscribe_request(c.filter, c.qos, context());
    if (auto* refused = std::get_if<result>(&checked)) {
        queue_completion(std::move(c.done), std::move(*refused));
        return;
    }
    auto& r = std::get<request>(checked);
    r.filters.push_back(
        subscriptions_.add(std::move(c.filter), static_cast<std::uint8_t>(c.qos), std::move(c.handler)));
    r.done = std::move(c.done);
    r.gate = c.gate;
    if (c.at_registration) {
        std::get<ipc::subscribe>(r.frame).flags = ipc::subscribe_answer_at_registration;
        r.awaits_registration = true;
        r.size = ipc::encoded_size(r.frame, ipc::wire_version::v3);
    }
    enqueue(std::move(r));
    arm_gate_timer(c.gate);
    claim();
}

void core::handle(unsubscribe_cmd&& c) {
    if (!valid_topic_filter(c.filter)) {
        queue_completion(std::move(c.done),
                         make_result(error_code::invalid_filter, "\"" + c.filter + "\" is not a valid topic filter"));
        return;
    }
    // A session holds its subscriptions beyond the connection (IPC-43): while the daemon is
    // away, its unsubscribe waits for the next connection (wait_for_daemon) or fails like any
    // request, the filter and its handler still held.
    const bool session = !opts_.session_name.empty();
    if (auto offline = context().offline; session && offline) {
        queue_completion(std::move(c.done), std::move(*offline));
        return;
    }
    subscriptions_.remove(c.filter);  // no dispatch to its handler from now on
    claim(&c.filter);
    // Without a session, subscriptions belong to the connection (IPC-29): without one, the
    // daemon holds nothing for us, and only a subscribe still waiting in the backlog needs undoing.
    if (!connected() && !requests_.waiting_subscribe(c.filter) && !session) {
        queue_completion(std::move(c.done),
                         make_result(error_code::ok, "not connected to thingmuxd, so the filter was not held"));
        return;
    }
    request r;
    r.kind = request_kind::unsubscribe;
    r.frame = ipc::unsubscribe{0, {c.filter}};
    r.size = ipc::encoded_size(r.frame);
    r.done = std::move(c.done);
    r.filters.push_back({std::move(c.filter), 0});
    r.gate = c.gate;
    enqueue(std::move(r));
    arm_gate_timer(c.gate);
}

void core::handle(timer_cmd&& c) {
    timers_.emplace(c.at, std::move(c.fn));
    transport_.arm_deadline(timers_.begin()->first);
}

void core::handle(cancel_cmd&& c) {
    expire(c.gate, make_result(error_code::cancelled, "the app cancelled the request"));
}

void core::handle(ack_cmd&& c) { acknowledge(c.connection, c.delivery_id); }

void core::arm_gate_timer(const std::shared_ptr<request_gate>& gate) {
    if (!gate || !gate->deadline || gate->finished.load()) {
        return;
    }
    const auto at = *gate->deadline;
    timers_.emplace(at, [this, gate](const result* closed) {
        if (closed == nullptr) {  // at close(), the request itself completes with `closed`
            expire(gate, make_result(error_code::timed_out, "no result within the request's timeout"));
        }
    });
    transport_.arm_deadline(timers_.begin()->first);
}

void core::expire(const std::shared_ptr<request_gate>& gate, result r) {
    if (!gate || gate->finished.load()) {
        return;
    }
    if (auto waiting = requests_.withdraw(gate.get())) {
        r.message += " (withdrawn before it was sent to thingmuxd)";
        complete_failed(std::move(*waiting), r);  // a subscribe's filter goes with it
        return;
    }
    // Taken by the daemon already (or refused, with its completion queued): only the wait ends.
    queue_completion([this, gate](const result& res) { finish(*gate, res); }, std::move(r));
}

void core::finish(request_gate& gate, const result& r) {
    if (gate.finished.exchange(true)) {
        // Lost the race. A timeout or cancel that lost is nothing; a result that lost came late.
        if (r.code != error_code::timed_out && r.code != error_code::cancelled && r.code != error_code::closed) {
            late_results_.fetch_add(1, std::memory_order_relaxed);
        }
        return;
    }
    if (r.code == error_code::timed_out) {
        timed_out_count_.fetch_add(1, std::memory_order_relaxed);
    } else if (r.code == error_code::cancelled) {
        cancelled_count_.fetch_add(1, std::memory_order_relaxed);
    }
    auto done = std::move(gate.done);
    gate.done = nullptr;
    call_quietly(done, r);
}

void core::on_deadline() {
    transport_.take_deadline();
    const auto now = std::chrono::steady_clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
        ready_.push_back({[fn = std::move(timers_.begin()->second)] { fn(nullptr); }, true});
        timers_.erase(timers_.begin());
    }
    transport_.arm_deadline(timers_.empty() ? std::nullopt : std::optional(timers_.begin()->first));
}

// ---------------------------------------------------------------------------------------------
// Sending

void core::complete_failed(request&& r, const result& res) {
    if (r.kind == request_kind::subscribe) {
        subscriptions_.forget(r.filters.front());
    }
    queue_completion(std::move(r.done), res);
}

void core::enqueue(request&& r) {
    requests_.push_back(std::move(r));
    send_backlog();
    // What send_backlog() could not send waits, within bounds; the newest request is the one
    // refused.
    if (requests_.backlog_count() > 0 &&
        (requests_.backlog_count() > opts_.max_backlog || requests_.backlog_bytes() > opts_.max_backlog_bytes)) {
        request refused = requests_.pop_newest();
        complete_failed(std::move(refused), make_result(error_code::backlog_full,
                                                        std::to_string(requests_.backlog_count()) + " requests (" +
                                                            std::to_string(requests_.backlog_bytes()) +
                                                            " bytes) are already waiting to be sent" +
                                                            (connected() ? "" : " until thingmuxd is back")));
    }
}

void core::send_backlog() {
    if (!connected() || !transport_.is_open()) {
        return;
    }
    const std::size_t frame_limit = max_frame();
    const std::size_t send_limit = std::max(2 * frame_limit, min_send_buffer);
    const std::size_t window = std::max<std::size_t>(welcome_->limits.max_inflight, 1);
    // A publish beyond the window would be answered quota_exceeded (IPC-25): it waits for a result.
    while (const request* next = requests_.next_to_send(window)) {
        if (const std::size_t pending = transport_.unsent(); pending > 0 && pending + next->size > send_limit) {
            transport_.flush();  // a full buffer is worth a system call now
            if (transport_.unsent() > 0) {
                break;  // the socket is slow; EPOLLOUT brings us back
            }
            continue;
        }
        request r = requests_.pop_next();
        if (r.awaits_registration && transport_.version() < ipc::wire_version::v3) {
            // A daemon before version 3 answers at the SUBACK only (IPC-60).
            std::get<ipc::subscribe>(r.frame).flags = 0;
            r.awaits_registration = false;
        }
        if (r.size > frame_limit) {
            // Queued before the welcome announced a smaller limit.
            const auto code =
                r.kind == request_kind::publish ? error_code::payload_too_large : error_code::invalid_filter;
            complete_failed(std::move(r),
                            make_result(code, "the request takes " + std::to_string(r.size) +
                                                  " bytes on the wire, more than thingmuxd's frame limit of " +
                                                  std::to_string(frame_limit)));
            continue;
        }
        transport_.queue(requests_.send(std::move(r)).frame);
        if (transport_.unsent() >= eager_send_bytes) {
            transport_.flush();  // the daemon starts on these while we encode the rest
        }
    }
    // The rest is sent at the end of this process() call, with whatever else it queues.
}

}  // namespace thingmux::detail
