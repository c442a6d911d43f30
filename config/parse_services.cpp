// A Thing's `services:` block (docs/config.md, docs/services.md): how its pipeline routes AWS
// IoT's Device Shadow and Jobs requests and their answers.
#include "config/parser.hpp"

namespace thingmux::config::detail {

namespace {

constexpr std::array<std::string_view, 3> services_keys{"request_timeout", "max_pending_per_session", "shadow_cache"};

}  // namespace

void parser::parse_services(const fields& f, const std::string& path, thing& t) {
    const auto* services = find(f, "services");
    if (services == nullptr) return;
    const auto p = [&](std::string_view key) { return path + ".services." + std::string(key); };
    const auto g = mapping(services->value, path + ".services", services_keys);
    if (!g) return;
    for (const auto& [k, v] : *g) t.fields["services." + k] = location_of(v.value);
    auto& s = t.services;
    if (const auto* x = find(*g, "request_timeout")) {
        if (auto v = time(x->value, p("request_timeout"), duration{1000}, std::chrono::minutes{10})) s.request_timeout = *v;
    }
    if (const auto* x = find(*g, "max_pending_per_session")) {
        if (auto v = count(x->value, p("max_pending_per_session"), 1, 10'000, false); v && *v)
            s.max_pending_per_session = static_cast<std::size_t>(**v);
    }
    if (const auto* x = find(*g, "shadow_cache")) {
        if (auto v = boolean(x->value, p("shadow_cache"))) s.shadow_cache = *v;
    }
}

}  // namespace thingmux::config::detail
