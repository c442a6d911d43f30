// MQTT over WebSocket for integration tests: wss_relay (tests/support/wss_relay.cpp) as a wss
// front of a broker_fixture, on a free loopback port, with the broker's PKI (server certificate
// for localhost, the test CA for client certificates). Debian's mosquitto cannot serve
// WebSocket here, so the front relays each connection's binary messages to the broker's mTLS
// port, presenting one Thing's certificate there (the broker's ACL is by certificate).
//
// Every upgrade request the front receives is one JSON line in upgrades(): {"target": ...,
// "headers": {lower-case name: value}, "client_cert": true|false}. Options make it hostile.
#pragma once

#include "tests/support/broker_fixture.hpp"
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/process.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::test {

class wss_front {
public:
    struct options {
        std::string identity = "gateway-01";      // the Thing certificate presented to the broker
        bool require_client_cert = true;          // refuse TLS without a certificate from the test CA
        unsigned status = 0;                      // non-zero: answer every upgrade with this HTTP status
        std::optional<std::string> subprotocol;   // choose this instead of mqtt ("": none)
        std::size_t fragment = 0;                 // non-zero: the broker's bytes in messages of at most this many bytes
        std::size_t oversized = 0;                // non-zero: send one message of this many bytes after the upgrade
        std::size_t body_bytes = 0;               // with status: a refusal body of this many bytes
        std::optional<std::string> close_reason;  // close the WebSocket after the upgrade (1008, this reason)
    };

    // Starts the relay and waits until it accepts connections; throws std::runtime_error with
    // its output when it does not come up.
    wss_front(const broker_fixture& broker, options opts);
    ~wss_front();
    wss_front(const wss_front&) = delete;
    wss_front& operator=(const wss_front&) = delete;

    // SIGKILL: every relayed connection breaks at once.
    void kill();
    // Starts it again on the same port (no-op while it runs).
    void start();
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    // The upgrade requests received so far, one JSON line each.
    [[nodiscard]] std::vector<std::string> upgrades() const;

private:
    const broker_fixture& broker_;
    options opts_;
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    std::optional<child_process> relay_;
};

// The front dies with the daemon's connected WebSocket; an app publishes 30 messages at QoS 1
// meanwhile (spooled), `while_down` runs, and the front starts again: every message must reach
// the cloud after the daemon's reconnection (gtest failures otherwise).
void expect_nothing_lost_while_front_down(const broker_fixture& broker, daemon_fixture& daemon, wss_front& front,
                                          const std::function<void()>& while_down = {});

}  // namespace thingmux::test
