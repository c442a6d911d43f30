#include "core.hpp"

#include "convert.hpp"
#include "ipc/codec.hpp"
#include "topic_match.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <system_error>
#include <utility>

namespace thingmux::detail {

namespace {

// epoll tags: the low 2 bits say which fd, the rest is the connection generation (socket only).
constexpr std::uint64_t tag_event = 0;
constexpr std::uint64_t tag_timer = 1;
constexpr std::uint64_t tag_socket = 2;
constexpr std::uint64_t tag_mask = 3;

constexpr std::size_t read_chunk = 64 * 1024;
constexpr int reads_per_process = 4;  // then let other events and commands have a turn
constexpr std::size_t min_send_buffer = 256 * 1024;
// Requests are sent once per process() call, or as soon as this many bytes are queued: big enough
// to save most system calls, small enough that the daemon works on a burst while it is encoded.
constexpr std::size_t eager_send_bytes = 16 * 1024;
constexpr std::size_t max_app_name = 255;

std::string errno_text(int e) {
    return std::strerror(e);  // only called on the loop thread
}

std::system_error sys_error(const char* what) {
    return {errno, std::generic_category(), what};
}

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

std::string connect_failure_text(const std::string& path, int e) {
    std::string text = "cannot connect to " + path + ": " + errno_text(e);
    switch (e) {
        case ENOENT:
        case ECONNREFUSED:
        case ENOTDIR:
            text += " \u2014 is thingmuxd running? (systemctl start thingmuxd)";
            break;
        case EACCES:
        case EPERM:
            text += " \u2014 is this user in group thingmux? (usermod -aG thingmux USER, then log in again)";
            break;
        case EAGAIN:
            text += " \u2014 thingmuxd is busy accepting connections";
            break;
        default:
            break;
    }
    return text;
}

// Refusals a waiting connect() reports instead of waiting on: retrying will not help until
// someone changes the configuration or the software.
bool definitive_refusal(ipc::errc code) noexcept {
    return code == ipc::errc::unsupported_version || code == ipc::errc::unknown_thing ||
           code == ipc::errc::not_authorized;
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
    };
    return std::visit(visitor{}, c);
}

// Commands not yet taken by the loop: room for a full backlog and then some, so a burst from
// app threads is not refused just because the loop has not run yet.
std::size_t max_commands(std::size_t max_backlog) noexcept {
    constexpr std::size_t cap = std::numeric_limits<std::size_t>::max() / 4;
    return max_backlog >= cap ? cap : 2 * max_backlog + 64;
}

completion_handler& done_of(command& c) {
    return std::visit([](auto& cmd) -> completion_handler& { return cmd.done; }, c);
}

void call_quietly(const completion_handler& done, const result& r) noexcept {
    if (!done) {
        return;
    }
    try {
        done(r);
    } catch (...) {
        // A handler's exception has nowhere to go: the library does not log (STYLE.md).
    }
}

void set_request_id(ipc::client_message& m, std::uint32_t id) {
    std::visit(
        [id](auto& msg) {
            if constexpr (requires { msg.request_id; }) {
                msg.request_id = id;
            }
        },
        m);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction and the public side

core::core(options opts)
    : opts_(std::move(opts)), socket_path_(resolve_socket_path(opts_)), app_name_(resolve_app_name(opts_)) {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_.valid()) {
        throw sys_error("thingmux: epoll_create1");
    }
    event_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!event_.valid()) {
        throw sys_error("thingmux: eventfd");
    }
    timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer_.valid()) {
        throw sys_error("thingmux: timerfd_create");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag_event;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, event_.get(), &ev) != 0) {
        throw sys_error("thingmux: epoll_ctl");
    }
    ev.data.u64 = tag_timer;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, timer_.get(), &ev) != 0) {
        throw sys_error("thingmux: epoll_ctl");
    }
    backoff_ = std::max(opts_.reconnect_min, std::chrono::milliseconds{1});
    try {
        std::random_device rd;
        rng_.seed(rd());
    } catch (...) {
        rng_.seed(static_cast<std::minstd_rand::result_type>(::getpid()));
    }
    snapshot_ = state{};
}

core::~core() {
    if (thread_.joinable()) {
        thread_.detach();  // only reachable if the owner did not shut down; never join ourselves
    }
}

void core::set_state_handler(state_handler h) {
    std::lock_guard lk(handler_mutex_);
    state_handler_ = h ? std::make_shared<const state_handler>(std::move(h)) : nullptr;
}

void core::set_subscription_lost_handler(subscription_lost_handler h) {
    std::lock_guard lk(handler_mutex_);
    lost_handler_ = h ? std::make_shared<const subscription_lost_handler>(std::move(h)) : nullptr;
}

