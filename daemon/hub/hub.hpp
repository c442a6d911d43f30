// The hub: connects local IPC clients to the uplinks of the configured Things.
//
// - Handshake: the first frame must be `hello`; it picks a Thing (default: the first configured)
//   and the reply `welcome` carries that Thing's limits. A peer no app rule applies to is refused.
// - Publish: checked against the app's rights and the Thing's guardrails (topic, payload, QoS,
//   retain), then queued in the Thing's shaper, which releases publishes to the uplink within
//   the connection's rate limits, fairly between apps. The result (the broker's PUBACK, or a
//   local error) goes back to the client under its request id.
// - Subscribe: authorized, then reference-counted per Thing. A filter no other local filter
//   covers triggers one upstream SUBSCRIBE (within the Thing's subscription quota); later holders,
//   and filters a held one covers, are answered from the upstream state. Upstream filters nobody
//   needs any more are unsubscribed once what they served is served by others. SUBSCRIBEs and
//   UNSUBSCRIBEs wait in the Thing's subscription shaper, which releases them within the
//   connection's subscription rate, fairly between apps.
// - Inbound messages: routed through the Thing's subscription table to the clients allowed to
//   receive them, once per client even when the broker sends a copy per overlapping upstream
//   filter; encoded once per QoS and shared by every recipient's queue; a QoS 1 message is
//   acknowledged upstream once every recipient has it queued.
// - apply(): the first configuration, and every reload: app rules take effect for new requests
//   at once, Things whose connection settings changed reconnect, clients stay connected.
#pragma once

#include "config/authorization.hpp"
#include "config/config.hpp"
#include "daemon/hub/local_client.hpp"
#include "daemon/hub/shaper.hpp"
#include "daemon/hub/subscription_shaper.hpp"
#include "daemon/hub/subscription_table.hpp"
#include "daemon/spool/spool.hpp"
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

// One Thing as the hub needs it: its configuration, the uplink settings derived from it, and a
// fingerprint of everything that requires a reconnect when it changes (settings and the
// contents of the certificate, key and CA files).
struct thing_setup {
    config::thing settings;
    uplink::uplink_config link;
    std::string fingerprint;
};

// What D-Bus shows of a Thing.
struct thing_status {
    std::string name;
    std::string endpoint;  // host:port
    std::string client_id;
    std::string protocol;  // "mqtt5" / "mqtt311"
    uplink::link_state state = uplink::link_state::connecting;
    std::string reason;
    std::uint64_t connected_since_usec = 0;  // CLOCK_REALTIME µs of the current session; 0 when down
    std::uint64_t reconnects = 0;            // sessions after the first
    std::vector<std::string> upstream_filters;
    std::uint64_t in_flight = 0;  // QoS 1 sent, awaiting PUBACK
    // Accepted publishes waiting to go (D-Bus SpoolDepth): the shaper's from apps and D-Bus, plus
    // the spool's rows until their PUBACK with a spool, or the session's queue without one.
    std::uint64_t waiting = 0;
    std::uint64_t waiting_bytes = 0;  // their topic + payload bytes, the session's queue not counted
    std::uint64_t spool_rejected = 0;   // publishes the spool refused (full, I/O error)
    std::uint64_t offline_dropped = 0;  // QoS 0 publishes refused while offline
    uplink::uplink_counters counters;
    std::string last_error;
};

// What D-Bus shows of a connected app.
struct client_status {
    std::uint64_t id = 0;
    peer_credentials peer;
    std::string app_name;
    std::string thing;
    std::vector<std::string> subscriptions;
    std::uint64_t queued_bytes = 0;
    std::uint64_t messages_in = 0;
    std::uint64_t messages_out = 0;
    std::uint64_t pending_publishes = 0;
};

