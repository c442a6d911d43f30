#include "daemon/aws/iot_credentials_provider.hpp"

#include "daemon/logging.hpp"
#include "daemon/uplink/error.hpp"

#include <boost/asio/post.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

namespace thingmux::aws {
namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// Renewal starts at most this long before the expiry (AWS's default lifetime is 1 h, its
// shortest 15 min), and never sooner than a second after the credentials arrived.
constexpr auto longest_margin = std::chrono::steady_clock::duration(5min);
constexpr auto shortest_renewal_delay = std::chrono::steady_clock::duration(1s);

mqtt::backoff::config retry_config(const iot_credentials_retry& r) {
    // No pacing beyond the back-off itself: the provider is an HTTPS API, not an MQTT client ID.
    return {.base = r.base, .cap = r.cap, .min_connect_interval = 0ms, .stable_after = 0ms};
}

std::uint64_t random_seed() {
    std::random_device os_random;  // getrandom(2): a fleet does not retry in lock-step
    return (static_cast<std::uint64_t>(os_random()) << 32U) | os_random();
}

}  // namespace

std::shared_ptr<iot_credentials_provider> iot_credentials_provider::create(asio::io_context& io,
                                                                           iot_credentials_settings settings,
                                                                           iot_credentials_retry retry) {
    return std::shared_ptr<iot_credentials_provider>(new iot_credentials_provider(io, std::move(settings), retry));
}

iot_credentials_provider::iot_credentials_provider(asio::io_context& io, iot_credentials_settings settings,
                                                   iot_credentials_retry retry)
    : io_(io), settings_(std::move(settings)), renewal_timer_(io), retry_(retry_config(retry), random_seed()) {}

iot_credentials_provider::~iot_credentials_provider() {
    if (const auto pending = exchange_) pending->cancel();
}

iot_credentials_provider::clock::duration iot_credentials_provider::renewal_margin(clock::duration lifetime) noexcept {
    return std::min(longest_margin, lifetime / 4);
}

bool iot_credentials_provider::fresh() const noexcept {
    return cached_ && clock::now() < renew_at_;
}

void iot_credentials_provider::async_get(handler h) {
    if (stopped_) {
        asio::post(io_, [h = std::move(h)] { h(uplink::errc::stopped, {}); });
        return;
    }
    if (fresh()) {
        asio::post(io_, [h = std::move(h), c = *cached_] { h({}, c); });
        return;
    }
    waiting_.push_back(std::move(h));
    if (!exchange_) start_exchange(false);
}

void iot_credentials_provider::stop() {
    stopped_ = true;
    renewal_timer_.cancel();
    cached_.reset();
    // Its outcome reaches the waiting callers at once (on_exchange() drops exchange_ meanwhile).
    if (const auto pending = exchange_) pending->cancel();
}

void iot_credentials_provider::start_exchange(bool renewal) {
    exchange_is_renewal_ = renewal;
    retry_.on_attempt(clock::now());
    exchange_ = iot_credentials_exchange::start(io_, settings_, [weak = weak_from_this()](exchange_outcome outcome) {
        if (const auto self = weak.lock()) self->on_exchange(std::move(outcome));
    });
}

void iot_credentials_provider::on_exchange(exchange_outcome outcome) {
    exchange_.reset();
    ++counters_.exchanges;
    const bool renewal = std::exchange(exchange_is_renewal_, false);
    if (outcome.value) {
        last_error_.clear();
        retry_.reset();
        keep(*outcome.value);
        deliver({}, *outcome.value);
        if (renewal) {
            ++counters_.renewals;
            spdlog::info(
                "thing {}: renewed AWS credentials ({}) from {} (role alias {}); reconnecting to sign with them",
                logging::escaped(settings_.thing_name), key_id_hint(outcome.value->access_key_id),
                logging::escaped(iot_credentials_exchange::peer_name(settings_)),
                logging::escaped(settings_.role_alias));
            if (reconnect_needed_) reconnect_needed_();
        }
        return;
    }
    ++counters_.failures;
    last_error_ = outcome.detail;
    if (renewal && !stopped_) renewal_failed(outcome);
    deliver(outcome.error, {});
}

void iot_credentials_provider::keep(credentials c) {
    const auto now = clock::now();
    const auto lifetime = std::chrono::duration_cast<clock::duration>(*c.expiration - std::chrono::system_clock::now());
    const auto delay = std::max(lifetime - renewal_margin(lifetime), std::min(lifetime, shortest_renewal_delay));
    cached_ = std::move(c);
    renew_at_ = now + delay;
    expires_at_ = now + lifetime;
    arm_renewal(renew_at_);
}

void iot_credentials_provider::renewal_failed(const exchange_outcome& outcome) {
    const auto now = clock::now();
    if (now >= expires_at_) cached_.reset();
    const bool retry = !uplink::is_fatal(outcome.error);
    const auto next = retry ? retry_.next_attempt(now) : now;
    if (retry && next < expires_at_) {
        spdlog::warn("thing {}: cannot renew AWS credentials: {}; retrying in {} ms",
                     logging::escaped(settings_.thing_name), logging::escaped(outcome.detail),
                     std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count());
        return arm_renewal(next);
    }
    cached_.reset();
    spdlog::error("thing {}: cannot renew AWS credentials: {}; the next connection attempt asks again",
                  logging::escaped(settings_.thing_name), logging::escaped(outcome.detail));
}

void iot_credentials_provider::arm_renewal(clock::time_point at) {
    renewal_timer_.expires_at(at);
    renewal_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
        if (const auto self = weak.lock(); self && !ec) self->on_renewal_due();
    });
}

void iot_credentials_provider::on_renewal_due() {
    if (stopped_ || exchange_) return;  // an exchange in flight gives the new credentials anyway
    start_exchange(true);
}

void iot_credentials_provider::deliver(const std::error_code& ec, const credentials& c) {
    auto callers = std::exchange(waiting_, {});
    for (auto& h : callers) h(ec, c);
}

}  // namespace thingmux::aws
