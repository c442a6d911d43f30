#include "config/config.hpp"

#include "common/aws_credentials.hpp"
#include "common/pkcs11_uri.hpp"
#include "common/regular_file.hpp"
#include "config/password_file.hpp"

#include <algorithm>

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace thingmux::config {

const char* to_string(protocol_version v) noexcept {
    return v == protocol_version::mqtt311 ? "mqtt311" : "mqtt5";
}
const char* to_string(auth_method v) noexcept {
    switch (v) {
    case auth_method::x509: return "x509";
    case auth_method::sigv4: return "sigv4";
    case auth_method::custom_authorizer: return "custom-authorizer";
    }
    return "x509";
}
std::string describe_auth(const thing& t) {
    std::string s = to_string(t.auth);
    if (t.auth == auth_method::custom_authorizer) s += " " + t.custom_authorizer.name;
    return s;
}
const char* to_string(transport_mode v) noexcept {
    return v == transport_mode::websocket ? "websocket" : "mqtt";
}
const char* to_string(qos2_policy v) noexcept {
    return v == qos2_policy::downgrade ? "downgrade" : "refuse";
}
const char* to_string(retain_policy v) noexcept {
    return v == retain_policy::refuse ? "refuse" : "allow";
}
const char* to_string(spool_overflow v) noexcept {
    return v == spool_overflow::drop_oldest_qos0 ? "drop_oldest_qos0" : "reject";
}
const char* to_string(offline_qos0 v) noexcept {
    return v == offline_qos0::queue ? "queue" : "drop";
}
const char* to_string(log_level v) noexcept {
    switch (v) {
    case log_level::trace: return "trace";
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::error: return "error";
    }
    return "info";
}
const char* to_string(log_target v) noexcept {
    switch (v) {
    case log_target::automatic: return "auto";
    case log_target::journal: return "journal";
    case log_target::stderr_stream: return "stderr";
    }
    return "auto";
}

const char* to_string(aws_credential_source::kind v) noexcept {
    switch (v) {
    case aws_credential_source::kind::file: return "file";
    case aws_credential_source::kind::environment: return "env";
    case aws_credential_source::kind::profile: return "profile";
    case aws_credential_source::kind::iot_credentials_provider: return "iot_credentials_provider";
    }
    return "env";
}

const thing* configuration::find_thing(std::string_view name) const noexcept {
    for (const auto& t : things) {
        if (t.name == name) return &t;
    }
    return nullptr;
}

namespace {

// "thingmux (gid 998)", or "gid 998" when NSS has no name for it.
std::string group_label(gid_t gid) {
    std::vector<char> buf(1024);
    group entry{};
    group* found = nullptr;
    int rc = 0;
    while ((rc = ::getgrgid_r(gid, &entry, buf.data(), buf.size(), &found)) == ERANGE &&
           buf.size() < (std::size_t{1} << 24))
        buf.resize(buf.size() * 2);
    const auto number = "gid " + std::to_string(gid);
    return rc == 0 && found != nullptr && found->gr_name != nullptr ? std::string(found->gr_name) + " (" + number + ")"
                                                                    : number;
}

// Who besides thingmuxd may read a private key: {what, how to fix}, empty when nobody. Group
// access is for thingmuxd's own group (the one this check runs as, like the daemon): any other
// group lets other programs read the key.
// `what` names the secret: "private key", "proxy credentials file", "custom authorizer token file".
std::pair<std::string, std::string> secret_exposure(std::string_view what, const std::filesystem::path& file,
                                                    const files::contents& c) {
    const auto named = std::string(what) + " " + file.string();
    if ((c.mode & 0007U) != 0) return {named + " is readable by other users", "chmod 0600 or 0640 with group thingmux"};
    if ((c.mode & 0070U) != 0 && c.gid != ::getegid())
        return {named + " is readable by group " + group_label(c.gid) + ", which thingmuxd does not run as",
                "chmod 0600, or chgrp it to thingmuxd's group " + group_label(::getegid())};
    return {};
}

// Why `file` cannot serve as a certificate, key or CA file, with what to do; nullopt when it can.
// `kind` names what the file should be, for the hint: "PEM file", "credentials file".
std::optional<std::pair<std::string, std::string>> unusable(const files::contents& c, const std::filesystem::path& file,
                                                            std::string_view kind) {
    const char* check_access =
        "check the path, and that the thingmux user may read the file and every directory above it";
    if (c.os_error == ENOENT) return std::pair{"file " + file.string() + " does not exist", check_access};
    if (c.os_error != 0)
        return std::pair{"file " + file.string() + " not readable by thingmux: " + c.problem, check_access};
    if (!c.ok()) return std::pair{file.string() + " " + c.problem, "point it at the " + std::string(kind) + " itself"};
    return std::nullopt;
}

}  // namespace

std::string tcp_address::to_string() const {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::filesystem::path resolve_file(const std::filesystem::path& p) {
    const auto& s = p.native();
    if (!s.starts_with(credential_prefix)) return p;
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir == nullptr || *dir == '\0') return {};
    return std::filesystem::path(dir) / s.substr(credential_prefix.size());
}

// mqtt.passwords: readable, every line a hash mosquitto_passwd writes; each bad line with its
// own file:line.
void check_password_file(const mqtt_settings& m, std::vector<diagnostic>& out, const std::string& file_name) {
    if (!m.enabled || m.passwords.empty()) return;
    const auto at = m.passwords_where;
    std::string error;
    const auto table = read_password_file(m.passwords, error);
    if (!table) {
        out.push_back(diagnostic{file_name, at.line, at.column, "mqtt.passwords", std::move(error),
                                 "create it with mosquitto_passwd -c FILE USER, readable by thingmuxd's user", false});
        return;
    }
    for (const auto& p : table->problems)
        out.push_back(diagnostic{m.passwords.string(), p.line, 0, "mqtt.passwords", p.message,
                                 "each line is USER:HASH as mosquitto_passwd writes it", false});
}

namespace {

// One file a setting names: readable, and (for a `secret`) not readable by others. Returns the
// resolved path when the file can be read; `warning` turns its problems into warnings.
std::optional<std::filesystem::path> check_file(std::vector<diagnostic>& out, const std::string& file_name,
                                                const std::string& path, source_location at,
                                                const std::filesystem::path& file, std::string_view secret,
                                                std::string_view kind = "PEM file", bool warning = false) {
    const auto resolved = resolve_file(file);
    if (resolved.empty()) {
        out.push_back(diagnostic{file_name, at.line, at.column, path,
                                 file.string() + ": CREDENTIALS_DIRECTORY is not set",
                                 "credentials exist only under systemd: add LoadCredential= to thingmuxd.service, "
                                 "or write the file's path",
                                 warning});
        return std::nullopt;
    }
    const auto checked = files::check_regular(resolved);
    if (auto problem = unusable(checked, resolved, kind)) {
        out.push_back(diagnostic{file_name, at.line, at.column, path, std::move(problem->first),
                                 std::move(problem->second), warning});
        return std::nullopt;
    }
    if (!secret.empty()) {
        if (auto [exposed, fix] = secret_exposure(secret, resolved, checked); !exposed.empty())
            out.push_back(diagnostic{file_name, at.line, at.column, path, std::move(exposed), std::move(fix), true});
    }
    return resolved;
}

// A "pkcs11:" URI is no file: the files it names are, its token's library and its PIN file.
void check_token_files(std::vector<diagnostic>& out, const std::string& file_name, const std::string& path,
                       source_location at, const std::filesystem::path& text) {
    const auto uri = pkcs11::parse_uri(text.native());
    if (!uri.value) return;  // parse() reported it
    if (!uri.value->module_path.empty())
        (void)check_file(out, file_name, path + " module-path", at, uri.value->module_path, {}, "PKCS#11 library");
    if (!uri.value->pin_source.empty())
        (void)check_file(out, file_name, path + " pin-source", at, uri.value->pin_file(), "PIN file", "PIN file");
}

// The files of a Thing's aws_credentials: each readable and holding its profile. A Thing with
// more than one source still works when one of them gives nothing, so problems are warnings then.
void check_aws_credentials(const thing& t, const std::string& thing_path, std::vector<diagnostic>& out,
                           const std::string& file_name) {
    const bool fallback = t.aws_credentials.size() > 1;
    for (std::size_t j = 0; j < t.aws_credentials.size(); ++j) {
        const auto& s = t.aws_credentials[j];
        const auto path = thing_path + ".aws_credentials[" + std::to_string(j) + "]";
        if (s.type == aws_credential_source::kind::iot_credentials_provider && !s.ca.empty())
            (void)check_file(out, file_name, path + ".iot_credentials_provider.ca", s.where, s.ca, {});
        if (s.type != aws_credential_source::kind::file || s.file.empty()) continue;
        const auto resolved =
            check_file(out, file_name, path + ".file", s.where, s.file, "AWS credentials file", "credentials file", fallback);
        if (!resolved) continue;
        const auto c = files::read_regular(*resolved, aws::max_credentials_file_bytes);
        const auto found = c.ok() ? aws::parse_credentials_file(c.bytes, s.profile)
                                  : aws::lookup{std::nullopt, c.problem};
        if (!found.found)
            out.push_back(diagnostic{file_name, s.where.line, s.where.column, path + ".file",
                                     "file " + s.file.string() + ": " + found.why_not,
                                     "write [" + s.profile + "] with aws_access_key_id and aws_secret_access_key",
                                     fallback});
    }
}

}  // namespace

// provisioning and rotation: the claim certificate and key are read like the Thing's own; the
// Thing's cert and key may be missing before provisioning, and their directories must take the
// new files (as the calling process: run it with the daemon's credentials).
void check_identity_files(const thing& t, const std::string& thing_path, std::vector<diagnostic>& out,
                          const std::string& file_name) {
    const auto at = [&](const std::string& key) {
        const auto f = t.fields.find(key);
        return f != t.fields.end() ? f->second : t.where;
    };
    if (t.provisioning) {
        (void)check_file(out, file_name, thing_path + ".provisioning.claim_cert", at("provisioning.claim_cert"),
                         t.provisioning->claim_cert, {});
        (void)check_file(out, file_name, thing_path + ".provisioning.claim_key", at("provisioning.claim_key"),
                         t.provisioning->claim_key, "private key");
    }
    for (const auto& [key, file] : {std::pair{std::string("cert"), &t.cert}, {std::string("key"), &t.key}}) {
        if (file->empty() || file->string().starts_with(credential_prefix)) continue;
        const auto dir = file->parent_path();
        if (::access(dir.c_str(), W_OK) != 0) {
            const int e = errno;
            const auto where = at(key);
            out.push_back(diagnostic{file_name, where.line, where.column, thing_path + "." + key,
                                     "cannot write the Thing's new " + std::string(key == "cert" ? "certificate" : "key") +
                                         " into " + dir.string() + ": " + std::strerror(e),
                                     "provisioning and rotation write there: create the directory, owned by thingmuxd's "
                                     "user (e.g. /var/lib/thingmux/identity, mode 0700)",
                                     false});
        }
    }
}

void check_files(const configuration& config, std::vector<diagnostic>& out, const std::string& file_name) {
    check_password_file(config.mqtt, out, file_name);
    for (std::size_t i = 0; i < config.things.size(); ++i) {
        const auto& t = config.things[i];
        const auto thing_path = "things[" + std::to_string(i) + "]";
        // Each file a Thing names, and what it is when others must not read it.
        struct named_file {
            std::string_view key;
            const std::filesystem::path* file;
            std::string_view secret;
        };
        for (const auto& [key, file, secret] :
             {named_file{"ca", &t.ca, {}}, {"cert", &t.cert, {}}, {"key", &t.key, "private key"},
              {"key_pin", &t.key_pin, "PIN file"}, {"pkcs12", &t.pkcs12, "PKCS#12 bundle"},
              {"pkcs12_password", &t.pkcs12_password, "PKCS#12 password file"},
              {"proxy_credentials", &t.proxy.credentials, "proxy credentials file"}, {"proxy_ca", &t.proxy.ca, {}},
              {"custom_authorizer.token", &t.custom_authorizer.token, "custom authorizer token file"},
              {"custom_authorizer.signature", &t.custom_authorizer.signature, "custom authorizer signature file"},
              {"custom_authorizer.password", &t.custom_authorizer.password, "custom authorizer password file"}}) {
            const auto f = t.fields.find(key);
            if (file->empty()) continue;  // not written or not valid: parse() reported it
            // Not there yet: provisioning writes them.
            std::error_code ignored;
            if (t.provisioning && (file == &t.cert || file == &t.key) && !std::filesystem::exists(*file, ignored)) continue;
            const auto at = f != t.fields.end() ? f->second : t.where;
            if (pkcs11::is_uri(file->native())) {
                check_token_files(out, file_name, thing_path + "." + std::string(key), at, *file);
                continue;
            }
            (void)check_file(out, file_name, thing_path + "." + std::string(key), at, *file, secret);
        }
        check_aws_credentials(t, thing_path, out, file_name);
        if (t.provisioning || t.rotation) check_identity_files(t, thing_path, out, file_name);
    }
}

load_result load_file(const std::filesystem::path& file) {
    constexpr std::size_t max_size = 1024 * 1024;
    load_result r;
    const auto name = file.string();
    // Never waits on the path: a FIFO there would otherwise freeze --check-config and a reload.
    const auto c = files::read_regular(file, max_size);
    if (c.os_error != 0) {
        const int err = c.os_error;
        r.diagnostics.push_back(diagnostic{name, 0, 0, "", "cannot open the configuration file: " + c.problem,
                                           err == ENOENT ? "create it (see config/thingmux.example.yaml) or pass --config PATH"
                                                         : "check that thingmuxd may read it",
                                           false});
        return r;
    }
    if (!c.ok()) {
        r.diagnostics.push_back(diagnostic{name, 0, 0, "", "the configuration file " + c.problem,
                                           "--config must name the YAML file itself", false});
        return r;
    }
    const std::string& text = c.bytes;
    r = parse(text, name);
    // The files are checked even when the text has errors, so that one run reports every problem.
    auto& parsed = r.config ? r.config : r.partial;
    if (parsed) {
        check_files(*parsed, r.diagnostics, name);
        std::stable_sort(r.diagnostics.begin(), r.diagnostics.end(), [](const diagnostic& a, const diagnostic& b) {
            return std::pair{a.line, a.column} < std::pair{b.line, b.column};
        });
        if (r.config && std::any_of(r.diagnostics.begin(), r.diagnostics.end(), [](const diagnostic& d) { return !d.warning; }))
            r.config.reset();
    }
    r.partial.reset();
    return r;
}

}  // namespace thingmux::config
