#include "config/diagnostic.hpp"

namespace thingmux::config {

std::string to_string(const diagnostic& d) {
    std::string out = d.file;
    if (d.line > 0) {
        out += ":" + std::to_string(d.line);
        if (d.column > 0) out += ":" + std::to_string(d.column);
    }
    out += ": ";
    if (d.warning) out += "warning: ";
    if (!d.path.empty()) out += d.path + ": ";
    out += d.message;
    if (!d.hint.empty()) out += " (" + d.hint + ")";
    return out;
}

}  // namespace thingmux::config
