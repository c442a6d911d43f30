#include "daemon/metrics/app_counters.hpp"

#include "daemon/thing/pipeline.hpp"

namespace thingmux::metrics {

std::string app_name_of(const config::grants& rights) { return rights.rules.empty() ? "-" : rights.rules.front(); }

app_key app_counters::key_of(std::string_view thing, const config::grants& rights, const thing::session_owner& owner) const {
    app_key k{.thing = std::string(thing),
              .app = app_name_of(rights),
              .unit = owner.unit,
              .uid = owner.uid ? std::to_string(*owner.uid) : std::string{}};
    if (apps_.contains(k)) return k;
    if (own_series_ < max_series_) return k;
    k.unit = "other";
    k.uid = "other";
    return k;
}

app_traffic& app_counters::entry(std::string_view thing, const thing::local_session& s) {
    const auto flow = s.flow();
    const auto& rules = s.rights().rules;
    const std::string_view app = rules.empty() ? std::string_view("-") : std::string_view(rules.front());
    if (last_.traffic != nullptr && last_.session == &s && last_.flow == flow && last_.thing == thing && last_.app == app)
        return *last_.traffic;
    auto k = key_of(thing, s.rights(), s.owner());
    auto [it, added] = apps_.try_emplace(std::move(k));
    if (added) {
        if (it->first.unit == "other" && it->first.uid == "other")
            ++overflowed_;
        else
            ++own_series_;
    }
    if (flow != thing::pipeline::one_shot_flow) last_ = {&s, flow, std::string(thing), std::string(app), &it->second};
    return it->second;
}

void app_counters::publish_result(std::string_view thing, const thing::local_session& s, const ipc::result& result,
                                  std::size_t bytes) {
    auto& e = entry(thing, s);
    const std::string_view name = ipc::to_string(result.code);
    auto it = e.results.find(name);
    if (it == e.results.end()) it = e.results.emplace(std::string(name), app_traffic::by_result{}).first;
    ++it->second.publishes;
    it->second.bytes += bytes;
}

void app_counters::throttled(std::string_view thing, const thing::local_session& s) { ++entry(thing, s).throttle_waits; }

}  // namespace thingmux::metrics
