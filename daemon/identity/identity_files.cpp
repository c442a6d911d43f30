#include "daemon/identity/identity_files.hpp"

#include "common/regular_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace thingmux::identity {
namespace {

namespace fs = std::filesystem;

// Enough for a certificate with its chain; a key is far smaller.
constexpr std::size_t max_identity_file_bytes = std::size_t{1024} * 1024;

error os_failure(const std::string& what, const fs::path& path, int err) {
    return {"cannot " + what + " " + path.string() + ": " + files::error_text(err)};
}

fs::path temporary_path(const fs::path& path) {
    return fs::path(path.string() + ".tmp");
}

fs::path directory_of(const fs::path& path) {
    return path.has_parent_path() ? path.parent_path() : fs::path(".");
}

// Whether `path` holds nothing or a regular file: thingmuxd replaces these files by renaming, so
// a link (which the rename would replace, leaving its target stale) or anything else is refused.
result<bool> exists_as_regular_file(const fs::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return false;
        return os_failure("look at", path, errno);
    }
    if (S_ISLNK(st.st_mode))
        return error{path.string() +
                     " is a symbolic link: thingmuxd replaces its identity files by renaming, so "
                     "configure the path of the file itself (in a directory thingmuxd may write), "
                     "not a link to it"};
    if (!S_ISREG(st.st_mode))
        return error{path.string() + " is " + files::file_type_name(st.st_mode) +
                     ", not a regular file: remove it or configure another path for the certificate or key"};
    return true;
}

result<void> sync_directory(const fs::path& file) {
    const auto dir = directory_of(file);
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return os_failure("open the directory", dir, errno);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return os_failure("sync the directory", dir, err);
    return {};
}

// Renames `from` over `to` (both checked to be regular files or absent) and syncs the directory.
result<void> install(const fs::path& from, const fs::path& to) {
    if (auto target = exists_as_regular_file(to); !target) return target.error();
    if (::rename(from.c_str(), to.c_str()) != 0)
        return error{"cannot rename " + from.string() + " to " + to.string() + ": " + files::error_text(errno)};
    return sync_directory(to);
}

result<void> remove_file(const fs::path& path) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return os_failure("delete", path, errno);
    return {};
}

// The contents of a file that may be missing (nullopt then), refusing links and special files.
result<std::optional<std::string>> read_if_present(const fs::path& path) {
    auto present = exists_as_regular_file(path);
    if (!present) return present.error();
    if (!*present) return std::optional<std::string>();
    auto file = files::read_regular(path, max_identity_file_bytes);
    if (!file.ok()) return error{"cannot read " + path.string() + ": " + file.problem};
    return std::optional<std::string>(std::move(file.bytes));
}

// Whether the key file at `key_path` (if any) is the key of `cert_pem`.
result<bool> key_file_matches(const fs::path& key_path, const std::string& cert_pem, const std::string& tpm2_tcti) {
    auto key = read_if_present(key_path);
    if (!key) return key.error();
    if (!*key) return false;
    const secret_pem wiped(std::move(**key));
    auto same = key_matches_certificate(wiped.view(), cert_pem, tpm2_tcti);
    return same && *same;
}

}  // namespace

fs::path pending_path(const fs::path& path) {
    return fs::path(path.string() + ".pending");
}

result<void> write_file_atomically(const fs::path& path, std::string_view bytes, mode_t mode) {
    if (auto target = exists_as_regular_file(path); !target) return target.error();
    const auto temporary = temporary_path(path);
    // A leftover of a crash is ours to replace; O_EXCL then makes sure the file written is new
    // (not a link or a file someone else holds open).
    if (auto removed = remove_file(temporary); !removed) return removed.error();
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) return os_failure("create", temporary, errno);
    // The umask may have taken bits away from a certificate's 0644.
    bool ok = ::fchmod(fd, mode) == 0;
    for (std::size_t done = 0; ok && done < bytes.size();) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) done += static_cast<std::size_t>(n);
    }
    ok = ok && ::fsync(fd) == 0;
    const int err = errno;
    ::close(fd);
    if (!ok) {
        (void)::unlink(temporary.c_str());
        return os_failure("write", temporary, err);
    }
    return install(temporary, path);
}

result<std::optional<secret_pem>> read_pending_key(const identity_paths& paths) {
    auto bytes = read_if_present(pending_path(paths.key));
    if (!bytes) return bytes.error();
    if (!*bytes) return std::optional<secret_pem>();
    secret_pem key(std::move(**bytes));
    if (!key_problem(key.view(), paths.tpm2_tcti).empty()) return std::optional<secret_pem>();
    return std::optional<secret_pem>(std::move(key));
}

result<void> write_pending_key(const identity_paths& paths, const secret_pem& key) {
    return write_file_atomically(pending_path(paths.key), key.view(), key_file_mode);
}

result<recovery_report> recover(const identity_paths& paths) {
    const auto cert_pending = pending_path(paths.cert);
    const auto key_pending = pending_path(paths.key);
    for (const auto& leftover : {temporary_path(paths.cert), temporary_path(paths.key), temporary_path(cert_pending),
                                 temporary_path(key_pending)}) {
        if (auto present = exists_as_regular_file(leftover); !present) return present.error();
        if (auto removed = remove_file(leftover); !removed) return removed.error();
    }

    auto pending_key_present = exists_as_regular_file(key_pending);
    if (!pending_key_present) return pending_key_present.error();
    auto cert = read_if_present(cert_pending);
    if (!cert) return cert.error();
    if (!*cert) return recovery_report{recovery::nothing_pending, *pending_key_present, {}};

    auto matches_pending = key_file_matches(key_pending, **cert, paths.tpm2_tcti);
    if (!matches_pending) return matches_pending.error();
    if (*matches_pending) {
        if (auto r = install(key_pending, paths.key); !r) return r.error();
        if (auto r = install(cert_pending, paths.cert); !r) return r.error();
        return recovery_report{
            recovery::completed, false,
            "finished an interrupted commit: installed " + key_pending.string() + " and " + cert_pending.string()};
    }
    auto matches_current = key_file_matches(paths.key, **cert, paths.tpm2_tcti);
    if (!matches_current) return matches_current.error();
    if (*matches_current) {
        if (auto r = install(cert_pending, paths.cert); !r) return r.error();
        return recovery_report{recovery::completed, *pending_key_present,
                               "finished an interrupted commit: installed " + cert_pending.string()};
    }
    if (auto r = remove_file(cert_pending); !r) return r.error();
    return recovery_report{recovery::discarded_certificate, *pending_key_present,
                           "deleted " + cert_pending.string() + ": it matches neither " + key_pending.string() +
                               " nor " + paths.key.string() + "; the previous certificate and key stay"};
}

result<void> commit(const identity_paths& paths, std::string_view cert_pem) {
    const auto key_pending = pending_path(paths.key);
    auto matches = key_file_matches(key_pending, std::string(cert_pem), paths.tpm2_tcti);
    if (!matches) return matches.error();
    if (!*matches)
        return error{"the new certificate is not for the key in " + key_pending.string() +
                     " (or that file is gone): the previous certificate and key stay"};
    const auto cert_pending = pending_path(paths.cert);
    if (auto r = write_file_atomically(cert_pending, cert_pem, certificate_file_mode); !r) return r.error();
    if (auto r = install(key_pending, paths.key); !r) return r.error();
    return install(cert_pending, paths.cert);
}

}  // namespace thingmux::identity
