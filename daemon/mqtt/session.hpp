// Sans-I/O MQTT client session: the protocol logic of one upstream connection, with no sockets,
// no clocks of its own and no threads.
//
// The owner (daemon/uplink) feeds it events -- transport opened, bytes received, transport
// closed, time passed -- and commands -- publish, subscribe, unsubscribe, acknowledge -- each with
// the current time, then drains the resulting actions: bytes to send, close the transport,
// completions, inbound messages, state changes. next_deadline() says when on_tick() must be called
// next. Unit tests drive it as plain function calls with a scripted broker.
//
// What it owns: packet identifiers, the QoS 1 in-flight window (bounded by both the configured
// window and the broker's Receive Maximum), retransmission with DUP after a reconnect, keep-alive
// (PINGREQ when idle, link declared dead when nothing was received for 1.5 x keep-alive), the
// CONNECT/CONNACK exchange (persistent session: clean start false + session expiry), the set of
// live subscriptions (re-subscribed after CONNACK unless the broker kept the session), and the
// split of SUBSCRIBE/UNSUBSCRIBE into packets of at most `max_filters_per_packet` filters.
//
// A message the broker will not take: MQTT 3.1.1 cannot refuse a PUBLISH, so a broker (AWS IoT
// Core for a topic its policy denies, mosquitto for a packet over its limit) closes the
// connection instead, and retransmitting it after every reconnect would keep the Thing offline
// for every app. So when the broker ends a connection without saying why (or with a reason about
// a packet we sent) while QoS 1 publishes are unacknowledged, the oldest of them is sent alone on
// the next connection, ahead of the others. A connection that ends while it is alone and
// unacknowledged counts against it; after `max_publish_attempts` sends it completes with
// local_error::refused_by_broker and the rest flow again.
#pragma once

#include "daemon/mqtt/codec.hpp"
#include "daemon/mqtt/packet.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace thingmux::mqtt {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;

struct session_config {
    std::string client_id;
    protocol_version version = protocol_version::v5;
    std::chrono::seconds keep_alive{60};
    std::uint32_t session_expiry = 3600;  // seconds (MQTT 5 Session Expiry Interval)
    bool clean_start = false;             // persistent session by default
    std::uint16_t max_inflight = 90;      // own QoS 1 window; AWS IoT Core allows 100
    std::size_t max_packet_size = 256 * 1024;  // largest packet accepted from the broker
    std::size_t max_filters_per_packet = 8;    // AWS IoT Core: 8 filters per SUBSCRIBE
    std::chrono::seconds connack_timeout{10};
    // The broker's packet limit when it does not announce one (MQTT 3.1.1) or enforces less than
    // it announces: larger publishes are refused locally. The smaller of this and CONNACK's
    // Maximum Packet Size applies.
    std::optional<std::size_t> broker_max_packet;
    // How often a QoS 1 publish is sent before the broker's closing the connection each time
    // makes it fail with local_error::refused_by_broker (at least 2: the first send may have gone
    // out with others, so only the sends where it was alone prove anything).
    unsigned max_publish_attempts = 3;
    std::optional<std::string> username;
    std::optional<std::string> password;
};

// Identifies one publish / subscribe / unsubscribe request across its life.
struct op_id {
    std::uint64_t value = 0;
    friend auto operator<=>(const op_id&, const op_id&) = default;
};

// Identifies one inbound QoS 1 message to acknowledge; tied to the connection it arrived on, so
// an acknowledgement after a reconnect is silently dropped (the broker redelivers).
struct inbound_ticket {
    std::uint64_t connection = 0;
    std::uint16_t packet_id = 0;
    friend bool operator==(const inbound_ticket&, const inbound_ticket&) = default;
};

// Local outcomes that never reached the broker (or never came back from it); an std::error_code
// of the category session_category(), `none` being success.
enum class local_error : std::uint8_t {
    none = 0,
    not_connected,       // QoS 0 publish while offline
    packet_too_large,    // larger than the broker's Maximum Packet Size
    qos_not_supported,   // above the broker's Maximum QoS
    invalid_topic,       // not a valid topic name / filter
    session_closed,      // abandon() was called
    retain_not_supported,  // retain requested, broker's Retain Available is 0
    refused_by_broker,   // the broker closed the connection each time this publish was sent alone
};

// What went wrong, in words ("QoS not supported by the broker"); the category's message().
[[nodiscard]] const char* to_string(local_error e) noexcept;
// The category of local_error: name "mqtt.session".
[[nodiscard]] const std::error_category& session_category() noexcept;
[[nodiscard]] std::error_code make_error_code(local_error e) noexcept;

