// Checks shared by the integration tests of the ways to the broker (proxy, custom authorizer):
// numbered messages each way through the daemon, lines of its log, secret files.
#pragma once

#include "tests/support/daemon_fixture.hpp"

#include <cstddef>
#include <filesystem>
#include <string>

namespace thingmux::test {

// Publishes `n` numbered messages each way between the cloud and an app (named `app`) through
// the daemon, for gateway-01's topics, and expects every one to arrive.
void expect_round_trip(const broker_fixture& broker, daemon_fixture& daemon, int n, const std::string& app);

// Lines of the daemon's log that hold `text`.
[[nodiscard]] std::size_t log_lines(const daemon_fixture& d, const std::string& text);

// Writes `text` to `dir`/`name`, readable by its owner only (as thingmuxd wants a secret).
[[nodiscard]] std::filesystem::path secret_file(const std::filesystem::path& dir, const std::string& name,
                                                const std::string& text);

}  // namespace thingmux::test
