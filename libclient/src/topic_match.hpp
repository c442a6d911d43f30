// Topic matching without validating the arguments again, for the dispatch hot path: filters
// were validated when subscribed, topics by the daemon.
#pragma once

#include "common/topic.hpp"

#include <string_view>

namespace thingmux::detail {

[[nodiscard]] inline bool topic_matches_unchecked(std::string_view filter, std::string_view topic) noexcept {
    return topic::matches(filter, topic);
}

}  // namespace thingmux::detail
