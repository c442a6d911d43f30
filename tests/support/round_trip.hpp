// One scenario many transport tests share: numbered messages each way between the cloud (the
// broker's observer) and an app through thingmuxd, every one expected to arrive.
#pragma once

#include "tests/support/broker_fixture.hpp"
#include "tests/support/daemon_fixture.hpp"

#include <cstdint>
#include <string>

namespace thingmux::test {

// The cloud publishes `n` commands to cmd/THING/x that an app subscribed to, and the app
// publishes `n` messages at `qos` to dt/THING/x that the cloud counts (gtest failures when any is
// missing). `app_name` names the app in its hello.
void expect_round_trip(const broker_fixture& broker, daemon_fixture& daemon, int n, std::uint8_t qos = 1,
                       const std::string& app_name = "round-trip", const std::string& thing = "gateway-01");

}  // namespace thingmux::test
