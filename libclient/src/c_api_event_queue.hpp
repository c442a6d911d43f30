// The C API's bounded queue of events between the library's thread (which produces them) and the
// app's thread (which runs their callbacks in thingmux_client_process()), with an eventfd that is
// readable exactly while the queue is not empty.
//
// Back-pressure, not loss: when a bound is reached, the library's thread waits in push_waiting()
// until the app takes events (or the queue is closed); an event the app's own thread produces
// (push_now()) never waits, since only that thread could make room. Pure apart from the eventfd:
// unit tests drive it from two threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

namespace thingmux::detail {

class event_queue {
public:
    struct item {
        std::function<void()> run;  // the callback, bound to its arguments
        std::size_t bytes = 0;      // what it holds (topic, payload, texts), for the byte bound
        bool completion = false;    // a request's completion: still run when the client is destroyed
    };

    // Creates the eventfd; throws std::system_error when it cannot. Bounds of at least 1.
    event_queue(std::size_t max_items, std::size_t max_bytes);
    ~event_queue();
    event_queue(const event_queue&) = delete;
    event_queue& operator=(const event_queue&) = delete;

    [[nodiscard]] int fd() const noexcept { return fd_; }

    // Queues `e`, first waiting while the queue is at a bound (an empty queue always takes one
    // event, however large) unless the queue is closed.
    void push_waiting(item e);
    // Queues `e` at once, past the bounds if need be.
    void push_now(item e);
    // The oldest event, if any; makes room for a waiting producer.
    [[nodiscard]] std::optional<item> pop();
    // Producers stop waiting, now and later (the client is being destroyed).
    void close();
    // Everything queued, oldest first; the queue is empty afterwards.
    [[nodiscard]] std::deque<item> take_all();

    [[nodiscard]] std::size_t size() const;
    [[nodiscard]] std::size_t bytes() const;
    // Producers waiting in push_waiting() now (for tests and the docs' promise of back-pressure).
    [[nodiscard]] std::size_t waiting() const;

private:
    [[nodiscard]] bool full_locked(std::size_t more_bytes) const noexcept;
    void push_locked(item&& e);
    void emptied_locked() noexcept;

    const std::size_t max_items_;
    const std::size_t max_bytes_;
    int fd_ = -1;
    mutable std::mutex m_;
    std::condition_variable room_;
    std::deque<item> items_;
    std::size_t bytes_ = 0;
    std::size_t waiting_ = 0;
    bool closed_ = false;
};

}  // namespace thingmux::detail
