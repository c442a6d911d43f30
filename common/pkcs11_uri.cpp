#include "common/pkcs11_uri.hpp"

#include "common/custom_authorizer.hpp"

#include <algorithm>
#include <array>

namespace thingmux::pkcs11 {
namespace {

constexpr std::array<std::string_view, 13> path_names{
    "token",          "manufacturer", "serial", "model",       "library-manufacturer", "library-description",
    "library-version", "object",      "type",   "id",          "slot-id",              "slot-description",
    "slot-manufacturer"};
constexpr std::array<std::string_view, 5> object_types{"private", "public", "cert", "secret-key", "data"};

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The percent-decoded value, or nullopt with `problem` set.
std::optional<std::string> decode(std::string_view name, std::string_view raw, std::string& problem) {
    std::string out;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '%') {
            out.push_back(raw[i]);
            continue;
        }
        const int hi = i + 2 < raw.size() ? hex_digit(raw[i + 1]) : -1;
        const int lo = i + 2 < raw.size() ? hex_digit(raw[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            problem = "attribute '" + std::string(name) + "' has a '%' not followed by two hex digits";
            return std::nullopt;
        }
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    if (out.size() > max_value_bytes) {
        problem = "attribute '" + std::string(name) + "' is longer than " + std::to_string(max_value_bytes) + " bytes";
        return std::nullopt;
    }
    if (name != "id" && out.find('\0') != std::string::npos) {
        problem = "attribute '" + std::string(name) + "' holds a NUL byte";
        return std::nullopt;
    }
    return out;
}

// RFC 3986 percent-encoding of all but the unreserved characters; with `keep_slash`, '/' stays
// too, so that a path reads as one in messages.
std::string encode(std::string_view value, bool keep_slash = false) {
    if (!keep_slash) return custom_authorizer::url_encode(value);
    std::string out;
    for (std::size_t at = 0;;) {
        const auto slash = value.find('/', at);
        out += custom_authorizer::url_encode(value.substr(at, slash == std::string_view::npos ? slash : slash - at));
        if (slash == std::string_view::npos) return out;
        out.push_back('/');
        at = slash + 1;
    }
}

// Splits "name=value" pieces separated by `sep`, calling `take(name, raw value)`; stops at the
// first problem `take` reports.
template <typename F>
std::string each_attribute(std::string_view text, char sep, F take) {
    if (text.empty()) return {};
    for (;;) {
        const auto end = text.find(sep);
        const auto piece = text.substr(0, end);
        if (piece.empty()) return std::string("has an empty attribute (two '") + sep + "' in a row, or one at the end)";
        const auto eq = piece.find('=');
        if (eq == std::string_view::npos) return "attribute '" + std::string(piece) + "' has no '=value'";
        if (auto problem = take(piece.substr(0, eq), piece.substr(eq + 1)); !problem.empty()) return problem;
        if (end == std::string_view::npos) return {};
        text.remove_prefix(end + 1);
    }
}

}  // namespace

bool is_uri(std::string_view text) noexcept {
    if (text.size() < scheme.size()) return false;
    return std::equal(scheme.begin(), scheme.end(), text.begin(),
                      [](char a, char b) { return a == (b >= 'A' && b <= 'Z' ? static_cast<char>(b - 'A' + 'a') : b); });
}

const std::string* uri::find(std::string_view name) const {
    const auto it = std::find_if(path.begin(), path.end(), [&](const attribute& a) { return a.name == name; });
    return it != path.end() ? &it->value : nullptr;
}

std::string uri::path_uri() const {
    std::string out(scheme);
    for (const auto& a : path) {
        if (out.size() > scheme.size()) out.push_back(';');
        out += a.name + "=" + encode(a.value);
    }
    return out;
}

std::string uri::describe() const {
    std::string query;
    const auto add = [&](std::string_view name, const std::string& value) {
        query += (query.empty() ? "?" : "&") + std::string(name) + "=" + value;
    };
    if (!module_path.empty()) add("module-path", encode(module_path, true));
    if (!pin_source.empty()) add("pin-source", encode(pin_source, true));
    if (!pin_value.empty()) add("pin-value", std::string(hidden));
    return path_uri() + query;
}

std::string uri::pin_file() const {
    std::string_view s = pin_source;
    if (s.starts_with("file://")) s.remove_prefix(7);
    else if (s.starts_with("file:")) s.remove_prefix(5);
    return std::string(s);
}

parsed_uri parse_uri(std::string_view text) {
    const auto fail = [](std::string why) { return parsed_uri{std::nullopt, std::move(why)}; };
    if (!is_uri(text)) return fail("does not start with 'pkcs11:'");
    if (text.size() > max_uri_bytes) return fail("is longer than " + std::to_string(max_uri_bytes) + " bytes");
    text.remove_prefix(scheme.size());
    const auto q = std::min(text.find('?'), text.size());
    const auto path_text = text.substr(0, q);
    const auto query_text = q < text.size() ? text.substr(q + 1) : std::string_view{};
    if (path_text.empty()) return fail("names no object (write at least token= and object= or id=)");
    uri u;
    std::string problem;
    auto error = each_attribute(path_text, ';', [&](std::string_view name, std::string_view raw) -> std::string {
        const std::string n(name);
        if (std::find(path_names.begin(), path_names.end(), name) == path_names.end()) {
            if (name == "pin-value" || name == "pin-source" || name == "module-path")
                return "'" + n + "' is a query attribute: write it after '?'";
            return "has an unknown attribute '" + n + "'";
        }
        if (u.find(name) != nullptr) return "attribute '" + n + "' is written twice";
        auto value = decode(name, raw, problem);
        if (!value) return problem;
        if (name == "type" && std::find(object_types.begin(), object_types.end(), *value) == object_types.end())
            return "type '" + *value + "' is not private, public, cert, secret-key or data";
        u.path.push_back({n, std::move(*value)});
        return {};
    });
    if (!error.empty()) return fail(std::move(error));
    error = each_attribute(query_text, '&', [&](std::string_view name, std::string_view raw) -> std::string {
        std::string* target = name == "module-path" ? &u.module_path
                              : name == "pin-source" ? &u.pin_source
                              : name == "pin-value"  ? &u.pin_value
                                                     : nullptr;
        // The value of an unknown attribute is not quoted: it might be a secret.
        if (target == nullptr) return "has an unknown query attribute '" + std::string(name) + "'";
        if (!target->empty()) return "query attribute '" + std::string(name) + "' is written twice";
        auto value = decode(name, raw, problem);
        if (!value) return problem;
        if (value->empty()) return "query attribute '" + std::string(name) + "' is empty";
        *target = std::move(*value);
        return {};
    });
    if (!error.empty()) return fail(std::move(error));
    if (!u.pin_source.empty() && !u.pin_file().starts_with('/'))
        return fail("pin-source must name a file by its absolute path (file:/etc/thingmux/pin)");
    if (!u.pin_source.empty() && !u.pin_value.empty()) return fail("has both pin-source and pin-value");
    return {std::move(u), {}};
}

std::string redact(std::string_view text) {
    static constexpr std::string_view name = "pin-value=";
    std::string out;
    for (std::size_t at = 0;;) {
        const auto found = text.find(name, at);
        if (found == std::string_view::npos) return out.append(text.substr(at));
        out.append(text.substr(at, found + name.size() - at)).append(hidden);
        // The value ends where the next query attribute (or the text) does; hiding too much is safe.
        at = std::min(text.find('&', found + name.size()), text.size());
    }
}

}  // namespace thingmux::pkcs11
