// libFuzzer target for the configuration parser (config/config.hpp, docs/config.md).
//
// Input: arbitrary bytes as the text of /etc/thingmux/thingmux.yaml. parse() must never crash,
// hang or throw (yaml-cpp exceptions become diagnostics), and its result must be consistent:
// a configuration exactly when there is no error, every diagnostic with a message and a
// position that is either unknown (0) or 1-based, and to_string() of each one well-formed.
// Seeds: tests/fuzz/corpus/config/ (the shipped example and broken variants).
#include "config/authorization.hpp"
#include "config/config.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

void require(bool condition) {
    if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace thingmux::config;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto r = parse(text, "fuzz.yaml");
    bool error = false;
    for (const auto& d : r.diagnostics) {
        require(!d.message.empty() && d.line >= 0 && d.column >= 0);
        require(to_string(d).starts_with("fuzz.yaml"));
        error = error || !d.warning;
    }
    require(r.ok() == !error);
    if (r.ok()) {
        const auto& c = *r.config;
        require(!c.things.empty());
        // Exercise the authorization helpers on whatever rules were accepted.
        const peer p{.uid = 1000, .gid = 1000, .groups = {10}, .user = "u", .group_names = {"g"}, .unit = "a.service"};
        for (const auto& t : c.things) {
            require(!t.client_id.empty());
            const auto rules = rules_for(c, p, t.name);
            const auto vars = variables::of(p, t.name);
            for (const auto& rule : c.apps) {
                for (const auto& f : rule.subscribe) {
                    (void)allowed(rules, action::subscribe, expand(f, vars), vars);
                    (void)allowed(rules, action::publish, expand(f, vars), vars);
                }
            }
        }
    }
    return 0;
}