void core::start() {
    std::lock_guard cl(close_mutex_);
    if (started_ || closed_) {
        return;
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
    while (!closed_.load()) {
        pollfd p{epoll_.get(), POLLIN, 0};
        if (::poll(&p, 1, -1) < 0 && errno != EINTR) {
            // Cannot happen with a valid fd; do not spin if it does.
            ::usleep(10'000);
        }
        std::lock_guard lk(loop_mutex_);
        process_guarded();
    }
}

void core::process_guarded() noexcept {
    try {
        process_locked();
    } catch (const std::exception& e) {
        // Out of memory, in practice. Start over with a fresh connection rather than let the
        // exception end the library thread (std::terminate) or escape into the app's loop.
        try {
            loop_owner_.store(std::this_thread::get_id());
            drop_connection(std::string("internal error in libthingmux: ") + e.what());
            run_ready();
        } catch (...) {
        }
        loop_owner_.store(std::thread::id{});
    } catch (...) {
    }
}

bool core::on_loop_thread() const noexcept {
    return loop_owner_.load() == std::this_thread::get_id();
}

void core::process() {
    if (started_ || on_loop_thread()) {
        return;  // the library thread drives it, or a handler called process(): nothing to do
    }
    std::lock_guard lk(loop_mutex_);
    process_guarded();
}

void core::submit(command c) {
    const std::size_t bytes = command_bytes(c);
    std::unique_lock lk(cmd_mutex_);
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
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(event_.get(), &one, sizeof one);  // EAGAIN: already awake
    }
}

void core::close() {
    if (on_loop_thread()) {
        shutdown_locked();  // from a handler: we already hold the loop
        return;
    }
    {
        std::lock_guard cl(close_mutex_);
        if (started_) {
            stop_requested_ = true;
            const std::uint64_t one = 1;
            [[maybe_unused]] const auto n = ::write(event_.get(), &one, sizeof one);
            if (thread_.joinable()) {
                thread_.join();
            }
            return;
        }
    }
    std::lock_guard lk(loop_mutex_);
    loop_owner_.store(std::this_thread::get_id());
    shutdown_locked();
    loop_owner_.store(std::thread::id{});
}

void core::shutdown_from_owner() {
    close();
    std::lock_guard cl(close_mutex_);
    if (thread_.joinable()) {
        if (thread_.get_id() == std::this_thread::get_id()) {
            thread_.detach();  // destroyed from its own handler: the thread holds the core alive
        } else {
            thread_.join();
        }
    }
}

state core::current_state() const {
    std::lock_guard lk(snapshot_mutex_);
    return snapshot_;
}

std::optional<daemon_info> core::daemon() const {
    std::lock_guard lk(snapshot_mutex_);
    return info_snapshot_;
}

result core::make_result(error_code code, std::string message) {
    result r;
    r.code = code;
    r.message = std::move(message);
    return r;
}

// ---------------------------------------------------------------------------------------------
// The loop

void core::process_locked() {
    loop_owner_.store(std::this_thread::get_id());
    struct owner_reset {
        std::atomic<std::thread::id>& owner;
        ~owner_reset() { owner.store(std::thread::id{}); }
    } reset{loop_owner_};

    if (closed_) {
        return;
    }
    if (stop_requested_) {
        shutdown_locked();
        return;
    }
    epoll_event events[16];
    const int n = ::epoll_wait(epoll_.get(), events, 16, 0);
    for (int i = 0; i < n; ++i) {
        const auto& ev = events[i];
        const std::uint64_t tag = ev.data.u64;
        switch (tag & tag_mask) {
            case tag_event: {
                std::uint64_t count = 0;
                [[maybe_unused]] const auto r = ::read(event_.get(), &count, sizeof count);
                break;
            }
            case tag_timer:
                on_timer();
                break;
            case tag_socket:
                if ((tag >> 2U) == conn_generation_ && sock_.valid()) {
                    on_socket_event(ev.events);
                }
                break;
            default:
                break;
        }
        run_ready();
        if (closed_) {
            return;
        }
    }
    drain_commands();
    run_ready();
    if (!closed_ && stop_requested_) {
        shutdown_locked();
        return;
    }
    // Everything this call queued (the publishes of a batch of commands, those released by a
    // read's worth of results) leaves in one send.
    if (!closed_ && sock_.valid()) {
        flush();
    }
}

void core::drain_commands() {
    // One batch per call: commands that handlers queue now are taken by the next process(), so
    // a handler that always issues a new request cannot keep this call from returning.
    std::deque<command> batch;
    {
        std::lock_guard lk(cmd_mutex_);
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
}

void core::queue_completion(completion_handler done, result r) {
    if (!done) {
        return;
    }
    ready_.push_back({[d = std::move(done), res = std::move(r)] { call_quietly(d, res); }, true});
}

void core::run_ready() {
    while (!ready_.empty() && !closed_) {
        auto item = std::move(ready_.front());
        ready_.pop_front();
        try {
            item.fn();
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
        std::lock_guard lk(snapshot_mutex_);
        snapshot_ = st;
        if (welcome_ && connected()) {
            info_snapshot_ = from_ipc(*welcome_);
        } else {
            info_snapshot_.reset();
        }
    }
    // Retries that fail for the same reason are not news; a changed retry delay alone is not
    // reported (current_state() has it).
    const bool same = emitted_once_ && st.daemon == last_emitted_.daemon &&
                      st.daemon_reason == last_emitted_.daemon_reason && st.uplink == last_emitted_.uplink &&
                      st.uplink_reason == last_emitted_.uplink_reason &&
                      st.uplink_fatal == last_emitted_.uplink_fatal &&
                      st.uplink_retry_in == last_emitted_.uplink_retry_in;
    if (same) {
        return;
    }
    emitted_once_ = true;
    last_emitted_ = st;
    ready_.push_back({[this, s = std::move(st)] {
                          std::shared_ptr<const state_handler> h;
                          {
                              std::lock_guard lk(handler_mutex_);
                              h = state_handler_;
                          }
                          if (h) {
                              (*h)(s);
                          }
                      },
                      false});
}

std::string core::not_connected_text() const {
    switch (daemon_state_) {
        case daemon_state::idle: return "not connected to thingmuxd: connect() has not been called";
        case daemon_state::connecting: return "not connected to thingmuxd yet: the handshake is in progress";
        case daemon_state::closed: return "the client was closed";
        case daemon_state::connected: break;
        case daemon_state::unavailable:
            if (sock_.valid()) {
                return "not connected to thingmuxd: reconnecting (last error: " + daemon_reason_ + ")";
            }
            return "not connected to thingmuxd: " + daemon_reason_;
    }
    return "not connected to thingmuxd";
}

std::size_t core::max_frame() const noexcept {
    return welcome_ ? welcome_->limits.max_frame : ipc::default_max_frame;
}

// ---------------------------------------------------------------------------------------------
// Commands

void core::handle(connect_cmd&& c) {
    if (connected()) {
        queue_completion(std::move(c.done), make_result(error_code::ok, "already connected to thingmuxd"));
        return;
    }
    const ipc::client_message hello = ipc::hello{ipc::protocol_version, app_name_, opts_.thing};
    if (auto problem = ipc::encode_problem(hello)) {
        queue_completion(std::move(c.done), make_result(error_code::invalid_argument, "options::thing: " + *problem));
        return;
    }
    want_connection_ = true;
    connect_waiters_.push_back(std::move(c.done));
    if (!sock_.valid()) {
        attempt_connect();  // also "try now" while waiting to retry
    }
}

void core::handle(publish_cmd&& c) {
    auto& m = c.msg;
    const auto fail = [&](error_code code, std::string text) {
        queue_completion(std::move(c.done), make_result(code, std::move(text)));
    };
    if (m.qos < 0 || m.qos > 2) {
        return fail(error_code::qos_not_supported, "QoS " + std::to_string(m.qos) + " is not 0 or 1");
    }
    if (!valid_topic_name(m.topic)) {
        return fail(error_code::invalid_topic, "\"" + m.topic +
                                                   "\" is not a valid topic name (empty, wildcards '+'/'#', "
                                                   "not UTF-8, U+0000 or longer than 65535 bytes)");
    }
    if (welcome_ && m.topic.size() > welcome_->limits.max_topic_length) {
        return fail(error_code::invalid_topic, "the topic is " + std::to_string(m.topic.size()) +
                                                   " bytes long, thingmuxd allows " +
                                                   std::to_string(welcome_->limits.max_topic_length));
    }
    if (welcome_ && m.payload.size() > welcome_->limits.max_payload) {
        return fail(error_code::payload_too_large, "the payload is " + std::to_string(m.payload.size()) +
                                                       " bytes, thingmuxd allows " +
                                                       std::to_string(welcome_->limits.max_payload));
    }
    if (m.payload_format_indicator && *m.payload_format_indicator > 1) {
        return fail(error_code::invalid_argument, "payload_format_indicator must be 0 (bytes) or 1 (UTF-8)");
    }
    if (!connected() && !opts_.wait_for_daemon) {
        return fail(error_code::not_connected, not_connected_text());
    }
    ipc::publish p;
    p.topic = std::move(m.topic);
    p.payload = std::move(m.payload);
    p.qos = static_cast<std::uint8_t>(m.qos);
    p.retain = m.retain;
    p.props = to_ipc_properties(m);
    request r;
    r.kind = request_kind::publish;
    r.frame = std::move(p);
    if (auto problem = ipc::encode_problem(r.frame)) {
        return fail(error_code::invalid_argument, *problem);
    }
    r.size = ipc::encoded_size(r.frame);
    if (r.size > max_frame()) {
        return fail(error_code::payload_too_large, "the message takes " + std::to_string(r.size) +
                                                       " bytes on the wire, more than thingmuxd's frame limit of " +
                                                       std::to_string(max_frame()));
    }
    r.done = std::move(c.done);
    enqueue(std::move(r));
}

void core::handle(subscribe_cmd&& c) {
    const auto fail = [&](error_code code, std::string text) {
        queue_completion(std::move(c.done), make_result(code, std::move(text)));
    };
    if (c.qos < 0 || c.qos > 2) {
        return fail(error_code::qos_not_supported, "QoS " + std::to_string(c.qos) + " is not 0 or 1");
    }
    if (!valid_topic_filter(c.filter)) {
        return fail(error_code::invalid_filter, "\"" + c.filter +
                                                    "\" is not a valid topic filter ('+' and '#' must be whole "
                                                    "levels, '#' only the last one; UTF-8 without U+0000)");
    }
    if (welcome_ && c.filter.size() > welcome_->limits.max_topic_length) {
        return fail(error_code::invalid_filter, "the filter is " + std::to_string(c.filter.size()) +
                                                    " bytes long, thingmuxd allows " +
                                                    std::to_string(welcome_->limits.max_topic_length));
    }
    if (!c.handler) {
        return fail(error_code::invalid_argument, "subscribe needs a message handler");
    }
    if (!connected() && !opts_.wait_for_daemon) {
        return fail(error_code::not_connected, not_connected_text());
    }
    request r;
    r.kind = request_kind::subscribe;
    r.frame = ipc::subscribe{0, {ipc::subscription{c.filter, static_cast<std::uint8_t>(c.qos)}}};
    r.size = ipc::encoded_size(r.frame);
    if (r.size > max_frame()) {
        return fail(error_code::invalid_filter, "the filter does not fit in thingmuxd's frame limit");
    }
    const std::uint64_t generation = next_generation_++;
    subs_[c.filter] = subscription_entry{std::make_shared<const message_handler>(std::move(c.handler)),
                                         static_cast<std::uint8_t>(c.qos), generation, false};
    r.filters.emplace_back(std::move(c.filter), generation);
    r.done = std::move(c.done);
    enqueue(std::move(r));
}

void core::handle(unsubscribe_cmd&& c) {
    if (!valid_topic_filter(c.filter)) {
        queue_completion(std::move(c.done),
                         make_result(error_code::invalid_filter, "\"" + c.filter + "\" is not a valid topic filter"));
        return;
    }
    subs_.erase(c.filter);  // no dispatch to its handler from now on
    if (!connected()) {
        // Subscriptions belong to the connection (IPC-29): without one, the daemon holds
        // nothing for us. Only a subscribe still waiting in the backlog needs undoing.
        const bool queued = std::any_of(backlog_.begin(), backlog_.end(), [&](const request& r) {
            return r.kind == request_kind::subscribe && r.filters.front().first == c.filter;
        });
        if (!queued) {
            queue_completion(std::move(c.done),
                             make_result(error_code::ok, "not connected to thingmuxd, so the filter was not held"));
            return;
        }
    }
    request r;
    r.kind = request_kind::unsubscribe;
    r.frame = ipc::unsubscribe{0, {c.filter}};
    r.size = ipc::encoded_size(r.frame);
    r.done = std::move(c.done);
    r.filters.emplace_back(std::move(c.filter), 0);
    enqueue(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// Sending

void core::enqueue(request&& r) {
    backlog_bytes_ += r.size;
    backlog_.push_back(std::move(r));
    pump();
    // What pump() could not send waits, within bounds; the newest request is the one refused.
    if (!backlog_.empty() && (backlog_.size() > opts_.max_backlog || backlog_bytes_ > opts_.max_backlog_bytes)) {
        request refused = std::move(backlog_.back());
        backlog_.pop_back();
        backlog_bytes_ -= refused.size;
        if (refused.kind == request_kind::subscribe) {
            const auto& [filter, generation] = refused.filters.front();
            if (auto it = subs_.find(filter); it != subs_.end() && it->second.generation == generation) {
                subs_.erase(it);
            }
        }
        queue_completion(std::move(refused.done),
                         make_result(error_code::backlog_full,
                                     std::to_string(backlog_.size()) + " requests (" + std::to_string(backlog_bytes_) +
                                         " bytes) are already waiting to be sent" +
                                         (connected() ? "" : " until thingmuxd is back")));
    }
}

void core::pump() {
    if (!connected() || !sock_.valid()) {
        return;
    }
    const std::size_t frame_limit = max_frame();
    const std::size_t send_limit = std::max(2 * frame_limit, min_send_buffer);
    const std::size_t window = std::max<std::size_t>(welcome_->limits.max_inflight, 1);
    while (!backlog_.empty()) {
        auto& front = backlog_.front();
        if (front.kind == request_kind::publish && inflight_publishes_ >= window) {
            break;  // the daemon would answer quota_exceeded (IPC-25); wait for a result
        }
        if (const std::size_t pending = wbuf_.size() - woff_; pending > 0 && pending + front.size > send_limit) {
            flush();  // a full buffer is worth a system call now
            if (woff_ < wbuf_.size()) {
                break;  // the socket is slow; EPOLLOUT brings us back
            }
            continue;
        }
        request r = std::move(front);
        backlog_.pop_front();
        backlog_bytes_ -= r.size;
        if (r.size > frame_limit) {
            // Queued before the welcome announced a smaller limit.
            queue_completion(std::move(r.done),
                             make_result(r.kind == request_kind::publish ? error_code::payload_too_large
                                                                         : error_code::invalid_filter,
                                         "the request takes " + std::to_string(r.size) +
                                             " bytes on the wire, more than thingmuxd's frame limit of " +
                                             std::to_string(frame_limit)));
            continue;
        }
        std::uint32_t id = next_request_id_;
        while (id == 0 || inflight_.contains(id)) {
            ++id;
        }
        next_request_id_ = id + 1;
        set_request_id(r.frame, id);
        ipc::encode(r.frame, wbuf_);
        if (r.kind == request_kind::publish) {
            ++inflight_publishes_;
        }
        inflight_.emplace(id, std::move(r));
        if (wbuf_.size() - woff_ >= eager_send_bytes) {
            flush();  // the daemon starts on these while we encode the rest
        }
    }
    // The rest is sent at the end of this process() call, with whatever else it queues.
}

void core::flush() {
    while (woff_ < wbuf_.size()) {
        const auto n = ::send(sock_.get(), wbuf_.data() + woff_, wbuf_.size() - woff_, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            woff_ += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        // A broken socket also shows as EPOLLERR/EPOLLHUP, and the read path then ends the
        // connection with the reason; nothing more can be written meanwhile.
        wbuf_.clear();
        woff_ = 0;
        break;
    }
    if (woff_ == wbuf_.size()) {
        wbuf_.clear();
        woff_ = 0;
    } else if (woff_ >= read_chunk && woff_ * 2 >= wbuf_.size()) {
        wbuf_.erase(wbuf_.begin(), wbuf_.begin() + static_cast<std::ptrdiff_t>(woff_));
        woff_ = 0;
    }
    update_socket_interest();
}

void core::update_socket_interest() {
    if (!sock_.valid()) {
        return;
    }
    const std::uint32_t want = EPOLLIN | EPOLLRDHUP | (woff_ < wbuf_.size() ? EPOLLOUT : 0U);
    if (want == sock_interest_) {
        return;
    }
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = (conn_generation_ << 2U) | tag_socket;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, sock_.get(), &ev);
    sock_interest_ = want;
}

void core::resubscribe_all() {
    // Filters the daemon held on the previous connection, in as few frames as fit, ahead of
    // anything queued meanwhile.
    constexpr std::size_t frame_base = ipc::frame_header_size + 4 + 2;  // request id + count
    constexpr std::size_t max_entries = 0xFFFF;
    std::vector<request> batches;
    request cur;
    std::size_t cur_size = frame_base;
    const auto close_batch = [&] {
        if (!cur.filters.empty()) {
            cur.kind = request_kind::resubscribe;
            cur.size = cur_size;
            batches.push_back(std::move(cur));
        }
        cur = request{};
        cur.frame = ipc::subscribe{};
        cur_size = frame_base;
    };
    cur.frame = ipc::subscribe{};
    for (const auto& [filter, entry] : subs_) {
        if (!entry.active) {
            continue;
        }
        const std::size_t entry_size = 2 + filter.size() + 1;
        auto* sub = &std::get<ipc::subscribe>(cur.frame);
        if (!cur.filters.empty() && (cur_size + entry_size > max_frame() || sub->subscriptions.size() >= max_entries)) {
            close_batch();
            sub = &std::get<ipc::subscribe>(cur.frame);
        }
        sub->subscriptions.push_back({filter, entry.qos});
        cur.filters.emplace_back(filter, entry.generation);
        cur_size += entry_size;
    }
    close_batch();
    for (auto it = batches.rbegin(); it != batches.rend(); ++it) {
        backlog_bytes_ += it->size;
        backlog_.push_front(std::move(*it));
    }
}

// ---------------------------------------------------------------------------------------------
// Connection

void core::arm_timer(timer_purpose p, std::chrono::milliseconds delay) {
    timer_purpose_ = p;
    itimerspec spec{};
    if (p != timer_purpose::none) {
        const auto ms = std::max<std::int64_t>(delay.count(), 1);
        spec.it_value.tv_sec = static_cast<time_t>(ms / 1000);
        spec.it_value.tv_nsec = static_cast<long>((ms % 1000) * 1'000'000);
    }
    ::timerfd_settime(timer_.get(), 0, &spec, nullptr);
}

std::chrono::milliseconds core::next_backoff() {
    const auto ceiling = std::max(opts_.reconnect_max, std::chrono::milliseconds{1});
    const auto d = std::min(backoff_, ceiling);
    backoff_ = std::min(d * 2, ceiling);
    // Jitter in [d/2, d]: apps that lost the daemon together do not all come back at once.
    const auto half = d.count() / 2;
    std::uniform_int_distribution<std::int64_t> dist(0, std::max<std::int64_t>(half, 0));
    return std::chrono::milliseconds{d.count() - half + dist(rng_)};
}

void core::attempt_connect() {
    arm_timer(timer_purpose::none, {});
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path_.size() >= sizeof addr.sun_path) {
        drop_connection("cannot connect to " + socket_path_ + ": the path is longer than " +
                        std::to_string(sizeof addr.sun_path - 1) + " bytes");
        return;
    }
    std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) {
        drop_connection("cannot create a socket: " + errno_text(errno));
        return;
    }
    int rc = 0;
    do {
        rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        drop_connection(connect_failure_text(socket_path_, errno));
        return;
    }
    sock_ = std::move(fd);
    ++conn_generation_;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = (conn_generation_ << 2U) | tag_socket;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, sock_.get(), &ev) != 0) {
        const int e = errno;
        sock_.reset();
        drop_connection("cannot watch the socket: " + errno_text(e));
        return;
    }
    sock_interest_ = ev.events;
    rbuf_.clear();
    rlen_ = 0;
    wbuf_.clear();
    woff_ = 0;
    refusal_.reset();
    refusal_text_.clear();
    if (daemon_state_ == daemon_state::idle) {
        daemon_state_ = daemon_state::connecting;
        emit_state();
    }
    // Nothing but the hello until the welcome (IPC-8).
    ipc::encode(ipc::client_message{ipc::hello{ipc::protocol_version, app_name_, opts_.thing}}, wbuf_);
    flush();
    arm_timer(timer_purpose::handshake, opts_.handshake_timeout);
}

void core::on_timer() {
    std::uint64_t expirations = 0;
    if (::read(timer_.get(), &expirations, sizeof expirations) != static_cast<ssize_t>(sizeof expirations)) {
        return;  // re-armed or disarmed since the event was reported
    }
    const auto purpose = std::exchange(timer_purpose_, timer_purpose::none);
    switch (purpose) {
        case timer_purpose::reconnect:
            if (!sock_.valid() && want_connection_) {
                attempt_connect();
            }
            break;
        case timer_purpose::handshake:
            if (sock_.valid() && !welcome_) {
                drop_connection("thingmuxd accepted the connection on " + socket_path_ + " but sent no welcome within " +
                                std::to_string(opts_.handshake_timeout.count()) + " ms");
            }
            break;
        case timer_purpose::none:
            break;
    }
}

void core::on_socket_event(std::uint32_t events) {
    const auto generation = conn_generation_;
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) != 0) {
        read_socket();
        if (closed_ || generation != conn_generation_) {
            return;
        }
    }
    if ((events & EPOLLOUT) != 0) {
        flush();
        pump();
    }
}

