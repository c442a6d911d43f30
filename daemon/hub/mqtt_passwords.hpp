// Checking an MQTT CONNECT's username and password against the mqtt.passwords file (read and
// parsed by config/password_file.hpp): PBKDF2-HMAC-SHA512 for `$7$` lines, SHA-512 of the
// password then the salt for `$6$` lines, as mosquitto computes them; digests compared in
// constant time.
#pragma once

#include "config/password_file.hpp"

#include <string_view>

namespace thingmux::hub {

// True when `password` hashes to `entry`'s hash.
[[nodiscard]] bool password_matches(const config::password_entry& entry, std::string_view password);

// True when `table` lists `user` and `password` is theirs. An unknown user costs the same work
// as a known one, so that timing does not tell which names exist.
[[nodiscard]] bool check_password(const config::password_table& table, std::string_view user,
                                  std::string_view password);

}  // namespace thingmux::hub
