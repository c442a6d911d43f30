// Crash-safe storage of a Thing's certificate and private key files, for provisioning and
// rotation: whatever step a power cut interrupts, the next start ends with the old pair or the
// new pair, never a key with a certificate that is not its own.
//
// The files, for the paths the configuration names (`cert:` CERT, `key:` KEY):
//   KEY.pending   the new key, written before its CSR is sent; kept until the certificate for it
//                 is committed, so a retried request (after a crash or a transient error) asks
//                 for a certificate for the same key;
//   CERT.pending  the new certificate, written once AWS IoT has issued it.
// commit() writes CERT.pending, then renames KEY.pending -> KEY, then CERT.pending -> CERT;
// recover() (at start, before the identity is used) finishes or undoes what a crash interrupted.
// Every file is written atomically: a temporary file (PATH.tmp, O_EXCL) in the same directory
// with its final mode, written, fsync'ed, renamed over PATH, and the directory fsync'ed.
// New files belong to the daemon's user; keys get mode 0600, certificates 0644.
//
// Every path is a file the configuration names: a symbolic link or anything but a regular file
// at one is refused with a message that says which file and what to do. No logging.
#pragma once

#include "daemon/identity/key_material.hpp"
#include "daemon/identity/result.hpp"

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace thingmux::identity {

inline constexpr mode_t key_file_mode = 0600;
inline constexpr mode_t certificate_file_mode = 0644;

// A Thing's certificate and key files, as the configuration names them.
struct identity_paths {
    std::filesystem::path cert;
    std::filesystem::path key;
    // The TPM a TSS2 key (KEY or KEY.pending) is loaded into to check it (tpm2_tcti:; empty: the
    // provider's default). Unused for PEM keys.
    std::string tpm2_tcti;
};

// PATH.pending.
[[nodiscard]] std::filesystem::path pending_path(const std::filesystem::path& path);

// Replaces (or creates) `path` with `bytes` atomically, with permission bits `mode`.
[[nodiscard]] result<void> write_file_atomically(const std::filesystem::path& path, std::string_view bytes,
                                                 mode_t mode);

// The key of an earlier, unfinished attempt (KEY.pending) when there is one that loads; nullopt
// when there is none, or when the one there does not load (the next write replaces it).
[[nodiscard]] result<std::optional<secret_pem>> read_pending_key(const identity_paths& paths);

// Writes KEY.pending (mode 0600) before the CSR for it is sent.
[[nodiscard]] result<void> write_pending_key(const identity_paths& paths, const secret_pem& key);

// What recover() found and did.
enum class recovery : std::uint8_t {
    nothing_pending,        // no CERT.pending: nothing to finish (a KEY.pending alone is kept)
    completed,              // an interrupted commit was finished: CERT and KEY are the new pair
    discarded_certificate,  // CERT.pending matched no key and was deleted: the old pair stays
};

struct recovery_report {
    recovery action = recovery::nothing_pending;
    bool pending_key_kept = false;  // KEY.pending is there for the next attempt
    std::string detail;             // for the log: what was done, naming the files
};

// Finishes or undoes a commit a crash interrupted, so that CERT and KEY match afterwards when
// they matched before:
//   CERT.pending matches KEY.pending  -> rename KEY.pending -> KEY, then CERT.pending -> CERT;
//   CERT.pending matches KEY          -> rename CERT.pending -> CERT;
//   otherwise                         -> delete CERT.pending (KEY.pending stays for a retry).
// Leftover temporary files (PATH.tmp) are deleted. Call it at start, before using the files.
[[nodiscard]] result<recovery_report> recover(const identity_paths& paths);

// Installs `cert_pem` (issued for the key in KEY.pending) with its key: checks that they match,
// writes CERT.pending, renames KEY.pending -> KEY, then CERT.pending -> CERT, fsync'ing the
// directory after each step.
[[nodiscard]] result<void> commit(const identity_paths& paths, std::string_view cert_pem);

}  // namespace thingmux::identity
