// How a Thing authenticates (docs/config.md "things[].auth", docs/connecting.md): auth; for
// SigV4 region and aws_credentials; for a custom authorizer custom_authorizer.
#include "common/aws_credentials.hpp"
#include "common/aws_region.hpp"
#include "common/custom_authorizer.hpp"
#include "config/parser.hpp"

#include <algorithm>
#include <tuple>

namespace thingmux::config::detail {
namespace {

using std::string_view_literals::operator""sv;

constexpr std::array<std::string_view, 6> custom_authorizer_keys{"name",      "token_key_name", "token",
                                                                 "signature", "username",       "password"};
constexpr std::array<std::string_view, 4> source_names{"file", "env", "profile", "iot_credentials_provider"};
constexpr std::array<std::string_view, 3> source_keys{"file", "profile", "iot_credentials_provider"};
constexpr std::array<std::string_view, 3> provider_keys{"endpoint", "role_alias", "ca"};
// Keys under which a secret would be written inline: refused with a way to do it right.
constexpr std::array<std::string_view, 9> secret_keys{"aws_access_key_id",
                                                      "aws_secret_access_key",
                                                      "aws_session_token",
                                                      "access_key_id",
                                                      "secret_access_key",
                                                      "session_token",
                                                      "secret",
                                                      "token",
                                                      "key_id"};

constexpr const char* sources_hint =
    "each entry is one of: file: PATH (with profile: NAME), env, profile: NAME, iot_credentials_provider: {...}";
constexpr const char* inline_secret_hint =
    "secrets are never written in the configuration: put them in a file only thingmuxd may read "
    "(INI like ~/.aws/credentials) and name it with file: PATH or file: credential:NAME";

// A key id written where a source name belongs ("- AKIA...").
bool looks_like_key_id(std::string_view s) {
    return s.size() >= 16 && (s.starts_with("AKIA") || s.starts_with("ASIA"));
}

// Role aliases: 1 to 128 characters of \w=,@- (AWS IoT CreateRoleAlias).
bool valid_role_alias(std::string_view s) {
    return !s.empty() && s.size() <= 128 && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '=' ||
               c == ',' || c == '@' || c == '-';
    });
}

}  // namespace

std::optional<aws_credential_source> parser::parse_credentials_provider(const YAML::Node& node,
                                                                        const std::string& path) {
    const auto f = mapping(node, path, provider_keys);
    if (!f) return std::nullopt;
    aws_credential_source s;
    s.type = aws_credential_source::kind::iot_credentials_provider;
    bool ok = true;
    const auto p = [&](std::string_view key) { return path + "." + std::string(key); };
    const auto* endpoint = find(*f, "endpoint");
    const auto* alias = find(*f, "role_alias");
    if (endpoint == nullptr) {
        report(location_of(node), p("endpoint"), "missing required key 'endpoint'",
               "the account's credentials provider, e.g. endpoint: PREFIX.credentials.iot.eu-west-1.amazonaws.com "
               "(aws iot describe-endpoint --endpoint-type iot:CredentialProvider)");
        ok = false;
    } else if (auto v = string(endpoint->value, p("endpoint"))) {
        // HOST or HOST:PORT (AWS's endpoint listens on 443; another port is for a stand-in).
        const auto colon = v->rfind(':');
        const auto host = colon == std::string::npos ? *v : v->substr(0, colon);
        const auto port_text = colon == std::string::npos ? std::string() : v->substr(colon + 1);
        const bool port_ok = colon == std::string::npos ||
                             (!port_text.empty() && port_text.size() <= 5 &&
                              std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                              std::stoul(port_text) >= 1 && std::stoul(port_text) <= 65535);
        if (host.empty() || v->find("://") != std::string::npos || v->find('/') != std::string::npos ||
            host.find(':') != std::string::npos) {
            error(endpoint->value, p("endpoint"), "'" + *v + "' is not a host name",
                  "write only the host name (and :PORT when it is not 443)");
            ok = false;
        } else if (!port_ok) {
            error(endpoint->value, p("endpoint"), "'" + port_text + "' is not a port", "a port is 1 to 65535");
            ok = false;
        } else {
            s.endpoint = host;
            if (colon != std::string::npos) s.port = static_cast<std::uint16_t>(std::stoul(port_text));
        }
    } else {
        ok = false;
    }
    if (alias == nullptr) {
        report(location_of(node), p("role_alias"), "missing required key 'role_alias'",
               "the role alias the Thing's policy allows (iot:AssumeRoleWithCertificate)");
        ok = false;
    } else if (auto v = string(alias->value, p("role_alias"))) {
        if (valid_role_alias(*v)) {
            s.role_alias = *v;
        } else {
            error(alias->value, p("role_alias"), "'" + *v + "' is not a role alias",
                  "1 to 128 characters from a-z A-Z 0-9 _ = , @ -");
            ok = false;
        }
    } else {
        ok = false;
    }
    if (const auto* ca = find(*f, "ca")) {
        if (auto v = file_or_credential(ca->value, p("ca"))) {
            s.ca = std::move(*v);
        } else {
            ok = false;
        }
    }
    return ok ? std::optional{std::move(s)} : std::nullopt;
}

