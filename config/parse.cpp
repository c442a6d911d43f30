// YAML -> configuration. Walks the yaml-cpp node tree with a fixed schema: every key is looked
// up in a known list (unknown keys are errors with a suggestion), every value is checked for
// type, syntax and range, and every problem is collected with the node's position.
#include "config/config.hpp"
#include "config/topic_filter.hpp"
#include "config/values.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <sstream>
#include <limits>
#include <set>
#include <utility>

namespace thingmux::config {
namespace {

using detail::closest;
using detail::parse_duration;
using detail::parse_size;
using detail::parse_uint;
using std::string_view_literals::operator""sv;

constexpr auto aws_keep_alive_min = std::chrono::seconds{30};
constexpr auto aws_keep_alive_max = std::chrono::seconds{1200};
constexpr std::uint64_t mqtt_max_packet = 268'435'455;  // largest MQTT remaining length
constexpr std::uint64_t max_id = std::numeric_limits<std::uint32_t>::max() - 1;  // (uid_t)-1 means "none"

source_location location_of(const YAML::Node& n) {
    const auto m = n.Mark();
    if (m.is_null() || m.line < 0 || m.column < 0) return {};
    return {m.line + 1, m.column + 1};
}

std::string kind_of(const YAML::Node& n) {
    switch (n.Type()) {
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Scalar: {
        auto s = n.Scalar();
        if (s.size() > 40) s = s.substr(0, 37) + "...";
        return "'" + s + "'";
    }
    default: return "nothing";
    }
}

std::string join(std::span<const std::string_view> words) {
    std::string out;
    for (const auto w : words) out += (out.empty() ? "" : ", ") + std::string(w);
    return out;
}

bool is_aws_endpoint(const std::string& host) {
    constexpr auto suffix = ".amazonaws.com"sv;
    return host.size() > suffix.size() && host.ends_with(suffix);
}

struct field {
    YAML::Node key;
    YAML::Node value;
};
using fields = std::vector<std::pair<std::string, field>>;

const field* find(const fields& f, std::string_view key) {
    for (const auto& [k, v] : f) {
        if (k == key) return &v;
    }
    return nullptr;
}

template <class E>
struct choice {
    std::string_view name;
    E value;
};

class parser {
public:
    explicit parser(std::string file) : file_(std::move(file)) {}

    std::vector<diagnostic> diagnostics;

    void report(source_location at, std::string path, std::string message, std::string hint, bool warning = false) {
        diagnostics.push_back(diagnostic{file_, at.line, at.column, std::move(path), std::move(message), std::move(hint), warning});
    }
    void error(const YAML::Node& at, std::string path, std::string message, std::string hint = {}) {
        report(location_of(at), std::move(path), std::move(message), std::move(hint));
    }
    void warn(const YAML::Node& at, std::string path, std::string message, std::string hint = {}) {
        report(location_of(at), std::move(path), std::move(message), std::move(hint), true);
    }
    [[nodiscard]] bool has_errors() const {
        return std::any_of(diagnostics.begin(), diagnostics.end(), [](const diagnostic& d) { return !d.warning; });
    }

    // The keys of a mapping (null counts as empty); unknown and repeated keys are reported.
    std::optional<fields> mapping(const YAML::Node& node, const std::string& path, std::span<const std::string_view> known) {
        if (node.IsNull()) return fields{};
        if (!node.IsMap()) {
            error(node, path, "expected a mapping (key: value lines), got " + kind_of(node));
            return std::nullopt;
        }
        fields out;
        for (auto it = node.begin(); it != node.end(); ++it) {
            const YAML::Node key = it->first;
            const std::string sub = path.empty() ? "" : path + ".";
            if (!key.IsScalar()) {
                error(key, path, "a key must be a plain name, got " + kind_of(key));
                continue;
            }
            const auto& name = key.Scalar();
            if (std::find(known.begin(), known.end(), name) == known.end()) {
                const auto suggestion = closest(name, known);
                error(key, sub + name, "unknown key '" + name + "'",
                      suggestion.empty() ? "known keys here: " + join(known) : "did you mean '" + suggestion + "'?");
                continue;
            }
            if (const auto* first = find(out, name)) {
                error(key, sub + name, "key '" + name + "' is given twice",
                      "the first one is at line " + std::to_string(location_of(first->key).line));
                continue;
            }
            out.emplace_back(name, field{key, it->second});
        }
        return out;
    }

    // A sequence (null counts as empty).
    std::optional<std::vector<YAML::Node>> sequence(const YAML::Node& node, const std::string& path, std::string_view example) {
        if (node.IsNull()) return std::vector<YAML::Node>{};
        if (!node.IsSequence()) {
            error(node, path, "expected a list, got " + kind_of(node), "write e.g. " + std::string(example));
            return std::nullopt;
        }
        std::vector<YAML::Node> out;
        for (auto it = node.begin(); it != node.end(); ++it) out.push_back(*it);
        return out;
    }

