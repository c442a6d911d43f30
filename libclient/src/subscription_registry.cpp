#include "subscription_registry.hpp"

#include "ipc/codec.hpp"
#include "topic_match.hpp"

#include <utility>

namespace thingmux::detail {

subscription_ref subscription_registry::add(std::string filter, std::uint8_t qos, message_handler handler) {
    const std::uint64_t generation = next_generation_++;
    entries_.insert_or_assign(
        filter, entry{std::make_shared<const message_handler>(std::move(handler)), qos, generation, false});
    return {std::move(filter), generation};
}

void subscription_registry::remove(std::string_view filter) {
    if (const auto it = entries_.find(filter); it != entries_.end()) {
        entries_.erase(it);
    }
}

std::map<std::string, subscription_registry::entry, std::less<>>::iterator subscription_registry::find_current(
    const subscription_ref& ref) {
    const auto it = entries_.find(ref.filter);
    return it != entries_.end() && it->second.generation == ref.generation ? it : entries_.end();
}

bool subscription_registry::forget(const subscription_ref& ref) {
    const auto it = find_current(ref);
    if (it == entries_.end()) {
        return false;
    }
    entries_.erase(it);
    return true;
}

bool subscription_registry::settle(const subscription_ref& ref, bool accepted) {
    const auto it = find_current(ref);
    if (it == entries_.end()) {
        return false;
    }
    if (accepted) {
        it->second.active = true;
    } else {
        entries_.erase(it);
    }
    return true;
}

bool subscription_registry::active(std::string_view filter) const {
    const auto it = entries_.find(filter);
    return it != entries_.end() && it->second.active;
}

std::vector<subscription_registry::handler_ptr> subscription_registry::handlers_for(std::string_view topic) const {
    std::vector<handler_ptr> out;
    for (const auto& [filter, e] : entries_) {
        if (*e.handler && topic_matches_unchecked(filter, topic)) {  // empty: left to the listeners
            out.push_back(e.handler);
        }
    }
    return out;
}

std::vector<request> subscription_registry::resubscribe_requests(std::size_t max_frame) const {
    constexpr std::size_t frame_base = ipc::frame_header_size + 4 + 2;  // request id + count
    constexpr std::size_t max_entries = 0xFFFF;
    std::vector<request> batches;
    request cur;
    cur.kind = request_kind::resubscribe;
    cur.frame = ipc::subscribe{};
    cur.size = frame_base;
    for (const auto& [filter, e] : entries_) {
        if (!e.active) {
            continue;
        }
        const std::size_t entry_size = 2 + filter.size() + 1;  // length-prefixed filter + QoS
        if (!cur.filters.empty() && (cur.size + entry_size > max_frame ||
                                     std::get<ipc::subscribe>(cur.frame).subscriptions.size() >= max_entries)) {
            batches.push_back(std::exchange(cur, request{}));
            cur.kind = request_kind::resubscribe;
            cur.frame = ipc::subscribe{};
            cur.size = frame_base;
        }
        std::get<ipc::subscribe>(cur.frame).subscriptions.push_back({filter, e.qos});
        cur.filters.push_back({filter, e.generation});
        cur.size += entry_size;
    }
    if (!cur.filters.empty()) {
        batches.push_back(std::move(cur));
    }
    return batches;
}

}  // namespace thingmux::detail
