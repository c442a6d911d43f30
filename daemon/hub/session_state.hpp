// What a local session keeps across its connections, whatever its front end speaks (MQTT:
// mqtt_session.hpp; IPC: the session of a libthingmux app): the QoS 1 messages sent to a
// connection and not acknowledged yet, the messages waiting for the next connection, the
// subscriptions as the spool keeps them, and the session's rows in the spool's file.
//
// - The front end delivers; this keeps the account: sent() when a connection took a QoS 1
//   message under a tag (the front end's acknowledgement handle: MQTT's own counter, IPC's
//   delivery id), acknowledged() when the client acknowledged it, connection_ended() when the
//   connection went with deliveries unacknowledged: they wait again, first, for the next one.
// - hold() keeps a message for the next connection, at most `max_bytes` of them (QoS 0 ones are
//   never kept); what does not fit is dropped and logged, naming `limit_key`.
// - Stored (store_in(), the session kept beyond its connection and a spool configured): every
//   QoS 1 message it keeps is written through the session journal and deleted once acknowledged
//   or dropped, and its subscriptions are written whenever they change.
#pragma once

#include "daemon/hub/session_journal.hpp"
#include "daemon/mqtt/packet.hpp"
#include "daemon/spool/format.hpp"
#include "daemon/thing/ports.hpp"

#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::hub {

// A message as a local client gets it: its message properties (those the IPC schema carries
// too), nothing of the broker's connection (its topic alias, the subscription identifiers of
// thingmuxd's own upstream subscriptions).
[[nodiscard]] mqtt::publish for_client(const mqtt::publish& in);

class session_state {
public:
    // A message the session keeps: as its client gets it, at the QoS of its delivery.
    struct held {
        mqtt::publish msg;
        std::uint8_t qos = 0;
        std::string share;     // the shared subscription it came for; empty: a plain one
        std::int64_t row = 0;  // in the spool's file; 0: not stored
    };

    // `owner` names the session in log lines and rate-limits them; it must outlive this.
    session_state(thing::local_session& owner, std::size_t max_bytes, const char* limit_key) noexcept
        : owner_(owner), max_bytes_(max_bytes), limit_key_(limit_key) {}
    session_state(const session_state&) = delete;
    session_state& operator=(const session_state&) = delete;

    // The connection took `h` under `tag` (unique among the unacknowledged ones); a QoS 1
    // message is kept (and stored) until acknowledged(tag). QoS 0 is forgotten.
    void sent(std::uint64_t tag, held h);
    // The client acknowledged `tag`; false when no delivery awaits acknowledgement under it.
    bool acknowledged(std::uint64_t tag);
    [[nodiscard]] bool awaiting(std::uint64_t tag) const { return unacknowledged_.contains(tag); }
    [[nodiscard]] std::size_t unacknowledged() const noexcept { return unacknowledged_.size(); }
    // Their topic and payload bytes.
    [[nodiscard]] std::size_t unacknowledged_bytes() const noexcept { return unacknowledged_bytes_; }
    // The connection ended: what it had not acknowledged waits again, ahead of what waited.
    void connection_ended();
    // Keeps `h` for the next connection; false (and dropped) when it is QoS 0 or does not fit.
    bool hold(held h);
    // What waited, oldest first, for a connection that starts; the front end sends or holds each.
    [[nodiscard]] std::list<held> take_waiting();
    // The oldest message that waits, without taking it; null when none does.
    [[nodiscard]] const held* oldest() const noexcept { return waiting_.empty() ? nullptr : &waiting_.front(); }
    // Takes the oldest message that waits (oldest() must not be null).
    [[nodiscard]] held take_oldest();
    // A message that can never be delivered (too large for the client): deleted from the spool.
    void forget(const held& h);
    // Shared-subscription messages not acknowledged or waiting, taken out for the group's other
    // members (thing::local_session::take_shared_leftovers).
    [[nodiscard]] std::vector<thing::shared_leftover> take_shared_leftovers();

    [[nodiscard]] std::size_t waiting() const noexcept { return waiting_.size(); }
    [[nodiscard]] std::size_t waiting_bytes() const noexcept { return waiting_bytes_; }
    // Messages not kept while the client was away (QoS 0, or past the byte limit).
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }

    // Durability: the session's row in the spool's file, 0 while it is not stored.
    void store_in(session_journal& journal, std::int64_t row) noexcept {
        journal_ = &journal;
        row_ = row;
    }
    [[nodiscard]] std::int64_t row() const noexcept { return row_; }
    [[nodiscard]] bool stored() const noexcept { return row_ != 0; }
    // Writes every message kept and the subscriptions (a session becoming stored).
    void store_held();
    // Forgets the row (the hub removed it, or keeps it for the next start).
    void unstore() noexcept { row_ = 0; }
    // A stored message of a session coming back (taken for the shared subscription `share`, or
    // a plain one): it waits for the first connection.
    void restore(mqtt::publish msg, std::int64_t row, std::string share);
    // A stored session's delayed will (MQTT), due at `due` (Unix time): its row, 0 when the
    // session is not stored. forget_row() deletes it (or any row of the session).
    [[nodiscard]] std::int64_t store_will(const spool::message& will, std::int64_t due);
    void forget_row(std::int64_t row);

    // How long the session outlives its connection, as granted at its last hello or CONNECT (0:
    // not at all), and until when one without a connection is kept (set by the hub when it parks
    // it).
    std::chrono::seconds expiry{0};
    std::chrono::steady_clock::time_point expires{};

    // The subscriptions, as the spool keeps them: a request's filters count once the pipeline
    // accepted them, an unsubscription's once it is answered. Tracked only while `expiry` > 0
    // (set it first), so that an idle client whose session ends with its connection pays nothing.
    void subscribing(std::uint32_t request_id, std::vector<spool::format::subscription> asked);
    void unsubscribing(std::uint32_t request_id, std::vector<std::string> filters);
    void subscribe_done(std::uint32_t request_id, const std::vector<ipc::result>& outcomes);
    void unsubscribe_done(std::uint32_t request_id);
    [[nodiscard]] const std::vector<spool::format::subscription>& subscriptions() const noexcept { return subscriptions_; }
    void restore(std::vector<spool::format::subscription> subscriptions) { subscriptions_ = std::move(subscriptions); }

private:
    void store(held& h);
    void subscriptions_changed();

    thing::local_session& owner_;
    std::size_t max_bytes_;
    const char* limit_key_;

    std::map<std::uint64_t, held> unacknowledged_;  // by tag
    std::size_t unacknowledged_bytes_ = 0;
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