namespace action {
struct send {
    std::vector<std::uint8_t> bytes;
};
struct close {
    std::string reason;  // why the session wants the transport closed (for the log)
};
struct connected {
    bool session_present = false;
    properties connack_props;
};
// CONNACK refused the connection. `reason_code` is an MQTT 5 reason code (3.1.1 codes are
// mapped); `fatal` is true when retrying without a change cannot help (not authorized, bad
// credentials, client id not valid, unsupported protocol version, banned).
struct connect_failed {
    std::uint8_t reason_code = 0;
    bool fatal = false;
    std::string reason;  // "not authorized (reason 0x87)"
};
// A QoS 1 publish that was the only unacknowledged packet when the broker ended the connection.
struct refused_publish {
    std::string topic;
    std::size_t bytes = 0;      // PUBLISH packet size
    unsigned attempt = 0;       // sends so far that ended this way
    unsigned max_attempts = 0;  // at this many it fails with local_error::refused_by_broker
};
// How a connection ended, as far as the session can tell.
enum class end_cause : std::uint8_t {
    closed,             // the transport closed without DISCONNECT: the broker closed it or the network failed
    broker_disconnect,  // the broker sent DISCONNECT (MQTT 5; reason_code says why)
    protocol_error,     // the broker broke the protocol; the session closed the connection
    dead_link,          // no CONNACK in time, or nothing from the broker for 1.5 x keep-alive
    local,              // the owner asked (disconnect())
};
// The connection is gone (closed by the broker, dead link, malformed input, DISCONNECT received).
struct disconnected {
    std::string reason;
    std::optional<std::uint8_t> reason_code;  // from a broker DISCONNECT (MQTT 5)
    end_cause cause = end_cause::closed;
    // Set when a publish sent alone was unacknowledged: the likely reason the broker ended it
    // (also named in `reason`).
    std::optional<refused_publish> suspect;
};
struct publish_done {
    op_id id;
    // PUBACK reason (MQTT 5); success for 3.1.1 / QoS 0; unspecified_error when `error` is set.
    std::uint8_t reason_code = reason::success;
    local_error error = local_error::none;       // set when the publish never completed upstream
    std::string reason_string;                   // from PUBACK properties, if any
    std::uint64_t tag = 0;                       // the caller's, as given to session::publish()
};
struct subscribe_done {
    op_id id;
    std::vector<std::uint8_t> reason_codes;  // one per filter, in request order
};
struct unsubscribe_done {
    op_id id;
    std::vector<std::uint8_t> reason_codes;  // one per filter (success for 3.1.1)
};
struct message {
    mqtt::publish msg;
    std::optional<inbound_ticket> ticket;  // set for QoS 1: call acknowledge() when delivered
};
// The broker refused a live filter when the session re-subscribed it after a CONNACK without
// session (no subscribe op to complete). The filter has left the live set; its holders must be told.
struct subscription_lost {
    std::string filter;
    std::uint8_t reason_code = reason::unspecified_error;  // SUBACK failure code
};
}  // namespace action

using session_action = std::variant<action::send, action::close, action::connected, action::connect_failed,
                                    action::disconnected, action::publish_done, action::subscribe_done,
                                    action::unsubscribe_done, action::message, action::subscription_lost>;

enum class session_state : std::uint8_t { offline, awaiting_connack, online };

class session {
public:
    explicit session(session_config config);

    // --- transport events ---
    // The transport (TCP+TLS) is up: sends CONNECT.
    void on_transport_open(time_point now);
    // Bytes arrived; they may hold partial or several packets.
    void on_bytes(std::span<const std::uint8_t> bytes, time_point now);
    // The transport closed (for any reason). In-flight QoS 1 stays for retransmission. Emits
    // action::disconnected unless this connection's end was already reported (the session asked
    // to close it, or CONNACK refused it).
    void on_transport_closed(time_point now, std::string reason);
    // Time passed: keep-alive, CONNACK timeout, dead-link detection.
    void on_tick(time_point now);
    // When on_tick() must be called next; nullopt when no timer is needed (offline).
    [[nodiscard]] std::optional<time_point> next_deadline() const;

