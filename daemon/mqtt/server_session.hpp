// Sans-I/O MQTT server session: the protocol logic of one local client connected to thingmuxd's
// MQTT face (MQTT 3.1.1 and 5), with no socket, no clock of its own and no thread.
//
// The owner (daemon/hub's MQTT front end) feeds it bytes from the client, the transport's end
// and the time, and answers the requests it raises (CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE)
// once the Thing's pipeline has decided; then it drains the actions: bytes to write, close the
// transport, requests to decide, deliveries the client acknowledged, the end of the connection.
// Unit tests drive it as plain function calls with byte vectors from the specifications.
//
// What it owns, per the specifications' normative statements:
// - CONNECT first and once, within connect_timeout; its checks (protocol level, client
//   identifier, will QoS/retain, enhanced authentication, which is not offered); CONNACK with the
//   server's properties (Receive Maximum, Maximum Packet Size, Topic Alias Maximum, Retain
//   Available, Wildcard / Subscription Identifier / Shared Subscription Available, Maximum QoS,
//   Server Keep Alive, Assigned Client Identifier); MQTT 3.1.1 gets the matching return codes.
//   Bytes the client sends after CONNECT wait until the owner decided (spec 3.1.4).
// - Bytes held (before CONNACK, or behind a held 3.1.1 publish) are bounded: past 2 x
//   max_packet_size, an owner that kept reading while reading_paused(), the connection ends.
// - Keep-alive: nothing from the client for 1.5 x the keep-alive ends the connection (MQTT 5:
//   DISCONNECT 0x8D); PINGREQ is answered here.
// - Inbound PUBLISH: the client's topic aliases are resolved; QoS 1 and 2 publishes beyond
//   Receive Maximum end the connection (0x93); a QoS 1 publish whose packet identifier is still
//   awaiting its answer is not raised twice; QoS 2 is exactly once: raised once, PUBREC when
//   decided, a repeat of it before PUBREL answered with PUBREC again, PUBREL answered with
//   PUBCOMP. The request carries QoS 2 as the client sent it; the owner decides what it becomes.
//   MQTT 3.1.1 has no Receive Maximum to announce: a QoS 1/2 publish beyond it is held, with what
//   follows, until publish_done() frees a slot, and reading_paused() asks the owner to stop
//   reading meanwhile (flow control by the transport; keep-alive is not enforced while held);
//   QoS 2 flows awaiting the client's PUBREL that fill receive_maximum close its connection. So a hostile client holds
//   at most receive_maximum flows and topic_alias_maximum aliases. RETAIN while retain_available is false ends the
//   connection (MQTT 5: 0x9A; 3.1.1 cannot be told beforehand and is closed, as mosquitto does).
// - SUBSCRIBE: filters the server does not offer (shared subscriptions, wildcards, per the
//   settings) are answered here (0x9E / 0xA2; 3.1.1: 0x80) and left out of the request. A
//   shared subscription breaking spec 4.8.2 (empty share name, a wildcard in it, no filter after
//   it) or with No Local (spec 3.8.3.1) is a Protocol Error (0x82), found by the codec; a
//   Subscription Identifier while they are not available ends the connection (0xA1). At most
//   receive_maximum SUBSCRIBE / UNSUBSCRIBE requests await their answer (more: 0x97), which the
//   specification leaves open.
// - While the owner decides about CONNECT no deadline runs: the owner bounds its decision.
// - The answer to a refused QoS 1 publish: MQTT 5 gets a PUBACK with the reason code; MQTT 3.1.1
//   has no negative PUBACK, so the connection is closed (the reason goes to the owner's log) and
//   never a PUBACK that would claim success. A refused QoS 2 publish: PUBREC with the reason (5),
//   or the connection closed (3.1.1).
// - Outbound deliveries: QoS 1 within the window (the smaller of the client's Receive Maximum and
//   max_inflight_deliveries), with packet identifiers of their own; what does not fit waits in
//   order, bounded by max_queued_bytes; packets larger than the client's Maximum Packet Size are
//   not sent (spec 3.1.2.25), the owner is told. QoS 0 waits behind queued QoS 1 so a topic keeps
//   its order. QoS 2 is delivered as QoS 1 (the server never starts a QoS 2 flow).
// - Outbound topic aliases (spec 3.3.2.3.4): to an MQTT 5 client whose CONNECT has a Topic Alias
//   Maximum, at most the smaller of it and max_outbound_topic_aliases; each topic delivered gets
//   one (the lowest free, then the least recently used one's: outbound_topic_aliases.hpp), is
//   sent once with its topic name and the alias, then as an empty topic name with the alias. The
//   alias is chosen when the packet is sent, never when it is queued, so packets on the wire set
//   and use aliases in the order the client reads them; a new connection starts with none
//   (deliveries sent again to it are new packets). A topic name and alias that together would
//   exceed the client's Maximum Packet Size go without an alias.
// - Malformed packets, protocol errors and packets over max_packet_size end the connection with
//   the MQTT 5 reason code (DISCONNECT, when the client is MQTT 5 and CONNACK was sent) and a
//   reason for the log that quotes nothing the client sent unescaped (the owner escapes).
#pragma once

