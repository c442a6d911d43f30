// Small secret files the uplink reads at every connection attempt (proxy credentials, a custom
// authorizer's token, signature and password): read without blocking on what sits at the path,
// with a message a user can act on, and wiped from memory once used.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace thingmux::uplink {

// Reads `file` (a regular file of at most `max_bytes`) into `out`; returns what is wrong, empty on
// success: "cannot read NAMED: Permission denied", "NAMED is larger than 4096 bytes". `named`
// says which file it is: "proxy credentials file /etc/x (proxy_credentials)".
[[nodiscard]] std::string read_secret_file(const std::filesystem::path& file, std::string_view named,
                                           std::size_t max_bytes, std::string& out);

// Overwrites `s` (OPENSSL_cleanse, which the compiler cannot drop) and empties it.
void wipe(std::string& s) noexcept;

}  // namespace thingmux::uplink
