// One problem found in a configuration file, with where it is and what to do about it.
#pragma once

#include <string>

namespace thingmux::config {

struct diagnostic {
    std::string file;     // as given to parse()/load_file()
    int line = 0;         // 1-based; 0 when the problem has no position (file cannot be read)
    int column = 0;       // 1-based; 0 when unknown
    std::string path;     // "things[0].cert"; empty for YAML syntax errors and whole-file problems
    std::string message;  // "file /etc/x.pem not readable by thingmux: permission denied"
    std::string hint;     // what to do, e.g. "did you mean 'keep_alive'?"; may be empty
    bool warning = false; // true: reported, but the configuration is still usable
};

// "FILE:LINE:COL: PATH: message (hint)"; warnings read "FILE:LINE:COL: warning: PATH: message (hint)".
// Parts that are empty/unknown are left out ("FILE: message" for a file that cannot be read).
[[nodiscard]] std::string to_string(const diagnostic& d);

}  // namespace thingmux::config
