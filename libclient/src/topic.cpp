#include "thingmux/topic.hpp"

#include "common/topic.hpp"

namespace thingmux {

bool valid_topic_name(std::string_view topic) noexcept { return topic::valid_name(topic); }

bool valid_topic_filter(std::string_view filter) noexcept { return topic::valid_filter(filter); }

bool topic_matches(std::string_view filter, std::string_view topic) noexcept {
    return topic::valid_filter(filter) && topic::valid_name(topic) && topic::matches(filter, topic);
}

}  // namespace thingmux
