// A Thing's way of proving its identity to the broker (docs/config.md "things[].auth",
// docs/connecting.md): auth and custom_authorizer.
#include "common/custom_authorizer.hpp"
#include "config/parser.hpp"

#include <algorithm>
#include <tuple>

namespace thingmux::config::detail {
namespace {

using std::string_view_literals::operator""sv;

constexpr std::array<std::string_view, 6> custom_authorizer_keys{"name",      "token_key_name", "token",
                                                                 "signature", "username",       "password"};

}  // namespace

void parser::parse_auth(const fields& f, const std::string& path, thing& t) {
    const auto p = [&](std::string_view key) { return path + "." + std::string(key); };
    const auto* auth = find(f, "auth");
    if (auth != nullptr) {
        static constexpr std::array<choice<auth_method>, 2> choices{
            {{"x509", auth_method::x509}, {"custom-authorizer", auth_method::custom_authorizer}}};
        if (auto v = enumeration(auth->value, p("auth"), choices)) t.auth = *v;
    }
    const auto* block = find(f, "custom_authorizer");
    if (block == nullptr) {
        if (t.auth == auth_method::custom_authorizer)
            error(auth->value, p("auth"), "custom-authorizer needs custom_authorizer: with the authorizer's name",
                  "add custom_authorizer: {name: NAME} and the token settings your authorizer reads (docs/config.md)");
        return;
    }
    const auto section = p("custom_authorizer");
    if (t.auth != auth_method::custom_authorizer)
        error(block->key, section, "has no effect without auth: custom-authorizer",
              "add auth: custom-authorizer, or remove it");
    const auto c = mapping(block->value, section, custom_authorizer_keys);
    if (!c) return;
    for (const auto& [k, v] : *c) t.fields["custom_authorizer." + k] = location_of(v.value);
    const auto q = [&](std::string_view key) { return section + "." + std::string(key); };
    auto& s = t.custom_authorizer;

    // A plain setting, checked by the rule the MQTT user name is built with.
    const auto text = [&](const field* x, std::string_view key, std::string (*problem)(std::string_view),
                          std::string& target) {
        if (x == nullptr) return;
        auto v = string(x->value, q(key));
        if (!v) return;
        if (auto why = problem(*v); !why.empty())
            error(x->value, q(key), std::move(why));
        else
            target = std::move(*v);
    };
    const auto* name = find(*c, "name");
    if (name == nullptr)
        report(location_of(block->value), q("name"), "missing required key 'name'",
               "the authorizer's name in AWS IoT Core, e.g. name: fleet-authorizer");
    text(name, "name", custom_authorizer::name_problem, s.name);
    const auto* key = find(*c, "token_key_name");
    text(key, "token_key_name", custom_authorizer::token_key_name_problem, s.token_key_name);
    text(find(*c, "username"), "username", custom_authorizer::username_problem, s.username);

    const auto* token = find(*c, "token");
    const auto* signature = find(*c, "signature");
    for (const auto& [k, x, target, what] : {std::tuple{"token"sv, token, &s.token, "the token"sv},
                                             {"signature"sv, signature, &s.signature, "the token's signature"sv},
                                             {"password"sv, find(*c, "password"), &s.password, "the password"sv}}) {
        if (x == nullptr) continue;
        if (auto v = secret_file(x->value, q(k), what)) *target = std::move(*v);
    }
    if (key != nullptr && token == nullptr)
        error(key->value, q("token_key_name"), "has no token to name",
              "add token: FILE (or credential:NAME), or remove it");
    if (token != nullptr && key == nullptr)
        error(token->value, q("token"), "needs token_key_name: the query parameter the authorizer reads the token from",
              "add token_key_name: KEY as configured on the authorizer (its TokenKeyName)");
    if (signature != nullptr && token == nullptr)
        error(signature->value, q("signature"), "signs a token, but none is configured",
              "add token: and token_key_name:");
}

void parser::check_custom_authorizer_alpn(const YAML::Node& node, const std::string& path, const thing& t) {
    if (t.auth != auth_method::custom_authorizer || t.port != 443) return;
    if (std::find(t.alpn.begin(), t.alpn.end(), "mqtt") != t.alpn.end()) return;
    warn(node, path, "AWS IoT Core takes MQTT with a custom authorizer on port 443 only with ALPN mqtt",
         "remove alpn: (with auth: custom-authorizer it defaults to [mqtt] on port 443), or write alpn: [mqtt]");
}

}  // namespace thingmux::config::detail
