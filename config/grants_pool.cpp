#include "config/grants_pool.hpp"

#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace thingmux::config {
namespace {

std::size_t hash_of(const grants& g) noexcept {
    std::size_t h = 0;
    // The golden-ratio constant of boost::hash_combine; its low half on 32 bits mixes as well.
    constexpr auto golden = static_cast<std::size_t>(0x9e3779b97f4a7c15ULL);
    const auto mix = [&h](std::size_t v) { h ^= v + golden + (h << 6) + (h >> 2); };
    for (const auto* list : {&g.rules, &g.publish, &g.subscribe, &g.receive}) {
        mix(list->size());  // so that a filter moved from one list to the next changes the hash
        for (const auto& s : *list) mix(std::hash<std::string>{}(s));
    }
    return h;
}

}  // namespace

const shared_grants& no_grants() {
    static const shared_grants none = std::make_shared<const grants>();
    return none;
}

shared_grants grants_pool::share(grants g) {
    const std::size_t h = hash_of(g);
    const auto [first, last] = pool_.equal_range(h);
    for (auto it = first; it != last; ++it) {
        if (auto held = it->second.lock(); held && *held == g) return held;
    }
    if (pool_.size() >= sweep_at_) sweep();
    auto shared = std::make_shared<const grants>(std::move(g));
    pool_.emplace(h, shared);
    return shared;
}

void grants_pool::sweep() {
    std::erase_if(pool_, [](const auto& entry) { return entry.second.expired(); });
    sweep_at_ = std::max<std::size_t>(64, 2 * pool_.size());
}

}  // namespace thingmux::config
