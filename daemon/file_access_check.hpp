// `thingmuxd --check-config` run as root: can the daemon's user read every file the
// configuration names? Run as root, the ordinary check reads the files as root, which can read
// anything; the daemon, under systemd, runs as `thingmux` and would fail at its first connection.
// The honest check is the kernel's: a forked child takes that user's uid, gid and groups and
// open()s each file.
#pragma once

#include "config/config.hpp"

#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

namespace thingmux {

// A file the daemon reads, with the setting that names it ("things[0].key").
struct named_file {
    std::string setting;
    std::filesystem::path written;   // as in the file: a path or "credential:NAME"
    std::filesystem::path resolved;  // what to open; empty: a credential without CREDENTIALS_DIRECTORY
    bool secret = false;             // a key, password or token: the fix is not "make it world-readable"
};

// Every file the configuration makes the daemon read: the configuration itself, each Thing's CA,
// certificate, key (not "pkcs11:" URIs: their module and PIN files instead), PKCS#12 bundle and
// password, proxy credentials and CA, custom authorizer files, AWS credentials files, claim
// certificate and key, and mqtt.passwords.
[[nodiscard]] std::vector<named_file> files_read_by_daemon(const config::configuration& c,
                                                           const std::filesystem::path& config_file);

struct user_account {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // supplementary groups, as initgroups() would set them
};

// The account named `name` from the user database; false when there is none.
[[nodiscard]] bool find_account(const std::string& name, user_account& out);

struct access_failure {
    named_file file;
    int error = 0;  // errno of open() as that user
};

// Opens each file as `who` in a forked child (setgroups, setgid, setuid; needs root). Files with
// an empty `resolved` are skipped. Returns the files that user cannot open; `problem` is set
// (and the result empty) when the check itself could not run.
[[nodiscard]] std::vector<access_failure> unreadable_as(const user_account& who, const std::vector<named_file>& files,
                                                        std::string& problem);

// The fix for a file `who` cannot read, for a person: chown/chmod, or LoadCredential= for a secret.
[[nodiscard]] std::string access_fix(const access_failure& f, const user_account& who);

}  // namespace thingmux
