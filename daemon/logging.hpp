// Where thingmuxd's log goes: the console (stderr) or the systemd journal, with priorities.
// log.target "auto" picks the journal when stderr is connected to it (JOURNAL_STREAM).
#pragma once

#include "config/config.hpp"

#include <string>

namespace thingmux::logging {

// Installs the default logger for `target`.
void setup(config::log_target target);
// The current target as LogControl1 names it: "console" or "journal".
[[nodiscard]] std::string target();
// Switches by LogControl1 name ("console", "journal", "auto"); returns "" or why not.
[[nodiscard]] std::string set_target(const std::string& name);

}  // namespace thingmux::logging
