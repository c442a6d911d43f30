// Round-trip times to the broker in fixed buckets (seconds), for the metrics' histogram
// thingmux_publish_round_trip_seconds: cumulative counts per upper bound, their sum and count.
// Fixed bounds keep every Thing's series comparable and the memory constant. Pure.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

namespace thingmux::thing {

struct latency_histogram {
    static constexpr std::array<double, 12> bounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0};
    std::array<std::uint64_t, bounds.size()> cumulative{};  // observations <= bounds[i]
    std::uint64_t count = 0;
    double sum = 0;  // seconds

    void record(std::chrono::nanoseconds d) noexcept {
        const double s = d.count() < 0 ? 0.0 : std::chrono::duration<double>(d).count();
        for (std::size_t i = 0; i < bounds.size(); ++i)
            if (s <= bounds[i]) ++cumulative[i];
        ++count;
        sum += s;
    }
};

}  // namespace thingmux::thing
