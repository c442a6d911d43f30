// Where thingmuxd's log goes: the console (stderr) or the systemd journal, with priorities.
// log.target "auto" picks the journal when stderr is connected to it (JOURNAL_STREAM).
//
// Two rules for every log line (docs/architecture.md, "Logging"):
// - Strings from outside (app names, topics and filters, broker text, file names and contents of
//   the configuration) go through `escaped`, so that no peer can forge a line or steer a terminal.
// - A line that an outside event can repeat at will goes through a `rate_limiter`.
#pragma once

#include "config/config.hpp"
#include "common/printable.hpp"

#include <spdlog/fmt/fmt.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace thingmux::logging {

// Installs the default logger for `target`.
void setup(config::log_target target);
// The current target as LogControl1 names it: "console" or "journal".
[[nodiscard]] std::string target();
// Switches by LogControl1 name ("console", "journal", "auto"); returns "" or why not.
[[nodiscard]] std::string set_target(const std::string& name);

// A string from outside, as a log line argument: formatted by text::printable() (control
// characters, invalid UTF-8 and display-steering code points escaped; cut after `max_bytes`).
// Escaping happens only when the line is written. Holds a view: use it within the log call.
struct escaped {
    explicit escaped(std::string_view s, std::size_t limit = text::default_max_bytes) noexcept
        : text(s), max_bytes(limit) {}
    std::string_view text;
    std::size_t max_bytes;
};

// One repeating log line, limited to `burst` lines per `interval`. Occurrences past that are
// counted, and the next line written says how many were suppressed:
//
//     if (auto note = limiter.admit()) spdlog::warn("cannot write the spool: {}{}", why, *note);
//
// The count is only reported by a later line; a repetition that stops for good stays uncounted
// in the log (the counters on D-Bus have it).
class rate_limiter {
public:
    using clock = std::chrono::steady_clock;

    rate_limiter(std::uint32_t burst, clock::duration interval) noexcept : interval_(interval), burst_(burst) {}

    // Counts one occurrence at `now`. nullopt: do not log it. Otherwise log it with the returned
    // suffix: "" or " (… N more suppressed)".
    [[nodiscard]] std::optional<std::string> admit(clock::time_point now = clock::now());
    // Occurrences not logged since the last line written.
    [[nodiscard]] std::uint64_t suppressed() const noexcept { return suppressed_; }

private:
    clock::time_point window_start_{};
    clock::duration interval_;
    std::uint64_t suppressed_ = 0;
    std::uint32_t burst_;
    std::uint32_t written_ = 0;  // lines written in the current window
};

}  // namespace thingmux::logging

template <>
struct fmt::formatter<thingmux::logging::escaped> : fmt::formatter<std::string_view> {
    template <typename FormatContext>
    auto format(const thingmux::logging::escaped& e, FormatContext& ctx) const {
        return fmt::formatter<std::string_view>::format(thingmux::text::printable(e.text, e.max_bytes), ctx);
    }
};