#include "daemon/mqtt/codec.hpp"
#include "daemon/mqtt/outbound_topic_aliases.hpp"
#include "daemon/mqtt/packet.hpp"
#include "daemon/mqtt/session.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace thingmux::mqtt {

struct server_settings {
    // The largest packet a client may send (announced as Maximum Packet Size).
    std::size_t max_packet_size = 266'240;
    // QoS 1 and 2 publishes of one client awaiting their answer (announced as Receive Maximum).
    std::uint16_t receive_maximum = 100;
    // Topic aliases a client may set toward the server (announced as Topic Alias Maximum).
    std::uint16_t topic_alias_maximum = 32;
    // Topic aliases the server sets toward a client at most (fewer if its Topic Alias Maximum
    // says so); 0: none.
    std::uint16_t max_outbound_topic_aliases = 32;
    // QoS 1 deliveries awaiting the client's PUBACK; the client's Receive Maximum may lower it.
    std::uint16_t max_inflight_deliveries = 100;
    // Bytes of deliveries waiting for a window slot; past it deliver() refuses.
    std::size_t max_queued_bytes = 8 * 1024 * 1024;
    // Longest client identifier taken, in bytes (longer: Client Identifier not valid).
    std::size_t max_client_id_length = 256;
    // The most keep-alive a client may have, in seconds; 0 lets the client choose. An MQTT 5
    // client asking for more, or for none (0), gets this one as Server Keep Alive; an MQTT 3.1.1
    // client cannot be told, so its own is enforced.
    std::uint16_t max_keep_alive = 0;
    // How long a new connection may take to send CONNECT.
    std::chrono::milliseconds connect_timeout{10'000};
    bool retain_available = true;
    bool wildcard_subscriptions_available = true;
    bool shared_subscriptions_available = true;
    bool subscription_identifiers_available = false;
};

// Why a connection ended, as the owner logs and counts it.
enum class server_end : std::uint8_t {
    client_disconnect,   // DISCONNECT from the client (normal, or with a reason code)
    closed,              // the transport closed without DISCONNECT
    protocol_error,      // malformed packet or protocol violation by the client
    keep_alive_timeout,  // nothing from the client for 1.5 x its keep-alive
    connect_timeout,     // no CONNECT in time
    refused,             // CONNECT refused: by the session's checks or by refuse()
    publish_refused,     // MQTT 3.1.1: a refused QoS 1/2 publish closes the connection
    server,              // the owner ended it (disconnect())
};
[[nodiscard]] const char* to_string(server_end e) noexcept;

namespace server_action {
// Bytes for the client. Consecutive packets share one action.
struct send {
    std::vector<std::uint8_t> bytes;
};
// Close the transport once what was sent before this action is written.
struct close {};
// A valid CONNECT: the owner answers with accept() or refuse(). `client_id` is as sent (it may
// be empty: an MQTT 5 client then asks the server to assign one; 3.1.1 only with clean session).
struct connect_request {
    mqtt::connect packet;
};
// A PUBLISH from the client, topic alias resolved (`msg.topic` is never empty). QoS 0:
// `packet_id` is 0 and no answer is expected; QoS 1 and 2: the owner answers with
// publish_done(packet_id, ...).
struct publish_request {
    mqtt::publish msg;
};
// SUBSCRIBE / UNSUBSCRIBE: answered with subscribe_done() / unsubscribe_done().
struct subscribe_request {
    mqtt::subscribe packet;
};
struct unsubscribe_request {
    mqtt::unsubscribe packet;
};
// The client acknowledged (PUBACK) the QoS 1 delivery deliver() was given `tag` for.
struct delivered {
    std::uint64_t tag = 0;
};
// The connection is over; the transport must be closed (a close action follows unless the
// transport already closed). `publish_will`: the will of the CONNECT must be published (the
// connection was accepted and ended other than by a normal DISCONNECT; spec 3.1.2.5, 3.14.4).
// `unacknowledged`: tags of QoS 1 deliveries the client never acknowledged (in flight, then
// queued), oldest first.
struct ended {
    server_end cause = server_end::closed;
    // The MQTT 5 reason code of the end: sent in DISCONNECT or the refusing CONNACK, or received
    // in the client's DISCONNECT. Also set for MQTT 3.1.1 clients (for the log and counters),
    // though their wire form has none or a return code. Absent for a transport that closed, a
    // CONNECT timeout and a CONNECT that was not answered.
    std::optional<std::uint8_t> reason_code;
    std::string reason;  // for the log; never holds unescaped client bytes
    bool publish_will = false;
    std::vector<std::uint64_t> unacknowledged;
    // MQTT 5: the Session Expiry Interval the client's DISCONNECT set (spec 3.14.2.2.2), which
    // replaces the one of its CONNECT; absent when it set none.
    std::optional<std::uint32_t> session_expiry;
};
}  // namespace server_action

using server_session_action =
    std::variant<server_action::send, server_action::close, server_action::connect_request,
                 server_action::publish_request, server_action::subscribe_request, server_action::unsubscribe_request,
                 server_action::delivered, server_action::ended>;

enum class server_state : std::uint8_t { awaiting_connect, awaiting_decision, online, ended };

// What deliver() did with a message.
enum class delivery : std::uint8_t {
    sent,        // written (QoS 0) or sent and awaiting PUBACK (QoS 1)
    queued,      // waits for a window slot, in order
    too_large,   // over the client's Maximum Packet Size: not sent, as the spec says
    queue_full,  // max_queued_bytes would be exceeded: not taken
    not_online,  // before CONNACK or after the end
};

class server_session {
public:
    server_session(server_settings settings, time_point now);

