// Helpers of the configuration's unit tests (config_load_test, config_sigv4_test, config_auth_test): a minimal
// valid configuration to build on, and the lookup and check of the diagnostics parse() reports.
#pragma once

#include "config/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace thingmux::config::test {

// A valid configuration with one Thing; tests append to it or replace lines.
inline const std::string minimal =
    "things:\n"                           // 1
    "  - name: gw\n"                      // 2
    "    endpoint: broker.example.com\n"  // 3
    "    ca: /etc/ca.pem\n"               // 4
    "    cert: /etc/cert.pem\n"           // 5
    "    key: /etc/key.pem\n";            // 6

inline std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

inline const diagnostic* find(const load_result& r, std::string_view path) {
    for (const auto& d : r.diagnostics) {
        if (d.path == path) return &d;
    }
    return nullptr;
}

inline std::string all(const load_result& r) {
    std::string out;
    for (const auto& d : r.diagnostics) out += to_string(d) + "\n";
    return out;
}

inline std::size_t error_count(const load_result& r) {
    return static_cast<std::size_t>(
        std::count_if(r.diagnostics.begin(), r.diagnostics.end(), [](const diagnostic& d) { return !d.warning; }));
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

}  // namespace thingmux::config::test