void core::read_socket() {
    const auto generation = conn_generation_;
    for (int i = 0; i < reads_per_process; ++i) {
        // The buffer keeps its size between reads: resizing it for each read would zero a
        // whole chunk per system call.
        if (rbuf_.size() < rlen_ + read_chunk) {
            rbuf_.resize(rlen_ + read_chunk);
        }
        const auto n = ::recv(sock_.get(), rbuf_.data() + rlen_, read_chunk, MSG_DONTWAIT);
        const int e = errno;
        if (n > 0) {
            rlen_ += static_cast<std::size_t>(n);
            decode_frames();
            if (closed_ || generation != conn_generation_) {
                return;
            }
            if (static_cast<std::size_t>(n) < read_chunk) {
                return;  // drained for now
            }
            continue;
        }
        if (n == 0) {
            drop_connection(welcome_ ? "thingmuxd closed the connection"
                                     : "thingmuxd closed the connection during the handshake");
            return;
        }
        if (e == EINTR) {
            continue;
        }
        if (e == EAGAIN || e == EWOULDBLOCK) {
            return;
        }
        drop_connection("the connection to thingmuxd failed: " + errno_text(e));
        return;
    }
}

void core::decode_frames() {
    const auto generation = conn_generation_;
    std::size_t offset = 0;
    while (offset < rlen_) {
        auto decoded = ipc::decode_daemon_message({rbuf_.data() + offset, rlen_ - offset}, max_frame());
        if (std::holds_alternative<ipc::need_more>(decoded)) {
            break;
        }
        if (auto* bad = std::get_if<ipc::malformed>(&decoded)) {
            drop_connection(std::string("thingmuxd sent a bad frame (") + ipc::to_string(bad->code) + ": " +
                            bad->reason + ")");
            return;
        }
        auto& d = std::get<ipc::decoded<ipc::daemon_message>>(decoded);
        offset += d.consumed;
        on_frame(std::move(d.message));
        if (closed_ || generation != conn_generation_) {
            return;  // the buffer belongs to a connection that is gone
        }
    }
    // Keep the undecoded tail (part of a frame) at the front.
    if (offset > 0) {
        std::memmove(rbuf_.data(), rbuf_.data() + offset, rlen_ - offset);
        rlen_ -= offset;
    }
}

