// The session of a libthingmux app (IPC protocol version 2, docs/ipc-protocol.md section 8): what
// the IPC front end keeps of an app beyond one connection. It is the Thing pipeline's local
// session for the app's subscriptions and deliveries; connections (local_client) come and go
// under it. Publishes stay on the connection (its own local session, its own flow), since a
// publish's result means nothing to a later connection.
//
// - A version 2 hello with a session name opens it or resumes it: the key is the peer's uid, the
//   Thing and the name (IPC-43). A hello for a session another connection holds takes it over.
// - QoS 1 deliveries carry a delivery id (IPC-44) and stay in the session until the app acks
//   them. At most `max_unacknowledged` of them, and at most the session queue's bytes, await an
//   ack at once; further QoS 1 messages wait in the session (bounded by the same queue) until
//   acks make room, so an app that never acks holds a bounded amount of the daemon's memory.
// - When the connection ends, what it had not acknowledged waits, first, for the next one (with
//   new delivery ids); QoS 0 messages are not kept.
// - Results of a connection's subscribe and unsubscribe requests go to that connection only.
#pragma once

#include "config/authorization.hpp"
#include "config/grants_pool.hpp"
#include "daemon/hub/peer.hpp"
#include "daemon/hub/session_state.hpp"
#include "daemon/thing/ports.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace thingmux::hub {

class local_client;

class ipc_session final : public thing::local_session {
public:
    // Deliveries awaiting the app's ack at once, at most (IPC-44 lets the daemon bound them).
    static constexpr std::size_t max_unacknowledged = 256;
    // The request id of a subscription the daemon makes itself (a restored session's): no answer.
    static constexpr std::uint32_t no_request = 0xFFFF'FFFFU;

    // `peer`: the credentials of the connection that made the session.
    ipc_session(thing::session_id flow, std::string thing, std::string name,
                std::shared_ptr<const peer_credentials> peer, config::shared_grants rights, std::size_t max_queued_bytes);

    // A connection takes the session (the hub first took it from the one that had it, if any):
    // what waits for the app goes to it, oldest first, as far as the ack window allows.
    void bind(const std::shared_ptr<local_client>& connection);
    // The connection ended; what it had not acknowledged waits for the next one.
    void unbind(const local_client& connection);
    // IPC-44: the app acknowledged `delivery_id`; false when no delivery awaits it (a protocol
    // violation). Room in the window goes to what waits.
    bool acknowledged(std::uint32_t delivery_id);

    // A connection's request toward the pipeline: the id under which the session asks, so that
    // its result goes back to that connection (and nowhere once it is gone).
    [[nodiscard]] std::uint32_t request_id(std::uint32_t client_request);

    // thing::local_session
    [[nodiscard]] thing::session_id flow() const override { return flow_; }
    [[nodiscard]] std::string describe() const override;
    [[nodiscard]] std::string peer_description() const override { return peer_->describe(); }
    [[nodiscard]] thing::session_owner owner() const override { return {.uid = peer_->known_uid(), .unit = peer_->unit}; }
    [[nodiscard]] const config::grants& rights() const override { return *rights_; }
    [[nodiscard]] thing::denial_log& denials() override { return denials_; }
    void publish_done(std::uint32_t, ipc::result) override {}  // publishes go through the connection
    void subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    void subscribe_registered(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    void unsubscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    bool deliver(thing::inbound_message& m, std::uint8_t qos) override;
    void link_changed(const ipc::state&) override {}  // the connection hears it as its own session
    [[nodiscard]] bool connected() const override { return bound(); }

    void set_rights(config::shared_grants g) { rights_ = std::move(g); }

    [[nodiscard]] session_state& state() noexcept { return state_; }
    [[nodiscard]] const session_state& state() const noexcept { return state_; }
    [[nodiscard]] const std::string& thing() const noexcept { return thing_; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    [[nodiscard]] const peer_credentials& peer() const noexcept { return *peer_; }
    [[nodiscard]] bool bound() const noexcept { return connection_ != nullptr; }
    [[nodiscard]] const std::shared_ptr<local_client>& connection() const noexcept { return connection_; }

private:
    struct request {
        std::uint32_t generation;  // of the connection that asked
        std::uint32_t client_request;
    };
    // Sends what waits while the window has room.
    void send_waiting();
    // Sends one QoS 1 message with a new delivery id; false when the connection did not take it.
    bool send_with_id(session_state::held& h);
    [[nodiscard]] bool window_full(std::size_t next_bytes) const noexcept;
    // The connection that asked `request_id`, and its own id for it; null when it is gone.
    [[nodiscard]] local_client* answer_to(std::uint32_t request_id, std::uint32_t& client_request);

    thing::session_id flow_;
    std::string thing_;
    std::string name_;
    std::shared_ptr<const peer_credentials> peer_;
    config::shared_grants rights_;  // shared with the sessions of equal rights (config/grants_pool.hpp)
    thing::denial_log denials_;
    std::size_t max_queued_bytes_;

    std::shared_ptr<local_client> connection_;
    std::uint32_t generation_ = 0;
    std::uint32_t next_delivery_ = 0;
    std::uint32_t next_request_ = 0;
    std::map<std::uint32_t, request> requests_;  // by the session's request id, until answered
    session_state state_;
};

}  // namespace thingmux::hub