    // --- transport events ---
    // Bytes from the client; they may hold partial or several packets. Nothing after the
    // connection ended is looked at.
    void on_bytes(std::span<const std::uint8_t> bytes, time_point now);
    // The transport closed (by the client, or an I/O error): ends the connection (ended, with
    // publish_will set unless a normal DISCONNECT came first) unless it already ended.
    void on_transport_closed(time_point now);
    // Time passed: the CONNECT timeout and keep-alive.
    void on_tick(time_point now);
    [[nodiscard]] std::optional<time_point> next_deadline() const;

    // --- answers to requests ---
    // Accepts the CONNECT: sends CONNACK (with the server's properties; `assigned_client_id`
    // when the client sent an empty one, MQTT 5; it becomes client_id(), also for 3.1.1; ignored
    // when the client sent one). `session_present` is
    // sent false when the client asked for a clean start (spec 3.2.2.1.1). Then handles what
    // the client sent after its CONNECT. Ignored unless state() is awaiting_decision.
    // `session_expiry`: what the server keeps the session for, announced in an MQTT 5 CONNACK
    // when it differs from what the client asked (spec 3.2.2.3.2); absent: as asked.
    void accept(bool session_present, std::optional<std::string> assigned_client_id, time_point now,
                std::optional<std::uint32_t> session_expiry = std::nullopt);
    // Refuses the CONNECT with an MQTT 5 reason code (mapped to a 3.1.1 return code) and ends
    // the connection. `reason_string` is sent to an MQTT 5 client when it did not ask for no
    // problem information, and given to the log. A code that CONNACK cannot carry becomes 0x80.
    void refuse(std::uint8_t reason_code, std::string reason_string, time_point now);
    // The answer to a QoS 1/2 publish_request. A failure code (>= 0x80) on MQTT 3.1.1 closes
    // the connection (ended: publish_refused, with `reason_string` as its reason). MQTT 5 gets
    // `reason_string` in the PUBACK / PUBREC unless it asked for no problem information. A code
    // that PUBACK / PUBREC cannot carry becomes 0x80 (or 0x00 below 0x80). Unknown packet ids
    // (a late answer) are ignored.
    void publish_done(std::uint16_t packet_id, std::uint8_t reason_code, std::string reason_string, time_point now);
    // One code per filter of the request (granted QoS 0/1/2, or a failure >= 0x80); 3.1.1
    // failures become 0x80, and so does an MQTT 5 code SUBACK cannot carry. A count that does not
    // match the request is the owner's bug: it asserts in debug builds, and otherwise missing
    // codes are 0x80 and extra ones dropped.
    void subscribe_done(std::uint16_t packet_id, std::vector<std::uint8_t> reason_codes, time_point now);
    // One code per filter (MQTT 5 only; 3.1.1 UNSUBACK has none, the codes are not looked at).
    // Counts as subscribe_done().
    void unsubscribe_done(std::uint16_t packet_id, std::vector<std::uint8_t> reason_codes, time_point now);

