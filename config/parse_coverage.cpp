// things[].coverage (docs/config.md, docs/services.md): the upstream filters that serve
// every local subscription under them, so apps may hold more filters than the connection's quota.
#include "config/authorization.hpp"
#include "config/parser.hpp"
#include "config/topic_filter.hpp"

#include <algorithm>

namespace thingmux::config::detail {

void parser::parse_coverage(const fields& f, const std::string& path, thing& t) {
    const auto* x = find(f, "coverage");
    if (x == nullptr) return;
    const auto key = path + ".coverage";
    const auto items = sequence(x->value, key, "['cmd/${thing}/#', '$aws/things/${thing}/shadow/#']");
    if (!items) return;
    for (std::size_t i = 0; i < items->size(); ++i) {
        const auto item_path = key + "[" + std::to_string(i) + "]";
        const auto& item = (*items)[i];
        const auto written = string(item, item_path);
        if (!written || !check_filter(item, item_path, *written)) continue;
        if (!only_thing_variable(*written)) {
            error(item, item_path, "'" + *written + "' uses a variable other than ${thing}",
                  "coverage filters belong to the Thing: only ${thing} can be expanded here");
            continue;
        }
        auto filter = expand(*written, {.thing = t.name, .unit = {}, .user = {}, .uid = {}});
        if (topic::is_shared(filter)) {
            error(item, item_path, "'" + *written + "' is a shared subscription",
                  "a coverage filter is the Thing's own subscription: write a topic filter");
            continue;
        }
        if (std::find(t.coverage.begin(), t.coverage.end(), filter) != t.coverage.end()) {
            error(item, item_path, "'" + filter + "' is written twice", "write each coverage filter once");
            continue;
        }
        const auto local = std::find_if(t.local_topics.begin(), t.local_topics.end(),
                                        [&](const std::string& l) { return filter_covers(l, filter); });
        if (local != t.local_topics.end()) {
            error(item, item_path, "'" + filter + "' is within local_topics ('" + *local + "')",
                  "local topics never go upstream: a coverage filter there would serve nothing");
            continue;
        }
        const auto wider = std::find_if(t.coverage.begin(), t.coverage.end(), [&](const std::string& c) {
            return filter_covers(c, filter) || filter_covers(filter, c);
        });
        if (wider != t.coverage.end()) {
            const bool this_one_wider = filter_covers(filter, *wider);
            warn(item, item_path,
                 "'" + (this_one_wider ? *wider : filter) + "' is within coverage filter '" + (this_one_wider ? filter : *wider) + "'",
                 "the wider one serves everything under both; the narrower one is ignored");
        }
        t.coverage.push_back(std::move(filter));
    }
    // Each coverage filter in use is one upstream subscription.
    if (t.limits.subscriptions && t.coverage.size() > *t.limits.subscriptions) {
        warn(x->value, key,
             std::to_string(t.coverage.size()) + " coverage filters, but limits.subscriptions is " +
                 std::to_string(*t.limits.subscriptions),
             "each coverage filter in use takes one upstream subscription: those beyond the limit refuse the "
             "filters under them with quota_exceeded");
    }
}

}  // namespace thingmux::config::detail