void core::on_frame(ipc::daemon_message&& m) {
    if (auto* err = std::get_if<ipc::error>(&m)) {
        // Always the last frame (IPC-34): nothing more may be sent, so end it here.
        std::string text = std::string(welcome_ ? "thingmuxd closed the connection: " : "thingmuxd refused the connection: ") +
                           ipc::to_string(err->code) + (err->message.empty() ? "" : ": " + err->message);
        drop_connection(text, err->code);
        return;
    }
    if (auto* w = std::get_if<ipc::welcome>(&m)) {
        if (welcome_) {
            drop_connection("thingmuxd sent a second welcome (protocol violation)");
            return;
        }
        on_welcome(std::move(*w));
        return;
    }
    if (!welcome_) {
        drop_connection(std::string("thingmuxd sent ") + ipc::to_string(ipc::type_of(m)) +
                        " before its welcome (protocol violation)");
        return;
    }
    std::visit(
        [this](auto&& msg) {
            using T = std::decay_t<decltype(msg)>;
            if constexpr (std::is_same_v<T, ipc::publish_result>) {
                on_publish_result(std::move(msg));
            } else if constexpr (std::is_same_v<T, ipc::subscribe_result>) {
                on_subscribe_result(std::move(msg));
            } else if constexpr (std::is_same_v<T, ipc::unsubscribe_result>) {
                on_unsubscribe_result(std::move(msg));
            } else if constexpr (std::is_same_v<T, ipc::message>) {
                on_message(std::move(msg));
            } else if constexpr (std::is_same_v<T, ipc::state>) {
                on_state_frame(std::move(msg));
            }
            // pong: we send no pings; welcome and error were handled above.
        },
        std::move(m));
}

