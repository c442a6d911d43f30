#include "daemon/mqtt/backoff.hpp"

#include <algorithm>
#include <limits>

namespace thingmux::mqtt {

backoff::backoff(config cfg, std::uint64_t seed) : cfg_(cfg), state_(seed) {}

void backoff::on_attempt(time_point now) {
    last_attempt_ = now;
    connected_at_.reset();  // a new attempt: the previous connection's age no longer applies
}

void backoff::on_connected(time_point now) { connected_at_ = now; }

backoff::time_point backoff::next_attempt(time_point now) {
    // Only a connection that stayed up proves the broker is healthy; a session taken over
    // seconds after CONNACK keeps backing off.
    if (connected_at_ && now - *connected_at_ >= cfg_.stable_after) attempts_ = 0;
    connected_at_.reset();

    // min(cap, base * 2^attempts) without overflowing the shift: base * 2^n > cap  <=>  base > cap >> n.
    const std::int64_t base = std::max<std::int64_t>(cfg_.base.count(), 0);
    const std::int64_t cap = std::max<std::int64_t>(cfg_.cap.count(), 0);
    const std::int64_t bound = attempts_ >= 62 || base > (cap >> attempts_) ? cap : std::min(cap, base << attempts_);
    if (attempts_ < std::numeric_limits<unsigned>::max()) ++attempts_;

    // Modulo bias is below 2^-30 for any bound under 2^34 ms (six months): irrelevant here.
    const auto span = static_cast<std::uint64_t>(bound) + 1;
    const duration delay{static_cast<std::int64_t>(random() % span)};

    time_point next = now + delay;
    if (last_attempt_) next = std::max(next, *last_attempt_ + cfg_.min_connect_interval);
    return next;
}

// splitmix64 (Steele, Lea, Flood 2014): tiny, full 2^64 period, good enough to spread a fleet
// once it is seeded from the OS CSPRNG.
std::uint64_t backoff::random() noexcept {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27U)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31U);
}

}  // namespace thingmux::mqtt