    std::optional<std::string> scalar(const YAML::Node& node, const std::string& path, std::string_view what) {
        if (!node.IsScalar()) {
            error(node, path, "expected " + std::string(what) + ", got " + kind_of(node));
            return std::nullopt;
        }
        return node.Scalar();
    }

    std::optional<std::string> string(const YAML::Node& node, const std::string& path, bool allow_empty = false) {
        auto s = scalar(node, path, "a string");
        if (s && s->empty() && !allow_empty) {
            error(node, path, "must not be empty");
            return std::nullopt;
        }
        if (s && s->find('\0') != std::string::npos) {
            error(node, path, "must not contain a NUL character");
            return std::nullopt;
        }
        return s;
    }

    std::optional<std::uint64_t> integer(const YAML::Node& node, const std::string& path, std::uint64_t min, std::uint64_t max) {
        const auto s = scalar(node, path, "a whole number");
        if (!s) return std::nullopt;
        const auto range = std::to_string(min) + ".." + std::to_string(max);
        const auto v = parse_uint(*s);
        if (!v) {
            if (!s->empty() && s->front() == '-' && parse_uint(s->substr(1))) {
                error(node, path, "out of range: " + *s, "allowed: " + range);
            } else {
                error(node, path, "expected a whole number, got " + kind_of(node), "allowed: " + range);
            }
            return std::nullopt;
        }
        if (*v < min || *v > max) {
            error(node, path, "out of range: " + *s, "allowed: " + range);
            return std::nullopt;
        }
        return v;
    }

    // Number of bytes; `unlimited` -> engaged optional holding nullopt.
    std::optional<std::optional<std::uint64_t>> size(const YAML::Node& node, const std::string& path, std::uint64_t min,
                                                    std::uint64_t max, bool allow_unlimited) {
        const auto s = scalar(node, path, "a size");
        if (!s) return std::nullopt;
        if (*s == "unlimited") {
            if (allow_unlimited) return std::optional<std::uint64_t>{};
            error(node, path, "'unlimited' is not allowed here", "every client-controlled resource needs a limit");
            return std::nullopt;
        }
        const auto v = parse_size(*s);
        if (!v.value) {
            error(node, path, "invalid size: " + v.problem, v.hint);
            return std::nullopt;
        }
        if (*v.value < min || *v.value > max) {
            error(node, path, "out of range: " + *s, "allowed: " + std::to_string(min) + ".." + std::to_string(max) + " bytes" +
                                                          (allow_unlimited ? " or \"unlimited\"" : ""));
            return std::nullopt;
        }
        return std::optional<std::uint64_t>{*v.value};
    }

    // A count; `unlimited` -> engaged optional holding nullopt.
    std::optional<std::optional<std::uint64_t>> count(const YAML::Node& node, const std::string& path, std::uint64_t min,
                                                     std::uint64_t max, bool allow_unlimited) {
        if (node.IsScalar() && node.Scalar() == "unlimited") {
            if (allow_unlimited) return std::optional<std::uint64_t>{};
            error(node, path, "'unlimited' is not allowed here", "allowed: " + std::to_string(min) + ".." + std::to_string(max));
            return std::nullopt;
        }
        const auto v = integer(node, path, min, max);
        if (!v) {
            if (allow_unlimited && !diagnostics.empty()) diagnostics.back().hint += " or \"unlimited\"";
            return std::nullopt;
        }
        return std::optional<std::uint64_t>{*v};
    }

    std::optional<duration> time(const YAML::Node& node, const std::string& path, duration min, duration max) {
        const auto s = scalar(node, path, "a duration");
        if (!s) return std::nullopt;
        const auto v = parse_duration(*s);
        if (!v.value) {
            error(node, path, "invalid duration: " + v.problem, v.hint);
            return std::nullopt;
        }
        if (*v.value < min || *v.value > max) {
            error(node, path, "out of range: " + *s, "allowed: " + describe(min) + ".." + describe(max));
            return std::nullopt;
        }
        return v.value;
    }

    static std::string describe(duration d) {
        const auto ms = d.count();
        if (ms % 3'600'000 == 0 && ms != 0) return std::to_string(ms / 3'600'000) + "h";
        if (ms % 60'000 == 0 && ms != 0) return std::to_string(ms / 60'000) + "m";
        if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
        return std::to_string(ms) + "ms";
    }

    std::optional<std::chrono::seconds> whole_seconds(const YAML::Node& node, const std::string& path, std::chrono::seconds max) {
        const auto v = time(node, path, duration{0}, max);
        if (!v) return std::nullopt;
        if (v->count() % 1000 != 0) {
            error(node, path, "must be whole seconds, got " + kind_of(node), "MQTT counts this in seconds");
            return std::nullopt;
        }
        return std::chrono::duration_cast<std::chrono::seconds>(*v);
    }