    // --- commands ---
    // A message for the client at `qos` (the subscription's, already the smaller of it and the
    // message's; 2 is sent as 1). `tag` comes back in delivered / ended.unacknowledged for QoS 1.
    // `msg.props` go to an MQTT 5 client as given (the owner strips what it must), except Topic
    // Alias, which is the session's (see above), as are its packet id, QoS and DUP.
    [[nodiscard]] delivery deliver(const mqtt::publish& msg, std::uint8_t qos, std::uint64_t tag, time_point now);
    // The server ends the connection: MQTT 5 gets DISCONNECT with `reason_code` (e.g.
    // server_shutting_down, session_taken_over). The will is published (spec 3.1.2.5: a close
    // not caused by the client's normal DISCONNECT). `reason` is also the DISCONNECT's Reason
    // String. Before CONNACK the connection is just closed.
    void disconnect(std::uint8_t reason_code, std::string reason, time_point now);

    // Actions produced since the last call, in order; `out` is cleared first.
    void drain_actions(std::vector<server_session_action>& out);
    [[nodiscard]] std::vector<server_session_action> drain_actions();
    // Hands back the bytes of a server_action::send once the caller has copied them out: the next
    // packets are encoded into that buffer. An empty vector drops the buffer kept (an idle
    // connection holds none).
    void give_back(std::vector<std::uint8_t>&& bytes) noexcept;

    // --- inspection ---
    [[nodiscard]] server_state state() const noexcept { return state_; }
    // Known once CONNECT arrived.
    [[nodiscard]] protocol_version version() const noexcept { return version_; }
    [[nodiscard]] const std::string& client_id() const noexcept { return client_id_; }
    [[nodiscard]] std::chrono::seconds keep_alive() const noexcept { return keep_alive_; }
    [[nodiscard]] std::size_t inflight_deliveries() const noexcept { return outbound_inflight_.size(); }
    [[nodiscard]] std::size_t queued_deliveries() const noexcept { return outbound_queue_.size(); }
    [[nodiscard]] std::size_t queued_bytes() const noexcept { return queued_bytes_; }
    // QoS 1/2 publishes of the client awaiting publish_done().
    [[nodiscard]] std::size_t pending_publishes() const noexcept { return inbound_pending_.size(); }
    // QoS 2 publishes answered with PUBREC, awaiting the client's PUBREL.
    [[nodiscard]] std::size_t awaiting_release() const noexcept { return awaiting_pubrel_.size(); }
    // Topic aliases the client set.
    [[nodiscard]] std::size_t topic_aliases() const noexcept { return topic_aliases_.size(); }
    // Topic aliases the server set toward the client.
    [[nodiscard]] std::size_t server_topic_aliases() const noexcept { return outbound_aliases_.size(); }
    // SUBSCRIBE / UNSUBSCRIBE requests awaiting subscribe_done() / unsubscribe_done().
    [[nodiscard]] std::size_t pending_filter_requests() const noexcept { return filter_requests_.size(); }
    // True while the session holds the client's bytes unprocessed (the CONNECT awaits its
    // decision, or an MQTT 3.1.1 client's publishes fill receive_maximum): the owner stops
    // reading from the transport until it is false again (after accept() / publish_done()).
    [[nodiscard]] bool reading_paused() const noexcept { return state_ == server_state::awaiting_decision || holding_; }
    // PUBACKs from the client for packet ids not in flight (ignored).
    [[nodiscard]] std::uint64_t unknown_acknowledgements() const noexcept { return unknown_acks_; }
    [[nodiscard]] const server_settings& settings() const noexcept { return settings_; }

private:
    struct queued_delivery {
        mqtt::publish msg;  // qos set; packet id set when sent
        std::uint64_t tag = 0;
        std::size_t bytes = 0;
    };
    struct inflight_delivery {
        std::uint64_t seq = 0;  // send order, for ended.unacknowledged
        std::uint64_t tag = 0;
    };
    // A SUBSCRIBE / UNSUBSCRIBE raised to the owner. `codes` holds one code per filter of the
    // client's packet: those answered here already set, the others (`raised` of them, in order)
    // filled by the owner's answer.
    struct filter_request {
        bool unsubscribe = false;
        std::vector<std::optional<std::uint8_t>> codes;
        std::size_t raised = 0;
    };

