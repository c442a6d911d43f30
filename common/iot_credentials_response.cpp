#include "common/iot_credentials_response.hpp"

#include "common/printable.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

namespace thingmux::aws::iot_credentials {
namespace {

namespace json = boost::json;

class error_category final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "thingmux.iot_credentials"; }
    [[nodiscard]] std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
            case errc::refused:
                return "the AWS IoT credentials provider refused to give credentials";
            case errc::unavailable:
                return "the AWS IoT credentials provider is unavailable or throttling";
            case errc::unexpected_status:
                return "the answer's HTTP status is not the credentials provider's";
            case errc::body_too_large:
                return "the credentials provider's answer is too large";
            case errc::not_json:
                return "the credentials provider's answer is not JSON";
            case errc::no_credentials:
                return "the credentials provider's answer holds no credentials";
            case errc::bad_field:
                return "the credentials in the provider's answer cannot be used";
            case errc::bad_expiration:
                return "the credentials in the provider's answer have no valid expiration";
        }
        return "unknown credentials provider error " + std::to_string(value);
    }
};

answer failure(errc e, std::string detail) {
    return {std::nullopt, make_error_code(e), std::move(detail)};
}

bool word_character(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

// The provider's words for an error answer: its {"message": …}, else the body's first bytes.
std::string provider_message(std::string_view body) {
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = max_json_depth;
    const auto doc = json::parse(body, ec, {}, options);
    if (!ec && doc.is_object()) {
        if (const auto* m = doc.as_object().if_contains("message"); m != nullptr && m->is_string())
            return text::printable(std::string_view(m->as_string()), max_message_bytes);
    }
    if (body.empty()) return "(no message)";
    return text::printable(body, max_message_bytes);
}

// The string member `name` of `o`; nullptr when it is missing or not a string.
const json::string* string_member(const json::object& o, std::string_view name) {
    const auto* v = o.if_contains(name);
    return v != nullptr && v->is_string() ? &v->as_string() : nullptr;
}

answer read_credentials(std::string_view body) {
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = max_json_depth;
    const auto doc = json::parse(body, ec, {}, options);
    if (ec) return failure(errc::not_json, "the body is not a JSON document (" + ec.message() + ")");
    const auto* top = doc.if_object();
    const auto* inner = top != nullptr ? top->if_contains("credentials") : nullptr;
    if (inner == nullptr || !inner->is_object())
        return failure(errc::no_credentials, "the body has no \"credentials\" object");
    const auto& fields = inner->as_object();

    credentials c;
    const std::pair<const char*, std::string*> wanted[] = {{"accessKeyId", &c.access_key_id},
                                                           {"secretAccessKey", &c.secret_access_key},
                                                           {"sessionToken", &c.session_token}};
    for (const auto& [name, target] : wanted) {
        const auto* s = string_member(fields, name);
        if (s == nullptr) return failure(errc::bad_field, std::string(name) + " is missing or not a string");
        target->assign(s->data(), s->size());
    }
    // Temporary credentials always have a token: without one they could not be used.
    if (c.session_token.empty()) return failure(errc::bad_field, "sessionToken is empty");
    if (auto why = problem(c); !why.empty()) return failure(errc::bad_field, std::move(why));

    const auto* expiration = string_member(fields, "expiration");
    if (expiration == nullptr) return failure(errc::bad_expiration, "expiration is missing or not a string");
    c.expiration = parse_timestamp(std::string_view(*expiration));
    if (!c.expiration)
        return failure(errc::bad_expiration, "expiration \"" + text::printable(std::string_view(*expiration), 64) +
                                                 "\" is not an ISO 8601 time such as 2026-01-31T12:00:00Z");
    return {std::move(c), {}, {}};
}

}  // namespace

const std::error_category& category() noexcept {
    static const error_category instance;
    return instance;
}

std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), category()};
}

bool retry_can_help(errc e) noexcept {
    return e != errc::refused;
}

bool valid_role_alias(std::string_view alias) noexcept {
    return !alias.empty() && alias.size() <= max_role_alias_bytes &&
           std::all_of(alias.begin(), alias.end(),
                       [](char c) { return word_character(c) || c == '=' || c == ',' || c == '@' || c == '-'; });
}

bool valid_thing_name(std::string_view name) noexcept {
    return !name.empty() && name.size() <= max_thing_name_bytes &&
           std::all_of(name.begin(), name.end(), [](char c) { return word_character(c) || c == ':' || c == '-'; });
}

std::string request_target(std::string_view role_alias) {
    return "/role-aliases/" + std::string(role_alias) + "/credentials";
}

answer parse_answer(int status, std::string_view body) {
    if (body.size() > max_body_bytes)
        return failure(errc::body_too_large, "HTTP " + std::to_string(status) + " with a body over " +
                                                 std::to_string(max_body_bytes / 1024) + " KiB");
    if (status == 200) return read_credentials(body);
    const std::string head = "HTTP " + std::to_string(status) + ": ";
    if (status == 408 || status == 429 || (status >= 500 && status <= 599))
        return failure(errc::unavailable, head + provider_message(body));
    if (status >= 400 && status <= 499) return failure(errc::refused, head + provider_message(body));
    return failure(errc::unexpected_status, head + provider_message(body));
}

}  // namespace thingmux::aws::iot_credentials
