// Reconnect pacing: exponential backoff with full jitter, and the one-CONNECT-per-second rule.
// Pure: the caller supplies the seed (from the OS CSPRNG) and the current time.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace thingmux::mqtt {

class backoff {
public:
    using duration = std::chrono::milliseconds;
    using time_point = std::chrono::steady_clock::time_point;

    struct config {
        duration base{1000};
        duration cap{120'000};
        duration min_connect_interval{1000};  // AWS IoT Core: 1 CONNECT/s per client id
        duration stable_after{10'000};        // a connection this old resets the attempt count
    };

    backoff(config cfg, std::uint64_t seed);

    // A connection attempt starts now (TCP connect begins).
    void on_attempt(time_point now);
    // The broker accepted the session (CONNACK success).
    void on_connected(time_point now);
    // The connection (or attempt) ended; returns when the next attempt may start:
    // now + uniform(0, min(cap, base * 2^attempt)), but never sooner than
    // last attempt + min_connect_interval. The attempt count resets first if the connection
    // had been up for at least stable_after.
    [[nodiscard]] time_point next_attempt(time_point now);

    [[nodiscard]] unsigned attempts() const noexcept { return attempts_; }
    void reset() noexcept { attempts_ = 0; }
    // New base/cap/intervals; the pacing history (last attempt) is kept.
    void reconfigure(config cfg) noexcept { cfg_ = cfg; }

private:
    [[nodiscard]] std::uint64_t random() noexcept;

    config cfg_;
    std::uint64_t state_;
    unsigned attempts_ = 0;
    std::optional<time_point> last_attempt_;
    std::optional<time_point> connected_at_;
};

}  // namespace thingmux::mqtt