    // server_session.cpp: connection, end, sending.
    void process_received();
    [[nodiscard]] bool must_hold(const packet& p) const noexcept;
    void on_first_packet(packet& p);
    void check_connect(mqtt::connect& c);
    // Answers CONNECT with a refusal in `v`'s form and ends; `reason` also goes to an MQTT 5
    // client (Reason String) when `reason_to_client` and it did not ask for no problem information.
    void refuse_connect(protocol_version v, std::uint8_t reason_code, std::string reason, bool reason_to_client = true);
    void violation(std::uint8_t reason_code, std::string reason, server_end cause = server_end::protocol_error);
    void end(server_end cause, std::optional<std::uint8_t> reason_code, std::string reason, bool publish_will);
    void send(const packet& p);
    void send(const mqtt::publish& p);
    [[nodiscard]] std::vector<std::uint8_t>& send_buffer();
    void emit(server_session_action a);
    [[nodiscard]] bool problem_information() const noexcept;

    // server_session_inbound.cpp: packets from the client once connected.
    void handle(packet& p);
    void on_publish(mqtt::publish& p);
    [[nodiscard]] bool resolve_topic_alias(mqtt::publish& p);
    void on_pubrel(const pubrel& r);
    void on_subscribe(mqtt::subscribe& s);
    void on_unsubscribe(mqtt::unsubscribe& u);
    void on_disconnect(const mqtt::disconnect& d);
    [[nodiscard]] bool start_filter_request(std::uint16_t packet_id);
    void answer_filter_request(std::uint16_t packet_id, std::vector<std::uint8_t> reason_codes, bool unsubscribe);

    // server_session_outbound.cpp: deliveries.
    void on_puback(const puback& a);
    void send_queued();
    [[nodiscard]] bool send_delivery(mqtt::publish& msg, std::uint64_t tag);
    void send_with_topic_alias(mqtt::publish& msg);
    [[nodiscard]] std::optional<std::uint16_t> allocate_packet_id() noexcept;
    [[nodiscard]] std::size_t window() const noexcept;
    [[nodiscard]] std::size_t client_packet_limit() const noexcept;
    [[nodiscard]] std::vector<std::uint64_t> unacknowledged() const;

    server_settings settings_;
    server_state state_ = server_state::awaiting_connect;
    protocol_version version_ = protocol_version::v5;
    time_point now_{};
    std::string client_id_;
    bool clean_start_ = false;
    bool will_ = false;                   // the CONNECT carried a will
    bool transport_closed_ = false;       // no close action after ended
    bool holding_ = false;                // a 3.1.1 publish waits for a Receive Maximum slot
    std::chrono::seconds keep_alive_{0};  // enforced: 1.5 x this without a packet ends it
    time_point connect_deadline_{};
    time_point last_received_{};
    // What matters of the CONNECT's properties once it was answered (the whole set would cost
    // every idle connection hundreds of bytes).
    struct client_properties {
        std::optional<std::uint32_t> session_expiry_interval;
        std::optional<std::uint32_t> maximum_packet_size;
        std::optional<std::uint16_t> receive_maximum;
        std::optional<std::uint16_t> topic_alias_maximum;
        std::optional<std::uint8_t> request_problem_information;
    } client_props_;
    std::optional<std::uint32_t> disconnect_session_expiry_;  // set by the client's DISCONNECT
    std::vector<std::uint8_t> rx_;  // released whenever it is empty: an idle connection holds none
    std::vector<server_session_action> actions_;
    std::vector<std::uint8_t> spare_send_;  // from give_back(), for the next send action

    // Inbound (client -> server).
    std::map<std::uint16_t, std::string> topic_aliases_;
    std::map<std::uint16_t, qos> inbound_pending_;  // QoS 1/2 packet ids raised, awaiting publish_done
    std::set<std::uint16_t> awaiting_pubrel_;       // QoS 2 PUBREC sent with success
    std::map<std::uint16_t, filter_request> filter_requests_;

    // Outbound (server -> client).
    std::list<queued_delivery> outbound_queue_;  // a list: empty, it holds no memory (a deque does)
    std::size_t queued_bytes_ = 0;
    std::map<std::uint16_t, inflight_delivery> outbound_inflight_;  // by packet id
    std::uint64_t next_seq_ = 0;
    std::uint16_t last_packet_id_ = 0;
    std::uint64_t unknown_acks_ = 0;
    mqtt::outbound_topic_aliases outbound_aliases_;
};

}  // namespace thingmux::mqtt
