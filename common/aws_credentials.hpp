// AWS credentials (an access key id and its secret; for temporary credentials a session token and
// when they expire), the bounds every source of them respects, and the checks and timestamps
// they share. Pure: nothing here reads a file or logs. No message ever holds a secret or a token,
// and of a key id at most its first 4 characters (key_id_hint()).
#pragma once

#include <chrono>
#include <cstddef>
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

// "AKIA…": what messages may show of a key id (its first 4 characters at most).
[[nodiscard]] std::string key_id_hint(std::string_view access_key_id);

// What is wrong with these credentials ("the access key id has 3 characters; AWS key ids have
// 16 to 128"), naming the field, never its value; empty when they are usable.
[[nodiscard]] std::string problem(const credentials& c);

// "2026-12-05T10:51:40Z", "2026-12-05T10:51:40.123Z", "2026-12-05T12:51:40+02:00": an instant
// in the ISO 8601 forms AWS writes expirations in; nullopt on anything else.
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> parse_timestamp(std::string_view text);

}  // namespace thingmux::aws
