#include "daemon/hub/mqtt_passwords.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <limits>

namespace thingmux::hub {
namespace {

constexpr std::size_t sha512_bytes = 64;
using digest = std::array<unsigned char, sha512_bytes>;

bool pbkdf2_sha512(std::string_view password, const std::string& salt, std::uint32_t iterations, digest& out) {
    if (password.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
        iterations > static_cast<std::uint32_t>(std::numeric_limits<int>::max()))
        return false;
    return ::PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                               reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                               static_cast<int>(iterations), ::EVP_sha512(), static_cast<int>(out.size()),
                               out.data()) == 1;
}

bool salted_sha512(std::string_view password, const std::string& salt, digest& out) {
    EVP_MD_CTX* ctx = ::EVP_MD_CTX_new();
    if (ctx == nullptr) return false;
    unsigned int size = 0;
    const bool ok = ::EVP_DigestInit_ex(ctx, ::EVP_sha512(), nullptr) == 1 &&
                    ::EVP_DigestUpdate(ctx, password.data(), password.size()) == 1 &&
                    ::EVP_DigestUpdate(ctx, salt.data(), salt.size()) == 1 &&
                    ::EVP_DigestFinal_ex(ctx, out.data(), &size) == 1 && size == out.size();
    ::EVP_MD_CTX_free(ctx);
    return ok;
}

// Stands in for an unknown user: the work of mosquitto_passwd's default hash, never a match.
const config::password_entry& decoy() {
    static const config::password_entry entry{.user = {},
                                              .scheme = config::password_scheme::pbkdf2_sha512,
                                              .iterations = 101,
                                              .salt = std::string(12, '\0'),
                                              .hash = std::string(sha512_bytes, '\0')};
    return entry;
}

}  // namespace

bool password_matches(const config::password_entry& entry, std::string_view password) {
    if (entry.hash.size() != sha512_bytes) return false;
    digest computed{};
    const bool hashed = entry.scheme == config::password_scheme::pbkdf2_sha512
                            ? pbkdf2_sha512(password, entry.salt, entry.iterations, computed)
                            : salted_sha512(password, entry.salt, computed);
    return hashed && ::CRYPTO_memcmp(computed.data(), entry.hash.data(), computed.size()) == 0;
}

bool check_password(const config::password_table& table, std::string_view user, std::string_view password) {
    const auto* entry = table.find(user);
    if (entry == nullptr) {
        (void)password_matches(decoy(), password);
        return false;
    }
    return password_matches(*entry, password);
}

}  // namespace thingmux::hub
