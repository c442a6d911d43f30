// Reading the files a configuration names (the configuration itself, certificates, keys, CA
// bundles) without ever blocking on what sits at the path: a FIFO, a device or a socket is
// refused with a message instead of being waited on. No logging; errors are values.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>

namespace thingmux::files {

// Size limit for a certificate, key or CA bundle file (a system CA bundle is well below).
inline constexpr std::size_t max_credential_bytes = 16 * 1024 * 1024;

// What read_regular() found.
struct contents {
    std::string bytes;    // the whole file
    mode_t mode = 0;      // its st_mode (permission bits for warnings)
    gid_t gid = 0;        // its group (for warnings about who may read it)
    off_t size = 0;       // its size when it was opened
    int os_error = 0;     // errno when the file could not be opened or read (ENOENT, EACCES, ...)
    std::string problem;  // empty when read; else what is wrong, to follow the path in a message:
                          // "is a FIFO (named pipe), not a regular file", "is larger than 1048576 bytes",
                          // or strerror(os_error) in lower case
    [[nodiscard]] bool ok() const noexcept { return problem.empty(); }
};

// Reads `path` when it is a regular file of at most `max_bytes`. It is opened non-blocking and
// checked with fstat() on the same descriptor it is read from, so what is read is what was
// checked, and nothing at the path can make the caller wait.
[[nodiscard]] contents read_regular(const std::filesystem::path& path, std::size_t max_bytes);

// Like read_regular() without reading: whether `path` is a regular file this process can open.
[[nodiscard]] contents check_regular(const std::filesystem::path& path);

// "a FIFO (named pipe)", "a directory", "a socket", ...: what a file of `mode` is, for messages.
[[nodiscard]] const char* file_type_name(mode_t mode) noexcept;

// strerror(err) starting in lower case, to continue a sentence ("no such file or directory").
[[nodiscard]] std::string error_text(int err);

}  // namespace thingmux::files
