// One local application connected over the IPC Unix socket: reads and decodes its frames, and
// writes frames to it through a bounded queue.
//
// Frames for many clients are shared (one encoded delivery per inbound message), so the queue
// holds shared pointers. When a client's queue would exceed its byte limit the client is cut
// off: what it has not started receiving is dropped, it gets an error frame, and it is closed.
// A slow or stopped reader therefore never holds up the uplink or other clients.
#pragma once

#include "config/authorization.hpp"
#include "daemon/hub/peer.hpp"
#include "daemon/logging.hpp"
#include "daemon/hub/subscription_table.hpp"
#include "ipc/codec.hpp"

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace thingmux::hub {

using frame_ptr = std::shared_ptr<const std::vector<std::uint8_t>>;

struct client_limits {
    std::size_t max_frame = 266'240;             // IPC frame size limit (both directions)
    std::size_t max_queue_bytes = 8 * 1024 * 1024;  // bytes waiting to be written to the client
    std::size_t max_subscriptions = 1000;          // filters one client may hold
    std::size_t max_pending_publishes = 1000;      // publishes awaiting their result
};

class local_client;

// Rate limit for logging denied requests of one requester: one line per second.
struct denial_log : logging::rate_limiter {
    denial_log() noexcept : rate_limiter(1, std::chrono::seconds(1)) {}
};

// Receives what happens on a client connection (the hub).
class client_events {
public:
    virtual void on_message(local_client& c, ipc::client_message&& m) = 0;
    virtual void on_closed(local_client& c, const std::string& reason) = 0;

protected:
    ~client_events() = default;
};

class local_client : public std::enable_shared_from_this<local_client> {
public:
    using socket = boost::asio::local::stream_protocol::socket;

    local_client(socket s, client_id id, peer_credentials peer, const client_limits& limits, client_events& events);

    // Starts reading frames; closes the connection if no hello came within `hello_timeout`.
    void start(std::chrono::milliseconds hello_timeout);
    // Queues a frame. Returns false (and cuts the client off with `queue_full`) when it does not
    // fit in the queue limit; false also when the client is already closed.
    bool send(frame_ptr frame);
    // Sends an error frame (past the queue limit), then closes once it is written or after a
    // short grace period. Reading stops at once.
    void close_with_error(ipc::errc code, std::string message);
    // Closes now, dropping queued frames.
    void close(const std::string& reason);

    [[nodiscard]] client_id id() const noexcept { return id_; }
    [[nodiscard]] const peer_credentials& peer() const noexcept { return peer_; }
    [[nodiscard]] bool open() const noexcept { return !closed_; }
    [[nodiscard]] std::size_t queued_bytes() const noexcept { return queued_bytes_; }

    // Handshake state, kept here so the hub has one object per client.
    bool greeted = false;
    std::string app_name;
    std::string thing;     // the Thing picked at hello
    config::grants rights;  // what the app rules let it do on that Thing (recomputed on reload)
    denial_log denials;
    std::size_t pending_publishes = 0;
    std::uint64_t messages_in = 0;   // frames received from the app
    std::uint64_t messages_out = 0;  // deliveries queued to the app

private:
    void read();
    void read_ready();
    // Hands every whole frame at the start of `bytes` to the hub; returns the bytes used.
    std::size_t decode(std::span<const std::uint8_t> bytes);
    void write();
    void schedule_write();
    void finish(const std::string& reason);

    socket socket_;
    client_id id_;
    peer_credentials peer_;
    const client_limits& limits_;
    client_events& events_;
    std::vector<std::uint8_t> in_;       // the start of a frame that has not fully arrived
    std::deque<frame_ptr> queue_;
    std::size_t queued_bytes_ = 0;
    std::size_t writing_ = 0;            // frames at the front of queue_ copied into write_buf_
    std::vector<std::uint8_t> write_buf_;  // the frames being written, copied back to back
    boost::asio::steady_timer linger_;  // hello timeout, then the error frame's grace period
    bool write_posted_ = false;          // a write is queued for the end of this loop turn
    bool closing_ = false;               // error frame queued; close when written
    bool closed_ = false;
    std::string close_reason_;
};

}  // namespace thingmux::hub
