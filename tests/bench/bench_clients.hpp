// The benchmark's MQTT clients, one interface for the four paths it compares, all driven by
// one io_context on one thread (so every path pays the same driver cost):
//
//   direct     the app holds the Thing's own mTLS session to the upstream broker (the floor;
//              only one app can do this, since the client ID is the Thing name);
//   thingmux   a libthingmux client of thingmuxd, which holds that session for every app;
//   mqtt-face  a plain MQTT client of thingmuxd's MQTT face (its Unix socket): an unmodified
//              app sharing the daemon's session;
//   bridge     the same plain MQTT client, of a local mosquitto over loopback TCP, which
//              bridges to the upstream broker over one mTLS connection (the pattern AWS
//              describes for mosquitto).
//
// direct, mqtt-face and bridge clients, and the "cloud" observer, use the project's own uplink
// (the same MQTT session code as thingmuxd), so the MQTT implementation is the same on every
// path; mqtt-face and bridge differ only in the socket the app connects to.
#pragma once

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace thingmux::bench {

enum class path { direct, thingmux, mqtt_face, bridge };

[[nodiscard]] const char* to_string(path p) noexcept;

// Where the peers are; filled from the command line.
struct endpoints {
    // the upstream (AWS-like) broker
    std::string host = "localhost";
    std::uint16_t port = 8883;
    std::string ca;
    std::string direct_thing = "bench-direct";  // direct: its own Thing, so it never takes over the daemon's
    std::string direct_cert;
    std::string direct_key;
    std::string observer_cert;  // the cloud side: publishes commands, counts what arrived
    std::string observer_key;
    std::uint16_t inflight = 90;  // QoS 1 window of every MQTT session (= thingmuxd's limits.inflight)
    // thingmux: the daemon's IPC socket; mqtt-face: its MQTT socket
    std::string socket;
    std::string mqtt_socket;
    // bridge: the local mosquitto
    std::string local_host = "127.0.0.1";
    std::uint16_t local_port = 1883;
    // The Things thingmuxd and the bridge connect as (topics are scoped to them). They differ so
    // that the daemon and the bridge can run side by side without taking over each other.
    std::string thing = "gateway-01";
    std::string bridge_thing = "bench-bridge";
};

// Outcome of one request: ok, or why not.
struct status {
    bool ok = true;
    std::string error;
    explicit operator bool() const noexcept { return ok; }
};

class client {
public:
    using done_fn = std::function<void(const status&)>;
    using message_fn = std::function<void(std::string_view topic, std::string_view payload)>;

    virtual ~client() = default;
    // Connects; `ready` runs once the path can carry messages to the upstream broker (for
    // thingmux: the daemon's session is up; for mqtt-face and bridge: the local broker took the
    // connection), or with the error that stops it.
    virtual void start(done_fn ready) = 0;
    // QoS 1 completes when the next hop acknowledged it: the upstream broker (direct,
    // thingmux and mqtt-face end to end, or thingmuxd's spool while the Thing is offline) or
    // the local mosquitto (bridge). QoS 0 when it was handed on.
    virtual void publish(const std::string& topic, const std::string& payload, int qos, done_fn done) = 0;
    virtual void subscribe(const std::string& filter, int qos, done_fn done) = 0;
    // Disconnects; no handler runs afterwards.
    virtual void stop() = 0;

    message_fn on_message;
};

// The app-side client of path `p`; `index` tells apart several clients of one run.
[[nodiscard]] std::unique_ptr<client> make_client(boost::asio::io_context& io, path p, const endpoints& e,
                                                  unsigned index);
// The cloud side: an mTLS client of the upstream broker with the observer identity.
[[nodiscard]] std::unique_ptr<client> make_observer(boost::asio::io_context& io, const endpoints& e);

// The Thing whose topics path `p`'s apps use (direct: its own Thing).
[[nodiscard]] const std::string& thing_of(path p, const endpoints& e) noexcept;

}  // namespace thingmux::bench