    template <class E, std::size_t N>
    std::optional<E> enumeration(const YAML::Node& node, const std::string& path, const std::array<choice<E>, N>& choices) {
        std::array<std::string_view, N> names{};
        for (std::size_t i = 0; i < N; ++i) names[i] = choices[i].name;
        const auto s = scalar(node, path, "one of " + join(names));
        if (!s) return std::nullopt;
        for (const auto& c : choices) {
            if (c.name == *s) return c.value;
        }
        const auto suggestion = closest(*s, names);
        error(node, path, "'" + *s + "' is not one of " + join(names),
              suggestion.empty() ? std::string{} : "did you mean '" + suggestion + "'?");
        return std::nullopt;
    }

    std::optional<std::filesystem::path> absolute_path(const YAML::Node& node, const std::string& path) {
        const auto s = string(node, path);
        if (!s) return std::nullopt;
        if (s->front() != '/') {
            error(node, path, "'" + *s + "' is not an absolute path", "write the full path, starting with '/'");
            return std::nullopt;
        }
        return std::filesystem::path(*s);
    }

    std::vector<std::string> string_list(const YAML::Node& node, const std::string& path, std::string_view example) {
        std::vector<std::string> out;
        const auto items = sequence(node, path, example);
        if (!items) return out;
        for (std::size_t i = 0; i < items->size(); ++i) {
            if (auto s = string((*items)[i], path + "[" + std::to_string(i) + "]")) out.push_back(std::move(*s));
        }
        return out;
    }

