#include "daemon/mqtt/outbound_topic_aliases.hpp"

namespace thingmux::mqtt {

std::optional<std::uint16_t> outbound_topic_aliases::known(std::string_view topic) {
    const auto it = by_topic_.find(topic);
    if (it == by_topic_.end()) return std::nullopt;
    by_use_.splice(by_use_.begin(), by_use_, it->second);
    return it->second->alias;
}

std::optional<std::uint16_t> outbound_topic_aliases::assign(std::string_view topic) {
    if (maximum_ == 0) return std::nullopt;
    if (by_use_.size() < maximum_) {
        by_use_.push_front({std::string{topic}, static_cast<std::uint16_t>(by_use_.size() + 1)});
    } else {
        // The least recently used alias changes hands; its old topic goes from the index before
        // the string its key views changes.
        by_topic_.erase(by_use_.back().topic);
        by_use_.splice(by_use_.begin(), by_use_, std::prev(by_use_.end()));
        by_use_.front().topic.assign(topic);
    }
    by_topic_.emplace(by_use_.front().topic, by_use_.begin());
    return by_use_.front().alias;
}

void outbound_topic_aliases::reset(std::uint16_t maximum) {
    by_topic_.clear();
    by_use_.clear();
    maximum_ = maximum;
}

}  // namespace thingmux::mqtt