void core::on_welcome(ipc::welcome&& w) {
    if (w.version != ipc::protocol_version) {
        drop_connection("thingmuxd answered in protocol version " + std::to_string(w.version) +
                            ", this library speaks version " + std::to_string(ipc::protocol_version),
                        ipc::errc::unsupported_version);
        return;
    }
    arm_timer(timer_purpose::none, {});
    backoff_ = std::max(opts_.reconnect_min, std::chrono::milliseconds{1});
    uplink_ = ipc::state{w.link, {}, false, 0};
    uplink_known_ = true;
    welcome_ = std::move(w);
    daemon_state_ = daemon_state::connected;
    daemon_reason_.clear();
    daemon_retry_in_ = std::chrono::milliseconds{0};
    resubscribe_all();
    pump();
    emit_state();
    complete_connect_waiters(make_result(error_code::ok, "connected to thingmuxd " + welcome_->daemon_version +
                                                             " (Thing " + welcome_->thing + ", client " +
                                                             welcome_->client_id + ")"));
}

void core::on_publish_result(ipc::publish_result&& r) {
    const auto it = inflight_.find(r.request_id);
    if (it == inflight_.end() || it->second.kind != request_kind::publish) {
        return;  // not ours (IPC-25 makes this a daemon bug); nothing waits for it
    }
    request req = std::move(it->second);
    inflight_.erase(it);
    --inflight_publishes_;
    queue_completion(std::move(req.done), from_ipc(std::move(r.outcome)));
    pump();  // a publish slot opened
}

