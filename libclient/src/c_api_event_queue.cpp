#include "c_api_event_queue.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <system_error>

#include <sys/eventfd.h>
#include <unistd.h>

namespace thingmux::detail {

event_queue::event_queue(std::size_t max_items, std::size_t max_bytes)
    : max_items_(std::max<std::size_t>(max_items, 1)), max_bytes_(std::max<std::size_t>(max_bytes, 1)) {
    fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd_ < 0) {
        throw std::system_error(errno, std::generic_category(), "eventfd");
    }
}

event_queue::~event_queue() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

bool event_queue::full_locked(std::size_t more_bytes) const noexcept {
    if (items_.empty()) {
        return false;
    }
    return items_.size() >= max_items_ || bytes_ + more_bytes > max_bytes_;
}

void event_queue::push_locked(item&& e) {
    const bool was_empty = items_.empty();
    bytes_ += e.bytes;
    items_.push_back(std::move(e));
    if (was_empty) {
        // Level-triggered: the counter is non-zero exactly while items_ is not empty (both
        // changed under m_). A write to an eventfd fails only when its counter would overflow.
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(fd_, &one, sizeof one);
    }
}

void event_queue::emptied_locked() noexcept {
    std::uint64_t value = 0;
    [[maybe_unused]] const auto n = ::read(fd_, &value, sizeof value);
}

void event_queue::push_waiting(item e) {
    std::unique_lock lk(m_);
    if (!closed_ && full_locked(e.bytes)) {
        ++waiting_;
        room_.wait(lk, [&] { return closed_ || !full_locked(e.bytes); });
        --waiting_;
    }
    push_locked(std::move(e));
}

void event_queue::push_now(item e) {
    std::lock_guard lk(m_);
    push_locked(std::move(e));
}

std::optional<event_queue::item> event_queue::pop() {
    std::optional<item> out;
    {
        std::lock_guard lk(m_);
        if (items_.empty()) {
            return out;
        }
        out.emplace(std::move(items_.front()));
        items_.pop_front();
        bytes_ -= out->bytes;
        if (items_.empty()) {
            emptied_locked();
        }
    }
    room_.notify_all();
    return out;
}

void event_queue::close() {
    {
        std::lock_guard lk(m_);
        closed_ = true;
    }
    room_.notify_all();
}

std::deque<event_queue::item> event_queue::take_all() {
    std::deque<item> out;
    {
        std::lock_guard lk(m_);
        out.swap(items_);
        bytes_ = 0;
        if (!out.empty()) {
            emptied_locked();
        }
    }
    room_.notify_all();
    return out;
}

std::size_t event_queue::size() const {
    std::lock_guard lk(m_);
    return items_.size();
}

std::size_t event_queue::bytes() const {
    std::lock_guard lk(m_);
    return bytes_;
}

std::size_t event_queue::waiting() const {
    std::lock_guard lk(m_);
    return waiting_;
}

}  // namespace thingmux::detail
