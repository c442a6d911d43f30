#include "config/config.hpp"

#include <algorithm>

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace thingmux::config {

const char* to_string(protocol_version v) noexcept {
    return v == protocol_version::mqtt311 ? "mqtt311" : "mqtt5";
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

const thing* configuration::find_thing(std::string_view name) const noexcept {
    for (const auto& t : things) {
        if (t.name == name) return &t;
    }
    return nullptr;
}

namespace {

std::string error_text(int err) {
    std::string s = std::strerror(err);
    if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z') s[0] = static_cast<char>(s[0] - 'A' + 'a');
    return s;
}

// Empty when `file` is a regular file this process can open for reading; `st` then describes it.
std::string unreadable(const std::filesystem::path& file, struct stat& st) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        const int err = errno;
        if (err == ENOENT) return "file " + file.string() + " does not exist";
        return "file " + file.string() + " not readable by thingmux: " + error_text(err);
    }
    const int rc = ::fstat(fd, &st);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return "cannot inspect " + file.string() + ": " + error_text(err);
    if (S_ISDIR(st.st_mode)) return file.string() + " is a directory, not a file";
    if (!S_ISREG(st.st_mode)) return file.string() + " is not a regular file";
    return {};
}

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
std::pair<std::string, std::string> key_exposure(const std::filesystem::path& key, const struct stat& st) {
    if ((st.st_mode & 0007U) != 0)
        return {"private key " + key.string() + " is readable by other users",
                "chmod 0600 or 0640 with group thingmux"};
    if ((st.st_mode & 0070U) != 0 && st.st_gid != ::getegid())
        return {"private key " + key.string() + " is readable by group " + group_label(st.st_gid) +
                    ", which thingmuxd does not run as",
                "chmod 0600, or chgrp it to thingmuxd's group " + group_label(::getegid())};
    return {};
}

}  // namespace

std::filesystem::path resolve_file(const std::filesystem::path& p) {
    const auto& s = p.native();
    if (!s.starts_with(credential_prefix)) return p;
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir == nullptr || *dir == '\0') return {};
    return std::filesystem::path(dir) / s.substr(credential_prefix.size());
}

void check_files(const configuration& config, std::vector<diagnostic>& out, const std::string& file_name) {
    for (std::size_t i = 0; i < config.things.size(); ++i) {
        const auto& t = config.things[i];
        for (const auto& [key, file] : {std::pair{"ca", &t.ca}, {"cert", &t.cert}, {"key", &t.key}}) {
            const auto f = t.fields.find(key);
            if (file->empty()) continue;  // not written or not valid: parse() reported it
            const auto at = f != t.fields.end() ? f->second : t.where;
            const auto path = "things[" + std::to_string(i) + "]." + key;
            struct stat st {};
            const auto resolved = resolve_file(*file);
            if (resolved.empty()) {
                out.push_back(diagnostic{file_name, at.line, at.column, path,
                                         file->string() + ": CREDENTIALS_DIRECTORY is not set",
                                         "credentials exist only under systemd: add LoadCredential= to thingmuxd.service, "
                                         "or write the file's path",
                                         false});
            } else if (auto problem = unreadable(resolved, st); !problem.empty()) {
                out.push_back(diagnostic{file_name, at.line, at.column, path, std::move(problem),
                                         "check the path, and that the thingmux user may read the file and every directory above it",
                                         false});
            } else if (std::string_view(key) == "key") {
                if (auto [exposed, fix] = key_exposure(resolved, st); !exposed.empty())
                    out.push_back(
                        diagnostic{file_name, at.line, at.column, path, std::move(exposed), std::move(fix), true});
            }
        }
    }
}

load_result load_file(const std::filesystem::path& file) {
    constexpr std::size_t max_size = 1024 * 1024;
    load_result r;
    const auto name = file.string();
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        const int err = errno;
        r.diagnostics.push_back(diagnostic{name, 0, 0, "", "cannot open the configuration file: " + error_text(err),
                                           err == ENOENT ? "create it (see config/thingmux.example.yaml) or pass --config PATH"
                                                         : "check that thingmuxd may read it",
                                           false});
        return r;
    }
    std::string text;
    char buf[16384];
    for (;;) {
        const auto n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            ::close(fd);
            r.diagnostics.push_back(diagnostic{name, 0, 0, "", "cannot read the configuration file: " + error_text(err), "", false});
            return r;
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > max_size) {
            ::close(fd);
            r.diagnostics.push_back(diagnostic{name, 0, 0, "", "the configuration file is larger than 1 MiB", "is this the right file?", false});
            return r;
        }
    }
    ::close(fd);
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