void core::on_subscribe_result(ipc::subscribe_result&& r) {
    const auto it = inflight_.find(r.request_id);
    if (it == inflight_.end() ||
        (it->second.kind != request_kind::subscribe && it->second.kind != request_kind::resubscribe)) {
        return;
    }
    request req = std::move(it->second);
    inflight_.erase(it);
    std::shared_ptr<const subscription_lost_handler> lost;
    {
        std::lock_guard lk(handler_mutex_);
        lost = lost_handler_;
    }
    std::optional<result> first;
    for (std::size_t i = 0; i < req.filters.size(); ++i) {
        const auto& [filter, generation] = req.filters[i];
        result res = i < r.results.size()
                         ? from_ipc(std::move(r.results[i]))
                         : make_result(error_code::internal_error,
                                       "thingmuxd sent " + std::to_string(r.results.size()) + " results for " +
                                           std::to_string(req.filters.size()) + " filters");
        const auto entry = subs_.find(filter);
        const bool current = entry != subs_.end() && entry->second.generation == generation;
        if (res.ok()) {
            if (current) {
                entry->second.active = true;
            }
        } else if (current) {
            subs_.erase(entry);  // the daemon does not hold a refused filter (IPC-29)
            if (req.kind == request_kind::resubscribe && lost) {
                ready_.push_back({[lost, f = filter, res] { (*lost)(f, res); }, false});
            }
        }
        if (!first) {
            first = std::move(res);
        }
    }
    if (req.kind == request_kind::subscribe && first) {
        queue_completion(std::move(req.done), std::move(*first));
    }
}