std::optional<aws_credential_source> parser::parse_aws_source(const YAML::Node& node, const std::string& path) {
    if (node.IsScalar()) {
        const auto& name = node.Scalar();
        if (name == "env") return aws_credential_source{.type = aws_credential_source::kind::environment};
        if (looks_like_key_id(name)) {
            error(node, path, "an access key id is written in the configuration", inline_secret_hint);
            return std::nullopt;
        }
        if (name == "file" || name == "profile" || name == "iot_credentials_provider") {
            error(node, path, "source '" + name + "' needs its settings",
                  "write it as a mapping, e.g. - " + name + ": ...");
            return std::nullopt;
        }
        const auto suggestion = closest(name, source_names);
        // Quoted only when short: a long word here may be a secret written by mistake.
        error(node, path,
              (name.size() <= 24 ? "'" + name + "' is" : "this is") + std::string(" not a credentials source"),
              suggestion.empty() ? std::string(sources_hint) : "did you mean '" + suggestion + "'?");
        return std::nullopt;
    }
    if (node.IsMap()) {
        for (auto it = node.begin(); it != node.end(); ++it) {
            const auto key = it->first.IsScalar() ? it->first.Scalar() : std::string{};
            if (std::find(secret_keys.begin(), secret_keys.end(), key) != secret_keys.end()) {
                error(it->first, path + "." + key, "a secret is written in the configuration", inline_secret_hint);
                return std::nullopt;
            }
        }
    }
    const auto f = mapping(node, path, source_keys);
    if (!f) return std::nullopt;
    const auto* file = find(*f, "file");
    const auto* profile = find(*f, "profile");
    const auto* provider = find(*f, "iot_credentials_provider");
    if (file == nullptr && profile == nullptr && provider == nullptr) {
        error(node, path, "names no credentials source", sources_hint);
        return std::nullopt;
    }
    if (provider != nullptr) {
        if (file != nullptr || profile != nullptr) {
            error(provider->key, path, "one entry names one source",
                  "write iot_credentials_provider in an entry of its own");
            return std::nullopt;
        }
        auto s = parse_credentials_provider(provider->value, path + ".iot_credentials_provider");
        if (s) s->where = location_of(node);
        return s;
    }
    aws_credential_source s;
    s.where = location_of(node);
    s.type = file != nullptr ? aws_credential_source::kind::file : aws_credential_source::kind::profile;
    s.profile = "default";
    bool ok = true;
    if (file != nullptr) {
        if (auto v = file_or_credential(file->value, path + ".file")) {
            s.file = std::move(*v);
        } else {
            ok = false;
        }
    }
    if (profile != nullptr) {
        if (auto v = string(profile->value, path + ".profile")) {
            if (aws::valid_profile_name(*v)) {
                s.profile = *v;
            } else {
                error(profile->value, path + ".profile", "is not a profile name",
                      "the name in [brackets] in the credentials file: 1 to 128 characters, no space, '[' or ']'");
                ok = false;
            }
        } else {
            ok = false;
        }
    }
    return ok ? std::optional{std::move(s)} : std::nullopt;
}

