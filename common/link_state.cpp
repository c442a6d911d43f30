#include "common/link_state.hpp"

#include <array>
#include <cstddef>

namespace thingmux {

namespace {

struct spelling {
    const char* name;
    const char* label;
};

// In enumerator order.
constexpr std::array<spelling, 5> spellings{{
    {"connecting", "connecting"},
    {"connected", "connected"},
    {"backing_off", "backing-off"},
    {"failed", "failed"},
    {"stopped", "stopped"},
}};
static_assert(spellings.size() == static_cast<std::size_t>(last_link_state) + 1);

}  // namespace

const char* link_state_name(link_state s) noexcept {
    const auto i = static_cast<std::size_t>(s);
    return i < spellings.size() ? spellings[i].name : "unknown";
}

const char* link_state_label(link_state s) noexcept {
    const auto i = static_cast<std::size_t>(s);
    return i < spellings.size() ? spellings[i].label : "unknown";
}

}  // namespace thingmux
