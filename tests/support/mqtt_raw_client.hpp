// A raw MQTT client over a Unix socket, built on the project's codec, for the tests that need
// exact packets or behaviour no real client shows: a CONNECT with chosen version, client id and
// properties; publishes and subscriptions answered packet by packet; bytes that are no MQTT at
// all; a client that connects and never reads.
#pragma once

#include "daemon/mqtt/codec.hpp"
#include "tests/support/unix_stream.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace thingmux::test {

class mqtt_raw_client {
public:
    // Connects the socket only (no CONNECT). Throws std::runtime_error when nothing listens.
    explicit mqtt_raw_client(const std::filesystem::path& socket) : stream_(socket) {}

    // A CONNECT of `version` with `client_id`, clean start, keep-alive 60 s.
    [[nodiscard]] static mqtt::connect connect_packet(mqtt::protocol_version version, std::string client_id);
    // Sends `c` and waits for the CONNACK (nullopt on timeout or when the connection closed).
    // Packets after it use c.version.
    std::optional<mqtt::connack> connect(const mqtt::connect& c, int timeout_ms = 10'000);
    std::optional<mqtt::connack> connect(mqtt::protocol_version version, std::string client_id, int timeout_ms = 10'000) {
        return connect(connect_packet(version, std::move(client_id)), timeout_ms);
    }

    // Sends a packet in the connection's version; false when the connection is closed.
    bool send(const mqtt::packet& p);
    bool send_raw(std::span<const std::uint8_t> bytes);

    // The next packet within `timeout_ms`; nullopt on timeout or when the connection closed
    // (then closed() is true). Bytes that do not decode fail the test.
    std::optional<mqtt::packet> receive(int timeout_ms = 10'000);
    // Waits up to `timeout_ms` for the server to close the connection; packets arriving meanwhile
    // are kept (PUBLISH in `publishes`, the rest in `others`).
    bool wait_closed(int timeout_ms = 10'000);

    // A PUBLISH with the next packet identifier (QoS > 0); waits for its PUBACK (QoS 1) or PUBREC
    // (QoS 2) and returns its reason code, nullopt when none came (timeout, closed). For QoS 2 a
    // successful PUBREC is followed by PUBREL and the PUBCOMP's code is returned. QoS 0: sends
    // and returns success. Deliveries arriving meanwhile are kept in `publishes`.
    std::optional<std::uint8_t> publish(const std::string& topic, const std::string& payload, int qos = 1,
                                        const mqtt::properties& props = {}, int timeout_ms = 20'000);
    // SUBSCRIBE with the next packet identifier; the SUBACK's codes, nullopt when none came.
    std::optional<std::vector<std::uint8_t>> subscribe(const std::vector<std::string>& filters, int qos = 1,
                                                       int timeout_ms = 20'000);
    // The same with subscription options of one's own (MQTT 5: No Local, Retain As Published,
    // Retain Handling).
    std::optional<std::vector<std::uint8_t>> subscribe(std::vector<mqtt::subscription> subscriptions,
                                                       int timeout_ms = 20'000);
    // Waits until `n` PUBLISH packets were received in all, acknowledging QoS 1 ones.
    bool wait_publishes(std::size_t n, int timeout_ms = 20'000);

    [[nodiscard]] bool closed() const noexcept { return stream_.closed(); }
    [[nodiscard]] int fd() const noexcept { return stream_.fd(); }
    [[nodiscard]] mqtt::protocol_version version() const noexcept { return version_; }

    std::vector<mqtt::publish> publishes;  // deliveries received while waiting for something else
    std::vector<mqtt::packet> others;      // other unexpected packets (e.g. DISCONNECT)

private:
    // Receives until `match` accepts a packet; keeps the others. nullopt on timeout or close.
    template <typename Match>
    std::optional<mqtt::packet> await(Match match, int timeout_ms);
    void keep(mqtt::packet&& p);
    std::uint16_t next_packet_id();

    unix_stream stream_;
    mqtt::protocol_version version_ = mqtt::protocol_version::v5;
    std::uint16_t last_packet_id_ = 0;
};

}  // namespace thingmux::test
