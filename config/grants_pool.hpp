// One copy of each distinct set of grants, shared by the local sessions that have it: the
// clients of one app on one Thing get equal grants from the rules, and each would otherwise keep
// its own copy of every expanded filter (hundreds of bytes per idle client). Pure.
#pragma once

#include "config/authorization.hpp"

#include <cstddef>
#include <memory>
#include <unordered_map>

namespace thingmux::config {

using shared_grants = std::shared_ptr<const grants>;

// Grants of nothing: what a session has before its rules were looked up.
[[nodiscard]] const shared_grants& no_grants();

class grants_pool {
public:
    // The copy of `g` in use, or `g` itself, now shared, when no session holds an equal set.
    [[nodiscard]] shared_grants share(grants g);
    // Sets the pool remembers (in use, or released since the last sweep).
    [[nodiscard]] std::size_t size() const noexcept { return pool_.size(); }

private:
    // Forgets the sets no session holds any more; called as the pool grows, so that it stays
    // within twice the sets in use.
    void sweep();

    std::unordered_multimap<std::size_t, std::weak_ptr<const grants>> pool_;  // by hash of the grants
    std::size_t sweep_at_ = 64;
};

}  // namespace thingmux::config
