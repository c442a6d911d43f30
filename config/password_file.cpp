#include "config/password_file.hpp"

#include "common/regular_file.hpp"
#include "common/plain_text.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <variant>

namespace thingmux::config {
namespace {

constexpr std::size_t sha512_bytes = 64;

int base64_value(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// The entry of one `user:hash` line, or what is wrong with it.
std::variant<password_entry, std::string> parse_line(std::string_view line) {
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return std::string("not 'user:hash' (no ':')");
    password_entry e;
    e.user = std::string(line.substr(0, colon));
    if (e.user.empty()) return std::string("the user name is empty");
    if (e.user.size() > max_password_user) return std::string("the user name is longer than 65535 bytes");
    const auto hash = line.substr(colon + 1);
    const auto f = text::split(hash, '$');
    // "$7$101$salt$hash" -> "", "7", "101", "salt", "hash"; "$6$salt$hash" -> "", "6", "salt", "hash".
    std::string_view salt;
    std::string_view digest;
    if (f.size() == 5 && f[0].empty() && f[1] == "7") {
        e.scheme = password_scheme::pbkdf2_sha512;
        const auto* end = f[2].data() + f[2].size();
        const auto [ptr, ec] = std::from_chars(f[2].data(), end, e.iterations);
        if (f[2].empty() || ec != std::errc{} || ptr != end || e.iterations == 0 ||
            e.iterations > max_password_iterations)
            return "'$7$' needs an iteration count from 1 to " + std::to_string(max_password_iterations);
        salt = f[3];
        digest = f[4];
    } else if (f.size() == 4 && f[0].empty() && f[1] == "6") {
        e.scheme = password_scheme::sha512;
        salt = f[2];
        digest = f[3];
    } else {
        return std::string(
            "the hash is neither '$7$ITERATIONS$SALT$HASH' nor '$6$SALT$HASH' (a plain-text password? run "
            "mosquitto_passwd -U on the file)");
    }
    auto s = decode_base64(salt);
    if (!s || s->empty() || s->size() > max_password_salt)
        return std::string("the salt is not base64 of 1 to 1024 bytes");
    auto h = decode_base64(digest);
    if (!h || h->size() != sha512_bytes) return std::string("the hash is not base64 of a 64-byte SHA-512 digest");
    e.salt = std::move(*s);
    e.hash = std::move(*h);
    return e;
}

}  // namespace

const password_entry* password_table::find(std::string_view user) const noexcept {
    const auto it =
        std::find_if(entries.begin(), entries.end(), [&](const password_entry& e) { return e.user == user; });
    return it == entries.end() ? nullptr : &*it;
}

std::optional<std::string> decode_base64(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        std::array<int, 4> v{};
        int padding = 0;
        for (std::size_t j = 0; j < 4; ++j) {
            const char c = text[i + j];
            if (c == '=' && i + 4 == text.size() && j >= 2) {
                ++padding;
                v[j] = 0;
                continue;
            }
            if (padding > 0) return std::nullopt;  // '=' only at the very end
            v[j] = base64_value(c);
            if (v[j] < 0) return std::nullopt;
        }
        const auto bits = (static_cast<unsigned>(v[0]) << 18U) | (static_cast<unsigned>(v[1]) << 12U) |
                          (static_cast<unsigned>(v[2]) << 6U) | static_cast<unsigned>(v[3]);
        out.push_back(static_cast<char>((bits >> 16U) & 0xFFU));
        if (padding < 2) out.push_back(static_cast<char>((bits >> 8U) & 0xFFU));
        if (padding < 1) out.push_back(static_cast<char>(bits & 0xFFU));
    }
    return out;
}

password_table parse_password_file(std::string_view text) {
    password_table t;
    text::line_reader lines(text);
    while (const auto next = lines.next()) {
        const auto line = *next;
        const int number = lines.number();
        if (line.empty() || line.front() == '#') continue;
        auto parsed = parse_line(line);
        if (auto* why = std::get_if<std::string>(&parsed)) {
            t.problems.push_back({number, std::move(*why)});
            continue;
        }
        auto& e = std::get<password_entry>(parsed);
        if (t.find(e.user) != nullptr) {
            t.problems.push_back({number, "user '" + e.user + "' is listed twice"});
            continue;
        }
        t.entries.push_back(std::move(e));
    }
    return t;
}

std::optional<password_table> read_password_file(const std::filesystem::path& file, std::string& error) {
    const auto c = files::read_regular(file, max_password_file_bytes);
    if (c.os_error == ENOENT) {
        error = "file " + file.string() + " does not exist";
        return std::nullopt;
    }
    if (c.os_error != 0) {
        error = "file " + file.string() + " not readable by thingmux: " + c.problem;
        return std::nullopt;
    }
    if (!c.ok()) {
        error = file.string() + " " + c.problem;
        return std::nullopt;
    }
    return parse_password_file(c.bytes);
}

}  // namespace thingmux::config
