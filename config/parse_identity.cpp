// A Thing's own identity management (docs/identity.md): provisioning (fleet provisioning by
// claim) and rotation (a new key and certificate before the current one expires).
#include "common/fleet_provisioning.hpp"
#include "config/authorization.hpp"
#include "config/parser.hpp"

namespace thingmux::config {

const char* to_string(generated_key v) noexcept {
    switch (v) {
        case generated_key::ec_p256: return "ec-p256";
        case generated_key::rsa_2048: return "rsa-2048";
        case generated_key::tpm2_ec_p256: return "tpm2-ec-p256";
    }
    return "unknown";
}

namespace detail {
namespace {

using std::string_view_literals::operator""sv;

constexpr std::array<std::string_view, 6> provisioning_keys{"template", "claim_cert", "claim_key", "parameters",
                                                            "key_type", "timeout"};
constexpr std::array<std::string_view, 5> rotation_keys{"before_expiry", "template", "parameters", "key_type", "timeout"};
constexpr std::size_t max_parameters = aws::fleet_provisioning::max_parameters;
constexpr std::size_t max_parameter_bytes = 1024;

}  // namespace

// The template's parameters: any names (AWS's templates define them), string values.
void parser::parse_parameters(const YAML::Node& node, const std::string& path, const thing& t, enrollment_settings& e) {
    if (node.IsNull()) return;
    if (!node.IsMap()) {
        error(node, path, "expected a mapping (name: value lines), got " + kind_of(node), "e.g. {SerialNumber: \"${thing}\"}");
        return;
    }
    if (node.size() > max_parameters) {
        error(node, path, "has " + std::to_string(node.size()) + " entries", "at most " + std::to_string(max_parameters));
        return;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
        const auto name = scalar(it->first, path, "a parameter name");
        if (!name) continue;
        const auto at = path + "." + *name;
        auto value = string(it->second, at, true);
        if (!value) continue;
        auto expanded = expand(*value, {.thing = t.name, .unit = {}, .user = {}, .uid = {}});
        if (!only_thing_variable(*value))
            error(it->second, at, "uses a variable other than ${thing}",
                  "only ${thing} (the Thing's name) is known when the daemon asks AWS IoT");
        else if (name->empty() || name->size() + expanded.size() > max_parameter_bytes)
            error(it->first, at, "an empty name, or longer than " + std::to_string(max_parameter_bytes) + " bytes with its value");
        else if (!e.parameters.emplace(*name, std::move(expanded)).second)
            error(it->first, at, "is given twice");
    }
}

void parser::parse_enrollment(const fields& f, const std::string& path, const thing& t, enrollment_settings& e) {
    const auto p = [&](std::string_view key) { return path + "." + std::string(key); };
    if (const auto* x = find(f, "template")) {
        if (auto s = string(x->value, p("template"))) {
            if (aws::fleet_provisioning::valid_template_name(*s))
                e.template_name = *s;
            else
                error(x->value, p("template"), "'" + *s + "' is not a provisioning template name",
                      "1 to 36 characters from a-z A-Z 0-9 _ -, as AWS IoT names templates");
        }
    }
    if (const auto* x = find(f, "parameters")) parse_parameters(x->value, p("parameters"), t, e);
    if (const auto* x = find(f, "key_type")) {
        static constexpr std::array<choice<generated_key>, 3> choices{{{"ec-p256", generated_key::ec_p256},
                                                                       {"rsa-2048", generated_key::rsa_2048},
                                                                       {"tpm2-ec-p256", generated_key::tpm2_ec_p256}}};
        if (auto v = enumeration(x->value, p("key_type"), choices)) e.key_type = *v;
    }
    if (const auto* x = find(f, "timeout")) {
        if (auto v = time(x->value, p("timeout"), duration{1000}, std::chrono::minutes{10})) e.timeout = *v;
    }
}

void parser::parse_identity(const fields& f, const std::string& path, thing& t) {
    const auto p = [&](std::string_view key) { return path + "." + std::string(key); };
    const auto* provisioning = find(f, "provisioning");
    const auto* rotation = find(f, "rotation");
    if (provisioning != nullptr) {
        if (const auto g = mapping(provisioning->value, p("provisioning"), provisioning_keys)) {
            for (const auto& [k, v] : *g) t.fields["provisioning." + k] = location_of(v.value);
            provisioning_settings s;
            parse_enrollment(*g, p("provisioning"), t, s);
            if (s.template_name.empty() && find(*g, "template") == nullptr)
                report(location_of(provisioning->value), p("provisioning.template"), "missing required key 'template'",
                       "the fleet provisioning template AWS IoT registers the Thing with, e.g. template: GatewayFleet");
            for (const auto& [key, target] : {std::pair{"claim_cert"sv, &s.claim_cert}, {"claim_key"sv, &s.claim_key}}) {
                const auto* x = find(*g, key);
                if (x == nullptr) {
                    report(location_of(provisioning->value), p("provisioning." + std::string(key)),
                           "missing required key '" + std::string(key) + "'",
                           "the claim certificate and its key, which may only ask AWS IoT for a certificate");
                } else if (auto v = file_or_credential(x->value, p("provisioning." + std::string(key)))) {
                    *target = std::move(*v);
                }
            }
            t.provisioning = std::move(s);
        }
    }
    if (rotation != nullptr) {
        if (const auto g = mapping(rotation->value, p("rotation"), rotation_keys)) {
            for (const auto& [k, v] : *g) t.fields["rotation." + k] = location_of(v.value);
            rotation_settings s;
            parse_enrollment(*g, p("rotation"), t, s);
            if (const auto* x = find(*g, "before_expiry")) {
                if (auto v = whole_seconds(x->value, p("rotation.before_expiry"), std::chrono::hours{24 * 365}))
                    s.before_expiry = *v;
            }
            // AWS IoT creates CreateCertificateFromCsr's certificate inactive and attached to nothing;
            // only RegisterThing (the template) activates it and attaches the policy. Without it the
            // Thing would replace a working pair with one that cannot connect.
            if (find(*g, "template") == nullptr)
                report(location_of(rotation->value), p("rotation.template"), "missing required key 'template'",
                       "the provisioning template that activates the new certificate and attaches the Thing's policy "
                       "(AWS IoT issues it inactive), e.g. template: GatewayRotation");
            t.rotation = std::move(s);
        }
    }
    if (provisioning == nullptr && rotation == nullptr) return;
    // The daemon writes the Thing's new key and certificate where cert and key name them.
    const auto* written = provisioning != nullptr ? provisioning : rotation;
    const std::string what = provisioning != nullptr ? "provisioning" : "rotation";
    if (t.auth != auth_method::x509) {
        error(written->value, p(what), "needs auth: x509", "the Thing must log in with the certificate it gets");
        return;
    }
    for (const auto& [key, file] : {std::pair{"cert"sv, &t.cert}, {"key"sv, &t.key}}) {
        const auto s = file->string();
        if (file->empty()) continue;  // reported already
        if (s.starts_with(credential_prefix) || s.starts_with("pkcs11:"))
            error(written->value, p(what),
                  "cannot write the new " + std::string(key == "cert" ? "certificate" : "key") + " to " + s,
                  "with " + what + ", " + std::string(key) + " must name a file in a directory thingmuxd may write, "
                  "e.g. /var/lib/thingmux/identity/");
    }
}

}  // namespace detail
}  // namespace thingmux::config