    // --- commands ---
    // QoS 0: sent now if online, else completes at once with local_error::not_connected.
    // QoS 1: sent when online and the in-flight window has room; completes on PUBACK.
    // Never sent, completed with a local_error: an invalid topic, QoS 2, or what the broker
    // announced it refuses (Maximum Packet Size, Maximum QoS, Retain Available).
    // `tag` is the caller's and comes back in the publish_done action: a caller with many
    // publishes in flight finds its state for the result by it, without a map per op_id.
    [[nodiscard]] op_id publish(mqtt::publish msg, time_point now, std::uint64_t tag = 0);
    // Adds the filters to the live set (re-subscribed after reconnects) and sends SUBSCRIBE(s)
    // when online (or after the next CONNACK). Completes when every SUBACK for it arrived. A
    // failure code removes that filter from the live set. Invalid filters (0x8F) and QoS 2
    // (0x9B) are refused locally and never sent.
    [[nodiscard]] op_id subscribe(std::vector<subscription> subs, time_point now);
    // Removes the filters from the live set and sends UNSUBSCRIBE(s) when online, or after the
    // next CONNACK (a persistent session may still hold them). Completes on UNSUBACK, or at once
    // when offline with clean start and no earlier request pending. Invalid filters: 0x8F.
    [[nodiscard]] op_id unsubscribe(std::vector<std::string> filters, time_point now);
    // Acknowledges an inbound QoS 1 message (sends PUBACK) if still on the same connection.
    void acknowledge(inbound_ticket ticket, time_point now);
    // Graceful shutdown: sends DISCONNECT (normal) when online, reports disconnected and asks to
    // close ("shutting down").
    void disconnect(time_point now);
    // Drops every queued and in-flight request, completing each with local_error::session_closed
    // (subscribe/unsubscribe: unspecified_error for each filter still awaiting its SUBACK/UNSUBACK).
    void abandon();
    // New settings (client ID, keep-alive, window, ...) for the next CONNECT; queued and live
    // work stays. Call while offline: the current connection keeps what it negotiated.
    void reconfigure(session_config config);

    // Actions produced since the last call, in order.
    [[nodiscard]] std::vector<session_action> drain_actions();
    // The same into `out` (cleared first), which lends its capacity to the next actions: a
    // caller that drains after every command allocates no action list per command.
    void drain_actions(std::vector<session_action>& out);
    // Hands back the bytes of an action::send once the caller has copied them out: the next
    // packets are encoded into that buffer, so a steady flow allocates no buffer per write.
    void recycle(std::vector<std::uint8_t>&& bytes) noexcept;

    // --- inspection ---
    [[nodiscard]] session_state state() const noexcept;
    [[nodiscard]] std::size_t inflight_count() const noexcept;  // QoS 1 sent, awaiting PUBACK
    [[nodiscard]] std::size_t queued_count() const noexcept;    // QoS 1 waiting for window/connection
    [[nodiscard]] const std::map<std::string, subscription>& live_subscriptions() const noexcept;
    [[nodiscard]] const session_config& config() const noexcept;
    // Broker's CONNACK properties of the current/last connection (receive maximum, etc.).
    [[nodiscard]] const properties& broker_properties() const noexcept;
    // PUBACK/SUBACK/UNSUBACK for packet ids with nothing pending: ignored (a broker may repeat
    // them, e.g. after abandon()), counted for diagnostics.
    [[nodiscard]] std::uint64_t unknown_ack_count() const noexcept;

private:
    struct outbound {  // QoS 1 publish waiting for the connection or a window slot
        op_id id;
        std::uint64_t tag = 0;
        mqtt::publish msg;
    };
    struct inflight_entry {  // QoS 1 publish sent, awaiting PUBACK
        std::uint64_t seq = 0;  // send order: packet ids wrap, so they cannot order retransmission
        op_id id;
        std::uint64_t tag = 0;
        mqtt::publish msg;
        std::uint64_t sent_on = 0;  // connection it was last sent on
        unsigned refusals = 0;      // connections that ended while it was sent alone and unacknowledged
    };
    struct chunk {  // one SUBSCRIBE/UNSUBSCRIBE packet of a filter_op
        std::uint16_t packet_id = 0;  // 0: not sent on the current connection
        bool acked = false;
    };
    struct filter_op {  // a subscribe or unsubscribe request
        op_id id;  // 0: internal re-subscribe after a CONNACK without session (nothing to complete)
        bool unsubscribe = false;
        std::vector<subscription> subs;   // as requested; unsubscribe uses only .filter
        std::vector<std::uint8_t> codes;  // result per entry of subs
        std::vector<std::size_t> wire;    // indices into subs that go to the broker
        std::vector<chunk> chunks;        // `wire` split into packets of max_filters_per_packet
    };
    struct ack_wait {
        std::uint64_t op_key = 0;
        std::size_t chunk = 0;
    };

    void handle(packet& p);
    void on_connack(const connack& c);
    void on_publish(mqtt::publish& msg);
    void on_puback(const puback& ack);
    void on_filter_ack(std::uint16_t packet_id, bool unsubscribe_ack, const std::vector<std::uint8_t>& codes);
    void on_broker_disconnect(const mqtt::disconnect& d);

