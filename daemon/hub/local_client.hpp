// One local application connected over the IPC Unix socket: reads and decodes its frames, and
// writes frames to it through a bounded queue.
//
// Frames for many clients are shared (one encoded delivery per inbound message), so the queue
// holds shared pointers. Each queued frame is charged the heap it really takes (a 9-byte pong
// costs about 110 bytes): in full against the client's limit, and once, however many queues
// share it, against the limit of all clients' queues together.
//
// - Answers to the client's own requests: while its queue holds more than a little, the client
//   is not read. A client that sends requests without reading the answers fills its socket and
//   blocks; the daemon does not buffer for it.
// - Deliveries and state changes, which the daemon cannot hold back: when the client's queue
//   would exceed its limit, or all queues together would exceed theirs while this client holds
//   more than its share, the client is cut off: what it has not started receiving is dropped, it
//   gets an error frame, and it is closed.
// A slow or stopped reader therefore never holds up the uplink or other clients.
#pragma once

#include "config/authorization.hpp"
#include "config/grants_pool.hpp"
#include "daemon/hub/peer.hpp"
#include "daemon/logging.hpp"
#include "daemon/thing/subscription_table.hpp"
#include "daemon/thing/ports.hpp"
#include "ipc/codec.hpp"
#include "ipc/error.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <system_error>
#include <span>
#include <string>
#include <vector>

namespace thingmux::hub {

// An IPC client's number, as in log lines and D-Bus; also its flow in its Thing's pipeline.
using client_id = thing::session_id;

// An encoded frame. One delivery is encoded once and shared by the queues of all its recipients;
// `queues` counts them, so that its memory counts once in the total of all clients' queues.
struct shared_frame : std::vector<std::uint8_t> {
    mutable std::uint32_t queues = 0;
};
using frame_ptr = std::shared_ptr<const shared_frame>;

// A delivery's frame in one protocol version: the type under which thing::inbound_message keeps
// it, so that clients of each version share the frames of theirs (the layouts differ).
template <ipc::wire_version Version>
struct delivery_frame final : shared_frame {};

struct client_limits {
    std::size_t max_frame = 266'240;             // IPC frame size limit (both directions)
    std::size_t max_queue_bytes = 8 * 1024 * 1024;  // bytes waiting to be written to the client
    std::size_t max_total_queue_bytes = 64 * 1024 * 1024;  // the same, for all clients together
    std::size_t max_subscriptions = 1000;          // filters one client may hold
    std::size_t max_pending_publishes = 1000;      // publishes awaiting their result
};

// What the queues of all clients hold together; kept up to date by the clients.
struct queue_totals {
    std::size_t bytes = 0;
    std::size_t clients = 0;  // open connections, each entitled to an equal share of the total
    std::size_t dropped = 0;  // bytes of queues dropped unsent since the heap was last trimmed
};

class local_client;
class ipc_session;

// Receives what happens on a client connection (the hub).
class client_events {
public:
    virtual void on_message(local_client& c, ipc::client_message&& m) = 0;
    virtual void on_closed(local_client& c, const std::string& reason) = 0;

protected:
    ~client_events() = default;
};

// The IPC front end's local session: results, deliveries and state changes of the Thing's
// pipeline go to the app as frames.
class local_client final : public thing::local_session, public std::enable_shared_from_this<local_client> {
public:
    using socket = boost::asio::local::stream_protocol::socket;

    // `limits` and `totals` are shared by every client and must outlive them while they are open.
    local_client(socket s, client_id id, peer_credentials peer, const client_limits& limits, queue_totals& totals,
                 client_events& events);
    ~local_client() override;
    local_client(const local_client&) = delete;
    local_client& operator=(const local_client&) = delete;

    // Starts reading frames; closes the connection if no hello came within `hello_timeout`.
    void start(std::chrono::milliseconds hello_timeout);
    // Queues a frame. Returns false (and cuts the client off with `queue_full`) when it does not
    // fit in the queue limits; false also when the client is already closed.
    bool send(frame_ptr frame);
    // Heap a queued frame of `capacity` bytes takes, as charged against the queue limits.
    [[nodiscard]] static std::size_t cost_of(std::size_t capacity) noexcept;
    // Sends an error frame (past the queue limit), then closes once it is written or after a
    // short grace period. Reading stops at once.
    void close_with_error(ipc::errc code, std::string message);
    // Closes now, dropping queued frames.
    void close(const std::string& reason);
    // The error close_with_error() sent (category ipc::error_category()); empty when it did not.
    [[nodiscard]] std::error_code close_error() const noexcept { return close_error_; }
    void send(const ipc::daemon_message& m);

