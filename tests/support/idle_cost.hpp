// What an idle connection costs a process, for the tests that hold a thousand of them.
#pragma once

#include "tests/support/measure.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <iostream>
#include <string>
#include <vector>

namespace thingmux::test {

// KiB of VmRSS that each of `clients` idle connections costs the process `pid`. `join(name)`
// connects one (and subscribes, ...) and returns what keeps it open. One is joined and held
// before measuring: the first connection runs code the process had not run yet, whose pages are
// read in once per process, and makes the daemon's first allocations. Prints the figure; stops
// joining at the first failure.
template <typename Join>
[[nodiscard]] double kib_per_idle_client(pid_t pid, std::size_t clients, const std::string& what, Join join) {
    const auto warm_up = join("warm-up");
    const std::size_t before = resident_bytes(pid);
    std::vector<decltype(join(std::string()))> held;
    for (std::size_t i = 0; i < clients && !::testing::Test::HasFailure(); ++i) held.push_back(join("idle-" + std::to_string(i)));
    const std::size_t after = resident_bytes(pid);
    const double kib = static_cast<double>(after - before) / 1024.0 / static_cast<double>(clients);
    std::cout << "[ measured ] " << clients << ' ' << what << ": VmRSS " << before / 1024 << " KiB -> " << after / 1024
              << " KiB, " << kib << " KiB per client\n";
    return kib;
}

}  // namespace thingmux::test
