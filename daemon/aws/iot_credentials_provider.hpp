// Temporary AWS credentials for a Thing from the AWS IoT credentials provider (its certificate
// exchanged for them through a role alias), cached and renewed before they expire.
//
// - async_get() answers from the cache while the credentials are fresh, else from a new exchange
//   (iot_credentials_exchange); callers arriving meanwhile share it, so a connection attempt
//   costs at most one exchange and reports its failure once. It never retries by itself: the
//   caller's own back-off decides when to ask again (after errc::credentials_provider_refused,
//   a fatal condition, retrying cannot help without a change in the cloud or the settings).
// - Renewal: credentials that live L are fresh until `renewal_margin(L)` before they expire:
//   min(5 min, L / 4), so the 1 h default renews at 55 min and a 20 s test lifetime at 15 s.
//   Then the provider fetches new ones itself (retrying transient failures with back-off and
//   full jitter until the old ones expire) and, once it has them, asks for a reconnect
//   (on_reconnect_needed), so that the connection is signed anew with them. It logs each
//   renewal's outcome once; the credentials themselves are never logged.
// - Times: the expiration is compared with the system clock once, on arrival (an expiration
//   already past is reported as clock skew); the renewal runs on the steady clock from there.
//
// One io_context, one thread; handlers run on it, never inside the call that started them.
#pragma once

#include "common/aws_credentials.hpp"
#include "daemon/aws/iot_credentials_exchange.hpp"
#include "daemon/mqtt/backoff.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace thingmux::aws {

// Back-off of the renewal's retries (full jitter, seeded from the OS CSPRNG).
struct iot_credentials_retry {
    std::chrono::milliseconds base{1'000};
    std::chrono::milliseconds cap{60'000};
};

class iot_credentials_provider : public std::enable_shared_from_this<iot_credentials_provider> {
public:
    using handler = std::function<void(std::error_code, credentials)>;
    using clock = std::chrono::steady_clock;

    struct counters {
        std::uint64_t exchanges = 0;  // answered (or failed) exchanges with the provider
        std::uint64_t failures = 0;   // of them, those that gave no credentials
        std::uint64_t renewals = 0;   // credentials renewed before expiry (reconnects asked for)
    };

    [[nodiscard]] static std::shared_ptr<iot_credentials_provider> create(boost::asio::io_context& io,
                                                                          iot_credentials_settings settings,
                                                                          iot_credentials_retry retry = {});
    ~iot_credentials_provider();
    iot_credentials_provider(const iot_credentials_provider&) = delete;
    iot_credentials_provider& operator=(const iot_credentials_provider&) = delete;

    // Fresh credentials, or why there are none (an uplink::errc or a system error; last_error()
    // says what and which file or setting fixes it). With an error the credentials are empty.
    void async_get(handler h);

    // Called when renewed credentials replaced ones near their expiry: reconnect, so that the
    // connection is signed with the new ones (the next async_get() answers from the cache).
    void on_reconnect_needed(std::function<void()> f) { reconnect_needed_ = std::move(f); }

    // Ends a pending exchange (its callers get operation_canceled) and the renewal; afterwards
    // async_get() answers uplink::errc::stopped. Run the io_context on until pending handlers ran.
    void stop();

    // The last failure, for people (empty after a success); never a secret.
    [[nodiscard]] const std::string& last_error() const noexcept { return last_error_; }
    [[nodiscard]] const counters& stats() const noexcept { return counters_; }
    [[nodiscard]] const iot_credentials_settings& settings() const noexcept { return settings_; }

    // How long before their expiry credentials that live `lifetime` are renewed.
    [[nodiscard]] static clock::duration renewal_margin(clock::duration lifetime) noexcept;

private:
    iot_credentials_provider(boost::asio::io_context& io, iot_credentials_settings settings,
                             iot_credentials_retry retry);

    [[nodiscard]] bool fresh() const noexcept;
    void start_exchange(bool renewal);
    void on_exchange(exchange_outcome outcome);
    void keep(credentials c);
    void renewal_failed(const exchange_outcome& outcome);
    void arm_renewal(clock::time_point at);
    void on_renewal_due();
    void deliver(const std::error_code& ec, const credentials& c);

    boost::asio::io_context& io_;
    iot_credentials_settings settings_;
    std::function<void()> reconnect_needed_;

    // The cache: the credentials and, on the steady clock, when they are renewed and expire.
    std::optional<credentials> cached_;
    clock::time_point renew_at_{};
    clock::time_point expires_at_{};

    std::shared_ptr<iot_credentials_exchange> exchange_;  // the one in flight, if any
    bool exchange_is_renewal_ = false;
    std::vector<handler> waiting_;  // async_get() callers waiting for it
    boost::asio::steady_timer renewal_timer_;
    mqtt::backoff retry_;
    std::string last_error_;
    counters counters_;
    bool stopped_ = false;
};

}  // namespace thingmux::aws
