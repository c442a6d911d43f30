// The AWS IoT credentials provider's HTTP API (GET /role-aliases/ALIAS/credentials with the
// x-amzn-iot-thingname header, over mutual TLS with the Thing's certificate): the names it takes
// and a strict, bounded reader of its answer.
//
// A 200 answer is {"credentials":{"accessKeyId":"…","secretAccessKey":"…","sessionToken":"…",
// "expiration":"2026-12-05T12:34:56Z"}}; an error answer is {"message":"…"} with 400 (the role
// cannot be assumed), 403 (certificate not allowed, thing name not attached, access denied) or
// 404 (role alias unknown). Pure: bytes in, values out; no I/O, no logging. Messages never hold a
// secret or a token, and what the provider wrote is escaped (text::printable) in them.
#pragma once

#include "common/aws_credentials.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace thingmux::aws::iot_credentials {

// The most bytes an answer's body may have: a real one is about 1.5 KiB (the session token is
// most of it). Beyond it the answer is refused, not buffered.
inline constexpr std::size_t max_body_bytes = 64 * 1024;
// The most bytes of the provider's error message kept (and shown, escaped).
inline constexpr std::size_t max_message_bytes = 512;
// JSON nesting accepted in an answer: the real one has 2 levels.
inline constexpr std::size_t max_json_depth = 8;
// AWS IoT's limits on the names in the request.
inline constexpr std::size_t max_role_alias_bytes = 128;
inline constexpr std::size_t max_thing_name_bytes = 128;

// A role alias as AWS IoT accepts one: 1 to 128 of [A-Za-z0-9_=,@-].
[[nodiscard]] bool valid_role_alias(std::string_view alias) noexcept;
// A Thing name as AWS IoT accepts one: 1 to 128 of [A-Za-z0-9:_-].
[[nodiscard]] bool valid_thing_name(std::string_view name) noexcept;
// "/role-aliases/ALIAS/credentials" for a valid alias (its characters need no escaping).
[[nodiscard]] std::string request_target(std::string_view role_alias);

// Why an answer gave no credentials.
enum class errc : std::uint8_t {
    refused = 1,        // 4xx (not 408/429): the provider said no (role alias, certificate, thing name, role)
    unavailable,        // 5xx, 408, 429: the provider is throttling or cannot answer now
    unexpected_status,  // 1xx, 3xx or a 2xx other than 200: not the provider's API
    body_too_large,     // more than max_body_bytes
    not_json,           // a 200 answer whose body is not a JSON document (or nests deeper than max_json_depth)
    no_credentials,     // a JSON document without a "credentials" object
    bad_field,          // accessKeyId, secretAccessKey or sessionToken missing, not a string or unusable
    bad_expiration,     // "expiration" missing or not an ISO 8601 time
};

// The category of errc ("thingmux.iot_credentials").
[[nodiscard]] const std::error_category& category() noexcept;
[[nodiscard]] std::error_code make_error_code(errc e) noexcept;

// Whether asking again (later, unchanged) may give another answer: everything but `refused`.
[[nodiscard]] bool retry_can_help(errc e) noexcept;

// The credentials of an answer, or why there are none.
struct answer {
    std::optional<credentials> value;
    std::error_code error;  // when !value: one of errc
    // When !value, for people: "HTTP 403: Access Denied", "sessionToken is missing". The
    // provider's text in it is escaped; it never holds a secret or a token.
    std::string detail;
};

// Reads the answer with HTTP status `status` and body `body` (its first max_body_bytes + 1 bytes
// are enough to know it is too large). A 200 answer must carry usable credentials with an
// expiration; an error answer's {"message": …} (or the start of a body that is not JSON) goes
// into detail.
[[nodiscard]] answer parse_answer(int status, std::string_view body);

}  // namespace thingmux::aws::iot_credentials

template <>
struct std::is_error_code_enum<thingmux::aws::iot_credentials::errc> : std::true_type {};
