// The pipeline's ports (daemon/thing/ports.hpp) as thingmuxd provides them: the upstream over a
// Thing's uplink, and the clock over an Asio timer.
#pragma once

#include "daemon/hub/session_journal.hpp"
#include "daemon/thing/ports.hpp"
#include "daemon/uplink/uplink.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>

namespace thingmux::hub {

class uplink_port final : public thing::upstream {
public:
    uplink_port(std::shared_ptr<uplink::uplink> link, session_journal& journal) : link_(std::move(link)), journal_(journal) {}
    // The results go to the uplink's on_publish_done() handler, which the hub points at the pipeline.
    void publish(mqtt::publish&& msg, std::uint64_t tag) override { link_->publish_tagged(std::move(msg), tag); }
    void subscribe(std::vector<mqtt::subscription> filters, subscribe_done done) override {
        link_->subscribe(std::move(filters), std::move(done));
    }
    void unsubscribe(std::vector<std::string> filters) override { link_->unsubscribe(std::move(filters), {}); }
    // Once what local sessions stored of the message is on disk (session_journal.hpp).
    void acknowledge(const mqtt::inbound_ticket& ticket) override {
        if (!journal_.holding()) return link_->acknowledge(ticket);
        journal_.after_commit([link = link_, ticket] { link->acknowledge(ticket); });
    }

private:
    std::shared_ptr<uplink::uplink> link_;
    session_journal& journal_;
};

// One Asio timer: wake_at() arms it unless it is armed for an earlier time already.
class asio_clock final : public thing::clock {
public:
    asio_clock(boost::asio::io_context& io, std::function<void()> on_wake) : timer_(io), on_wake_(std::move(on_wake)) {}
    ~asio_clock() override { timer_.cancel(); }
    asio_clock(const asio_clock&) = delete;
    asio_clock& operator=(const asio_clock&) = delete;

    [[nodiscard]] thing::clock_type::time_point now() const override { return thing::clock_type::now(); }
    void wake_at(thing::clock_type::time_point when) override {
        if (armed_ && timer_.expiry() <= when) return;
        armed_ = true;
        timer_.expires_at(when);  // cancels an earlier wait, whose handler sees operation_aborted
        timer_.async_wait([this](boost::system::error_code ec) {
            if (ec) return;  // replaced by an earlier wake-up, or the clock is gone with its Thing
            armed_ = false;
            on_wake_();
        });
    }
    void cancel() {
        armed_ = false;
        timer_.cancel();
    }

private:
    boost::asio::steady_timer timer_;
    std::function<void()> on_wake_;
    bool armed_ = false;
};

}  // namespace thingmux::hub
