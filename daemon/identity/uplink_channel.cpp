#include "daemon/identity/uplink_channel.hpp"

#include <utility>

namespace thingmux::identity {

void uplink_channel::subscribe(std::vector<std::string> filters, std::function<void(std::vector<std::uint8_t>)> done) {
    std::vector<mqtt::subscription> subs;
    subs.reserve(filters.size());
    for (auto& f : filters) subs.push_back({.filter = std::move(f), .max_qos = mqtt::qos::at_least_once});
    link_->subscribe(std::move(subs), [done = std::move(done)](const std::vector<std::uint8_t>& codes) { done(codes); });
}

void uplink_channel::unsubscribe(std::vector<std::string> filters) { link_->unsubscribe(std::move(filters), {}); }

void uplink_channel::publish(std::string topic, std::string payload, std::function<void(std::error_code, std::string)> done) {
    mqtt::publish m;
    m.topic = std::move(topic);
    m.payload = std::move(payload);
    m.qos = mqtt::qos::at_least_once;
    link_->publish(std::move(m), [done = std::move(done)](const mqtt::action::publish_done& r) {
        if (r.error != mqtt::local_error::none) return done(mqtt::make_error_code(r.error), mqtt::to_string(r.error));
        if (r.reason_code >= 0x80)
            return done(mqtt::make_error_code(mqtt::local_error::refused_by_broker),
                        "the broker refused it (reason code " + std::to_string(r.reason_code) +
                            (r.reason_string.empty() ? std::string() : ": " + r.reason_string) + ")");
        done({}, {});
    });
}

}  // namespace thingmux::identity
