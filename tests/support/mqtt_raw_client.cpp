#include "tests/support/mqtt_raw_client.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace thingmux::test {

mqtt::connect mqtt_raw_client::connect_packet(mqtt::protocol_version version, std::string client_id) {
    mqtt::connect c;
    c.version = version;
    c.client_id = std::move(client_id);
    c.clean_start = true;
    c.keep_alive = 60;
    return c;
}

std::optional<mqtt::connack> mqtt_raw_client::connect(const mqtt::connect& c, int timeout_ms) {
    version_ = c.version;
    if (!send(c)) return std::nullopt;
    auto ack = await([](const mqtt::packet& p) { return std::holds_alternative<mqtt::connack>(p); }, timeout_ms);
    if (!ack) return std::nullopt;
    return std::get<mqtt::connack>(*ack);
}

bool mqtt_raw_client::send(const mqtt::packet& p) { return send_raw(mqtt::encode(p, version_)); }

bool mqtt_raw_client::send_raw(std::span<const std::uint8_t> bytes) { return stream_.write(bytes); }

std::optional<mqtt::packet> mqtt_raw_client::receive(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        auto r = mqtt::decode(stream_.buffer(), version_);
        if (auto* ok = std::get_if<mqtt::decoded>(&r)) {
            auto p = std::move(ok->packet);
            stream_.consume(ok->consumed);
            return p;
        }
        if (auto* bad = std::get_if<mqtt::malformed>(&r)) {
            ADD_FAILURE() << "thingmuxd sent a malformed MQTT packet: " << bad->reason;
            stream_.mark_closed();
            return std::nullopt;
        }
        // Packets already read are decoded above first, so a close loses none of them.
        if (!stream_.read_some(remaining_ms(deadline))) return std::nullopt;
    }
}

bool mqtt_raw_client::wait_closed(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!closed() && std::chrono::steady_clock::now() < deadline) {
        if (auto p = receive(remaining_ms(deadline))) keep(std::move(*p));
    }
    return closed();
}

void mqtt_raw_client::keep(mqtt::packet&& p) {
    if (auto* pub = std::get_if<mqtt::publish>(&p)) {
        if (pub->qos == mqtt::qos::at_least_once) send(mqtt::puback{.packet_id = pub->packet_id, .reason_code = 0, .props = {}});
        publishes.push_back(std::move(*pub));
    } else {
        others.push_back(std::move(p));
    }
}

template <typename Match>
std::optional<mqtt::packet> mqtt_raw_client::await(Match match, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!closed()) {
        auto p = receive(remaining_ms(deadline));
        if (!p) return std::nullopt;
        if (match(*p)) return p;
        keep(std::move(*p));
    }
    return std::nullopt;
}

std::uint16_t mqtt_raw_client::next_packet_id() {
    if (++last_packet_id_ == 0) last_packet_id_ = 1;
    return last_packet_id_;
}

template <typename Ack>
static bool is_ack_for(const mqtt::packet& p, std::uint16_t id) {
    const auto* a = std::get_if<Ack>(&p);
    return a != nullptr && a->packet_id == id;
}

std::optional<std::uint8_t> mqtt_raw_client::publish(const std::string& topic, const std::string& payload, int qos,
                                                     const mqtt::properties& props, int timeout_ms) {
    mqtt::publish p{.topic = topic, .payload = payload, .qos = static_cast<mqtt::qos>(qos), .retain = false,
                    .dup = false, .packet_id = 0, .props = props};
    if (qos > 0) p.packet_id = next_packet_id();
    if (!send(p)) return std::nullopt;
    if (qos == 0) return mqtt::reason::success;
    const auto id = p.packet_id;
    if (qos == 1) {
        auto a = await([&](const mqtt::packet& x) { return is_ack_for<mqtt::puback>(x, id); }, timeout_ms);
        if (!a) return std::nullopt;
        return std::get<mqtt::puback>(*a).reason_code;
    }
    auto rec = await([&](const mqtt::packet& x) { return is_ack_for<mqtt::pubrec>(x, id); }, timeout_ms);
    if (!rec) return std::nullopt;
    if (const auto code = std::get<mqtt::pubrec>(*rec).reason_code; code >= 0x80) return code;
    if (!send(mqtt::pubrel{.packet_id = id, .reason_code = 0, .props = {}})) return std::nullopt;
    auto comp = await([&](const mqtt::packet& x) { return is_ack_for<mqtt::pubcomp>(x, id); }, timeout_ms);
    if (!comp) return std::nullopt;
    return std::get<mqtt::pubcomp>(*comp).reason_code;
}

std::optional<std::vector<std::uint8_t>> mqtt_raw_client::subscribe(const std::vector<std::string>& filters, int qos,
                                                                    int timeout_ms) {
    std::vector<mqtt::subscription> subscriptions;
    for (const auto& f : filters) subscriptions.push_back({.filter = f, .max_qos = static_cast<mqtt::qos>(qos)});
    return subscribe(std::move(subscriptions), timeout_ms);
}

std::optional<std::vector<std::uint8_t>> mqtt_raw_client::subscribe(std::vector<mqtt::subscription> subscriptions,
                                                                    int timeout_ms) {
    mqtt::subscribe s{.packet_id = next_packet_id(), .subscriptions = std::move(subscriptions), .props = {}};
    if (!send(s)) return std::nullopt;
    const auto id = s.packet_id;
    auto a = await([&](const mqtt::packet& x) { return is_ack_for<mqtt::suback>(x, id); }, timeout_ms);
    if (!a) return std::nullopt;
    return std::get<mqtt::suback>(*a).reason_codes;
}

bool mqtt_raw_client::wait_publishes(std::size_t n, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (publishes.size() < n && !closed() && std::chrono::steady_clock::now() < deadline) {
        if (auto p = receive(remaining_ms(deadline))) keep(std::move(*p));
    }
    return publishes.size() >= n;
}

}  // namespace thingmux::test
