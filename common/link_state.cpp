#include "common/link_state.hpp"

#include <array>
#include <cstddef>

namespace thingmux {

namespace {

// In enumerator order.
constexpr std::array<const char*, 5> names{"connecting", "connected", "backing_off", "failed", "stopped"};
static_assert(names.size() == static_cast<std::size_t>(last_link_state) + 1);

}  // namespace

const char* link_state_name(link_state s) noexcept {
    const auto i = static_cast<std::size_t>(s);
    return i < names.size() ? names[i] : "unknown";
}

const char* link_state_label(link_state s) noexcept { return link_state_name(s); }

}  // namespace thingmux
