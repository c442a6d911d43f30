// RFC 7512 PKCS#11 URIs as the configuration writes a key or certificate held in a token:
//   pkcs11:token=thing;object=key;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/pin
// Shared by config (which checks a URI where it is written) and the uplink (which loads the key
// through OpenSSL). Pure: no I/O, no logging. A URI may carry a PIN (pin-value): whatever shows a
// URI to a person goes through redact() or uri::describe().
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::pkcs11 {

inline constexpr std::string_view scheme = "pkcs11:";
// Bounds of what the configuration may write: the whole URI as written, and one value once
// percent-decoded (a module path, a label, an id).
inline constexpr std::size_t max_uri_bytes = 4096;
inline constexpr std::size_t max_value_bytes = 1024;
// What replaces a PIN wherever a URI is shown.
inline constexpr std::string_view hidden = "***";

// One path attribute, percent-decoded: {"token", "thing"}, {"id", "\x01"}.
struct attribute {
    std::string name;
    std::string value;
    friend bool operator==(const attribute&, const attribute&) = default;
};

struct uri {
    // In the order written; each name at most once. Names: token, manufacturer, serial, model,
    // library-manufacturer, library-description, library-version, object, type, id, slot-id,
    // slot-description, slot-manufacturer.
    std::vector<attribute> path;
    std::string module_path;  // the token's PKCS#11 library (query attribute module-path)
    std::string pin_source;   // "file:/etc/pin" or "/etc/pin" (query attribute pin-source)
    std::string pin_value;    // the PIN itself (query attribute pin-value): a secret

    // The value of a path attribute, or nullptr when it is not written.
    [[nodiscard]] const std::string* find(std::string_view name) const;
    // "pkcs11:token=thing;object=key": the path attributes, percent-encoded where needed, without
    // the query (so without any PIN): what the engine or provider is given to find the object.
    [[nodiscard]] std::string path_uri() const;
    // path_uri() with module-path, pin-source and a hidden pin-value: for messages and status.
    [[nodiscard]] std::string describe() const;
    // The file pin-source names ("file:" removed); empty when pin-source is not written.
    [[nodiscard]] std::string pin_file() const;
    friend bool operator==(const uri&, const uri&) = default;
};

// A URI, or what is wrong with it ("attribute 'object' is written twice").
struct parsed_uri {
    std::optional<uri> value;
    std::string problem;
};

// Whether `text` is meant as a PKCS#11 URI (starts with "pkcs11:", case-insensitive).
[[nodiscard]] bool is_uri(std::string_view text) noexcept;

// Parses a PKCS#11 URI: known attribute names only, no attribute twice, values percent-decoded,
// type one of private/public/cert/secret-key/data, no NUL byte except in `id`, pin-source a file,
// at most max_uri_bytes. Never throws on any input.
[[nodiscard]] parsed_uri parse_uri(std::string_view text);

// `text` (a URI or anything else) with the value of every pin-value replaced by `hidden`; works on
// text that does not parse, so that an error message may quote what was written.
[[nodiscard]] std::string redact(std::string_view text);

}  // namespace thingmux::pkcs11
