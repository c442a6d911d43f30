#include "common/fleet_provisioning.hpp"

#include "common/iot_credentials_response.hpp"
#include "common/printable.hpp"
#include "common/utf8.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <stdexcept>

namespace thingmux::aws::fleet_provisioning {
namespace {

namespace json = boost::json;

constexpr std::string_view certificate_header = "-----BEGIN CERTIFICATE-----";
constexpr std::string_view csr_header = "-----BEGIN CERTIFICATE REQUEST-----";

error fail(errc code, std::string detail) {
    return {code, std::move(detail)};
}

// PEM is ASCII text: printable characters and line ends only.
bool pem_text(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\r' || c == '\t'; });
}

// A PEM block of the given header (leading white space allowed) in text of at most `max` bytes.
bool pem_of(std::string_view s, std::string_view header, std::size_t max) noexcept {
    if (s.size() > max || !pem_text(s)) return false;
    const auto start = s.find_first_not_of(" \t\r\n");
    return start != std::string_view::npos && s.substr(start).starts_with(header);
}

// Opaque tokens and ids: visible ASCII, no space.
bool visible_ascii(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

bool alphanumeric(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

result<json::object> parse_object(std::string_view payload) {
    if (payload.size() > max_payload_bytes)
        return fail(errc::payload_too_large, "the answer has " + std::to_string(payload.size()) +
                                                 " bytes, more than the " + std::to_string(max_payload_bytes / 1024) +
                                                 " KiB accepted");
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = max_json_depth;
    auto doc = json::parse(payload, ec, {}, options);
    if (ec) return fail(errc::not_json, "the answer is not a JSON document (" + ec.message() + ")");
    if (!doc.is_object()) return fail(errc::not_json, "the answer is not a JSON object");
    return std::move(doc.as_object());
}

// The string member `name` of `o`, of at most `max` bytes.
result<std::string_view> string_field(const json::object& o, std::string_view name, std::size_t max) {
    const auto* v = o.if_contains(name);
    if (v == nullptr || !v->is_string())
        return fail(errc::bad_field, std::string(name) + " is missing or not a string");
    const std::string_view s(v->as_string());
    if (s.size() > max)
        return fail(errc::bad_field, std::string(name) + " has " + std::to_string(s.size()) + " bytes, more than " +
                                         std::to_string(max));
    return s;
}

// Where a name=value map breaks its limits, or "" (names and values are UTF-8 already when read
// from JSON; the caller's are checked here too).
std::string map_problem(const string_map& m, std::string_view what, std::size_t max_entries) {
    if (m.size() > max_entries)
        return std::string(what) + " has " + std::to_string(m.size()) + " entries, more than " +
               std::to_string(max_entries);
    for (const auto& [name, value] : m) {
        if (name.empty() || name.size() > max_parameter_name_bytes || !text::valid_utf8(name))
            return std::string(what) + " has a name \"" + text::printable(name, 64) + "\" that is empty, over " +
                   std::to_string(max_parameter_name_bytes) + " bytes or not UTF-8";
        if (value.size() > max_parameter_value_bytes || !text::valid_utf8(value))
            return std::string(what) + " \"" + text::printable(name, 64) + "\" has a value over " +
                   std::to_string(max_parameter_value_bytes) + " bytes or not UTF-8";
    }
    return {};
}

}  // namespace

void throw_exception_from_error(const error& e, const boost::source_location&) {
    throw std::runtime_error(e.detail);
}

bool valid_template_name(std::string_view name) noexcept {
    return !name.empty() && name.size() <= max_template_name_bytes &&
           std::all_of(name.begin(), name.end(), [](char c) { return alphanumeric(c) || c == '_' || c == '-'; });
}

topics create_certificate_topics() {
    const std::string request = "$aws/certificates/create-from-csr/json";
    return {request, request + "/accepted", request + "/rejected"};
}

topics register_thing_topics(std::string_view template_name) {
    const std::string request = "$aws/provisioning-templates/" + std::string(template_name) + "/provision/json";
    return {request, request + "/accepted", request + "/rejected"};
}

result<std::string> encode_create_certificate_request(std::string_view csr_pem) {
    if (!pem_of(csr_pem, csr_header, max_csr_pem_bytes))
        return fail(errc::bad_request,
                    "the certificate signing request is not a PEM \"CERTIFICATE REQUEST\" of at most " +
                        std::to_string(max_csr_pem_bytes) + " bytes");
    return json::serialize(json::object{{"certificateSigningRequest", csr_pem}});
}

result<created_certificate> decode_create_certificate_accepted(std::string_view payload) {
    auto doc = parse_object(payload);
    if (!doc) return doc.error();
    auto id = string_field(*doc, "certificateId", max_certificate_id_bytes);
    if (!id) return id.error();
    if (id->empty() || !std::all_of(id->begin(), id->end(), alphanumeric))
        return fail(errc::bad_field,
                    "certificateId \"" + text::printable(*id, 64) + "\" is not an id (letters and digits)");
    auto pem = string_field(*doc, "certificatePem", max_certificate_pem_bytes);
    if (!pem) return pem.error();
    if (!pem_of(*pem, certificate_header, max_certificate_pem_bytes))
        return fail(errc::bad_field, "certificatePem is not a PEM certificate");
    auto token = string_field(*doc, "certificateOwnershipToken", max_ownership_token_bytes);
    if (!token) return token.error();
    if (token->empty() || !visible_ascii(*token))
        return fail(errc::bad_field, "certificateOwnershipToken is empty or holds characters other than visible ASCII");
    return created_certificate{std::string(*id), std::string(*pem), std::string(*token)};
}

result<std::string> encode_register_thing_request(std::string_view ownership_token, const string_map& parameters) {
    if (ownership_token.empty() || ownership_token.size() > max_ownership_token_bytes ||
        !visible_ascii(ownership_token))
        return fail(errc::bad_request, "the certificate ownership token is empty, too long or not visible ASCII");
    if (auto why = map_problem(parameters, "parameters", max_parameters); !why.empty())
        return fail(errc::bad_request, std::move(why));
    json::object request{{"certificateOwnershipToken", ownership_token}};
    if (!parameters.empty()) {
        json::object p;
        for (const auto& [name, value] : parameters) p[name] = value;
        request["parameters"] = std::move(p);
    }
    return json::serialize(request);
}

result<registered_thing> decode_register_thing_accepted(std::string_view payload) {
    auto doc = parse_object(payload);
    if (!doc) return doc.error();
    auto name = string_field(*doc, "thingName", iot_credentials::max_thing_name_bytes);
    if (!name) return name.error();
    if (!iot_credentials::valid_thing_name(*name))
        return fail(errc::bad_field,
                    "thingName \"" + text::printable(*name, 64) + "\" is not a Thing name AWS IoT accepts");
    registered_thing thing{std::string(*name), {}};
    if (const auto* config = doc->if_contains("deviceConfiguration"); config != nullptr && !config->is_null()) {
        if (!config->is_object()) return fail(errc::bad_field, "deviceConfiguration is not an object");
        for (const auto& [key, value] : config->as_object()) {
            if (!value.is_string())
                return fail(errc::bad_field, "deviceConfiguration \"" + text::printable(std::string_view(key), 64) +
                                                 "\" is not a string");
            thing.device_configuration.emplace(std::string(key), std::string(value.as_string()));
        }
        // Checked after the fact: a duplicate key counts once, and the size of each is bounded below.
        if (auto why = map_problem(thing.device_configuration, "deviceConfiguration", max_device_configuration_entries);
            !why.empty())
            return fail(errc::bad_field, std::move(why));
    }
    return thing;
}

result<rejection> decode_rejected(std::string_view payload) {
    auto doc = parse_object(payload);
    if (!doc) return doc.error();
    rejection r;
    if (const auto* status = doc->if_contains("statusCode"); status != nullptr && !status->is_null()) {
        const auto* n = status->if_int64();
        if (n == nullptr || *n < 100 || *n > 599)
            return fail(errc::bad_field, "statusCode is not an HTTP status (100-599)");
        r.status_code = static_cast<int>(*n);
    }
    const std::pair<std::string_view, std::string*> texts[] = {{"errorCode", &r.error_code},
                                                               {"errorMessage", &r.error_message}};
    for (const auto& [name, target] : texts) {
        if (!doc->contains(name)) continue;
        auto s = string_field(*doc, name, max_error_text_bytes);
        if (!s) return s.error();
        target->assign(*s);
    }
    return r;
}

bool retry_can_help(int status_code) noexcept {
    return status_code == 429 || (status_code >= 500 && status_code <= 599);
}

}  // namespace thingmux::aws::fleet_provisioning
