// The apps: section of the configuration (docs/config.md "apps — authorization"): who may
// publish, subscribe and receive what, with ${...} variables in the filters.
#include "config/parser.hpp"
#include "config/topic_filter.hpp"

#include <algorithm>
#include <limits>

namespace thingmux::config::detail {
namespace {

constexpr std::uint64_t max_id = std::numeric_limits<std::uint32_t>::max() - 1;  // (uid_t)-1 means "none"

constexpr std::array<std::string_view, 7> app_keys{"name", "match", "things", "publish", "subscribe", "receive", "admin"};
constexpr std::array<std::string_view, 6> match_keys{"unit", "user", "uid", "group", "gid", "mqtt_user"};

}  // namespace

std::vector<std::string> parser::filter_list(const YAML::Node& node, const std::string& path) {
    std::vector<std::string> out;
    const auto items = sequence(node, path, "[\"dt/${thing}/#\"]");
    if (!items) return out;
    for (std::size_t i = 0; i < items->size(); ++i) {
        const auto item_path = path + "[" + std::to_string(i) + "]";
        const auto& item = (*items)[i];
        auto s = string(item, item_path);
        if (!s) continue;
        if (check_filter(item, item_path, *s)) out.push_back(std::move(*s));
    }
    return out;
}

bool parser::check_filter(const YAML::Node& node, const std::string& path, const std::string& filter) {
    static constexpr std::array<std::string_view, 4> names{"thing", "unit", "user", "uid"};
    std::string probe;
    std::size_t pos = 0;
    while (pos < filter.size()) {
        const auto start = filter.find("${", pos);
        if (start == std::string::npos) break;
        const auto end = filter.find('}', start + 2);
        if (end == std::string::npos) {
            error(node, path, "'" + filter + "': '${' without a closing '}'", "variables are ${thing} ${unit} ${user} ${uid}");
            return false;
        }
        const auto name = std::string_view(filter).substr(start + 2, end - start - 2);
        if (std::find(names.begin(), names.end(), name) == names.end()) {
            const auto suggestion = closest(name, names);
            error(node, path, "'" + filter + "': unknown variable '${" + std::string(name) + "}'",
                  suggestion.empty() ? "variables are ${thing} ${unit} ${user} ${uid}"
                                     : "did you mean '${" + suggestion + "}'?");
            return false;
        }
        probe.append(filter, pos, start - pos);
        probe += 'v';
        pos = end + 1;
    }
    if (pos < filter.size()) probe.append(filter, pos);
    if (const auto problem = topic_filter_problem(probe); !problem.empty()) {
        error(node, path, "'" + filter + "' is not a valid MQTT topic filter: " + problem,
              "levels are separated by '/'; '+' is one whole level, '#' the last one");
        return false;
    }
    return true;
}

app_rule parser::parse_app(const YAML::Node& node, const std::string& path, const std::vector<thing>& things) {
    app_rule r;
    r.where = location_of(node);
    const auto f = mapping(node, path, app_keys);
    if (!f) return r;
    const auto p = [&](std::string_view key) { return path + "." + std::string(key); };
    if (const auto* x = find(*f, "name")) {
        r.where = location_of(x->value);
        if (auto s = string(x->value, p("name"))) {
            if (s->size() > 128) {
                error(x->value, p("name"), "is longer than 128 bytes");
            } else {
                r.name = *s;
            }
        }
    } else {
        report(r.where, p("name"), "missing required key 'name'", "name the rule (it appears in denial messages), e.g. name: sensors");
    }
    if (const auto* x = find(*f, "match")) {
        if (const auto m = mapping(x->value, p("match"), match_keys)) {
            if (m->empty()) {
                error(x->value.IsNull() ? x->key : x->value, p("match"), "must name at least one of " + join(match_keys),
                      "a rule for everybody is not possible; e.g. match: {unit: sensor.service}");
            }
            if (const auto* y = find(*m, "unit")) r.match.unit = string(y->value, p("match.unit"));
            if (const auto* y = find(*m, "user")) r.match.user = string(y->value, p("match.user"));
            if (const auto* y = find(*m, "group")) r.match.group = string(y->value, p("match.group"));
            if (const auto* y = find(*m, "mqtt_user")) r.match.mqtt_user = string(y->value, p("match.mqtt_user"));
            if (const auto* y = find(*m, "uid")) {
                if (auto v = integer(y->value, p("match.uid"), 0, max_id)) r.match.uid = static_cast<uid_t>(*v);
            }
            if (const auto* y = find(*m, "gid")) {
                if (auto v = integer(y->value, p("match.gid"), 0, max_id)) r.match.gid = static_cast<gid_t>(*v);
            }
        }
    } else {
        report(r.where, p("match"), "missing required key 'match'", "say whom the rule is for, e.g. match: {unit: sensor.service}");
    }
    if (const auto* x = find(*f, "things")) {
        const auto items = sequence(x->value, p("things"), "[gateway-01]");
        if (items) {
            for (std::size_t i = 0; i < items->size(); ++i) {
                if (auto s = thing_name((*items)[i], p("things") + "[" + std::to_string(i) + "]", things))
                    r.things.push_back(std::move(*s));
            }
        }
    }
    if (const auto* x = find(*f, "publish")) r.publish = filter_list(x->value, p("publish"));
    if (const auto* x = find(*f, "subscribe")) r.subscribe = filter_list(x->value, p("subscribe"));
    if (const auto* x = find(*f, "receive")) {
        r.receive = filter_list(x->value, p("receive"));
    } else {
        r.receive = r.subscribe;
    }
    if (const auto* x = find(*f, "admin")) {
        if (auto v = boolean(x->value, p("admin"))) r.admin = *v;
    }
    // An admin-only rule grants management, which is something.
    if (find(*f, "publish") == nullptr && find(*f, "subscribe") == nullptr && find(*f, "receive") == nullptr &&
        find(*f, "admin") == nullptr) {
        report(r.where, path, "the rule grants nothing", "add publish:, subscribe: or receive: filters, or admin: true", true);
    }
    return r;
}

}  // namespace thingmux::config::detail
