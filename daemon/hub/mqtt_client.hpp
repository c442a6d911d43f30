// One connection of a local client to thingmuxd's MQTT face (mosquitto_pub, paho, Node-RED …):
// the socket and its buffers around a sans-I/O mqtt::server_session. Once connected it belongs
// to an mqtt_session (mqtt_session.hpp), the Thing pipeline's local session, which may outlive it.
//
// - Reading: the client's bytes go to the server session; what it raises (CONNECT, PUBLISH,
//   SUBSCRIBE, UNSUBSCRIBE) goes to the hub (mqtt_events), whose answers come back through the
//   mqtt_session (publish_done …) and from there to the server session.
// - Writing: what the server session sends is appended to one buffer, written in one write per
//   loop turn. While more than a little waits to be written, the client is not read: a client
//   that sends without reading blocks on its own socket.
// - Deliveries wait in the server session for the client's window (its Receive Maximum); past
//   mqtt.client_queue bytes (waiting plus unwritten) the client is cut off (DISCONNECT 0x97,
//   MQTT 5), so a client that stops reading never holds up the uplink or the others.
#pragma once

#include "daemon/hub/peer.hpp"
#include "daemon/mqtt/server_session.hpp"
#include "daemon/thing/subscription_table.hpp"
#include "ipc/messages.hpp"

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace thingmux::hub {

class mqtt_client;
class mqtt_session;

// Receives what a client raises (the hub). Calls may answer at once, from inside the call.
class mqtt_events {
public:
    virtual void on_connect(mqtt_client& c, const mqtt::connect& packet) = 0;
    virtual void on_publish(mqtt_client& c, mqtt::publish&& msg) = 0;
    virtual void on_subscribe(mqtt_client& c, mqtt::subscribe&& packet) = 0;
    virtual void on_unsubscribe(mqtt_client& c, mqtt::unsubscribe&& packet) = 0;
    // Once per client, when the connection is over (the socket is closed).
    virtual void on_ended(mqtt_client& c, const mqtt::server_action::ended& how) = 0;

protected:
    ~mqtt_events() = default;
};

class mqtt_client final : public std::enable_shared_from_this<mqtt_client> {
public:
    // A Unix or a TCP socket: the protocol does not matter past accept().
    using socket = boost::asio::generic::stream_protocol::socket;

    mqtt_client(socket s, thing::session_id id, peer_credentials peer, mqtt::server_settings settings,
                mqtt_events& events);
    ~mqtt_client();
    mqtt_client(const mqtt_client&) = delete;
    mqtt_client& operator=(const mqtt_client&) = delete;

    // Starts reading; the CONNECT timeout runs from now.
    void start();
    // The hub's answer to on_connect(): the connection joins `session` (which it then keeps alive).
    // `session_expiry`: how long the session outlives the connection (told to an MQTT 5 client
    // when it differs from what it asked).
    void accept(std::shared_ptr<mqtt_session> session, bool session_present, std::optional<std::string> assigned_client_id,
                std::chrono::seconds session_expiry);
    void refuse(std::uint8_t reason_code, std::string reason);
    // Ends the connection from the server's side (MQTT 5: DISCONNECT with `reason_code`).
    void disconnect(std::uint8_t reason_code, std::string reason);

    // Answers and messages from the session.
    void publish_done(std::uint16_t packet_id, const ipc::result& outcome);
    void subscribe_done(std::uint16_t packet_id, const std::vector<ipc::result>& outcomes);
    void unsubscribe_done(std::uint16_t packet_id, const std::vector<ipc::result>& outcomes);
    // Past mqtt.client_queue the client is cut off (queue_full).
    mqtt::delivery deliver(const mqtt::publish& msg, std::uint8_t qos, std::uint64_t tag);

    // A number for log lines and D-Bus ("MQTT client 7").
    [[nodiscard]] thing::session_id id() const noexcept { return id_; }
    [[nodiscard]] std::string describe() const;
    [[nodiscard]] const peer_credentials& peer() const noexcept { return *peer_; }
    // The same credentials, for the session the connection joins: one copy per connection.
    [[nodiscard]] std::shared_ptr<const peer_credentials> shared_peer() const noexcept { return peer_; }
    // The username whose password the hub checked (CONNECT); rules may match it (mqtt_user).
    // Before accept() only: a session may share the credentials from then on.
    void set_mqtt_user(std::string user) { peer_->mqtt_user = std::move(user); }
    [[nodiscard]] bool connected() const noexcept { return session_ != nullptr && !ended_; }  // CONNACK sent
    [[nodiscard]] bool ended() const noexcept { return ended_; }
    [[nodiscard]] const std::string& client_id() const noexcept { return server_.client_id(); }
    [[nodiscard]] mqtt::protocol_version version() const noexcept { return server_.version(); }
    // Null until accepted.
    [[nodiscard]] const std::shared_ptr<mqtt_session>& session() const noexcept { return session_; }
    // Bytes waiting: deliveries held for the client's window, and what is not yet written.
    [[nodiscard]] std::size_t queued_bytes() const noexcept;
    [[nodiscard]] std::uint64_t messages_in() const noexcept { return messages_in_; }
    [[nodiscard]] std::uint64_t messages_out() const noexcept { return messages_out_; }
    // Set by the hub when the connection is to be refused as soon as its CONNECT arrives (too
    // many clients, shutting down): the reason code and why.
    std::optional<std::pair<std::uint8_t, std::string>> refusal;
    // The CONNECT's will; taken once by the hub when the connection ends. On the heap: most
    // connections have none, and an empty will_message is half a kilobyte.
    std::unique_ptr<mqtt::will_message> will;
    // How long its session outlives it (set by the hub from the CONNECT, within mqtt.session_expiry).
    [[nodiscard]] std::chrono::seconds session_expiry() const noexcept { return session_expiry_; }
    void set_session_expiry(std::chrono::seconds s) noexcept { session_expiry_ = s; }

private:
    void read();
    void read_ready();
    void run();  // drains the server session's actions, performs them
    // The connection's writes are done: the action lists go (run() hands the session an empty one).
    void shed_lists();
    void schedule_write();
    void write();
    // Reads again once neither unwritten bytes nor the server session (an MQTT 3.1.1 client past
    // Receive Maximum) hold reading back.
    void maybe_resume();
    void arm_timer();
    void close_socket();
    void cut_off(std::string reason);
    [[nodiscard]] std::size_t pause_mark() const noexcept;
    [[nodiscard]] bool write_backlog() const noexcept { return out_.size() + writing_size_ >= pause_mark(); }
    [[nodiscard]] std::chrono::steady_clock::time_point now() const;

    socket socket_;
    thing::session_id id_;
    std::shared_ptr<peer_credentials> peer_;
    std::size_t max_queue_bytes_;
    mqtt_events& events_;
    mqtt::server_session server_;
    std::shared_ptr<mqtt_session> session_;
    boost::asio::steady_timer timer_;
    std::optional<mqtt::time_point> armed_;
    bool running_ = false;   // run() is on the stack; a nested call leaves the work to it
    bool run_again_ = false;
    // The list of the last run(), cleared, for the next: the session takes it in exchange for
    // its actions, so that a busy connection allocates no list per run() (one per PUBACK).
    // Dropped with the session's by shed_lists(): an idle connection holds none (an action is
    // over a kilobyte).
    std::vector<mqtt::server_session_action> spare_actions_;
    bool shedding_ = false;

    std::vector<std::uint8_t> out_;      // to write, after what is being written
    std::vector<std::uint8_t> writing_;  // being written
    std::size_t writing_size_ = 0;
    bool writing_now_ = false;
    bool write_posted_ = false;
    bool close_after_write_ = false;
    bool paused_ = false;   // not reading until the writes catch up or the session takes more
    bool reading_ = false;  // a wait for readability is pending
    bool ended_ = false;    // the server session ended the connection (on_ended() was called)
    bool closed_ = false;   // the socket is closed

    std::uint64_t messages_in_ = 0;
    std::uint64_t messages_out_ = 0;
    std::chrono::seconds session_expiry_{0};
};

}  // namespace thingmux::hub
