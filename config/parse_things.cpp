// The things: section of the configuration (docs/config.md "things"): one MQTT connection each.
#include "config/authorization.hpp"
#include "config/parser.hpp"

#include <algorithm>
#include <cctype>

namespace thingmux::config::detail {
namespace {

using std::string_view_literals::operator""sv;

constexpr auto aws_keep_alive_min = std::chrono::seconds{30};
constexpr auto aws_keep_alive_max = std::chrono::seconds{1200};
constexpr std::uint64_t mqtt_max_packet = 268'435'455;  // largest MQTT remaining length

bool is_aws_endpoint(const std::string& host) {
    constexpr auto suffix = ".amazonaws.com"sv;
    return host.size() > suffix.size() && host.ends_with(suffix);
}

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

constexpr std::array<std::string_view, 31> thing_keys{
    "name",           "endpoint", "port",         "client_id",       "protocol",          "ca",
    "cert",           "key",      "alpn",         "keep_alive",      "session_expiry",    "backoff",
    "connect_timeout", "limits",  "local_topics", "proxy",           "proxy_credentials", "proxy_ca",
    "auth",           "region",   "aws_credentials", "custom_authorizer", "transport",
    "key_pin",        "pkcs12",   "pkcs12_password", "provisioning", "rotation",
    "jobs", "coverage", "services"};
constexpr std::array<std::string_view, 15> limit_keys{"max_payload",         "max_topic_length", "max_topic_levels",
                                                      "qos2",                "retain",           "publishes_per_second",
                                                      "bytes_per_second",    "subscriptions",    "subscriptions_per_second",
                                                      "inflight",            "filters_per_subscribe", "max_packet",
                                                      "overlap_copies",      "retained_messages", "retained_bytes"};
constexpr std::array<std::string_view, 2> backoff_keys{"base", "cap"};

}  // namespace

bool parser::only_thing_variable(std::string_view text) {
    std::string others(text);
    for (std::size_t at; (at = others.find("${thing}")) != std::string::npos;) others.erase(at, 8);
    return others.find("${") == std::string::npos;
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
    if (const auto* x = find(*f, "transport")) {
        static constexpr std::array<choice<transport_mode>, 2> choices{{{"mqtt", transport_mode::mqtt}, {"websocket", transport_mode::websocket}}};
        if (auto v = enumeration(x->value, p("transport"), choices)) t.transport = *v;
    }
    if (t.transport == transport_mode::websocket) t.port = 443;  // wss://ENDPOINT/mqtt
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
    parse_auth(*f, path, t);
    // A custom authorizer or AWS credentials prove the identity instead of a client certificate
    // (one may still be sent), unless the credentials come from the AWS IoT credentials provider,
    // which takes the Thing's certificate in exchange for them.
    const bool uses_provider =
        std::any_of(t.aws_credentials.begin(), t.aws_credentials.end(), [](const aws_credential_source& s) {
            return s.type == aws_credential_source::kind::iot_credentials_provider;
        });
    const bool certificate_optional = t.auth != auth_method::x509 && !uses_provider;
    parse_credentials(*f, path, t, certificate_optional);
    parse_identity(*f, path, t);
    parse_services(*f, path, t);
    parse_jobs(*f, path, t);
    if (const auto* x = find(*f, "alpn")) {
        t.alpn = string_list(x->value, p("alpn"), "[x-amzn-mqtt-ca]");
        for (const auto& a : t.alpn) {
            if (a.size() > 255) error(x->value, p("alpn"), "an ALPN protocol name is longer than 255 bytes");
        }
        check_custom_authorizer_alpn(x->value, p("alpn"), t);
    } else if (t.port == 443 && t.transport == transport_mode::mqtt) {
        // MQTT on 443 with a client certificate (docs/connecting.md); AWS IoT Core takes a custom
        // authorizer's MQTT connection on 443 only with ALPN "mqtt".
        t.alpn = {t.auth == auth_method::custom_authorizer ? "mqtt" : "x-amzn-mqtt-ca"};
    }
    if (const auto* x = find(*f, "local_topics")) {
        // ${thing} is the one variable with a meaning here; the filters are the Thing's, not an app's.
        for (auto& filter : filter_list(x->value, p("local_topics"))) {
            auto expanded = expand(filter, {.thing = t.name, .unit = {}, .user = {}, .uid = {}});
            if (!only_thing_variable(filter))
                error(x->value, p("local_topics"), "'" + filter + "' uses a variable other than ${thing}",
                      "local topics belong to the Thing: only ${thing} can be expanded here");
            else if (expanded.starts_with("$share/"))
                error(x->value, p("local_topics"), "'" + filter + "' is a shared subscription", "write a topic filter");
            else
                t.local_topics.push_back(std::move(expanded));
        }
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
    parse_proxy(*f, path, t);
    if (const auto* x = find(*f, "limits")) parse_limits(x->value, p("limits"), t);
    parse_coverage(*f, path, t);
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
    if (const auto* x = find(*f, "retained_messages")) {
        if (auto v = count(x->value, p("retained_messages"), 0, 1'000'000, false); v && *v)
            l.retained_messages = static_cast<std::size_t>(**v);
    }
    if (const auto* x = find(*f, "retained_bytes")) {
        if (auto v = size(x->value, p("retained_bytes"), 0, std::uint64_t{1} << 32U, false); v && *v)
            l.retained_bytes = static_cast<std::size_t>(**v);
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

}  // namespace thingmux::config::detail
