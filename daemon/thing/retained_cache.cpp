#include "daemon/thing/retained_cache.hpp"

#include "common/topic.hpp"
#include "daemon/thing/outcome.hpp"

#include <algorithm>

namespace thingmux::thing {

namespace {

// What a local client receives of a message, nothing of the connection it came over (topic
// alias, subscription identifiers).
mqtt::publish stored_form(const mqtt::publish& m) {
    mqtt::publish out;
    out.topic = m.topic;
    out.payload = m.payload;
    out.qos = m.qos;
    out.retain = true;
    out.props = to_mqtt(to_ipc(m.props));
    return out;
}

// The part of a filter before its first wildcard level: every topic it matches starts with it.
std::string_view literal_prefix(std::string_view filter) noexcept {
    const auto wildcard = filter.find_first_of("+#");
    return wildcard == std::string_view::npos ? filter : filter.substr(0, wildcard);
}

}  // namespace

void retained_cache::set_limits(retained_limits limits) {
    limits_ = limits;
    evict_to_fit(0, 0);
}

void retained_cache::put(const mqtt::publish& m, time_point now) {
    if (auto it = by_topic_.find(m.topic); it != by_topic_.end()) remove(it);
    if (m.payload.empty()) return;
    entry e{.msg = stored_form(m), .stored = now, .written = next_write_++};
    const auto size = e.bytes();
    if (limits_.messages == 0 || size > limits_.bytes) {
        ++dropped_;
        return;
    }
    evict_to_fit(1, size);
    by_age_.emplace(e.written, m.topic);
    bytes_ += size;
    by_topic_.emplace(m.topic, std::move(e));
}

bool retained_cache::erase(std::string_view topic) {
    const auto it = by_topic_.find(topic);
    if (it == by_topic_.end()) return false;
    remove(it);
    return true;
}

bool retained_cache::forget_if_different(const mqtt::publish& m) {
    const auto it = by_topic_.find(m.topic);
    if (it == by_topic_.end()) return false;
    const auto& cached = it->second.msg;
    const auto same = stored_form(m);
    if (cached.payload == same.payload && cached.props == same.props) return false;
    remove(it);
    return true;
}

std::vector<mqtt::publish> retained_cache::matching(std::string_view filter, time_point now) {
    std::vector<std::pair<std::uint64_t, mqtt::publish>> found;
    const auto prefix = literal_prefix(filter);
    for (auto it = by_topic_.lower_bound(prefix); it != by_topic_.end() && it->first.starts_with(prefix);) {
        if (!topic::matches(filter, it->first)) {
            ++it;
            continue;
        }
        mqtt::publish out = it->second.msg;
        if (expired(it->second, now, &out)) {
            const auto gone = it++;
            remove(gone);
            continue;
        }
        found.emplace_back(it->second.written, std::move(out));
        ++it;
    }
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<mqtt::publish> out;
    out.reserve(found.size());
    for (auto& [written, m] : found) out.push_back(std::move(m));
    return out;
}

void retained_cache::remove(topic_map::iterator it) {
    bytes_ -= it->second.bytes();
    by_age_.erase(it->second.written);
    by_topic_.erase(it);
}

void retained_cache::evict_to_fit(std::size_t more_messages, std::size_t more_bytes) {
    while (!by_age_.empty() &&
           (by_topic_.size() + more_messages > limits_.messages || bytes_ + more_bytes > limits_.bytes)) {
        const auto oldest = by_age_.begin();
        remove(by_topic_.find(oldest->second));
        ++dropped_;
    }
}

bool retained_cache::expired(const entry& e, time_point now, mqtt::publish* out) {
    const auto& interval = e.msg.props.message_expiry_interval;
    if (!interval) return false;
    const auto waited = std::chrono::duration_cast<std::chrono::seconds>(now - e.stored).count();
    if (waited >= static_cast<std::int64_t>(*interval)) return true;
    out->props.message_expiry_interval = static_cast<std::uint32_t>(*interval - static_cast<std::uint32_t>(waited));
    return false;
}

}  // namespace thingmux::thing