    // thing::local_session
    [[nodiscard]] thing::session_id flow() const override { return id_; }
    [[nodiscard]] std::string describe() const override;
    [[nodiscard]] std::string peer_description() const override { return peer_.describe(); }
    [[nodiscard]] thing::session_owner owner() const override { return {.uid = peer_.known_uid(), .unit = peer_.unit}; }
    [[nodiscard]] const config::grants& rights() const override { return *rights_; }
    void set_rights(config::shared_grants g) { rights_ = std::move(g); }
    [[nodiscard]] const config::shared_grants& shared_rights() const noexcept { return rights_; }
    [[nodiscard]] thing::denial_log& denials() override { return denials_; }
    void publish_done(std::uint32_t request_id, ipc::result outcome) override;
    void subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    void subscribe_registered(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    void unsubscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    bool deliver(thing::inbound_message& m, std::uint8_t qos) override;
    void link_changed(const ipc::state& s) override { send(ipc::daemon_message{s}); }
    // A QoS 1 delivery of the client's session, in a frame of its own (IPC-44: version 2); false
    // when it does not fit in the queue (the client is then cut off) or the client is closed.
    bool deliver(const mqtt::publish& msg, std::uint32_t delivery_id);

    // The protocol version the client's hello asked for and the hub accepted (IPC-9): every
    // frame after the hello decodes and encodes in it. Version 1 until then.
    [[nodiscard]] ipc::wire_version version() const noexcept { return version_; }
    void set_version(ipc::wire_version v) noexcept { version_ = v; }

    [[nodiscard]] client_id id() const noexcept { return id_; }
    [[nodiscard]] const peer_credentials& peer() const noexcept { return peer_; }
    [[nodiscard]] bool open() const noexcept { return !closed_; }
    [[nodiscard]] std::size_t queued_bytes() const noexcept { return queued_bytes_; }
    [[nodiscard]] bool reading_paused() const noexcept { return paused_; }

    // Handshake state, kept here so the hub has one object per client.
    bool greeted = false;
    // The hub accepted the hello: the hello timeout's wait ends now instead of staying pending for
    // every idle client until it would have fired.
    void greet() {
        greeted = true;
        linger_.cancel();
    }
    std::string app_name;
    std::string thing;     // the Thing picked at hello
    // The session its version 2 hello named (IPC-43): its subscriptions and deliveries; null
    // without one (the client is then its own local session for them too).
    std::shared_ptr<ipc_session> session;
    std::uint64_t messages_in = 0;   // frames received from the app
    std::uint64_t messages_out = 0;  // deliveries queued to the app
    // When it last asked for a reload (IPC-49: at most one per second).
    std::optional<std::chrono::steady_clock::time_point> last_reload;

private:
    void read();
    void read_ready();
    // Queued bytes at which the client is no longer read.
    [[nodiscard]] std::size_t pause_mark() const noexcept;
    // Answers wait to be written: reading stops until they are (back-pressure on the client).
    [[nodiscard]] bool answers_pending() const noexcept;
    // Frames left in in_ when reading paused are handled first, then the socket is read again.
    void resume_reading();
    // Bytes of no other client (the write buffer), charged to this queue and to the total.
    void charge(std::size_t bytes) noexcept;
    void discharge(std::size_t bytes) noexcept;
    void push_frame(frame_ptr frame) noexcept;
    std::size_t pop_frame() noexcept;  // the front frame; returns what it was charged
    // Drops the frames not yet copied for writing.
    void drop_queue() noexcept;
    // Hands every whole frame at the start of `bytes` to the hub; returns the bytes used.
    std::size_t decode(std::span<const std::uint8_t> bytes);
    void write();
    void schedule_write();
    void finish(const std::string& reason);

    socket socket_;
    client_id id_;
    peer_credentials peer_;
    const client_limits& limits_;
    queue_totals& totals_;
    client_events& events_;
    ipc::wire_version version_ = ipc::wire_version::v1;
    std::vector<std::uint8_t> in_;       // the start of a frame that has not fully arrived, or frames not yet handled
    std::list<frame_ptr> queue_;         // frames not yet copied into write_buf_ (a list: empty, it holds no memory)
    // The frame of answers last queued, while it is still the queue's last: further answers are
    // appended to it (send(const ipc::daemon_message&)).
    std::shared_ptr<shared_frame> answers_tail_;
    std::size_t queued_bytes_ = 0;       // charged for queue_ (each frame in full) and write_buf_
    std::vector<std::uint8_t> write_buf_;  // the frames being written, copied back to back
    std::size_t write_charge_ = 0;       // write_buf_'s part of queued_bytes_
    bool writing_ = false;
    boost::asio::steady_timer linger_;  // hello timeout, then the error frame's grace period
    bool write_posted_ = false;          // a write is queued for the end of this loop turn
    bool paused_ = false;                // not reading until the answers are written
    bool trim_heap_ = false;             // give free heap back to the system once destroyed
    bool closing_ = false;               // error frame queued; close when written
    bool closed_ = false;
    std::string close_reason_;
    std::error_code close_error_;
    // What the app rules let it do on its Thing (recomputed on reload), shared with the clients
    // of equal rights (config/grants_pool.hpp).
    config::shared_grants rights_ = config::no_grants();
    thing::denial_log denials_;
};

}  // namespace thingmux::hub
