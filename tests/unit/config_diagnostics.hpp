// Checks of a configuration's diagnostics shared by the config_* unit tests.
#pragma once

#include "config/config.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace thingmux::config::testing {

// The first diagnostic at `path`, or nullptr.
inline const diagnostic* find(const load_result& r, std::string_view path) {
    for (const auto& d : r.diagnostics) {
        if (d.path == path) return &d;
    }
    return nullptr;
}

// Every diagnostic, one per line, for failure messages.
inline std::string all(const load_result& r) {
    std::string out;
    for (const auto& d : r.diagnostics) out += to_string(d) + "\n";
    return out;
}

// Expects an error at `path` in file "t.yaml", at line:column, whose message contains `message`
// and hint contains `hint`.
inline void expect_error(const load_result& r, std::string_view path, int line, int column, std::string_view message,
                         std::string_view hint = {}) {
    SCOPED_TRACE(all(r));
    EXPECT_FALSE(r.ok());
    const auto* d = find(r, path);
    ASSERT_NE(d, nullptr) << "no diagnostic for " << path;
    EXPECT_FALSE(d->warning);
    EXPECT_EQ(d->file, "t.yaml");
    EXPECT_EQ(d->line, line);
    EXPECT_EQ(d->column, column);
    EXPECT_NE(d->message.find(message), std::string::npos) << d->message;
    EXPECT_NE(d->hint.find(hint), std::string::npos) << d->hint;
}

}  // namespace thingmux::config::testing
