// The values an AWS IoT custom authorizer reads from a connection (docs/connecting.md, "Custom
// authorizer"): over MQTT, the CONNECT user name
//   USERNAME?x-amz-customauthorizer-name=NAME&TOKENKEY=TOKEN&x-amz-customauthorizer-signature=SIG
// (the query values percent-encoded) and the password; over WebSocket, the same parameters as
// headers or query parameters of the upgrade request. Pure: no I/O, no logging. Messages never
// quote a token, signature or password.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::custom_authorizer {

// The parameter names AWS IoT Core reads.
inline constexpr std::string_view name_parameter = "x-amz-customauthorizer-name";
inline constexpr std::string_view signature_parameter = "x-amz-customauthorizer-signature";

// MQTT's user name and password have a 16-bit length prefix (spec 3.1.3.5, 3.1.3.6).
inline constexpr std::size_t max_mqtt_user_name_bytes = 65535;
inline constexpr std::size_t max_mqtt_password_bytes = 65535;
// AWS IoT Core's limit for an authorizer's name (API AuthorizerDescription: 1 to 128 of [\w=,@-]).
inline constexpr std::size_t max_name_bytes = 128;
// A token key name is also a header name on WebSocket; no name of AWS's is longer.
inline constexpr std::size_t max_token_key_name_bytes = 128;

// What one connection presents, with the secrets read from their files.
struct login {
    std::string_view username;        // the part before '?'; empty: none
    std::string_view name;            // the authorizer's name (required)
    std::string_view token_key_name;  // with token; empty: no token
    std::string_view token;
    std::string_view signature;  // the token's signature (base64) for a signing authorizer; empty: none
};

// What is wrong with each value, empty when it is usable. Shared by the configuration's checks
// and mqtt_user_name(), so both refuse the same things in the same words.
[[nodiscard]] std::string name_problem(std::string_view name);
[[nodiscard]] std::string token_key_name_problem(std::string_view key);
[[nodiscard]] std::string username_problem(std::string_view username);
// `what` names the value in the message: "token", "signature".
[[nodiscard]] std::string secret_problem(std::string_view what, std::string_view value);
[[nodiscard]] std::string password_problem(std::string_view password);

// The text of a token, signature or password file: its content without one trailing line end
// ("\n" or "\r\n"), as `echo TOKEN > FILE` writes it.
[[nodiscard]] std::string_view without_line_end(std::string_view text) noexcept;

// RFC 3986 percent-encoding of everything but the unreserved characters (A-Z a-z 0-9 - . _ ~):
// a base64 signature's '+', '/' and '=' become %2B, %2F and %3D.
[[nodiscard]] std::string url_encode(std::string_view s);

struct user_name_result {
    std::optional<std::string> value;
    std::string problem;  // when there is no value: what is wrong, never quoting a secret
};
// The MQTT CONNECT user name for `l`, or why there is none (a value unusable, a token without
// its key name or the other way round, a signature without a token, more than 65535 bytes).
[[nodiscard]] user_name_result mqtt_user_name(const login& l);

// One parameter of a WebSocket upgrade request, not encoded: as a header, write it as it is; in
// a query string, through query_string().
struct parameter {
    std::string name;
    std::string value;
};
// The parameters of `l` in the order of the MQTT user name: name, TOKENKEY: token, signature
// (the absent ones left out). `l` must be usable: mqtt_user_name() gives a value for it.
[[nodiscard]] std::vector<parameter> websocket_parameters(const login& l);
// "a=b&c=d", names and values URL-encoded.
[[nodiscard]] std::string query_string(const std::vector<parameter>& parameters);

}  // namespace thingmux::custom_authorizer
