// A local MQTT session: what the MQTT face keeps of a client beyond one connection. It is the
// Thing pipeline's local session (its flow, its subscriptions, its rights); connections
// (mqtt_client) come and go under it.
//
// - Every connection has one. A client that asks for a session that outlives the connection
//   (MQTT 5: Clean Start 0 and a Session Expiry Interval; MQTT 3.1.1: Clean Session 0) and whose
//   client id is its own (not empty, not a Thing's name, which many clients share) keeps it
//   after the connection ends, for the expiry the client asked for (at most mqtt.session_expiry):
//   its subscriptions stay in the pipeline, QoS 1 messages for it wait (at most
//   mqtt.session_queue bytes; QoS 0 ones are not kept, as MQTT allows), and the next connection
//   with the same uid and client id and Clean Start 0 takes it over with Session Present 1.
// - QoS 1 deliveries the client had not acknowledged when its connection ended are sent again
//   to the next connection, first (with new packet identifiers: the first connection's are gone).
// - The results of a connection's requests go to that connection only; a result for a
//   connection that is gone is dropped (the client sends an unacknowledged publish again).
// - A session the hub stores (state().stored(): spool configured, session kept beyond its
//   connection) writes its subscriptions and every QoS 1 message it takes to the spool's file
//   (session_state.hpp); the hub restores it from there when thingmuxd starts again.
#pragma once

#include "config/authorization.hpp"
#include "config/grants_pool.hpp"
#include "daemon/hub/peer.hpp"
#include "daemon/hub/session_state.hpp"
#include "daemon/mqtt/packet.hpp"
#include "daemon/thing/ports.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::hub {

class mqtt_client;

// A will as the pipeline publishes it (at most QoS 1: AWS IoT Core has no QoS 2).
[[nodiscard]] ipc::publish to_publish(mqtt::will_message w);

class mqtt_session final : public thing::local_session {
public:
    // `peer`: the credentials of the connection that made the session (shared with it).
    mqtt_session(thing::session_id flow, std::string thing, std::string client_id,
                 std::shared_ptr<const peer_credentials> peer, config::shared_grants rights, std::size_t max_queued_bytes);

    // A connection takes the session (from the one that had it, if any: a takeover): what waits
    // for the client goes to it, oldest first.
    void bind(const std::shared_ptr<mqtt_client>& connection);
    // The connection `connection` ended; deliveries it had not acknowledged wait for the next one.
    void unbind(const mqtt_client& connection);
    // The connection acknowledged a delivery (server_action::delivered).
    void acknowledged(std::uint64_t tag);

    // Request ids toward the pipeline carry the connection they came from.
    [[nodiscard]] std::uint32_t request_id(std::uint16_t packet_id) const noexcept;
    static constexpr std::uint32_t no_request = 0xFFFF'FFFFU;  // a QoS 0 publish: its result goes nowhere

    // thing::local_session
    [[nodiscard]] thing::session_id flow() const override { return flow_; }
    [[nodiscard]] std::string describe() const override;
    [[nodiscard]] std::string peer_description() const override { return peer_->describe(); }
    [[nodiscard]] thing::session_owner owner() const override { return {.uid = peer_->known_uid(), .unit = peer_->unit}; }
    [[nodiscard]] const config::grants& rights() const override { return *rights_; }
    [[nodiscard]] thing::denial_log& denials() override { return denials_; }
    void publish_done(std::uint32_t request_id, ipc::result outcome) override;
    void subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    void unsubscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    bool deliver(thing::inbound_message& m, std::uint8_t qos) override;
    void link_changed(const ipc::state&) override {}  // MQTT has no word for it
    [[nodiscard]] bool takes_shared_subscriptions() const override { return true; }
    [[nodiscard]] bool connected() const override { return bound(); }
    [[nodiscard]] std::vector<thing::shared_leftover> take_shared_leftovers() override;

    void set_rights(config::shared_grants g) { rights_ = std::move(g); }

    // What it keeps across connections: messages, subscriptions, expiry, its rows in the spool.
    [[nodiscard]] session_state& state() noexcept { return state_; }
    [[nodiscard]] const session_state& state() const noexcept { return state_; }
    [[nodiscard]] const std::string& thing() const noexcept { return thing_; }
    [[nodiscard]] const std::string& client_id() const noexcept { return client_id_; }
    [[nodiscard]] const peer_credentials& peer() const noexcept { return *peer_; }
    [[nodiscard]] bool bound() const noexcept { return connection_ != nullptr; }
    [[nodiscard]] const std::shared_ptr<mqtt_client>& connection() const noexcept { return connection_; }

    // A will whose MQTT 5 Will Delay Interval runs: published at will_due() unless a connection
    // resumes the session first, or when the session ends, whichever comes first. A stored
    // session stores it too, so that it outlives a restart of thingmuxd.
    void delay_will(mqtt::will_message w, std::chrono::seconds delay);
    // The will as it came back from the spool's file, due at `due` (Unix time), in row `row`.
    void restore_will(spool::session_message stored);
    [[nodiscard]] bool will_pending() const noexcept { return pending_will_ != nullptr; }
    [[nodiscard]] std::chrono::steady_clock::time_point will_due() const noexcept { return will_due_; }
    // Takes the delayed will out (to publish it, or drop it: the session resumed); null when none.
    [[nodiscard]] std::unique_ptr<mqtt::will_message> take_will();

private:
    [[nodiscard]] mqtt_client* connection_for(std::uint32_t request_id) const noexcept;

    thing::session_id flow_;
    std::string thing_;
    std::string client_id_;
    std::shared_ptr<const peer_credentials> peer_;
    config::shared_grants rights_;  // shared with the sessions of equal rights (config/grants_pool.hpp)
    thing::denial_log denials_;

    std::shared_ptr<mqtt_client> connection_;
    std::uint16_t generation_ = 0;  // of the bound connection, in the high half of request ids
    std::uint64_t next_tag_ = 0;    // of the deliveries to connections
    session_state state_;
    std::unique_ptr<mqtt::will_message> pending_will_;
    std::chrono::steady_clock::time_point will_due_{};
    std::int64_t will_row_ = 0;  // in the spool's file; 0: not stored
};

}  // namespace thingmux::hub
