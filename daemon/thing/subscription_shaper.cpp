#include "daemon/thing/subscription_shaper.hpp"

namespace thingmux::thing {

namespace {

// One message token per filter; bytes are not what the broker counts for subscriptions.
shaper_limits limits_of(std::optional<std::uint32_t> filters_per_second) {
    return {.messages_per_second = filters_per_second, .bytes_per_second = std::nullopt};
}

}  // namespace

subscription_shaper::subscription_shaper(std::optional<std::uint32_t> filters_per_second, clock::time_point now)
    : queue_(limits_of(filters_per_second), now) {}

void subscription_shaper::set_rate(std::optional<std::uint32_t> filters_per_second, clock::time_point now) {
    queue_.set_limits(limits_of(filters_per_second), now);
}

void subscription_shaper::withdraw(std::map<std::string, pending, std::less<>>::iterator it) {
    const std::string& filter = it->first;
    const std::size_t removed =
        queue_.remove_if(it->second.client, [&](const operation& op) { return op.filter == filter; });
    if (removed > 0 && it->second.what == kind::unsubscribe) --unsubscribes_;
    waiting_.erase(it);
}

void subscription_shaper::subscribe(session_id client, const std::string& filter) {
    bool held = false;
    if (auto it = waiting_.find(filter); it != waiting_.end()) {
        if (it->second.what == kind::subscribe) return;  // already on its way
        withdraw(it);
        held = true;
    }
    waiting_.emplace(filter, pending{client, kind::subscribe, held});
    queue_.push(client, operation{kind::subscribe, filter}, 0);
}

bool subscription_shaper::unsubscribe(session_id client, const std::string& filter) {
    if (auto it = waiting_.find(filter); it != waiting_.end()) {
        const bool never_sent = it->second.what == kind::subscribe && !it->second.held_upstream;
        withdraw(it);
        if (never_sent) return false;
    }
    waiting_.emplace(filter, pending{client, kind::unsubscribe});
    queue_.push(client, operation{kind::unsubscribe, filter}, 0);
    ++unsubscribes_;
    return true;
}

std::optional<subscription_shaper::operation> subscription_shaper::pop(clock::time_point now) {
    auto next = queue_.pop(now);
    if (!next) return std::nullopt;
    waiting_.erase(next->item.filter);
    if (next->item.what == kind::unsubscribe) --unsubscribes_;
    return std::move(next->item);
}

std::optional<subscription_shaper::clock::duration> subscription_shaper::next_ready(clock::time_point now) const {
    return queue_.next_ready(now);
}

std::optional<subscription_shaper::kind> subscription_shaper::waiting(std::string_view filter) const {
    const auto it = waiting_.find(filter);
    if (it == waiting_.end()) return std::nullopt;
    return it->second.what;
}

}  // namespace thingmux::thing
