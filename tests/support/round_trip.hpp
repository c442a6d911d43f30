// Checks shared by the integration tests of the ways to the broker (proxy, custom authorizer,
// WebSocket): numbered messages each way between the cloud (the broker's observer) and an app
// through thingmuxd, every one expected to arrive; lines of the daemon's log; secret files.
#pragma once

#include "tests/support/broker_fixture.hpp"
#include "tests/support/daemon_fixture.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::test {

// The cloud publishes `n` commands to cmd/THING/x that an app subscribed to, and the app
// publishes `n` messages at `qos` to dt/THING/x that the cloud counts (gtest failures when any is
// missing). `app_name` names the app in its hello.
void expect_round_trip(const broker_fixture& broker, daemon_fixture& daemon, int n, std::uint8_t qos = 1,
                       const std::string& app_name = "round-trip", const std::string& thing = "gateway-01");

// Publishes each of `payloads` at QoS 1 to `topic` from `app` (e.g. while the Thing's link is
// down), each expected to be accepted, and with `must_be` to get exactly that code (e.g.
// ipc::errc::spooled). Returns what the cloud is to receive, as observer_subscription's lines.
[[nodiscard]] std::vector<std::string> publish_all(ipc_client& app, const std::string& topic,
                                                   const std::vector<std::string>& payloads,
                                                   std::optional<ipc::errc> must_be = std::nullopt);

// Lines of the daemon's log that hold `text`.
[[nodiscard]] std::size_t log_lines(const daemon_fixture& d, const std::string& text);

// Writes `text` to `dir`/`name`, readable by its owner only (as thingmuxd wants a secret).
[[nodiscard]] std::filesystem::path secret_file(const std::filesystem::path& dir, const std::string& name,
                                                const std::string& text);

// `thingmuxctl status` for the daemon, with the private bus at `bus_address` as the system bus;
// a gtest failure when it does not exit 0.
[[nodiscard]] std::string ctl_status(const std::string& bus_address, const daemon_fixture& daemon);

}  // namespace thingmux::test
