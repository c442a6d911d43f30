#include "daemon/file_access_check.hpp"

#include "common/pkcs11_uri.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

namespace thingmux {

std::vector<named_file> files_read_by_daemon(const config::configuration& c, const std::filesystem::path& config_file) {
    std::vector<named_file> out;
    const auto add = [&](std::string setting, const std::filesystem::path& p, bool secret) {
        if (p.empty()) return;
        if (pkcs11::is_uri(p.native())) {
            const auto uri = pkcs11::parse_uri(p.native());
            if (!uri.value) return;
            if (!uri.value->module_path.empty())
                out.push_back({setting + " module-path", uri.value->module_path, uri.value->module_path, false});
            if (!uri.value->pin_source.empty())
                out.push_back({setting + " pin-source", uri.value->pin_file(), uri.value->pin_file(), true});
            return;
        }
        out.push_back({std::move(setting), p, config::resolve_file(p), secret});
    };
    add("the configuration file", config_file, false);
    if (c.mqtt.enabled) add("mqtt.passwords", c.mqtt.passwords, true);
    for (std::size_t i = 0; i < c.things.size(); ++i) {
        const auto& t = c.things[i];
        const auto at = "things[" + std::to_string(i) + "].";
        add(at + "ca", t.ca, false);
        add(at + "cert", t.cert, false);
        add(at + "key", t.key, true);
        add(at + "key_pin", t.key_pin, true);
        add(at + "pkcs12", t.pkcs12, true);
        add(at + "pkcs12_password", t.pkcs12_password, true);
        add(at + "proxy_credentials", t.proxy.credentials, true);
        add(at + "proxy_ca", t.proxy.ca, false);
        add(at + "custom_authorizer.token", t.custom_authorizer.token, true);
        add(at + "custom_authorizer.signature", t.custom_authorizer.signature, true);
        add(at + "custom_authorizer.password", t.custom_authorizer.password, true);
        for (std::size_t j = 0; j < t.aws_credentials.size(); ++j) {
            const auto& s = t.aws_credentials[j];
            const auto src = at + "aws_credentials[" + std::to_string(j) + "]";
            if (s.type == config::aws_credential_source::kind::file) add(src + ".file", s.file, true);
            if (s.type == config::aws_credential_source::kind::iot_credentials_provider)
                add(src + ".iot_credentials_provider.ca", s.ca, false);
        }
        if (t.provisioning) {
            add(at + "provisioning.claim_cert", t.provisioning->claim_cert, false);
            add(at + "provisioning.claim_key", t.provisioning->claim_key, true);
        }
    }
    // Before provisioning the Thing's own cert and key may not exist yet: the ordinary check
    // knows that; here only what exists is opened (see unreadable_as).
    return out;
}

bool find_account(const std::string& name, user_account& out) {
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(16 * 1024);
    if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) return false;
    out.name = name;
    out.uid = pw.pw_uid;
    out.gid = pw.pw_gid;
    int n = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(n));
    if (getgrouplist(name.c_str(), pw.pw_gid, groups.data(), &n) < 0) {
        groups.resize(static_cast<std::size_t>(n));
        if (getgrouplist(name.c_str(), pw.pw_gid, groups.data(), &n) < 0) n = 0;
    }
    groups.resize(static_cast<std::size_t>(n));
    out.groups = std::move(groups);
    return true;
}

namespace {

// The child's report: one int per file, the errno of its open() (0: readable, -1: skipped).
bool write_all(int fd, const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

}  // namespace

std::vector<access_failure> unreadable_as(const user_account& who, const std::vector<named_file>& files,
                                          std::string& problem) {
    // The paths are copied before fork(): the child only calls async-signal-safe functions.
    std::vector<std::string> paths;
    paths.reserve(files.size());
    for (const auto& f : files) paths.push_back(f.resolved.string());
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        problem = std::string("cannot create a pipe: ") + std::strerror(errno);
        return {};
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
        problem = std::string("cannot fork: ") + std::strerror(errno);
        ::close(fds[0]);
        ::close(fds[1]);
        return {};
    }
    if (pid == 0) {
        ::close(fds[0]);
        int setup = 0;
        if (::setgroups(who.groups.size(), who.groups.data()) != 0 || ::setgid(who.gid) != 0 ||
            ::setuid(who.uid) != 0)
            setup = errno != 0 ? errno : EPERM;
        if (!write_all(fds[1], &setup, sizeof setup)) ::_exit(1);
        if (setup != 0) ::_exit(1);
        for (const auto& p : paths) {
            int result = -1;
            if (!p.empty()) {
                // O_NONBLOCK: a FIFO at the path must not hang the check (the ordinary check
                // reports what is there; this one only asks whether the user may open it).
                const int fd = ::open(p.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
                result = fd >= 0 ? 0 : errno;
                if (fd >= 0) ::close(fd);
            }
            if (!write_all(fds[1], &result, sizeof result)) ::_exit(1);
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    std::vector<int> results;
    int setup = -1;
    bool complete = ::read(fds[0], &setup, sizeof setup) == static_cast<ssize_t>(sizeof setup);
    for (std::size_t i = 0; complete && setup == 0 && i < files.size(); ++i) {
        int r = 0;
        std::size_t got = 0;
        while (got < sizeof r) {
            const ssize_t n = ::read(fds[0], reinterpret_cast<char*>(&r) + got, sizeof r - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        if (got != sizeof r) complete = false;
        else results.push_back(r);
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (setup > 0) {
        problem = "cannot take the identity of user " + who.name + ": " + std::strerror(setup) + " (run as root)";
        return {};
    }
    if (!complete || results.size() != files.size()) {
        problem = "the check as user " + who.name + " did not finish";
        return {};
    }
    std::vector<access_failure> out;
    for (std::size_t i = 0; i < files.size(); ++i) {
        // ENOENT is the ordinary check's to report (it already did, as root): a missing file is
        // no permission problem. Before provisioning the Thing's files may not exist yet.
        if (results[i] > 0 && results[i] != ENOENT) out.push_back({files[i], results[i]});
    }
    return out;
}

std::string access_fix(const access_failure& f, const user_account& who) {
    const auto path = f.file.resolved.string();
    if (f.error != EACCES && f.error != EPERM)
        return "check the directories on the way to it (user " + who.name + " needs x on each)";
    std::string group_name = who.name;
    if (const ::group* g = ::getgrgid(who.gid); g != nullptr && g->gr_name != nullptr) group_name = g->gr_name;
    std::string fix = "let the group read it: chown root:" + group_name + " " + path + " && chmod " +
                      (f.file.secret ? "0640" : "0644") + " " + path +
                      " (and make sure user " + who.name + " may enter each directory above it)";
    if (f.file.secret)
        fix += "; or keep it root-only and hand it over with LoadCredential=NAME:" + path +
               " in thingmuxd.service and `credential:NAME` in the configuration";
    return fix;
}

}  // namespace thingmux
