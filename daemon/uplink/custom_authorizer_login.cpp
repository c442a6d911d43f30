#include "daemon/uplink/custom_authorizer_login.hpp"

#include "daemon/uplink/error.hpp"
#include "daemon/uplink/secret_file.hpp"

#include <utility>

namespace thingmux::uplink {
namespace {

// A token, signature or password file: a line of at most what an MQTT string can hold, and its
// line end; anything larger is not one.
constexpr std::size_t max_secret_file_bytes = custom_authorizer::max_mqtt_user_name_bytes + 2;

// "custom authorizer token file /etc/x (custom_authorizer.token)".
std::string named(std::string_view what, const std::filesystem::path& file) {
    return "custom authorizer " + std::string(what) + " file " + file.string() + " (custom_authorizer." +
           std::string(what) + ")";
}

// The secrets of one attempt, wiped when it is over.
struct secrets {
    std::string token;
    std::string signature;
    std::optional<std::string> password;
    std::string problem;  // which file could not be read or used, and why
    secrets() = default;
    secrets(const secrets&) = delete;
    secrets& operator=(const secrets&) = delete;
    ~secrets() {
        wipe(token);
        wipe(signature);
        if (password) wipe(*password);
    }
};

// Reads `file` into `out` without its line end; false (and `problem` set) when it cannot be.
bool read_value(std::string_view what, const std::filesystem::path& file, std::string& out, std::string& problem) {
    problem = read_secret_file(file, named(what, file), max_secret_file_bytes, out);
    if (!problem.empty()) return false;
    out.resize(custom_authorizer::without_line_end(out).size());
    return true;
}

// A token or signature file: one non-empty line of printable characters.
bool read_line(std::string_view what, std::string_view fill_in, const std::filesystem::path& file, std::string& out,
               std::string& problem) {
    if (!read_value(what, file, out, problem)) return false;
    if (out.empty()) {
        problem = named(what, file) + " is empty: write " + std::string(fill_in) + " in it";
        return false;
    }
    if (auto why = custom_authorizer::secret_problem(what, out); !why.empty()) {
        problem = named(what, file) + ": " + why;
        return false;
    }
    return true;
}

void read_secrets(const custom_authorizer_files& f, secrets& s) {
    if (!f.token_file.empty() && !read_line("token", "the token", f.token_file, s.token, s.problem)) return;
    if (!f.signature_file.empty() &&
        !read_line("signature", "the token's signature (base64)", f.signature_file, s.signature, s.problem))
        return;
    if (!f.password_file.empty()) {
        s.password.emplace();
        if (!read_value("password", f.password_file, *s.password, s.problem)) return;
        if (auto why = custom_authorizer::password_problem(*s.password); !why.empty())
            s.problem = named("password", f.password_file) + ": " + why;
    }
}

custom_authorizer::login login_of(const custom_authorizer_files& f, const secrets& s) {
    return {.username = f.username,
            .name = f.name,
            .token_key_name = f.token_key_name,
            .token = s.token,
            .signature = s.signature};
}

}  // namespace

mqtt_login load_mqtt_login(const custom_authorizer_files& f) {
    secrets s;
    read_secrets(f, s);
    if (!s.problem.empty()) return {{}, std::nullopt, errc::custom_authorizer_unusable, std::move(s.problem)};
    auto user = custom_authorizer::mqtt_user_name(login_of(f, s));
    if (!user.value)
        return {{},
                std::nullopt,
                errc::custom_authorizer_unusable,
                "custom authorizer " + f.name + ": " + user.problem + " (custom_authorizer settings and files)"};
    return {std::move(*user.value), std::exchange(s.password, std::nullopt), {}, {}};
}

websocket_login load_websocket_login(const custom_authorizer_files& f) {
    secrets s;
    read_secrets(f, s);
    if (!s.problem.empty()) return {{}, errc::custom_authorizer_unusable, std::move(s.problem)};
    // The same checks and limits as for MQTT: one set of rules for the values on either way.
    const auto l = login_of(f, s);
    if (auto user = custom_authorizer::mqtt_user_name(l); !user.value)
        return {{},
                errc::custom_authorizer_unusable,
                "custom authorizer " + f.name + ": " + user.problem + " (custom_authorizer settings and files)"};
    return {custom_authorizer::websocket_parameters(l), {}, {}};
}

std::string denied_message(const custom_authorizer_files& f, const std::string& broker_reason) {
    std::string files;
    for (const auto& [what, file] :
         {std::pair{"token", &f.token_file}, {"signature", &f.signature_file}, {"password", &f.password_file}}) {
        if (file->empty()) continue;
        files += (files.empty() ? "" : ", ") + std::string("custom_authorizer.") + what + " " + file->string();
    }
    return "custom authorizer " + f.name + " denied the connection (broker: " + broker_reason +
           "): check the token and " + "signature files" + (files.empty() ? std::string() : " (" + files + ")") +
           ", that the token is current and signed with the authorizer's key, and that the authorizer's Lambda allows "
           "this client (docs/connecting.md, Custom authorizer)";
}

}  // namespace thingmux::uplink
