#include "daemon/thing/shaper.hpp"

#include <algorithm>
#include <chrono>

namespace thingmux::thing {

namespace {

using seconds_d = std::chrono::duration<double>;

// Longest wait until_allows() reports (about 31 years): a debt that large comes from a caller's
// bogus size, and steady_clock's now plus this still fits its 64-bit nanoseconds.
constexpr double max_wait_seconds = 1e9;

// Tolerance on the level, relative to the capacity: refilling in several steps or in one may
// differ in the last bits, and pop() at now + next_ready() must not miss by a rounding error.
constexpr double level_slack = 1e-9;

}  // namespace

token_bucket::token_bucket(std::optional<double> rate_per_second, double capacity, clock::time_point now)
    : rate_(rate_per_second), capacity_(capacity), tokens_(capacity), last_(now) {}

void token_bucket::reconfigure(std::optional<double> rate_per_second, double capacity, clock::time_point now) {
    refill(now);
    const bool was_unlimited = unlimited();
    rate_ = rate_per_second;
    capacity_ = capacity;
    tokens_ = was_unlimited ? capacity : std::min(tokens_, capacity);
}

double token_bucket::level_at(clock::time_point now) const {
    if (!rate_) return capacity_;
    if (now <= last_) return tokens_;  // a clock that went back earns nothing, and takes nothing
    return std::min(capacity_, tokens_ + *rate_ * seconds_d(now - last_).count());
}

bool token_bucket::covers(double level, double cost) const {
    return level + capacity_ * level_slack >= std::min(cost, capacity_);
}

void token_bucket::refill(clock::time_point now) {
    if (now <= last_) return;
    tokens_ = level_at(now);
    last_ = now;
}

bool token_bucket::allows(double cost) const {
    return !rate_ || covers(tokens_, cost);
}

void token_bucket::take(double cost) {
    if (rate_) tokens_ -= cost;
}

token_bucket::clock::duration token_bucket::until_allows(double cost, clock::time_point now) const {
    const double level = level_at(now);
    if (!rate_ || covers(level, cost)) return clock::duration::zero();
    const double missing = std::min(cost, capacity_) - level;
    const double wait = std::min(missing / *rate_, max_wait_seconds);
    // Rounded up to whole ticks: waking a tick late costs nothing, a tick early costs a wakeup.
    // Earning starts at the last refill if `now` is before it (a clock that went back).
    return std::max(last_ - now, clock::duration::zero()) + std::chrono::ceil<clock::duration>(seconds_d(wait));
}

namespace {

// Capacities are 100 ms worth of the rate. AWS IoT Core counts per second, so a full bucket
// followed by a second at the rate puts at most 1.1x the limit into any one-second window, while
// a short burst (a shadow update next to some telemetry) still leaves without waiting. At least
// one message, or byte, so that low rates can hold a whole unit.
std::optional<double> rate_of(const std::optional<std::uint64_t>& per_second) {
    if (!per_second) return std::nullopt;
    return static_cast<double>(*per_second);
}

double capacity_of(const std::optional<std::uint64_t>& per_second) {
    return per_second ? std::max(static_cast<double>(*per_second) / 10.0, 1.0) : 1.0;
}

std::optional<std::uint64_t> widen(const std::optional<std::uint32_t>& v) {
    if (!v) return std::nullopt;
    return std::uint64_t{*v};
}

}  // namespace

connection_budget::connection_budget(const shaper_limits& limits, clock::time_point now)
    : messages_(rate_of(widen(limits.messages_per_second)), capacity_of(widen(limits.messages_per_second)), now),
      bytes_(rate_of(limits.bytes_per_second), capacity_of(limits.bytes_per_second), now) {}

void connection_budget::set_limits(const shaper_limits& limits, clock::time_point now) {
    const auto messages = widen(limits.messages_per_second);
    messages_.reconfigure(rate_of(messages), capacity_of(messages), now);
    bytes_.reconfigure(rate_of(limits.bytes_per_second), capacity_of(limits.bytes_per_second), now);
}

void connection_budget::refill(clock::time_point now) {
    messages_.refill(now);
    bytes_.refill(now);
}

bool connection_budget::allows(std::size_t bytes) const {
    return messages_.allows(1.0) && bytes_.allows(static_cast<double>(bytes));
}

void connection_budget::take(std::size_t bytes) {
    messages_.take(1.0);
    bytes_.take(static_cast<double>(bytes));
}

connection_budget::clock::duration connection_budget::until_allows(std::size_t bytes, clock::time_point now) const {
    return std::max(messages_.until_allows(1.0, now), bytes_.until_allows(static_cast<double>(bytes), now));
}

}  // namespace thingmux::thing