struct hub_counters {
    std::uint64_t clients_accepted = 0;
    std::uint64_t clients_refused = 0;
    std::uint64_t clients_cut_off = 0;
    std::uint64_t publishes = 0;
    std::uint64_t deliveries = 0;
    std::uint64_t unrouted = 0;  // inbound messages no client matched
    std::uint64_t denied = 0;    // requests refused by the app rules
    std::uint64_t spooled = 0;   // publishes written to the durable spool
    std::uint64_t spool_refused = 0;  // publishes the spool could not take (full, I/O error)
    std::uint64_t refused = 0;   // requests refused by a guardrail (topic, payload, QoS, quota, rate)
};

class hub final : private client_events {
public:
    // `spool`: where QoS 1 publishes accepted while a Thing is offline are kept durably; null
    // to hold them in memory only (the daemon could not open its spool file).
    hub(boost::asio::io_context& io, std::string daemon_version, std::unique_ptr<spool::store> spool = {});
    ~hub();
    hub(const hub&) = delete;
    hub& operator=(const hub&) = delete;

    // Takes a configuration: at start, and on every reload. `things` follows config->things.
    void apply(std::shared_ptr<const config::configuration> config, std::vector<thing_setup> things);
    // Takes a freshly accepted connection.
    void add_client(local_client::socket s);
    // A publish from outside the IPC socket (D-Bus), checked against `caller`'s app rules and
    // the Thing's guardrails like an app's; `done` gets the outcome. An empty `thing` is the first.
    void publish(const std::string& thing, ipc::publish m, const peer_credentials& caller,
                 std::function<void(ipc::result)> done);
    // Graceful stop: tells clients, waits up to `grace` for QoS 1 publishes in flight, stops
    // the uplinks (DISCONNECT), closes the clients, then runs `done`.
    void shutdown(std::chrono::milliseconds grace, std::function<void()> done);

    // Drops and re-establishes a Thing's connection; false when there is no such Thing.
    bool reconnect(const std::string& thing);
    // Adds an observer called after every state change of a Thing's link (D-Bus signals, the
    // service manager's status line). Observers live as long as the hub.
    void on_thing_state(std::function<void(const std::string& thing, const uplink::state_event&)> f) {
        on_thing_state_.push_back(std::move(f));
    }

    [[nodiscard]] std::vector<std::string> thing_names() const;  // in configuration order
    [[nodiscard]] std::optional<thing_status> status_of(const std::string& thing) const;
    [[nodiscard]] std::vector<client_status> clients() const;  // greeted clients
    [[nodiscard]] std::size_t client_count() const noexcept { return clients_.size(); }
    [[nodiscard]] const hub_counters& counters() const noexcept { return counters_; }

private:
    struct thing_state;
    struct waiter;
    struct pending_request;
    struct queued_publish;

    void on_message(local_client& c, ipc::client_message&& m) override;
    void on_closed(local_client& c, const std::string& reason) override;

    void handle(local_client& c, ipc::hello&& m);
    void handle(local_client& c, ipc::publish&& m);
    void handle(local_client& c, ipc::subscribe&& m);
    void handle(local_client& c, ipc::unsubscribe&& m);
    void handle(local_client& c, ipc::ping&& m);

