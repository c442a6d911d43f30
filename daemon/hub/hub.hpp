// The hub of one Thing: connects local IPC clients to the Thing's uplink.
//
// - Handshake: the first frame must be `hello`; the reply `welcome` carries the limits.
// - Publish: checked locally, then handed to the uplink; the result (the broker's PUBACK, or a
//   local error) goes back to the client under its request id.
// - Subscribe: reference-counted. The first holder of a filter triggers one upstream SUBSCRIBE;
//   later holders are answered from the upstream state (at once, or when the pending SUBACK
//   arrives). The last holder leaving (unsubscribe or disconnect) triggers the UNSUBSCRIBE.
// - Inbound messages: routed through the subscription table, encoded once per QoS and shared by
//   every recipient's queue; a QoS 1 message is acknowledged upstream once every matching
//   client has it queued.
// - Uplink state changes are broadcast to every client.
#pragma once

#include "daemon/hub/local_client.hpp"
#include "daemon/hub/subscription_table.hpp"
#include "daemon/uplink/uplink.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace thingmux::hub {

struct hub_settings {
    client_limits limits;
    std::size_t max_clients = 1024;
    std::size_t max_payload = 128 * 1024;    // AWS IoT Core's payload limit
    std::size_t max_topic_length = 256;      // AWS IoT Core's topic limit (bytes)
    std::string daemon_version;
    std::chrono::milliseconds hello_timeout{10'000};
};

struct hub_counters {
    std::uint64_t clients_accepted = 0;
    std::uint64_t clients_refused = 0;
    std::uint64_t clients_cut_off = 0;
    std::uint64_t publishes = 0;
    std::uint64_t deliveries = 0;
    std::uint64_t unrouted = 0;  // inbound messages no client matched
};

class hub final : private client_events {
public:
    hub(boost::asio::io_context& io, std::shared_ptr<uplink::uplink> link, hub_settings settings);
    ~hub();
    hub(const hub&) = delete;
    hub& operator=(const hub&) = delete;

    // Takes a freshly accepted connection.
    void add_client(local_client::socket s);
    // Forwarded by the owner from the uplink's state handler.
    void on_uplink_state(const uplink::state_event& ev);
    // Graceful stop: tells clients, waits up to `grace` for QoS 1 publishes in flight, stops
    // the uplink (DISCONNECT), closes the clients, then runs `done`.
    void shutdown(std::chrono::milliseconds grace, std::function<void()> done);

    [[nodiscard]] std::size_t client_count() const noexcept { return clients_.size(); }
    [[nodiscard]] const subscription_table& subscriptions() const noexcept { return table_; }
    [[nodiscard]] const hub_counters& counters() const noexcept { return counters_; }

private:
    struct upstream_filter;
    struct waiter;
    struct pending_request;

    void on_message(local_client& c, ipc::client_message&& m) override;
    void on_closed(local_client& c, const std::string& reason) override;

    void handle(local_client& c, ipc::hello&& m);
    void handle(local_client& c, ipc::publish&& m);
    void handle(local_client& c, ipc::subscribe&& m);
    void handle(local_client& c, ipc::unsubscribe&& m);
    void handle(local_client& c, ipc::ping&& m);

    void on_uplink_message(const mqtt::publish& msg, std::optional<mqtt::inbound_ticket> ticket);
    void on_subscription_lost(const std::string& filter, std::uint8_t reason_code);
    void upstream_subscribed(const std::string& filter, std::uint64_t generation, std::uint8_t code);
    void answer(waiter& w, ipc::result r);
    // The filters lost their last local holder: answer requests still waiting for their SUBACK,
    // forget them, and unsubscribe upstream.
    void release_upstream(std::vector<std::string> filters);
    void send(local_client& c, const ipc::daemon_message& m);
    void maybe_finish_shutdown();

    boost::asio::io_context& io_;
    std::shared_ptr<uplink::uplink> link_;
    hub_settings settings_;
    subscription_table table_;
    std::map<client_id, std::shared_ptr<local_client>> clients_;
    std::map<std::string, upstream_filter, std::less<>> upstream_;
    std::uint64_t next_client_ = 1;
    std::uint64_t next_generation_ = 1;
    std::size_t publishes_in_flight_ = 0;
    hub_counters counters_;
    ipc::state link_state_{.link = ipc::link_state::connecting, .reason = {}, .fatal = false, .retry_in_ms = 0};
    std::vector<delivery> match_scratch_;

    bool shutting_down_ = false;
    bool grace_expired_ = false;
    bool draining_ = false;
    std::function<void()> shutdown_done_;
    std::unique_ptr<boost::asio::steady_timer> shutdown_timer_;
};

}  // namespace thingmux::hub
