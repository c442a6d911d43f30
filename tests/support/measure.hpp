// What tests count from the outside: a process's memory and CPU time from /proc, and lines of
// text files such as the daemon's log.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/types.h>

namespace thingmux::test {

// VmRSS of a process, in bytes (0 when it cannot be read).
[[nodiscard]] std::size_t resident_bytes(pid_t pid);

// CPU time the process used so far (user + system), in clock ticks (/proc/PID/stat); -1 when
// it cannot be read.
[[nodiscard]] long cpu_ticks(pid_t pid);

// How many descriptors the process has open (/proc/PID/fd); 0 when it cannot be read.
[[nodiscard]] std::size_t open_descriptors(pid_t pid);

// Raises this process's soft limit on open files to its hard limit, for a test that holds
// `needed` descriptors at once. False when the hard limit is below `needed` or cannot be read.
[[nodiscard]] bool raise_open_file_limit(std::size_t needed);

// The lines of a file (empty when missing).
[[nodiscard]] std::vector<std::string> lines_of(const std::filesystem::path& file);

// The complete lines of `text` (a last line without its newline may still be being written).
[[nodiscard]] std::vector<std::string> complete_lines(const std::string& text);

// How many of `expected` are not in `got` (each counted once, however often it was expected).
[[nodiscard]] std::size_t missing_from(const std::vector<std::string>& got, const std::vector<std::string>& expected);

// How many lines of `file` contain `text`.
[[nodiscard]] std::size_t lines_containing(const std::filesystem::path& file, const std::string& text);

// How often `what` occurs in `text` (non-overlapping).
[[nodiscard]] std::size_t count_of(const std::string& text, const std::string& what);

// The lines of `text` that contain `what`, for failure messages.
[[nodiscard]] std::string lines_with(const std::string& text, const std::string& what);

}  // namespace thingmux::test