void core::on_unsubscribe_result(ipc::unsubscribe_result&& r) {
    const auto it = inflight_.find(r.request_id);
    if (it == inflight_.end() || it->second.kind != request_kind::unsubscribe) {
        return;
    }
    request req = std::move(it->second);
    inflight_.erase(it);
    queue_completion(std::move(req.done),
                     r.results.empty() ? make_result(error_code::internal_error, "thingmuxd sent no result")
                                       : from_ipc(std::move(r.results.front())));
}

void core::on_message(ipc::message&& m) {
    // The daemon sends one frame per message even when several filters match (IPC-31); each
    // matching handler gets it, in filter order.
    std::vector<std::shared_ptr<const message_handler>> handlers;
    for (const auto& [filter, entry] : subs_) {
        if (topic_matches_unchecked(filter, m.topic)) {
            handlers.push_back(entry.handler);
        }
    }
    if (handlers.empty()) {
        return;  // unsubscribed while it was on its way
    }
    auto msg = std::make_shared<const message>(from_ipc(std::move(m)));
    ready_.push_back({[this, hs = std::move(handlers), msg] {
                          for (const auto& h : hs) {
                              if (closed_) {
                                  return;
                              }
                              try {
                                  (*h)(*msg);
                              } catch (...) {
                                  // see call_quietly()
                              }
                          }
                      },
                      false});
}

void core::on_state_frame(ipc::state&& s) {
    uplink_ = std::move(s);
    uplink_known_ = true;
    emit_state();
}

