#include "daemon/uplink/secret_file.hpp"

#include "common/regular_file.hpp"

#include <openssl/crypto.h>

#include <cstring>

namespace thingmux::uplink {

std::string read_secret_file(const std::filesystem::path& file, std::string_view named, std::size_t max_bytes,
                             std::string& out) {
    auto c = files::read_regular(file, max_bytes);
    if (c.os_error != 0) return "cannot read " + std::string(named) + ": " + std::strerror(c.os_error);
    if (!c.ok()) return std::string(named) + " " + c.problem;
    out = std::move(c.bytes);
    return {};
}

void wipe(std::string& s) noexcept {
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

}  // namespace thingmux::uplink
