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
// - A session the hub stores (stored(): spool configured, session kept beyond its connection)
//   writes its subscriptions and every QoS 1 message it takes to the spool's file through the
//   session journal, and deletes a message once the client acknowledged it; the hub restores it
//   from there when thingmuxd starts again.
#pragma once

#include "config/authorization.hpp"
#include "daemon/hub/peer.hpp"
#include "daemon/hub/session_journal.hpp"
#include "daemon/mqtt/packet.hpp"
#include "daemon/thing/ports.hpp"

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::hub {

class mqtt_client;

class mqtt_session final : public thing::local_session {
public:
    // `peer`: the credentials of the connection that made the session (shared with it).
    mqtt_session(thing::session_id flow, std::string thing, std::string client_id,
                 std::shared_ptr<const peer_credentials> peer, config::grants rights, std::size_t max_queued_bytes);

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
    [[nodiscard]] const config::grants& rights() const override { return rights_; }
    [[nodiscard]] thing::denial_log& denials() override { return denials_; }
    void publish_done(std::uint32_t request_id, ipc::result outcome) override;
    void subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    void unsubscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    bool deliver(thing::inbound_message& m, std::uint8_t qos) override;
    void link_changed(const ipc::state&) override {}  // MQTT has no word for it
    [[nodiscard]] bool takes_shared_subscriptions() const override { return true; }
    [[nodiscard]] bool connected() const override { return bound(); }
    [[nodiscard]] std::vector<thing::shared_leftover> take_shared_leftovers() override;

    void set_rights(config::grants g) { rights_ = std::move(g); }

    // Durability: the session's row in the spool's file, 0 while it is not stored.
    void store_in(session_journal& journal, std::int64_t row) noexcept {
        journal_ = &journal;
        row_ = row;
    }
    [[nodiscard]] std::int64_t row() const noexcept { return row_; }
    [[nodiscard]] bool stored() const noexcept { return row_ != 0; }
    // Writes every message that waits or is unacknowledged (a session becoming stored).
    void store_held();
    // Forgets the row (the hub removed it, or keeps it for the next start).
    void unstore() noexcept { row_ = 0; }

    // The subscriptions the session holds, as the spool keeps them: a SUBSCRIBE's filters count
    // once the pipeline accepted them, an UNSUBSCRIBE's once it is answered. Tracked while
    // `expiry` > 0 only (set it first).
    void subscribing(std::uint32_t request_id, std::vector<spool::format::subscription> asked);
    void unsubscribing(std::uint32_t request_id, std::vector<std::string> filters);
    [[nodiscard]] const std::vector<spool::format::subscription>& subscriptions() const noexcept { return subscriptions_; }
    // A stored session coming back: its subscriptions and the messages that waited.
    void restore(std::vector<spool::format::subscription> subscriptions) { subscriptions_ = std::move(subscriptions); }
    void restore(mqtt::publish msg, std::int64_t row);
    [[nodiscard]] const std::string& thing() const noexcept { return thing_; }
    [[nodiscard]] const std::string& client_id() const noexcept { return client_id_; }
    [[nodiscard]] const peer_credentials& peer() const noexcept { return *peer_; }
    [[nodiscard]] bool bound() const noexcept { return connection_ != nullptr; }
    [[nodiscard]] const std::shared_ptr<mqtt_client>& connection() const noexcept { return connection_; }
    // QoS 1 messages waiting for a connection, and their bytes.
    [[nodiscard]] std::size_t waiting() const noexcept { return waiting_.size(); }
    [[nodiscard]] std::size_t waiting_bytes() const noexcept { return waiting_bytes_; }
    // Messages not kept while the client was away (QoS 0, or past the byte limit).
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }

    // How long it outlives its connection, as granted at the last CONNECT (0: not at all).
    std::chrono::seconds expiry{0};
    // Until when a session without a connection is kept (set by the hub when it parks it).
    std::chrono::steady_clock::time_point expires{};
    // A will whose MQTT 5 Will Delay Interval runs: published at will_due unless a connection
    // resumes the session first, or when the session ends, whichever comes first.
    std::unique_ptr<mqtt::will_message> pending_will;
    std::chrono::steady_clock::time_point will_due{};

private:
    struct held {
        mqtt::publish msg;
        std::uint8_t qos = 0;
        std::string share;     // the shared subscription it came for; empty: a plain one
        std::int64_t row = 0;  // in the spool's file; 0: not stored
    };
    bool hold(held h);
    // Stores a QoS 1 message the session keeps, when the session is stored.
    void store(held& h);
    void forget(const held& h);
    void subscriptions_changed();
    [[nodiscard]] mqtt_client* connection_for(std::uint32_t request_id) const noexcept;

    thing::session_id flow_;
    std::string thing_;
    std::string client_id_;
    std::shared_ptr<const peer_credentials> peer_;
    config::grants rights_;
    thing::denial_log denials_;
    std::size_t max_queued_bytes_;

    std::shared_ptr<mqtt_client> connection_;
    std::uint16_t generation_ = 0;  // of the bound connection, in the high half of request ids
    std::map<std::uint64_t, held> unacknowledged_;  // QoS 1 sent to the connection, by tag
    std::uint64_t next_tag_ = 0;
    std::list<held> waiting_;  // for the next connection; a list: empty, it holds no memory
    std::size_t waiting_bytes_ = 0;
    std::uint64_t dropped_ = 0;

    session_journal* journal_ = nullptr;
    std::int64_t row_ = 0;
    std::vector<spool::format::subscription> subscriptions_;
    std::map<std::uint32_t, std::vector<spool::format::subscription>> subscribing_;  // by request id
    std::map<std::uint32_t, std::vector<std::string>> unsubscribing_;
};

}  // namespace thingmux::hub
