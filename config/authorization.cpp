#include "config/authorization.hpp"

#include "config/topic_filter.hpp"

#include <algorithm>
#include <fnmatch.h>

namespace thingmux::config {
namespace {

// Calls f(name) for each ${name} in the filter; text without a closing brace is not a variable.
template <class F>
void for_each_variable(std::string_view filter, F f) {
    std::size_t pos = 0;
    while ((pos = filter.find("${", pos)) != std::string_view::npos) {
        const auto end = filter.find('}', pos + 2);
        if (end == std::string_view::npos) return;
        f(filter.substr(pos + 2, end - pos - 2));
        pos = end + 1;
    }
}

const std::string* value_of(std::string_view name, const variables& vars) {
    if (name == "thing") return &vars.thing;
    if (name == "unit") return &vars.unit;
    if (name == "user") return &vars.user;
    if (name == "uid") return &vars.uid;
    return nullptr;
}

bool glob_matches(const std::string& pattern, const std::string& text) {
    // FNM_NOESCAPE: systemd escapes characters in unit names with '\' ("foo\x2dbar.service").
    return ::fnmatch(pattern.c_str(), text.c_str(), FNM_NOESCAPE) == 0;
}

}  // namespace

variables variables::of(const peer& p, std::string_view thing) {
    return variables{.thing = std::string(thing), .unit = p.unit, .user = p.user, .uid = std::to_string(p.uid)};
}

bool matches(const app_rule& rule, const peer& p) {
    const auto& m = rule.match;
    if (!m.unit && !m.user && !m.uid && !m.group && !m.gid && !m.mqtt_user) return false;
    // A username counts only once its password was checked (the hub fills mqtt_user then).
    if (m.mqtt_user && (p.mqtt_user.empty() || *m.mqtt_user != p.mqtt_user)) return false;
    if (m.uid && *m.uid != p.uid) return false;
    if (m.user && (p.user.empty() || *m.user != p.user)) return false;
    if (m.gid && *m.gid != p.gid && std::find(p.groups.begin(), p.groups.end(), *m.gid) == p.groups.end()) return false;
    if (m.group && std::find(p.group_names.begin(), p.group_names.end(), *m.group) == p.group_names.end()) return false;
    if (m.unit && (p.unit.empty() || !glob_matches(*m.unit, p.unit))) return false;
    return true;
}

std::vector<const app_rule*> rules_for(const configuration& config, const peer& p, std::string_view thing) {
    std::vector<const app_rule*> out;
    for (const auto& rule : config.apps) {
        const bool for_thing = rule.things.empty() || std::find(rule.things.begin(), rule.things.end(), thing) != rule.things.end();
        if (for_thing && matches(rule, p)) out.push_back(&rule);
    }
    return out;
}

bool is_admin(const configuration& config, const peer& p) {
    if (p.uid == 0) return true;
    return std::any_of(config.apps.begin(), config.apps.end(),
                       [&](const app_rule& rule) { return rule.admin && matches(rule, p); });
}

std::string expand(std::string_view filter, const variables& vars) {
    std::string out;
    out.reserve(filter.size());
    std::size_t pos = 0;
    while (pos < filter.size()) {
        const auto start = filter.find("${", pos);
        if (start == std::string_view::npos) break;
        const auto end = filter.find('}', start + 2);
        if (end == std::string_view::npos) break;
        out.append(filter.substr(pos, start - pos));
        if (const auto* v = value_of(filter.substr(start + 2, end - start - 2), vars)) {
            out += *v;
        } else {
            out.append(filter.substr(start, end - start + 1));
        }
        pos = end + 1;
    }
    out.append(filter.substr(std::min(pos, filter.size())));
    return out;
}

bool expansion_unsafe(std::string_view filter, const variables& vars) {
    bool unsafe = false;
    for_each_variable(filter, [&](std::string_view name) {
        const auto* v = value_of(name, vars);
        if (v == nullptr || v->empty() || v->find_first_of(std::string_view("/+#\0", 4)) != std::string::npos) unsafe = true;
    });
    return unsafe;
}

grants grants_of(const std::vector<const app_rule*>& rules, const variables& vars) {
    grants g;
    auto add = [&vars](const std::vector<std::string>& from, std::vector<std::string>& to) {
        for (const auto& grant : from) {
            if (expansion_unsafe(grant, vars)) continue;
            auto filter = expand(grant, vars);
            if (topic_filter_problem(filter).empty()) to.push_back(std::move(filter));
        }
    };
    for (const auto* rule : rules) {
        g.rules.push_back(rule->name);
        add(rule->publish, g.publish);
        add(rule->subscribe, g.subscribe);
        add(rule->receive, g.receive);
    }
    return g;
}

grants grants_for(const configuration& config, const peer& p, std::string_view thing) {
    return grants_of(rules_for(config, p, thing), variables::of(p, thing));
}

bool allowed(const grants& g, action what, std::string_view topic_or_filter) {
    const bool is_filter = what == action::subscribe;
    if (!(is_filter ? topic_filter_problem(topic_or_filter) : topic_name_problem(topic_or_filter)).empty()) return false;
    const auto& filters = what == action::publish ? g.publish : what == action::subscribe ? g.subscribe : g.receive;
    return std::any_of(filters.begin(), filters.end(), [&](const std::string& f) {
        return is_filter ? filter_covers(f, topic_or_filter) : topic_matches(f, topic_or_filter);
    });
}

bool allowed(const std::vector<const app_rule*>& rules, action what, std::string_view topic_or_filter, const variables& vars) {
    return allowed(grants_of(rules, vars), what, topic_or_filter);
}

bool allowed_response_topic(const grants& g, std::string_view topic) {
    return allowed(g, action::subscribe, topic) && allowed(g, action::receive, topic);
}

std::string denial(const grants& g, refused what, std::string_view topic, std::string_view thing, std::string_view peer) {
    const std::string quoted = "'" + std::string(topic) + "'";
    const std::string on = " on Thing " + std::string(thing);
    std::string text = "not authorized to ";
    // The list of an apps: rule that would grant it, and how a filter there must relate to it.
    const char* list = "publish:";
    const char* relation = "matches";
    switch (what) {
    case refused::publish: text += "publish to " + quoted + on; break;
    case refused::subscribe:
        text += "subscribe to " + quoted + on;
        list = "subscribe:";
        relation = "covers";
        break;
    case refused::response_topic:
        text += "use " + quoted + " as the response topic" + on +
                " (a response topic must be a topic the app may subscribe to and receive)";
        list = "subscribe:";
        break;
    }
    const std::string grant = quoted + ", or a filter that " + relation + " it, ";
    const std::string also_receive = what == refused::response_topic ? " (and to receive:, where that rule lists receive:)" : "";
    if (g.rules.empty()) {
        return text + ": no rule under apps: in the thingmuxd configuration applies to " + std::string(peer) + on +
               "; add one whose match: names its unit, user, group or uid and whose " + list + " lists " + grant +
               "then reload thingmuxd";
    }
    std::string rules;
    for (const auto& r : g.rules) rules += (rules.empty() ? "" : ", ") + r;
    const std::string which = g.rules.size() == 1 ? "rule '" + g.rules.front() + "'" : "one of these rules";
    return text + ": none of the rules that apply (" + rules + ") grants it; add " + grant + "to " + list + also_receive +
           " of " + which + " under apps: in the thingmuxd configuration, then reload thingmuxd";
}

}  // namespace thingmux::config
