#include "daemon/thing/echo_table.hpp"

#include <algorithm>

namespace thingmux::thing {

void echo_table::expect(session_id publisher, std::uint64_t content) {
    if (capacity_ == 0) return;
    if (expected_.size() >= capacity_) {
        expected_.pop_front();
        ++overflowed_;
    }
    expected_.push_back({publisher, content});
}

void echo_table::cancel(session_id publisher, std::uint64_t content) {
    // The newest: an older one with the same content may still see its echo.
    const auto it = std::find_if(expected_.rbegin(), expected_.rend(), [&](const expectation& e) {
        return e.publisher == publisher && e.content == content;
    });
    if (it != expected_.rend()) expected_.erase(std::next(it).base());
}

std::optional<session_id> echo_table::take(std::uint64_t content) {
    const auto it =
        std::find_if(expected_.begin(), expected_.end(), [&](const expectation& e) { return e.content == content; });
    if (it == expected_.end()) return std::nullopt;
    const auto publisher = it->publisher;
    expected_.erase(it);
    return publisher;
}

void echo_table::forget(session_id publisher) {
    std::erase_if(expected_, [&](const expectation& e) { return e.publisher == publisher; });
}

}  // namespace thingmux::thing
