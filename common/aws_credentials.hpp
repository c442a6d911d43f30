// AWS credentials (an access key id and its secret; for temporary credentials a session token and
// when they expire) and the readers of their static sources: the shared credentials file's INI
// format (~/.aws/credentials, as the AWS CLI and SDKs read it) and the standard environment
// variables. Pure: the caller reads the file and passes a getenv-like function; nothing here
// logs. No message ever holds a secret or a token, and of a key id at most its first 4
// characters (key_id_hint()).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace thingmux::aws {

struct credentials {
    std::string access_key_id;      // "AKIA..." (long-term) or "ASIA..." (temporary)
    std::string secret_access_key;  // never logged
    std::string session_token;      // temporary credentials only; empty: none. Never logged.
    std::optional<std::chrono::system_clock::time_point> expiration;  // temporary credentials only
};

// Bounds of what a source may hand over: AWS key ids are 16 to 128 characters, secrets 40;
// session tokens of STS and the IoT credentials provider are a few KiB.
inline constexpr std::size_t max_key_id_bytes = 128;
inline constexpr std::size_t max_secret_bytes = 128;
inline constexpr std::size_t max_session_token_bytes = 16 * 1024;
inline constexpr std::size_t max_credentials_file_bytes = 1024 * 1024;
inline constexpr std::size_t max_profile_name_bytes = 128;

// "AKIA…": what messages may show of a key id (its first 4 characters at most).
[[nodiscard]] std::string key_id_hint(std::string_view access_key_id);

// What is wrong with these credentials ("the access key id has 3 characters; AWS key ids have
// 16 to 128"), naming the field, never its value; empty when they are usable.
[[nodiscard]] std::string problem(const credentials& c);

// Whether `name` may name a profile: 1 to 128 characters, none of them '[', ']', white space or
// a control character.
[[nodiscard]] bool valid_profile_name(std::string_view name) noexcept;

// Credentials, or why a source gave none.
struct lookup {
    std::optional<credentials> found;
    std::string why_not;  // when !found: "line 7: [dev] has aws_access_key_id but no aws_secret_access_key"
};

// Profile `profile` of a shared credentials file's text: sections "[NAME]", lines "key = value"
// (or "key: value"; keys without regard to case), full-line comments starting with '#' or ';',
// a comment after a value when white space precedes its '#' or ';'. aws_access_key_id,
// aws_secret_access_key and aws_session_token are read; other keys (region, output, ...) are
// left alone. A line that is none of these, a section or key written twice, or an indented line
// continuing one of the three values fails the whole file, as it does for the AWS CLI.
[[nodiscard]] lookup parse_credentials_file(std::string_view text, std::string_view profile);

// A getenv-like function: the variable's value, or nullptr when it is not set.
using environment = std::function<const char*(const char*)>;

// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and AWS_CREDENTIAL_EXPIRATION
// (ISO 8601, as the AWS CLI reads it). Empty variables count as not set.
[[nodiscard]] lookup credentials_from_environment(const environment& getenv);

// Where the shared credentials file of the environment's user is: AWS_SHARED_CREDENTIALS_FILE
// ("~/" expanded), else $HOME/.aws/credentials; empty when neither variable is set.
[[nodiscard]] std::string shared_credentials_file(const environment& getenv);

// "2026-12-05T10:51:40Z", "2026-12-05T10:51:40.123Z", "2026-12-05T12:51:40+02:00": an instant
// in the ISO 8601 forms AWS writes expirations in; nullopt on anything else.
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> parse_timestamp(std::string_view text);

}  // namespace thingmux::aws
