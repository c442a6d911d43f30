// A password file in mosquitto_passwd's format (mqtt.passwords): one `user:HASH` line per user,
// HASH being `$7$ITERATIONS$SALT$HASH` (PBKDF2-HMAC-SHA512, what mosquitto 2.0's mosquitto_passwd
// writes) or `$6$SALT$HASH` (SHA-512 of the password then the salt, mosquitto 1.6's), SALT and
// HASH in base64. Parsing only: the hashes are checked in daemon/hub (mqtt_passwords.hpp).
// Empty lines and lines starting with '#' are skipped, as mosquitto does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::config {

enum class password_scheme : std::uint8_t {
    pbkdf2_sha512,  // $7$
    sha512,         // $6$
};

struct password_entry {
    std::string user;
    password_scheme scheme = password_scheme::pbkdf2_sha512;
    std::uint32_t iterations = 0;  // $7$ only
    std::string salt;              // decoded bytes
    std::string hash;              // decoded bytes: 64 (SHA-512)
};

// A line that is not usable, and why.
struct password_problem {
    int line = 0;  // 1-based
    std::string message;
};

struct password_table {
    std::vector<password_entry> entries;
    std::vector<password_problem> problems;
    [[nodiscard]] const password_entry* find(std::string_view user) const noexcept;
};

// Bounds: a user name as MQTT can carry it, a salt and an iteration count far above what
// mosquitto_passwd writes (12 bytes, 101 and up); more would only make each CONNECT costly.
inline constexpr std::size_t max_password_user = 65535;
inline constexpr std::size_t max_password_salt = 1024;
inline constexpr std::uint32_t max_password_iterations = 10'000'000;
inline constexpr std::size_t max_password_file_bytes = 16 * 1024 * 1024;

// Every line of `text`; unusable lines are in `problems` (and not in `entries`). A user listed
// twice is a problem on its second line.
[[nodiscard]] password_table parse_password_file(std::string_view text);

// Reads and parses the file (never blocking on a FIFO at the path). nullopt with `error` set
// when the file cannot be read ("file /x does not exist", "... not readable: permission denied").
[[nodiscard]] std::optional<password_table> read_password_file(const std::filesystem::path& file, std::string& error);

// Standard base64 (RFC 4648, with '=' padding, no line breaks); nullopt when `text` is not that.
[[nodiscard]] std::optional<std::string> decode_base64(std::string_view text);

}  // namespace thingmux::config