    [[nodiscard]] thing_state* thing_of(const local_client& c);
    void add_thing(thing_setup setup);
    void remove_thing(const std::string& name);
    void on_uplink_state(thing_state& t, const uplink::state_event& ev);
    void on_uplink_message(thing_state& t, const mqtt::publish& msg, std::optional<mqtt::inbound_ticket> ticket);
    void on_subscription_lost(thing_state& t, const std::string& filter, std::uint8_t reason_code);
    void upstream_subscribed(thing_state& t, const std::string& filter, std::uint64_t generation, std::uint8_t code);
    void answer(waiter& w, ipc::result r);
    // After local subscriptions or the broker's answers changed: queues what the Thing's table
    // plans upstream (after `first`) in `flow`'s turn, answers the subscribe requests whose
    // filters are now served, and drops the filters nothing can serve. Returns the filters
    // unsubscribed upstream.
    std::size_t sync_upstream(thing_state& t, client_id flow, upstream_plan first = {});
    void send_plan(thing_state& t, client_id flow, upstream_plan plan);
    // Sends the SUBSCRIBEs and UNSUBSCRIBEs the Thing's subscription rate allows now, and arms the
    // timer for the rest.
    void pump_filters(thing_state& t);
    // A filter that needs a SUBSCRIBE upstream, when the client already has its share of the
    // subscription rate waiting (rate_limited); nullopt when it may queue.
    [[nodiscard]] std::optional<ipc::result> check_subscription_rate(const thing_state& t, client_id client,
                                                                     const std::string& filter) const;
    // Releases what the Thing's rate limits allow now to the uplink, and arms the timer for the rest.
    void pump(thing_state& t);
    // Whether the Thing's shaper may release publishes to its uplink now.
    [[nodiscard]] bool releasing(const thing_state& t) const;
    void send_upstream(thing_state& t, queued_publish&& p);
    // Who asks for something: an IPC client or a D-Bus caller.
    struct requester {
        std::function<std::string()> who;  // for log lines; only built when one is written
        const peer_credentials& peer;
        const config::grants& rights;
        denial_log& log;
        client_id flow;           // its queue in the shaper
        std::size_t pending = 0;  // its publishes awaiting results
    };
    // The guardrails and the app rules; nullopt when the publish may go (QoS 2 may be downgraded).
    [[nodiscard]] std::optional<ipc::result> check_publish(thing_state& t, const requester& r, ipc::publish& m);
    void enqueue(thing_state& t, client_id flow, ipc::publish&& m, std::function<void(ipc::result)> done);
    // QoS 1 while the Thing is offline, or behind earlier spooled messages (order per app):
    // stored durably and answered "spooled"; nullopt when it goes the normal way.
    [[nodiscard]] std::optional<ipc::result> maybe_spool(thing_state& t, const ipc::publish& m);
    // Moves spooled messages of a connected Thing into its shaper, a bounded batch at a time;
    // each row is deleted once the broker acknowledged it.
    void drain_spool(thing_state& t);
    [[nodiscard]] static std::string describe(const local_client& c);
    // A request the app rules refused: counted, logged at most once per second per client.
    [[nodiscard]] ipc::result deny(const requester& r, const std::string& thing, config::refused what,
                                   const std::string& topic);
    void send(local_client& c, const ipc::daemon_message& m);
    void maybe_finish_shutdown();
    [[nodiscard]] std::size_t publishes_in_flight() const;

    boost::asio::io_context& io_;
    std::string daemon_version_;
    std::shared_ptr<const config::configuration> config_;
    client_limits limits_;  // referenced by every local_client; updated in place on reload
    queue_totals queue_totals_;  // kept by every local_client
    std::map<std::string, std::unique_ptr<thing_state>, std::less<>> things_;
    std::string default_thing_;
    std::vector<std::string> order_;  // Thing names in configuration order
    std::vector<std::function<void(const std::string&, const uplink::state_event&)>> on_thing_state_;
    std::map<client_id, std::shared_ptr<local_client>> clients_;
    std::uint64_t next_client_ = 1;
    hub_counters counters_;
    std::vector<delivery> match_scratch_;
    static constexpr client_id bus_flow{0};  // D-Bus publishes share one queue in each shaper
    static constexpr client_id spool_flow{~std::uint64_t{0}};  // spooled messages, in order
    // Subscription changes the broker's answers cause (a wider filter acknowledged replaces the
    // narrower ones it covers), in the subscription shaper.
    static constexpr client_id table_flow{~std::uint64_t{0} - 1};
    std::unique_ptr<spool::store> spool_;
    logging::rate_limiter spool_error_log_{1, std::chrono::seconds(10)};  // "cannot write the spool"
    std::size_t bus_pending_ = 0;
    denial_log bus_denials_;

    bool shutting_down_ = false;
    bool grace_expired_ = false;
    bool draining_ = false;
    std::size_t uplinks_running_ = 0;
    std::function<void()> shutdown_done_;
    std::unique_ptr<boost::asio::steady_timer> shutdown_timer_;
};

}  // namespace thingmux::hub
