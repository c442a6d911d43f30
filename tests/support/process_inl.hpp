// Template definitions for process.hpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <thread>

namespace thingmux::test {

template <typename Pred>
bool eventually(Pred pred, int timeout_ms) {
    using namespace std::chrono;
    const auto deadline = steady_clock::now() + milliseconds(timeout_ms);
    auto step = milliseconds(1);  // fast first checks, then back off to keep CPU free for the peers
    for (;;) {
        const bool ok = static_cast<bool>(pred());
        const auto now = steady_clock::now();
        if (ok || now >= deadline) return ok;
        std::this_thread::sleep_for(std::min<nanoseconds>(step, deadline - now));
        step = std::min(step * 2, milliseconds(50));
    }
}

}  // namespace thingmux::test