    // A grant filter: ${...} variables must be known and closed; with them replaced it must be a
    // valid MQTT topic filter.
    std::vector<std::string> filter_list(const YAML::Node& node, const std::string& path) {
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

    bool check_filter(const YAML::Node& node, const std::string& path, const std::string& filter) {
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

    configuration parse_root(const YAML::Node& root);

private:
    thing parse_thing(const YAML::Node& node, const std::string& path);
    void parse_limits(const YAML::Node& node, const std::string& path, thing& t);
    app_rule parse_app(const YAML::Node& node, const std::string& path, const std::vector<thing>& things);
    void parse_ipc(const YAML::Node& node, ipc_settings& s);
    void parse_spool(const YAML::Node& node, spool_settings& s);
    void parse_log(const YAML::Node& node, log_settings& s);

    std::string file_;
};

bool valid_thing_name(const std::string& s) {
    if (s.empty() || s.size() > 128) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' || c == '_' || c == '-';
    });
}

// Empty when `host` is a plausible DNS name, IPv4 or IPv6 literal.
std::string host_problem(const std::string& host) {
    if (host.find("://") != std::string::npos) return "has a scheme";
    if (host.find(':') != std::string::npos) {
        const bool ipv6 = std::all_of(host.begin(), host.end(), [](char c) {
            return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
        });
        return ipv6 ? "" : "has a port or is not an IPv6 address";
    }
    if (host.size() > 253) return "is longer than 253 characters";
    std::size_t start = 0;
    while (start <= host.size()) {
        auto dot = host.find('.', start);
        if (dot == std::string::npos) dot = host.size();
        const auto label = std::string_view(host).substr(start, dot - start);
        if (label.empty() || label.size() > 63) return "has an empty or over-long label";
        if (label.front() == '-' || label.back() == '-') return "has a label that starts or ends with '-'";
        for (const char c : label) {
            if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-') return "contains '" + std::string(1, c) + "'";
        }
        start = dot + 1;
    }
    return {};
}

constexpr std::array<std::string_view, 5> root_keys{"things", "apps", "ipc", "spool", "log"};
constexpr std::array<std::string_view, 14> thing_keys{"name",       "endpoint",       "port",    "client_id",
                                                      "protocol",   "ca",             "cert",    "key",
                                                      "alpn",       "keep_alive",     "session_expiry",
                                                      "backoff",    "connect_timeout", "limits"};
constexpr std::array<std::string_view, 13> limit_keys{"max_payload",         "max_topic_length", "max_topic_levels",
                                                      "qos2",                "retain",           "publishes_per_second",
                                                      "bytes_per_second",    "subscriptions",    "subscriptions_per_second",
                                                      "inflight",            "filters_per_subscribe", "max_packet",
                                                      "overlap_copies"};
constexpr std::array<std::string_view, 2> backoff_keys{"base", "cap"};
constexpr std::array<std::string_view, 6> app_keys{"name", "match", "things", "publish", "subscribe", "receive"};
constexpr std::array<std::string_view, 5> match_keys{"unit", "user", "uid", "group", "gid"};
constexpr std::array<std::string_view, 10> ipc_keys{"socket",          "mode",           "group",           "max_clients",
                                                    "max_clients_per_uid", "client_queue", "client_queue_total",
                                                    "client_subscriptions", "client_inflight", "hello_timeout"};
constexpr std::array<std::string_view, 5> spool_keys{"path", "max_bytes", "max_messages", "overflow", "offline_qos0"};
constexpr std::array<std::string_view, 2> log_keys{"level", "target"};

configuration parser::parse_root(const YAML::Node& root) {
    configuration c;
    if (root.IsNull()) {
        report({1, 1}, "", "the configuration is empty", "it needs at least 'things:' with one Thing");
        return c;
    }
    const auto top = mapping(root, "", root_keys);
    if (!top) return c;
    const auto* things = find(*top, "things");
    if (things == nullptr) {
        report(location_of(root), "things", "missing required key 'things'", "list at least one Thing: things: [{name: ..., endpoint: ...}]");
    } else if (const auto items = sequence(things->value, "things", "things: [{name: gateway-01, endpoint: ..., ca: ..., cert: ..., key: ...}]")) {
        if (items->empty()) error(things->key, "things", "at least one Thing is required", "add an entry under things:");
        for (std::size_t i = 0; i < items->size(); ++i) c.things.push_back(parse_thing((*items)[i], "things[" + std::to_string(i) + "]"));
        // Names and client ids must be unique: one connection per client id.
        for (std::size_t i = 0; i < c.things.size(); ++i) {
            for (std::size_t j = 0; j < i; ++j) {
                const auto& a = c.things[j];
                const auto& b = c.things[i];
                const auto at = [&](const char* key) {
                    const auto f = b.fields.find(key);
                    return f != b.fields.end() ? f->second : b.where;
                };
                const auto first = " first used by things[" + std::to_string(j) + "] at line " + std::to_string(a.where.line);
                if (!a.name.empty() && a.name == b.name) {
                    report(at("name"), "things[" + std::to_string(i) + "].name", "duplicate Thing name '" + b.name + "'",
                           "each Thing is listed once;" + first);
                } else if (!a.client_id.empty() && a.client_id == b.client_id) {
                    report(at(b.fields.contains("client_id") ? "client_id" : "name"), "things[" + std::to_string(i) + "].client_id",
                           "duplicate client id '" + b.client_id + "'",
                           "a broker allows one connection per client id, so two Things would disconnect each other;" + first);
                }
            }
        }
    }
    if (const auto* apps = find(*top, "apps")) {
        if (const auto items = sequence(apps->value, "apps", "apps: [{name: sensors, match: {unit: sensor.service}, publish: [...]}]")) {
            for (std::size_t i = 0; i < items->size(); ++i) {
                c.apps.push_back(parse_app((*items)[i], "apps[" + std::to_string(i) + "]", c.things));
                const auto& b = c.apps.back();
                for (std::size_t j = 0; j < i; ++j) {
                    if (!b.name.empty() && c.apps[j].name == b.name) {
                        report(b.where, "apps[" + std::to_string(i) + "].name", "duplicate rule name '" + b.name + "'",
                               "rule names appear in denial messages and must be unique; first used by apps[" +
                                   std::to_string(j) + "] at line " + std::to_string(c.apps[j].where.line));
                        break;
                    }
                }
            }
        }
    }
    if (const auto* f = find(*top, "ipc")) parse_ipc(f->value, c.ipc);
    if (const auto* f = find(*top, "spool")) parse_spool(f->value, c.spool);
    if (const auto* f = find(*top, "log")) parse_log(f->value, c.log);
    return c;
}

thing parser::parse_thing(const YAML::Node& node, const std::string& path) {
    thing t;
    t.where = location_of(node);
    const auto f = mapping(node, path, thing_keys);
    if (!f) return t;
    for (const auto& [k, v] : *f) t.fields[k] = location_of(v.value);
    const auto p = [&](std::string_view key) { return path + "." + std::string(key); };
    const auto required = [&](std::string_view key, std::string_view hint) -> const field* {
        const auto* x = find(*f, key);
        if (x == nullptr) report(t.where, p(key), "missing required key '" + std::string(key) + "'", std::string(hint));
        return x;
    };

    if (const auto* x = required("name", "the AWS IoT Thing name, e.g. name: gateway-01")) {
        if (auto s = string(x->value, p("name"))) {
            if (valid_thing_name(*s)) {
                t.name = *s;
            } else {
                error(x->value, p("name"), "'" + *s + "' is not a valid Thing name",
                      "1 to 128 characters from a-z A-Z 0-9 : _ -");
            }
        }
    }
    if (const auto* x = required("endpoint", "the broker's host name, e.g. XXXX-ats.iot.eu-west-1.amazonaws.com")) {
        if (auto s = string(x->value, p("endpoint"))) {
            if (const auto problem = host_problem(*s); problem.empty()) {
                t.endpoint = *s;
            } else {
                error(x->value, p("endpoint"), "'" + *s + "' is not a host name or IP address: it " + problem,
                      "write only the host (no scheme, no port; the port goes in port:)");
            }
        }
    }
    if (const auto* x = find(*f, "port")) {
        if (auto v = integer(x->value, p("port"), 1, 65535)) t.port = static_cast<std::uint16_t>(*v);
    }
    t.client_id = t.name;
    if (const auto* x = find(*f, "client_id")) {
        if (auto s = string(x->value, p("client_id"))) {
            if (s->size() > 128) {
                error(x->value, p("client_id"), "is " + std::to_string(s->size()) + " bytes long", "AWS IoT Core allows at most 128 bytes");
            } else {
                t.client_id = *s;
            }
        }
    }
    if (const auto* x = find(*f, "protocol")) {
        static constexpr std::array<choice<protocol_version>, 2> choices{{{"mqtt5", protocol_version::mqtt5}, {"mqtt311", protocol_version::mqtt311}}};
        if (auto v = enumeration(x->value, p("protocol"), choices)) t.protocol = *v;
    }
    for (const auto& [key, target] : {std::pair{"ca"sv, &t.ca}, {"cert"sv, &t.cert}, {"key"sv, &t.key}}) {
        if (const auto* x = required(key, "the path of the PEM file, e.g. " + std::string(key) + ": /etc/thingmux/...")) {
            // A systemd credential (LoadCredential= in the unit): read from $CREDENTIALS_DIRECTORY.
            const auto s = x->value.IsScalar() ? x->value.Scalar() : std::string{};
            if (s.starts_with(credential_prefix)) {
                const auto name = s.substr(credential_prefix.size());
                if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
                    error(x->value, p(key), "'" + s + "' does not name a credential", "write credential:NAME, NAME as in LoadCredential=NAME:...");
                else
                    *target = s;
            } else if (auto v = absolute_path(x->value, p(key))) {
                *target = *v;
            }
        }
    }
    if (const auto* x = find(*f, "alpn")) {
        t.alpn = string_list(x->value, p("alpn"), "[x-amzn-mqtt-ca]");
        for (const auto& a : t.alpn) {
            if (a.size() > 255) error(x->value, p("alpn"), "an ALPN protocol name is longer than 255 bytes");
        }
    } else if (t.port == 443) {
        t.alpn = {"x-amzn-mqtt-ca"};
    }
    if (const auto* x = find(*f, "keep_alive")) {
        if (auto v = whole_seconds(x->value, p("keep_alive"), std::chrono::seconds{65535})) {
            t.keep_alive = *v;
            if (*v < aws_keep_alive_min || *v > aws_keep_alive_max) {
                warn(x->value, p("keep_alive"), "AWS IoT Core clamps keep-alive to 30s..1200s",
                     v->count() == 0 ? "0 turns keep-alive off; a dead link then goes unnoticed"
                                     : "fine for other brokers; AWS IoT Core will use the nearest bound");
            }
        }
    }
    if (const auto* x = find(*f, "session_expiry")) {
        if (x->value.IsScalar() && x->value.Scalar() == "unlimited") {
            t.session_expiry.reset();
        } else if (auto v = whole_seconds(x->value, p("session_expiry"), std::chrono::seconds{4'294'967'294})) {
            t.session_expiry = *v;
        }
        if (t.protocol == protocol_version::mqtt311) {
            warn(x->value, p("session_expiry"), "has no effect with protocol mqtt311", "MQTT 3.1.1 has no session expiry; the broker decides");
        }
    }
    if (const auto* x = find(*f, "backoff")) {
        if (const auto b = mapping(x->value, p("backoff"), backoff_keys)) {
            for (const auto& [k, v] : *b) t.fields["backoff." + k] = location_of(v.value);
            const auto* base = find(*b, "base");
            const auto* cap = find(*b, "cap");
            if (base != nullptr) {
                if (auto v = time(base->value, p("backoff.base"), duration{1}, std::chrono::hours{1})) t.backoff_base = *v;
            }
            if (cap != nullptr) {
                if (auto v = time(cap->value, p("backoff.cap"), duration{1}, std::chrono::hours{1})) t.backoff_cap = *v;
            }
            if (t.backoff_base > t.backoff_cap) {
                const auto& at = cap != nullptr ? cap->value : base->value;
                error(at, p(cap != nullptr ? "backoff.cap" : "backoff.base"),
                      "backoff base (" + describe(t.backoff_base) + ") is larger than cap (" + describe(t.backoff_cap) + ")",
                      "base must be <= cap");
            }
        }
    }
    if (const auto* x = find(*f, "connect_timeout")) {
        if (auto v = time(x->value, p("connect_timeout"), duration{100}, std::chrono::minutes{10})) t.connect_timeout = *v;
    }
    if (const auto* x = find(*f, "limits")) parse_limits(x->value, p("limits"), t);
    return t;
}

void parser::parse_limits(const YAML::Node& node, const std::string& path, thing& t) {
    const auto f = mapping(node, path, limit_keys);
    if (!f) return;
    auto& l = t.limits;
    for (const auto& [k, v] : *f) t.fields["limits." + k] = location_of(v.value);
    const auto p = [&](std::string_view key) { return path + "." + std::string(key); };
    const auto as_size = [](std::optional<std::uint64_t> v) {
        return v ? std::optional<std::size_t>{static_cast<std::size_t>(*v)} : std::nullopt;
    };
    if (const auto* x = find(*f, "max_payload")) {
        if (auto v = size(x->value, p("max_payload"), 1, mqtt_max_packet, true)) l.max_payload = as_size(*v);
    }
    if (const auto* x = find(*f, "max_packet")) {
        if (auto v = size(x->value, p("max_packet"), 2, mqtt_max_packet, true)) l.max_packet = as_size(*v);
    }
    if (const auto* x = find(*f, "max_topic_length")) {
        if (auto v = count(x->value, p("max_topic_length"), 1, 65535, true)) l.max_topic_length = as_size(*v);
    }
    if (const auto* x = find(*f, "max_topic_levels")) {
        if (auto v = count(x->value, p("max_topic_levels"), 1, 65535, true)) l.max_topic_levels = as_size(*v);
    }
    if (const auto* x = find(*f, "qos2")) {
        static constexpr std::array<choice<qos2_policy>, 2> choices{{{"refuse", qos2_policy::refuse}, {"downgrade", qos2_policy::downgrade}}};
        if (auto v = enumeration(x->value, p("qos2"), choices)) l.qos2 = *v;
    }
    if (const auto* x = find(*f, "retain")) {
        static constexpr std::array<choice<retain_policy>, 2> choices{{{"allow", retain_policy::allow}, {"refuse", retain_policy::refuse}}};
        if (auto v = enumeration(x->value, p("retain"), choices)) l.retain = *v;
    }
    if (const auto* x = find(*f, "publishes_per_second")) {
        if (auto v = count(x->value, p("publishes_per_second"), 1, 1'000'000, true)) {
            l.publishes_per_second = *v ? std::optional<std::uint32_t>{static_cast<std::uint32_t>(**v)} : std::nullopt;
        }
    }
    if (const auto* x = find(*f, "bytes_per_second")) {
        if (auto v = size(x->value, p("bytes_per_second"), 1, std::uint64_t{1} << 40U, true)) l.bytes_per_second = *v;
    }
    if (const auto* x = find(*f, "subscriptions")) {
        if (auto v = count(x->value, p("subscriptions"), 1, 1'000'000, true)) l.subscriptions = as_size(*v);
    }
    if (const auto* x = find(*f, "subscriptions_per_second")) {
        if (auto v = count(x->value, p("subscriptions_per_second"), 1, 1'000'000, true)) {
            l.subscriptions_per_second = *v ? std::optional<std::uint32_t>{static_cast<std::uint32_t>(**v)} : std::nullopt;
        }
    }
    if (const auto* x = find(*f, "inflight")) {
        if (auto v = count(x->value, p("inflight"), 1, 65535, false); v && *v) {
            l.inflight = static_cast<std::uint16_t>(**v);
            if (l.inflight > 100 && is_aws_endpoint(t.endpoint)) {
                warn(x->value, p("inflight"), "AWS IoT Core allows 100 unacknowledged QoS 1 publishes per connection",
                     "keep it at most 100 (default 90) or the broker throttles the connection");
            }
        }
    }
    if (const auto* x = find(*f, "filters_per_subscribe")) {
        if (auto v = count(x->value, p("filters_per_subscribe"), 1, 65535, true)) l.filters_per_subscribe = as_size(*v);
    }
    if (const auto* x = find(*f, "overlap_copies")) {
        static constexpr std::array<choice<overlap_copies>, 2> choices{
            {{"per_subscription", overlap_copies::per_subscription}, {"one", overlap_copies::one}}};
        if (auto v = enumeration(x->value, p("overlap_copies"), choices)) l.overlap = *v;
    }
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
                const auto item_path = p("things") + "[" + std::to_string(i) + "]";
                auto s = string((*items)[i], item_path);
                if (!s) continue;
                const bool known = std::any_of(things.begin(), things.end(), [&](const thing& t) { return t.name == *s; });
                if (!known) {
                    std::vector<std::string_view> names;
                    for (const auto& t : things) names.push_back(t.name);
                    const auto suggestion = closest(*s, names);
                    error((*items)[i], item_path, "no Thing named '" + *s + "'",
                          suggestion.empty() ? "name one of the Things under things:" : "did you mean '" + suggestion + "'?");
                    continue;
                }
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
    if (find(*f, "publish") == nullptr && find(*f, "subscribe") == nullptr && find(*f, "receive") == nullptr) {
        report(r.where, path, "the rule grants nothing", "add publish:, subscribe: or receive: filters", true);
    }
    return r;
}

void parser::parse_ipc(const YAML::Node& node, ipc_settings& s) {
    const auto f = mapping(node, "ipc", ipc_keys);
    if (!f) return;
    if (const auto* x = find(*f, "socket")) {
        if (auto v = absolute_path(x->value, "ipc.socket")) {
            if (v->native().size() >= 108) {
                error(x->value, "ipc.socket", "is " + std::to_string(v->native().size()) + " bytes long",
                      "a Unix socket path must be shorter than 108 bytes");
            } else {
                s.socket = *v;
            }
        }
    }
    if (const auto* x = find(*f, "mode")) {
        if (auto v = scalar(x->value, "ipc.mode", "an octal mode")) {
            const bool octal = !v->empty() && v->size() <= 5 && std::all_of(v->begin(), v->end(), [](char c) { return c >= '0' && c <= '7'; });
            unsigned mode = 0;
            for (const char c : *v) mode = mode * 8 + static_cast<unsigned>(c - '0');
            if (!octal || mode > 07777) {
                error(x->value, "ipc.mode", "'" + *v + "' is not an octal file mode", "write it quoted, e.g. mode: \"0660\"");
            } else {
                s.mode = mode;
                if ((mode & 0600U) != 0600U) {
                    warn(x->value, "ipc.mode", "the owner cannot read and write the socket", "the usual mode is \"0660\"");
                }
            }
        }
    }
    if (const auto* x = find(*f, "group")) {
        if (auto v = string(x->value, "ipc.group", true)) s.group = *v;
    }
    if (const auto* x = find(*f, "max_clients")) {
        if (auto v = integer(x->value, "ipc.max_clients", 1, 65535)) s.max_clients = static_cast<std::size_t>(*v);
    }
    if (const auto* x = find(*f, "max_clients_per_uid")) {
        if (auto v = integer(x->value, "ipc.max_clients_per_uid", 1, 65535)) s.max_clients_per_uid = static_cast<std::size_t>(*v);
    }
    const auto* queue = find(*f, "client_queue");
    if (queue != nullptr) {
        if (auto v = size(queue->value, "ipc.client_queue", 64 * 1024, std::uint64_t{1} << 30U, false); v && *v) {
            s.client_queue = static_cast<std::size_t>(**v);
        }
    }
    const auto* total = find(*f, "client_queue_total");
    if (total != nullptr) {
        if (auto v = size(total->value, "ipc.client_queue_total", 1024 * 1024, std::uint64_t{1} << 36U, false); v && *v) {
            s.client_queue_total = static_cast<std::size_t>(**v);
        }
    }
    if (s.client_queue_total < s.client_queue) {
        // Reported where the operator wrote a value: the total when written, else the per-client size.
        const auto* at = total != nullptr ? total : queue;
        error(at->value, total != nullptr ? "ipc.client_queue_total" : "ipc.client_queue",
              "the queues of all clients together (client_queue_total, " + std::to_string(s.client_queue_total) +
                  " bytes) must hold at least one client's queue (client_queue, " + std::to_string(s.client_queue) + " bytes)",
              "raise ipc.client_queue_total or lower ipc.client_queue");
    }
    if (const auto* x = find(*f, "client_subscriptions")) {
        if (auto v = integer(x->value, "ipc.client_subscriptions", 1, 1'000'000)) s.client_subscriptions = static_cast<std::size_t>(*v);
    }
    if (const auto* x = find(*f, "client_inflight")) {
        if (auto v = integer(x->value, "ipc.client_inflight", 1, 1'000'000)) s.client_inflight = static_cast<std::size_t>(*v);
    }
    if (const auto* x = find(*f, "hello_timeout")) {
        if (auto v = time(x->value, "ipc.hello_timeout", duration{100}, std::chrono::minutes{10})) s.hello_timeout = *v;
    }
}

void parser::parse_spool(const YAML::Node& node, spool_settings& s) {
    const auto f = mapping(node, "spool", spool_keys);
    if (!f) return;
    if (const auto* x = find(*f, "path")) {
        if (auto v = absolute_path(x->value, "spool.path")) s.path = *v;
    }
    if (const auto* x = find(*f, "max_bytes")) {
        if (auto v = size(x->value, "spool.max_bytes", 64 * 1024, std::uint64_t{1} << 50U, true)) s.max_bytes = *v;
    }
    if (const auto* x = find(*f, "max_messages")) {
        if (auto v = count(x->value, "spool.max_messages", 1, std::uint64_t{1} << 40U, true)) s.max_messages = *v;
    }
    if (const auto* x = find(*f, "overflow")) {
        static constexpr std::array<choice<spool_overflow>, 2> choices{
            {{"reject", spool_overflow::reject}, {"drop_oldest_qos0", spool_overflow::drop_oldest_qos0}}};
        if (auto v = enumeration(x->value, "spool.overflow", choices)) s.overflow = *v;
    }
    if (const auto* x = find(*f, "offline_qos0")) {
        static constexpr std::array<choice<offline_qos0>, 2> choices{{{"drop", offline_qos0::drop}, {"queue", offline_qos0::queue}}};
        if (auto v = enumeration(x->value, "spool.offline_qos0", choices)) s.qos0 = *v;
    }
}

void parser::parse_log(const YAML::Node& node, log_settings& s) {
    const auto f = mapping(node, "log", log_keys);
    if (!f) return;
    if (const auto* x = find(*f, "level")) {
        static constexpr std::array<choice<log_level>, 5> choices{{{"trace", log_level::trace},
                                                                   {"debug", log_level::debug},
                                                                   {"info", log_level::info},
                                                                   {"warn", log_level::warn},
                                                                   {"error", log_level::error}}};
        if (auto v = enumeration(x->value, "log.level", choices)) s.level = *v;
    }
    if (const auto* x = find(*f, "target")) {
        static constexpr std::array<choice<log_target>, 3> choices{
            {{"auto", log_target::automatic}, {"journal", log_target::journal}, {"stderr", log_target::stderr_stream}}};
        if (auto v = enumeration(x->value, "log.target", choices)) s.target = *v;
    }
}

// Records where the first event of a document is.
class first_mark final : public YAML::EventHandler {
public:
    std::optional<source_location> at;
    void OnDocumentStart(const YAML::Mark& m) override { set(m); }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& m, YAML::anchor_t) override { set(m); }
    void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { set(m); }
    void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { set(m); }
    void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override { set(m); }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override { set(m); }
    void OnMapEnd() override {}

private:
    void set(const YAML::Mark& m) {
        if (!at && !m.is_null()) at = source_location{m.line + 1, m.column + 1};
    }
};

// Where a second YAML document starts, if there is one. May throw YAML::Exception.
std::optional<source_location> second_document(const std::string& text) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    first_mark first;
    if (!parser.HandleNextDocument(first)) return std::nullopt;
    first_mark second;
    if (!parser.HandleNextDocument(second)) return std::nullopt;
    return second.at.value_or(source_location{});
}

// YAML text must be Unicode without C0 control characters other than TAB, LF and CR. yaml-cpp
// does not enforce this and misbehaves on some of them (a NUL or 0x04 can make LoadAll produce
// documents forever), so bad bytes are refused before it sees them. Returns the position of the
// first bad byte and what it is.
std::optional<std::pair<source_location, std::string>> bad_character(std::string_view text) {
    int line = 1;
    std::size_t line_start = 0;
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        const auto here = [&] { return source_location{line, static_cast<int>(i - line_start) + 1}; };
        if (c == '\n') {
            ++line;
            line_start = ++i;
            continue;
        }
        if (c < 0x20 && c != '\t' && c != '\r') {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(c));
            return std::pair{here(), std::string("control character ") + hex};
        }
        if (c == 0x7F) return std::pair{here(), std::string("control character 0x7F")};
        std::size_t len = 1;
        if (c >= 0x80) {
            if ((c & 0xE0U) == 0xC0U && c >= 0xC2) len = 2;
            else if ((c & 0xF0U) == 0xE0U) len = 3;
            else if ((c & 0xF8U) == 0xF0U && c <= 0xF4) len = 4;
            else len = 0;
            bool ok = len != 0 && i + len <= text.size();
            for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(text[i + k]) & 0xC0U) == 0x80U;
            if (ok && len == 3) {
                const auto c1 = static_cast<unsigned char>(text[i + 1]);
                ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // overlong, surrogates
            }
            if (ok && len == 4) {
                const auto c1 = static_cast<unsigned char>(text[i + 1]);
                ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
            }
            if (!ok) return std::pair{here(), std::string("a byte that is not valid UTF-8")};
        }
        i += len;
    }
    return std::nullopt;
}

}  // namespace