    [[nodiscard]] op_id next_op() noexcept;
    [[nodiscard]] std::optional<std::uint16_t> allocate_packet_id() noexcept;
    [[nodiscard]] local_error refusal(const mqtt::publish& msg, std::size_t size) const;
    [[nodiscard]] std::pair<std::size_t, std::size_t> chunk_range(const filter_op& op, std::size_t k) const noexcept;
    [[nodiscard]] std::chrono::milliseconds dead_after() const noexcept;

    void emit(session_action a);
    // The send action the next packet is appended to (consecutive packets share one).
    [[nodiscard]] std::vector<std::uint8_t>& send_buffer();
    void send(const packet& p);
    void send(const mqtt::publish& p);
    [[nodiscard]] bool send_or_refuse(op_id id, std::uint64_t tag, const mqtt::publish& msg);
    // Sends a QoS 1 publish with `packet_id` (unless refused) and keeps it in flight.
    void send_publish(op_id id, std::uint64_t tag, mqtt::publish&& msg, std::uint16_t packet_id);
    // An acknowledged publish leaves the in-flight window; its node is kept for the next one.
    void release_inflight(std::map<std::uint16_t, inflight_entry>::iterator it);
    // Whether a QoS 1 publish may go out now: online, not isolating, room in the window.
    [[nodiscard]] bool window_open() const noexcept;
    void complete_local(op_id id, std::uint64_t tag, local_error e, std::string text = {});
    op_id start_op(filter_op op);
    bool send_unsent_chunks(std::uint64_t key, filter_op& op);
    void emit_done(filter_op& op);
    [[nodiscard]] std::vector<std::size_t> unacked(const filter_op& op) const;  // indices into subs
    [[nodiscard]] std::vector<std::map<std::uint16_t, inflight_entry>::iterator> inflight_in_send_order();
    void drop_refused(std::map<std::uint64_t, filter_op>::iterator it, const std::string& filter, std::uint8_t code);
    void resubscribe_live();
    void retransmit();
    void send_queued();
    void send_queued_ops();
    void send_queued_publishes();
    void protocol_failure(std::uint8_t v5_reason, std::string text);
    void end_connection(std::string reason, action::end_cause cause, std::optional<std::uint8_t> reason_code = std::nullopt);
    // The broker ended the connection in a way a publish of ours may have caused: the oldest
    // unacknowledged one goes alone next time; returns it when it was alone this time.
    [[nodiscard]] std::optional<action::refused_publish> blame_oldest_publish();
    [[nodiscard]] std::size_t packet_limit() const noexcept;
    void go_offline() noexcept;

    session_config cfg_;
    session_state state_ = session_state::offline;
    std::uint64_t connection_ = 0;  // counts transports; tickets of older ones are stale
    bool end_reported_ = true;      // disconnected/connect_failed already emitted for this connection
    time_point now_{};              // time of the event being handled
    time_point connack_deadline_{};
    time_point last_sent_{};
    time_point last_received_{};
    bool ping_outstanding_ = false;
    std::chrono::seconds keep_alive_{0};  // agreed for this connection (Server Keep Alive wins)
    std::size_t window_ = 1;              // min(max_inflight, broker Receive Maximum)
    bool isolating_ = false;  // the oldest in-flight publish goes alone until it is acknowledged
    properties broker_props_;
    std::vector<std::uint8_t> rx_;
    std::vector<session_action> actions_;
    std::vector<std::uint8_t> spare_send_;  // a buffer given back by recycle(), for the next send action

    std::uint64_t next_op_ = 1;
    std::uint64_t next_seq_ = 0;
    std::uint64_t next_op_key_ = 0;
    std::uint16_t last_packet_id_ = 0;
    std::uint64_t unknown_acks_ = 0;

    std::deque<outbound> queue_;
    std::map<std::uint16_t, inflight_entry> inflight_;  // by packet id
    // Nodes of acknowledged publishes, reused for the next ones so that a steady flow allocates
    // no node per publish; at most max_spare_nodes (a refill batch) are kept.
    std::vector<std::map<std::uint16_t, inflight_entry>::node_type> spare_nodes_;
    std::map<std::uint64_t, filter_op> ops_;            // pending, in request order
    std::map<std::uint16_t, ack_wait> ack_waits_;       // SUBSCRIBE/UNSUBSCRIBE packet id -> op chunk
    std::map<std::string, subscription> live_;
};

}  // namespace thingmux::mqtt

template <>
struct std::is_error_code_enum<thingmux::mqtt::local_error> : std::true_type {};