void parser::parse_auth(const fields& f, const std::string& path, thing& t) {
    const auto p = [&](std::string_view key) { return path + "." + std::string(key); };
    const auto* auth = find(f, "auth");
    bool auth_written_wrong = false;
    if (auth != nullptr) {
        static constexpr std::array<choice<auth_method>, 3> choices{
            {{"x509", auth_method::x509},
             {"sigv4", auth_method::sigv4},
             {"custom-authorizer", auth_method::custom_authorizer}}};
        if (auto v = enumeration(auth->value, p("auth"), choices)) {
            t.auth = *v;
        } else {
            auth_written_wrong = true;
        }
    }
    const bool sigv4 = t.auth == auth_method::sigv4;
    const auto* region = find(f, "region");
    const auto* sources = find(f, "aws_credentials");
    // Keys that cannot take effect are mistakes to point out, not to ignore.
    for (const auto& [key, x] :
         {std::pair<std::string_view, const field*>{"region", region}, {"aws_credentials", sources}}) {
        if (x != nullptr && !sigv4 && !auth_written_wrong)
            error(x->key, p(key), "has no effect without auth: sigv4", "add auth: sigv4, or remove it");
    }
    if (region != nullptr) {
        if (auto v = string(region->value, p("region"))) {
            if (aws::valid_region(*v)) {
                t.region = *v;
            } else {
                error(region->value, p("region"), "'" + *v + "' is not an AWS region name",
                      "e.g. region: eu-west-1 (lower-case letters, digits and '-')");
            }
        }
    } else if (sigv4 && !t.endpoint.empty() && aws::region_from_endpoint(t.endpoint).empty()) {
        error(auth->value, p("region"),
              "auth: sigv4 needs the AWS region, and endpoint '" + t.endpoint + "' does not name one",
              "write region: e.g. eu-west-1 (AWS IoT endpoints are PREFIX-ats.iot.REGION.amazonaws.com)");
    }
    if (sources != nullptr) {
        if (const auto items = sequence(sources->value, p("aws_credentials"), "[env]")) {
            for (std::size_t i = 0; i < items->size(); ++i) {
                if (auto s = parse_aws_source((*items)[i], p("aws_credentials") + "[" + std::to_string(i) + "]"))
                    t.aws_credentials.push_back(std::move(*s));
            }
            if (items->empty() && sigv4)
                error(sources->value, p("aws_credentials"), "is empty: auth: sigv4 needs at least one source",
                      sources_hint);
        }
    } else if (sigv4) {
        report(t.where, p("aws_credentials"), "missing required key 'aws_credentials' (auth: sigv4)",
               "e.g. aws_credentials: [{file: /etc/thingmux/aws-credentials}], or [env]");
    }
    if (sigv4 && t.transport != transport_mode::websocket)
        error(auth->value, p("auth"), "sigv4 signs a WebSocket connection: AWS IoT Core takes no SigV4 over plain MQTT",
              "add transport: websocket");
    parse_custom_authorizer(f, path, t, auth, auth_written_wrong);
}

void parser::parse_custom_authorizer(const fields& f, const std::string& path, thing& t, const field* auth,
                                     bool auth_written_wrong) {
    const auto p = [&](std::string_view key) { return path + "." + std::string(key); };
    const auto* block = find(f, "custom_authorizer");
    if (block == nullptr) {
        if (t.auth == auth_method::custom_authorizer)
            error(auth->value, p("auth"), "custom-authorizer needs custom_authorizer: with the authorizer's name",
                  "add custom_authorizer: {name: NAME} and the token settings your authorizer reads (docs/config.md)");
        return;
    }
    const auto section = p("custom_authorizer");
    if (t.auth != auth_method::custom_authorizer && !auth_written_wrong)
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
    if (t.auth != auth_method::custom_authorizer || t.port != 443 || t.transport != transport_mode::mqtt) return;
    if (std::find(t.alpn.begin(), t.alpn.end(), "mqtt") != t.alpn.end()) return;
    warn(node, path, "AWS IoT Core takes MQTT with a custom authorizer on port 443 only with ALPN mqtt",
         "remove alpn: (with auth: custom-authorizer it defaults to [mqtt] on port 443), or write alpn: [mqtt]");
}


}  // namespace thingmux::config::detail