load_result parse(std::string_view yaml_text, std::string file_name) {
    parser p(std::move(file_name));
    configuration c;
    if (const auto bad = bad_character(yaml_text)) {
        p.report(bad->first, "", "the file contains " + bad->second, "a configuration file is UTF-8 text; is this the right file?");
    } else {
        try {
            const std::string text(yaml_text);
            // Not YAML::LoadAll: on some malformed input it produces empty documents forever
            // (yaml-cpp 0.7, found by fuzz_config_load). Load() reads the first document; a
            // second one is detected by asking the parser for at most two documents.
            const auto root = YAML::Load(text);
            if (const auto second = second_document(text)) {
                p.report(*second, "", "the file holds more than one YAML document", "remove the '---' separator and what follows");
            }
            c = p.parse_root(root);
        } catch (const YAML::Exception& e) {
            const auto at = e.mark.is_null() ? source_location{} : source_location{e.mark.line + 1, e.mark.column + 1};
            p.report(at, "", "YAML syntax error: " + e.msg, "check the indentation and quoting around this position");
        }
    }
    load_result r;
    std::stable_sort(p.diagnostics.begin(), p.diagnostics.end(), [](const diagnostic& a, const diagnostic& b) {
        return std::pair{a.line, a.column} < std::pair{b.line, b.column};
    });
    r.diagnostics = std::move(p.diagnostics);
    if (std::none_of(r.diagnostics.begin(), r.diagnostics.end(), [](const diagnostic& d) { return !d.warning; })) {
        r.config = std::move(c);
    } else {
        r.partial = std::move(c);
    }
    return r;
}

}  // namespace thingmux::config
