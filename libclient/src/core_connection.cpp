// The core's connection to thingmuxd: connecting and the handshake, the frames the daemon sends,
// the end of a connection and the end of the client.
#include "core.hpp"

#include "convert.hpp"
#include "topic_match.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <chrono>
#include <utility>

namespace thingmux::detail {

namespace {

constexpr int reads_per_process = 4;  // then let other events and commands have a turn

// Refusals a waiting connect() reports instead of waiting on: retrying will not help until
// someone changes the configuration or the software.
bool definitive_refusal(ipc::errc code) noexcept {
    return code == ipc::errc::unsupported_version || code == ipc::errc::unknown_thing ||
           code == ipc::errc::not_authorized;
}

}  // namespace

std::size_t core::max_frame() const noexcept {
    return welcome_ ? welcome_->limits.max_frame : ipc::default_max_frame;
}

std::string core::not_connected_text() const {
    switch (daemon_state_) {
        case daemon_state::idle:
            return "not connected to thingmuxd: connect() has not been called";
        case daemon_state::connecting:
            return "not connected to thingmuxd yet: the handshake is in progress";
        case daemon_state::closed:
            return "the client was closed";
        case daemon_state::connected:
            break;
        case daemon_state::unavailable:
            if (transport_.is_open()) {
                return "not connected to thingmuxd: reconnecting (last error: " + daemon_reason_ + ")";
            }
            return "not connected to thingmuxd: " + daemon_reason_;
    }
    return "not connected to thingmuxd";
}

// ---------------------------------------------------------------------------------------------
// Connecting

void core::attempt_connect() {
    transport_.disarm_timer();
    if (auto failure = transport_.open(socket_path_)) {
        drop_connection(*failure);
        return;
    }
    if (daemon_state_ == daemon_state::idle) {
        daemon_state_ = daemon_state::connecting;
        emit_state();
    }
    // Nothing but the hello until the welcome (IPC-8). Its version is the connection's (IPC-9).
    auto hello = make_hello();
    transport_.set_version(ipc::known_version(hello.version).value_or(ipc::wire_version::v1));
    transport_.queue(hello);
    transport_.flush();
    transport_.arm_timer(timer_purpose::handshake, opts_.handshake_timeout);
}

ipc::hello core::make_hello() const {
    ipc::hello h{ipc::protocol_version, app_name_, opts_.thing};
    const bool session = !opts_.session_name.empty();
    if (version_ceiling_ == ipc::wire_version::v3) {
        h.version = static_cast<std::uint16_t>(ipc::wire_version::v3);
    }
    // Version 2 has nothing for an app without a session: such an app falls back to version 1.
    if (session && version_ceiling_ == ipc::wire_version::v2) {
        h.version = static_cast<std::uint16_t>(ipc::wire_version::v2);
    }
    if (session && version_ceiling_ != ipc::wire_version::v1) {
        h.session_name = opts_.session_name;
        h.session_expiry = static_cast<std::uint32_t>(
            std::clamp<std::chrono::seconds::rep>(opts_.session_expiry.count(), 0, 0xFFFF'FFFF));
    }
    return h;
}

void core::on_timer() {
    const auto purpose = transport_.take_expired_timer();
    if (purpose == timer_purpose::reconnect) {
        if (!transport_.is_open() && want_connection_) {
            attempt_connect();
        }
    } else if (purpose == timer_purpose::handshake) {
        if (transport_.is_open() && !welcome_) {
            drop_connection("thingmuxd accepted the connection on " + socket_path_ + " but sent no welcome within " +
                            std::to_string(opts_.handshake_timeout.count()) + " ms");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Receiving

void core::on_socket_event(std::uint32_t events) {
    const auto connection = transport_.connection();
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) != 0) {
        read_socket();
        if (closed_ || connection != transport_.connection()) {
            return;
        }
    }
    if ((events & EPOLLOUT) != 0) {
        transport_.flush();
        send_backlog();
    }
}

void core::read_socket() {
    for (int i = 0; i < reads_per_process; ++i) {
        switch (transport_.receive()) {
            case receive_status::more:
                if (!decode_frames()) {
                    return;
                }
                continue;
            case receive_status::drained:
                static_cast<void>(decode_frames());
                return;
            case receive_status::would_block:
                return;
            case receive_status::closed:
                drop_connection(welcome_ ? "thingmuxd closed the connection"
                                         : "thingmuxd closed the connection during the handshake");
                return;
            case receive_status::failed:
                drop_connection("the connection to thingmuxd failed: " + errno_text(transport_.receive_error()));
                return;
        }
    }
}

bool core::decode_frames() {
    const auto connection = transport_.connection();
    for (;;) {
        auto f = transport_.next_frame(max_frame());
        if (std::holds_alternative<std::monostate>(f)) {
            return true;
        }
        if (auto* bad = std::get_if<ipc::malformed>(&f)) {
            drop_connection(std::string("thingmuxd sent a bad frame (") + ipc::to_string(bad->code) + ": " +
                            bad->reason + ")");
            return false;
        }
        on_frame(std::get<ipc::daemon_message>(std::move(f)));
        if (closed_ || connection != transport_.connection()) {
            return false;  // the bytes left belonged to a connection that is gone
        }
    }
}

void core::on_frame(ipc::daemon_message&& m) {
    if (auto* err = std::get_if<ipc::error>(&m)) {
        if (!welcome_ && err->code == ipc::errc::unsupported_version && transport_.version() != ipc::wire_version::v1) {
            // A daemon that does not speak this version yet (IPC-39, IPC-46): again at once, one
            // version lower (version 1: without a session; subscribes then complete at the SUBACK).
            version_ceiling_ =
                transport_.version() == ipc::wire_version::v3 ? ipc::wire_version::v2 : ipc::wire_version::v1;
            transport_.close();
            attempt_connect();
            return;
        }
        // Always the last frame (IPC-34): nothing more may be sent, so end it here.
        std::string text =
            std::string(welcome_ ? "thingmuxd closed the connection: " : "thingmuxd refused the connection: ") +
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
    const auto asked = static_cast<std::uint16_t>(transport_.version());
    if (w.version != asked) {
        drop_connection("thingmuxd answered in protocol version " + std::to_string(w.version) +
                            ", this library asked for version " + std::to_string(asked),
                        ipc::errc::unsupported_version);
        return;
    }
    transport_.disarm_timer();
    backoff_.reset();
    uplink_ = ipc::state{w.link, {}, false, 0};
    uplink_known_ = true;
    welcome_ = std::move(w);
    daemon_state_ = daemon_state::connected;
    daemon_reason_.clear();
    daemon_retry_in_ = std::chrono::milliseconds{0};
    // Filters the daemon held on the previous connection, ahead of anything queued meanwhile.
    requests_.push_front(subscriptions_.resubscribe_requests(max_frame()));
    send_backlog();
    emit_state();
    complete_connect_waiters(make_result(error_code::ok, "connected to thingmuxd " + welcome_->daemon_version +
                                                             " (Thing " + welcome_->thing + ", client " +
                                                             welcome_->connection_id + ")"));
}

void core::on_publish_result(ipc::publish_result&& r) {
    auto req = requests_.complete(r.request_id, {request_kind::publish});
    if (!req) {
        return;  // not ours (IPC-25 makes this a daemon bug); nothing waits for it
    }
    queue_completion(std::move(req->done), from_ipc(std::move(r.outcome)));
    send_backlog();  // a publish slot opened
}

void core::on_subscribe_result(ipc::subscribe_result&& r) {
    if (request* early = requests_.in_flight(r.request_id); early != nullptr && early->awaits_registration) {
        // IPC-61: registered. The app's wait ends here; the request stays in flight for the final
        // answer (IPC-62), which settles it like a resubscribe: a refusal then is a lost filter.
        early->awaits_registration = false;
        early->kind = request_kind::resubscribe;
        result res = r.results.empty() ? make_result(error_code::internal_error, "thingmuxd sent no result")
                                       : from_ipc(std::move(r.results.front()));
        if (!res.ok()) {
            subscriptions_.settle(early->filters.front(), false);
        }
        queue_completion(std::move(early->done), std::move(res));
        early->done = nullptr;
        return;
    }
    auto req = requests_.complete(r.request_id, {request_kind::subscribe, request_kind::resubscribe});
    if (!req) {
        return;
    }
    std::shared_ptr<const subscription_lost_handler> lost;
    {
        std::lock_guard lk(mailbox_mutex_);
        lost = lost_handler_;
    }
    std::optional<result> first;
    for (std::size_t i = 0; i < req->filters.size(); ++i) {
        const auto& ref = req->filters[i];
        result res = i < r.results.size()
                         ? from_ipc(std::move(r.results[i]))
                         : make_result(error_code::internal_error,
                                       "thingmuxd sent " + std::to_string(r.results.size()) + " results for " +
                                           std::to_string(req->filters.size()) + " filters");
        const bool current = subscriptions_.settle(ref, res.ok());
        // The app's own subscribe whose wait ended (timeout, cancel) is told like a resubscribe.
        const bool unwaited = req->kind == request_kind::resubscribe || (req->gate && req->gate->finished.load());
        if (!res.ok() && current && unwaited && lost) {
            ready_.push_back({[lost, f = ref.filter, res] { (*lost)(f, res); }, false});
        }
        if (!first) {
            first = std::move(res);
        }
    }
    if (req->kind == request_kind::subscribe && first) {
        queue_completion(std::move(req->done), std::move(*first));
    }
}

void core::on_unsubscribe_result(ipc::unsubscribe_result&& r) {
    auto req = requests_.complete(r.request_id, {request_kind::unsubscribe});
    if (!req) {
        return;
    }
    queue_completion(std::move(req->done), r.results.empty()
                                               ? make_result(error_code::internal_error, "thingmuxd sent no result")
                                               : from_ipc(std::move(r.results.front())));
}

void core::on_message(ipc::message&& m) {
    // The daemon sends one frame per message even when several filters match (IPC-31); each
    // matching handler gets it, in filter order. A delivery to a session is acknowledged once
    // they all returned (IPC-44); one nobody handles any more at once.
    auto handlers = subscriptions_.handlers_for(m.topic);
    if (!handlers.empty() || unmatched_taken()) return dispatch(std::move(handlers), std::move(m));
    // A session's delivery no handler takes yet is held for one; any other was for a filter the
    // app dropped while it was on its way (message_scope::all listeners still see it).
    if (m.delivery_id != 0) {
        unclaimed_.push_back(std::move(m));
        return;
    }
    dispatch({}, std::move(m));
}

bool core::unmatched_taken() const {
    {
        std::lock_guard lk(mailbox_mutex_);
        for (const auto& [id, l] : message_listeners_) {
            if (l.scope == message_scope::unmatched) {
                return true;
            }
        }
    }
    std::lock_guard lk(consume_mutex_);
    return consuming_;
}

bool core::push_consumed(const message& m, std::uint64_t connection, std::uint32_t delivery_id) {
    {
        std::lock_guard lk(consume_mutex_);
        if (!consuming_ || consume_closed_) {
            return false;
        }
        // A session's QoS 1 delivery is never dropped: unacknowledged, it is bounded by the
        // daemon (IPC-44), which sends no more once the app holds its limit of them.
        if (consume_queue_.size() >= consume_capacity_ && delivery_id == 0) {
            consume_dropped_.fetch_add(1, std::memory_order_relaxed);
            return true;
        }
        consume_queue_.push_back({m, connection, delivery_id});
    }
    consume_ready_.notify_one();
    return true;
}

void core::claim(const std::string* unsubscribed) {
    std::erase_if(unclaimed_, [&](ipc::message& m) {
        if (unsubscribed != nullptr && topic_matches_unchecked(*unsubscribed, m.topic)) {
            acknowledge(transport_.connection(), m.delivery_id);
            return true;
        }
        auto handlers = subscriptions_.handlers_for(m.topic);
        if (handlers.empty() && !unmatched_taken()) return false;
        dispatch(std::move(handlers), std::move(m));
        return true;
    });
}

void core::dispatch(std::vector<subscription_registry::handler_ptr> handlers, ipc::message&& m) {
    const auto connection = transport_.connection();
    auto delivery_id = m.delivery_id;
    const bool matched = !handlers.empty();
    {
        // After the subscription handlers: the listeners of every message, and (when no
        // handler took it) those of the unmatched ones, in the order they were added.
        std::lock_guard lk(mailbox_mutex_);
        for (const auto& [id, l] : message_listeners_) {
            if (l.scope == message_scope::all || !matched) {
                handlers.push_back(l.handler);
            }
        }
    }
    auto msg = std::make_shared<const message>(from_ipc(std::move(m)));
    if (!matched && push_consumed(*msg, connection, delivery_id)) {
        delivery_id = 0;  // consume() acknowledges it
    }
    if (handlers.empty()) {
        acknowledge(connection, delivery_id);
        return;
    }
    ready_.push_back({[this, hs = std::move(handlers), msg, connection, delivery_id] {
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
                          acknowledge(connection, delivery_id);
                      },
                      false});
}

void core::acknowledge(std::uint64_t connection, std::uint32_t delivery_id) {
    // A delivery id belongs to its connection: after a reconnect the daemon delivers the message
    // again, with another id.
    if (delivery_id == 0 || closed_ || !welcome_ || transport_.connection() != connection) {
        return;
    }
    transport_.queue(ipc::ack{delivery_id});
    transport_.flush();
}

void core::on_state_frame(ipc::state&& s) {
    uplink_ = std::move(s);
    uplink_known_ = true;
    emit_state();
}

// ---------------------------------------------------------------------------------------------
// The end of a connection, the end of the client

void core::drop_connection(const std::string& reason, std::optional<ipc::errc> refusal) {
    if (welcome_) {
        version_ceiling_ = ipc::wire_version::v3;  // the daemon may come back upgraded
    }
    transport_.close();
    transport_.disarm_timer();
    welcome_.reset();
    uplink_known_ = false;
    unclaimed_.clear();  // their ids were this connection's; the daemon delivers them again

    // Requests in flight: a publish's outcome is unknown; a subscribe is sent again when
    // waiting for the daemon, else failed; an unsubscribe is done (the connection's
    // subscriptions are gone); a resubscribe (it has no completion) is rebuilt from the
    // registry after the next welcome. Without reconnects nothing would bring the daemon back,
    // so nothing waits.
    const bool waiting = opts_.wait_for_daemon && opts_.reconnect;
    const result rebuilt_later{};
    failure_plan in_flight;
    in_flight
        .fail(request_kind::publish,
              make_result(error_code::session_closed, "the connection to thingmuxd ended before the result came (" +
                                                          reason + "); the message may or may not have been published"))
        .fail(request_kind::unsubscribe,
              make_result(error_code::ok, "the connection to thingmuxd ended, which dropped the subscription"))
        .fail(request_kind::resubscribe, rebuilt_later);
    if (waiting) {
        requests_.requeue_in_flight(request_kind::subscribe);
    } else {
        in_flight.fail(
            request_kind::subscribe,
            make_result(error_code::session_closed, "the connection to thingmuxd ended before the result came (" +
                                                        reason + "); the filter is not held"));
    }
    const auto failed = [this](request&& r, const result& res) { complete_failed(std::move(r), res); };
    requests_.fail(pending_in::in_flight, in_flight, failed);
    requests_.fail(
        pending_in::backlog,
        waiting ? failure_plan{}.fail(request_kind::resubscribe, rebuilt_later)
                : failure_plan::all(make_result(error_code::not_connected, "not connected to thingmuxd: " + reason)),
        failed);

    daemon_state_ = daemon_state::unavailable;
    daemon_reason_ = reason;
    daemon_retry_in_ = std::chrono::milliseconds{0};
    if (opts_.reconnect && want_connection_) {
        daemon_retry_in_ = backoff_.next();
        transport_.arm_timer(timer_purpose::reconnect, daemon_retry_in_);
    }
    emit_state();

    if (!connect_waiters_.empty() && (!waiting || (refusal && definitive_refusal(*refusal)))) {
        const auto code =
            refusal ? static_cast<error_code>(static_cast<std::uint16_t>(*refusal)) : error_code::daemon_unavailable;
        complete_connect_waiters(make_result(code, reason));
    }
}

void core::shutdown_locked() {
    if (closed_) {
        return;
    }
    std::vector<command> commands;
    {
        std::lock_guard lk(mailbox_mutex_);
        closed_ = true;
        commands.swap(commands_);
        command_bytes_ = 0;
        snapshot_ = state{};
        snapshot_.daemon = daemon_state::closed;
        info_snapshot_.reset();
        state_handler_.reset();
        lost_handler_.reset();
        state_listeners_.clear();
        message_listeners_.clear();
    }
    {
        std::lock_guard lk(consume_mutex_);
        consume_closed_ = true;
        consume_queue_.clear();
    }
    consume_ready_.notify_all();
    transport_.close();
    transport_.disarm_timer();
    want_connection_ = false;
    welcome_.reset();
    daemon_state_ = daemon_state::closed;
    daemon_reason_.clear();
    subscriptions_.clear();

    // Completions already decided keep their result; everything still open completes with
    // `closed`. Message and state events not yet run are dropped: no handler after close().
    std::vector<ready_item> decided;
    for (auto& item : ready_) {
        if (item.completion) {
            decided.push_back(std::move(item));
        }
    }
    ready_.clear();
    std::vector<completion_handler> open;
    for (auto& w : connect_waiters_) {
        open.push_back(std::move(w));
    }
    connect_waiters_.clear();
    const auto closed_result = make_result(error_code::closed, "the client was closed before the request completed");
    requests_.fail(pending_in::anywhere, failure_plan::all(closed_result),
                   [&open](request&& r, const result&) { open.push_back(std::move(r.done)); });
    for (auto& c : commands) {
        open.push_back(std::move(done_of(c)));
    }
    for (auto& [at, fn] : timers_) {
        open.push_back([f = std::move(fn)](const result& r) { f(&r); });
    }
    timers_.clear();
    transport_.arm_deadline(std::nullopt);

    for (const auto& item : decided) {
        try {
            item.run();
        } catch (...) {
            // see call_quietly()
        }
    }
    for (auto& done : open) {
        call_quietly(done, closed_result);
    }
}

}  // namespace thingmux::detail
