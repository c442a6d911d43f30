#include "common/custom_authorizer.hpp"

#include "common/utf8.hpp"

#include <algorithm>

namespace thingmux::custom_authorizer {
namespace {

bool is_alnum(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_unreserved(char c) noexcept {
    return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// RFC 9110 token characters: what a header name may hold.
bool is_token_char(char c) noexcept {
    return is_alnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) noexcept {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return lower(x) == lower(y); });
}

std::string bytes(std::size_t n) {
    return std::to_string(n) + (n == 1 ? " byte" : " bytes");
}

void append_parameter(std::string& out, std::string_view name, std::string_view value) {
    out += url_encode(name);
    out += '=';
    out += url_encode(value);
}

}  // namespace

std::string name_problem(std::string_view name) {
    if (name.empty()) return "is empty: write the authorizer's name as AWS IoT Core knows it";
    if (name.size() > max_name_bytes)
        return "is " + bytes(name.size()) + " long; AWS IoT Core allows at most " + std::to_string(max_name_bytes);
    if (!std::all_of(name.begin(), name.end(),
                     [](char c) { return is_alnum(c) || std::string_view("_=,@-").find(c) != std::string_view::npos; }))
        return "holds characters AWS IoT Core does not allow in an authorizer's name (only A-Z a-z 0-9 _ = , @ -)";
    return {};
}

std::string token_key_name_problem(std::string_view key) {
    if (key.empty()) return "is empty: write the token key name the authorizer was created with";
    if (key.size() > max_token_key_name_bytes)
        return "is " + bytes(key.size()) + " long; at most " + std::to_string(max_token_key_name_bytes) +
               " are allowed";
    if (!std::all_of(key.begin(), key.end(), is_token_char))
        return "holds characters an HTTP header name cannot (only A-Z a-z 0-9 and !#$%&'*+-.^_`|~)";
    if (equal_ignoring_case(key, name_parameter) || equal_ignoring_case(key, signature_parameter))
        return "is a name AWS IoT Core reserves for the authorizer's name or signature";
    return {};
}

std::string username_problem(std::string_view username) {
    if (username.find('?') != std::string_view::npos)
        return "holds '?', which AWS IoT Core reads as the start of the authorizer's parameters";
    if (!text::valid_utf8(username)) return "is not UTF-8 without NUL characters, as MQTT requires of a user name";
    if (username.size() > max_mqtt_user_name_bytes)
        return "is " + bytes(username.size()) + " long; an MQTT user name holds at most " +
               std::to_string(max_mqtt_user_name_bytes);
    return {};
}

std::string secret_problem(std::string_view what, std::string_view value) {
    if (value.empty()) return "the " + std::string(what) + " is empty";
    const auto bad = std::find_if(value.begin(), value.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
    if (bad != value.end())
        return "the " + std::string(what) + " holds a control character (byte " +
               std::to_string(static_cast<unsigned>(static_cast<unsigned char>(*bad))) + " at offset " +
               std::to_string(bad - value.begin()) + "): its file must hold it on one line";
    return {};
}

std::string password_problem(std::string_view password) {
    if (password.size() > max_mqtt_password_bytes)
        return "the password is " + bytes(password.size()) + " long; an MQTT password holds at most " +
               std::to_string(max_mqtt_password_bytes);
    return {};
}

std::string_view without_line_end(std::string_view text) noexcept {
    if (text.ends_with('\n')) {
        text.remove_suffix(1);
        if (text.ends_with('\r')) text.remove_suffix(1);
    }
    return text;
}

std::string url_encode(std::string_view s) {
    static constexpr std::string_view hex = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        if (is_unreserved(c)) {
            out += c;
        } else {
            const auto u = static_cast<unsigned char>(c);
            out += '%';
            out += hex[u >> 4U];
            out += hex[u & 0x0FU];
        }
    }
    return out;
}

user_name_result mqtt_user_name(const login& l) {
    if (auto p = username_problem(l.username); !p.empty()) return {std::nullopt, "the user name " + p};
    if (auto p = name_problem(l.name); !p.empty()) return {std::nullopt, "the authorizer's name " + p};
    const bool has_token = !l.token.empty();
    if (!l.token_key_name.empty()) {
        if (auto p = token_key_name_problem(l.token_key_name); !p.empty())
            return {std::nullopt, "the token key name " + p};
        if (!has_token) return {std::nullopt, "the token is empty: a token key name needs its token"};
        if (auto p = secret_problem("token", l.token); !p.empty()) return {std::nullopt, std::move(p)};
    } else if (has_token) {
        return {std::nullopt, "a token needs the token key name the authorizer reads it under"};
    }
    if (!l.signature.empty()) {
        if (!has_token) return {std::nullopt, "a signature needs the token it signs"};
        if (auto p = secret_problem("signature", l.signature); !p.empty()) return {std::nullopt, std::move(p)};
    }
    std::string out(l.username);
    out += '?';
    out += query_string(websocket_parameters(l));
    if (out.size() > max_mqtt_user_name_bytes)
        return {std::nullopt, "the MQTT user name would be " + bytes(out.size()) +
                                  " long (user name, token and signature, "
                                  "URL-encoded); MQTT allows at most " +
                                  std::to_string(max_mqtt_user_name_bytes) + ": use a shorter token or signature"};
    return {std::move(out), {}};
}

std::vector<parameter> websocket_parameters(const login& l) {
    std::vector<parameter> out;
    out.push_back({std::string(name_parameter), std::string(l.name)});
    if (!l.token.empty()) out.push_back({std::string(l.token_key_name), std::string(l.token)});
    if (!l.signature.empty()) out.push_back({std::string(signature_parameter), std::string(l.signature)});
    return out;
}

std::string query_string(const std::vector<parameter>& parameters) {
    std::string out;
    for (const auto& p : parameters) {
        if (!out.empty()) out += '&';
        append_parameter(out, p.name, p.value);
    }
    return out;
}

}  // namespace thingmux::custom_authorizer
