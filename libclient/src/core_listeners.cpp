// The core's listeners (state, subscription lost, catch-all messages) and the pull-style consume
// queue: what the app registers from any thread, under the mailbox and consume mutexes.
#include "core.hpp"

#include <poll.h>

#include <algorithm>
#include <utility>

namespace thingmux::detail {

void core::set_state_handler(state_handler h) {
    auto p = h ? std::make_shared<const state_handler>(std::move(h)) : nullptr;
    std::lock_guard lk(mailbox_mutex_);
    state_handler_ = std::move(p);
}

void core::set_subscription_lost_handler(subscription_lost_handler h) {
    auto p = h ? std::make_shared<const subscription_lost_handler>(std::move(h)) : nullptr;
    std::lock_guard lk(mailbox_mutex_);
    lost_handler_ = std::move(p);
}

listener_id core::add_state_listener(state_handler h) {
    auto p = std::make_shared<const state_handler>(std::move(h));
    std::lock_guard lk(mailbox_mutex_);
    const listener_id id = next_listener_id_++;
    if (*p && !closed_) {
        state_listeners_.emplace(id, std::move(p));
    }
    return id;
}

bool core::remove_state_listener(listener_id id) {
    std::lock_guard lk(mailbox_mutex_);
    return state_listeners_.erase(id) > 0;
}

listener_id core::add_message_listener(message_handler h, message_scope scope) {
    auto p = std::make_shared<const message_handler>(std::move(h));
    std::lock_guard lk(mailbox_mutex_);
    const listener_id id = next_listener_id_++;
    if (*p && !closed_) {
        message_listeners_.emplace(id, message_listener{std::move(p), scope});
    }
    return id;
}

bool core::remove_message_listener(listener_id id) {
    std::lock_guard lk(mailbox_mutex_);
    return message_listeners_.erase(id) > 0;
}

void core::start_consuming(const consume_options& o) {
    std::lock_guard lk(consume_mutex_);
    if (consume_closed_) {
        return;
    }
    consuming_ = true;
    consume_capacity_ = std::max<std::size_t>(o.capacity, 1);
}

void core::stop_consuming() {
    std::deque<consumed> dropped;
    {
        std::lock_guard lk(consume_mutex_);
        consuming_ = false;
        dropped.swap(consume_queue_);
    }
    consume_ready_.notify_all();
}

std::optional<message> core::consume(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + std::max(timeout, std::chrono::milliseconds{0});
    // From a handler the loop cannot run while we wait: take only what is there. (Not a word
    // to lifecycle_mutex_ then: close() may hold it, joining this very thread.)
    const bool in_handler = on_loop_thread();
    bool driven = false;  // the app drives the client (no start()): consume() drives it while it waits
    if (!in_handler) {
        std::lock_guard life(lifecycle_mutex_);
        driven = !started_;
    }
    std::optional<consumed> got;
    const auto take = [&] {
        if (!consume_queue_.empty()) {
            got = std::move(consume_queue_.front());
            consume_queue_.pop_front();
        }
        return got.has_value() || consume_closed_ || !consuming_;
    };
    if (driven) {
        for (;;) {
            process();
            {
                std::lock_guard lk(consume_mutex_);
                if (take()) {
                    break;
                }
            }
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                break;
            }
            pollfd p{transport_.epoll_fd(), POLLIN, 0};
            static_cast<void>(::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 60'000))));
        }
    } else {
        std::unique_lock lk(consume_mutex_);
        const auto until = in_handler ? std::chrono::steady_clock::now() : deadline;
        static_cast<void>(consume_ready_.wait_until(lk, until, take));
    }
    if (!got) {
        return std::nullopt;
    }
    if (got->delivery_id != 0) {
        submit(ack_cmd{got->connection, got->delivery_id, {}});
    }
    return std::move(got->msg);
}

client_counters core::counters() const {
    return {timed_out_count_.load(), cancelled_count_.load(), late_results_.load(), consume_dropped_.load()};
}

}  // namespace thingmux::detail