void core::drop_connection(const std::string& reason, std::optional<ipc::errc> refusal) {
    if (sock_.valid()) {
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, sock_.get(), nullptr);
        sock_.reset();
    }
    ++conn_generation_;
    sock_interest_ = 0;
    rbuf_.clear();
    rbuf_.shrink_to_fit();
    rlen_ = 0;
    wbuf_.clear();
    woff_ = 0;
    welcome_.reset();
    uplink_known_ = false;
    arm_timer(timer_purpose::none, {});

    // Requests in flight: a publish's outcome is unknown; a subscribe is retried when waiting
    // for the daemon, else failed; an unsubscribe is done (the connection's subscriptions are
    // gone); a resubscribe is rebuilt on the next welcome. Without reconnects nothing would
    // bring the daemon back, so nothing waits.
    const bool waiting = opts_.wait_for_daemon && opts_.reconnect;
    std::vector<request> retry;
    for (auto& [id, r] : inflight_) {
        switch (r.kind) {
            case request_kind::publish:
                queue_completion(std::move(r.done),
                                 make_result(error_code::session_closed,
                                             "the connection to thingmuxd ended before the result came (" + reason +
                                                 "); the message may or may not have been published"));
                break;
            case request_kind::subscribe:
                if (waiting) {
                    retry.push_back(std::move(r));
                } else {
                    const auto& [filter, generation] = r.filters.front();
                    if (auto e = subs_.find(filter); e != subs_.end() && e->second.generation == generation) {
                        subs_.erase(e);
                    }
                    queue_completion(std::move(r.done),
                                     make_result(error_code::session_closed,
                                                 "the connection to thingmuxd ended before the result came (" +
                                                     reason + "); the filter is not held"));
                }
                break;
            case request_kind::unsubscribe:
                queue_completion(std::move(r.done),
                                 make_result(error_code::ok, "the connection to thingmuxd ended, which dropped the "
                                                             "subscription"));
                break;
            case request_kind::resubscribe:
                break;
        }
    }
    inflight_.clear();
    inflight_publishes_ = 0;
    // Leftover resubscribes are rebuilt from subs_ after the next welcome.
    std::erase_if(backlog_, [](const request& r) { return r.kind == request_kind::resubscribe; });
    for (auto it = retry.rbegin(); it != retry.rend(); ++it) {
        backlog_.push_front(std::move(*it));
    }
    if (!waiting) {
        for (auto& r : backlog_) {
            if (r.kind == request_kind::subscribe) {
                const auto& [filter, generation] = r.filters.front();
                if (auto e = subs_.find(filter); e != subs_.end() && e->second.generation == generation) {
                    subs_.erase(e);
                }
            }
            queue_completion(std::move(r.done), make_result(error_code::not_connected,
                                                            "not connected to thingmuxd: " + reason));
        }
        backlog_.clear();
    }
    backlog_bytes_ = 0;
    for (const auto& r : backlog_) {
        backlog_bytes_ += r.size;
    }

    daemon_state_ = daemon_state::unavailable;
    daemon_reason_ = reason;
    daemon_retry_in_ = std::chrono::milliseconds{0};
    if (opts_.reconnect && want_connection_) {
        daemon_retry_in_ = next_backoff();
        arm_timer(timer_purpose::reconnect, daemon_retry_in_);
    }
    emit_state();

    if (!connect_waiters_.empty() && (!waiting || (refusal && definitive_refusal(*refusal)))) {
        const auto code = refusal ? static_cast<error_code>(static_cast<std::uint16_t>(*refusal))
                                  : error_code::daemon_unavailable;
        complete_connect_waiters(make_result(code, reason));
    }
}

void core::shutdown_locked() {
    if (closed_) {
        return;
    }
    std::deque<command> commands;
    {
        std::lock_guard lk(cmd_mutex_);
        closed_ = true;
        commands.swap(commands_);
        command_bytes_ = 0;
    }
    if (sock_.valid()) {
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, sock_.get(), nullptr);
        sock_.reset();
    }
    ++conn_generation_;
    arm_timer(timer_purpose::none, {});
    want_connection_ = false;
    welcome_.reset();
    daemon_state_ = daemon_state::closed;
    daemon_reason_.clear();
    {
        std::lock_guard lk(snapshot_mutex_);
        snapshot_ = state{};
        snapshot_.daemon = daemon_state::closed;
        info_snapshot_.reset();
    }

    // Completions already decided keep their result; everything still open completes with
    // `closed`. Message and state events not yet run are dropped: no handler after close().
    std::vector<std::function<void()>> decided;
    for (auto& item : ready_) {
        if (item.completion) {
            decided.push_back(std::move(item.fn));
        }
    }
    ready_.clear();
    std::vector<completion_handler> open;
    for (auto& w : connect_waiters_) {
        open.push_back(std::move(w));
    }
    connect_waiters_.clear();
    for (auto& [id, r] : inflight_) {
        open.push_back(std::move(r.done));
    }
    inflight_.clear();
    inflight_publishes_ = 0;
    for (auto& r : backlog_) {
        open.push_back(std::move(r.done));
    }
    backlog_.clear();
    backlog_bytes_ = 0;
    for (auto& c : commands) {
        open.push_back(std::move(done_of(c)));
    }
    subs_.clear();
    rbuf_ = {};
    rlen_ = 0;
    wbuf_ = {};
    woff_ = 0;
    {
        std::lock_guard lk(handler_mutex_);
        state_handler_.reset();
        lost_handler_.reset();
    }

    for (auto& fn : decided) {
        try {
            fn();
        } catch (...) {
            // see call_quietly()
        }
    }
    const auto closed_result = make_result(error_code::closed, "the client was closed before the request completed");
    for (auto& done : open) {
        call_quietly(done, closed_result);
    }
}

}  // namespace thingmux::detail
