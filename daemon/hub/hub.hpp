// The hub: thingmuxd's Things and the IPC front end.
//
// - Things: one uplink and one pipeline (daemon/thing/pipeline.hpp) per configured Thing. The
//   pipeline holds every rule of the path between local sessions and the broker (app rules,
//   guardrails, spool, shapers, reference-counted subscriptions, inbound routing); the hub wires
//   it to the uplink and an Asio timer, logs the link's state changes and shows status.
// - IPC clients (local_client) are the pipeline's local sessions: the first frame must be
//   `hello`; it picks a Thing (default: the first configured) and the reply `welcome` carries
//   that Thing's limits. A peer no app rule applies to is refused. Requests go to the Thing's
//   pipeline, which answers through the client. A version 2 hello may name a session
//   (ipc_session.hpp, ipc_front.cpp) that holds the client's subscriptions and deliveries
//   beyond the connection.
// - D-Bus callers publish through publish(): each call is a local session of its own, sharing
//   one queue in the Thing's shaper with the other D-Bus calls.
// - apply(): the first configuration, and every reload: app rules take effect for new requests
//   at once, Things whose connection settings changed reconnect, clients stay connected.
// - shutdown(): waits for publishes in flight, stops the uplinks, closes the clients.
#pragma once

#include "config/authorization.hpp"
#include "config/config.hpp"
#include "config/grants_pool.hpp"
#include "config/password_file.hpp"
#include "daemon/hub/ipc_session.hpp"
#include "daemon/hub/local_client.hpp"
#include "daemon/hub/mqtt_client.hpp"
#include "daemon/hub/mqtt_session.hpp"
#include "daemon/hub/service_caller.hpp"
#include "daemon/hub/session_storage.hpp"
#include "daemon/identity/thing_identity.hpp"
#include "daemon/services/jobs_service.hpp"
#include "daemon/spool/spool.hpp"
#include "daemon/thing/pipeline.hpp"
#include "daemon/uplink/uplink.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
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
    // The HTTP proxy the connection goes through, as "http://host:port" (never credentials);
    // empty: directly. With proxy: env, the one the environment named (or none).
    std::string proxy;
    std::string auth;  // "x509", "sigv4", "custom-authorizer NAME" (config::describe_auth)
    std::string transport;  // "mqtt" (MQTT over TLS) or "websocket" (wss://ENDPOINT/mqtt)
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
    std::uint64_t shared_dropped = 0;   // messages of a shared subscription no member could take
    std::uint64_t retained_messages = 0;  // in the Thing's retained cache
    std::uint64_t retained_bytes = 0;     // their topic + payload bytes
    std::uint64_t service_requests = 0;   // shadow and jobs requests awaiting AWS IoT's answer
    std::uint64_t service_timeouts = 0;   // requests answered by the daemon's 504 (AWS IoT was silent)
    std::uint64_t cached_shadows = 0;     // documents in the shadow cache
    std::uint64_t retained_dropped = 0;   // retained messages evicted or not kept for the cache's bounds
    uplink::uplink_counters counters;
    std::string last_error;
    identity::identity_status identity;  // its certificate: state, expiry, id, last error
    thing::pipeline_status pipeline;     // all of the pipeline's figures (the metrics show them)
    services::jobs_status jobs;          // its jobs service; state "off" without things[].jobs
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

// The daemon's counters: of its clients, and of the traffic of every Thing together.
struct hub_counters : thing::traffic_counters {
    std::uint64_t clients_accepted = 0;
    std::uint64_t clients_refused = 0;
    std::uint64_t clients_cut_off = 0;
};

class hub final : private client_events, private mqtt_events {
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
    // Takes a freshly accepted connection to the MQTT face (mqtt_front.cpp), on its Unix socket
    // or a loopback TCP listener: the peer's identity is read as fits the socket's family.
    void add_mqtt_client(mqtt_client::socket s);
    // The users and password hashes of mqtt.passwords (read at start and on every reload, never
    // per connection); null: no password file, a CONNECT's username and password are ignored.
    void set_mqtt_passwords(std::shared_ptr<const config::password_table> table) { mqtt_passwords_ = std::move(table); }
    // A publish from outside the IPC socket (D-Bus), checked against `caller`'s app rules and
    // the Thing's guardrails like an app's; `done` gets the outcome. An empty `thing` is the first.
    void publish(const std::string& thing, ipc::publish m, const peer_credentials& caller,
                 std::function<void(ipc::result)> done);
    // Graceful stop: tells clients, waits up to `grace` for QoS 1 publishes in flight, stops
    // the uplinks (DISCONNECT), closes the clients, then runs `done`.
    void shutdown(std::chrono::milliseconds grace, std::function<void()> done);

    // A Device Shadow request of a D-Bus caller: `operation` get, update or delete of `shadow`
    // ("" = the classic shadow), `document` the request's JSON ("" = {}). The caller is
    // authorized like an app (publish on the request topic, receive on its answers). `done` gets
    // the answer (service_caller.hpp) or the refusal.
    void shadow_request(const std::string& thing, std::string_view operation, const std::string& shadow,
                        std::string document, const peer_credentials& caller, service_caller::done_fn done);
    // Drops and re-establishes a Thing's connection; false when there is no such Thing.
    bool reconnect(const std::string& thing);
    // Rotates a Thing's certificate now (thing_identity.hpp); false when there is no such Thing,
    // else `done` gets the outcome.
    bool rotate_certificate(const std::string& thing, identity::thing_identity::rotate_done done);
    // Adds an observer called after every state change of a Thing's link (D-Bus signals, the
    // service manager's status line). Observers live as long as the hub.
    void on_thing_state(std::function<void(const std::string& thing, const uplink::state_event&)> f) {
        on_thing_state_.push_back(std::move(f));
    }

    [[nodiscard]] std::vector<std::string> thing_names() const;  // in configuration order
    [[nodiscard]] std::optional<thing_status> status_of(const std::string& thing) const;
    [[nodiscard]] std::vector<client_status> clients() const;  // greeted clients
    // Management (admin.cpp). What a caller of D-Bus ListClients or of IPC list_clients sees:
    // every client when it is an administrator, else those of its own uid.
    [[nodiscard]] std::vector<client_status> clients_visible_to(const peer_credentials& viewer) const;
    // Root, or a peer a rule with admin: true matches (config::is_admin).
    [[nodiscard]] bool is_admin(const peer_credentials& p) const;
    // The reload D-Bus Reload and SIGHUP run, for IPC reload: "" when the new configuration is
    // in force, else the problems of the file.
    void on_reload(std::function<std::string()> f) { reload_ = std::move(f); }
    // Open connections of apps: IPC clients (greeted or not) and MQTT clients past CONNACK.
    [[nodiscard]] std::size_t connection_count() const noexcept;
    [[nodiscard]] const hub_counters& counters() const noexcept { return counters_; }
    // Hears every publish's result for the per-app metrics; set before the first apply() (the
    // Things' pipelines take it when they are made). Must outlive the hub's Things.
    void set_publish_observer(thing::publish_observer* o) noexcept { publish_observer_ = o; }

private:
    struct thing_entry;

    void on_message(local_client& c, ipc::client_message&& m) override;
    void on_closed(local_client& c, const std::string& reason) override;

    void handle(local_client& c, ipc::hello&& m);
    void handle(local_client& c, ipc::publish&& m);
    void handle(local_client& c, ipc::subscribe&& m);
    void handle(local_client& c, ipc::unsubscribe&& m);
    void handle(local_client& c, ipc::ping&& m);
    void handle(local_client& c, ipc::ack&& m);
    void handle(local_client& c, ipc::admin&& m);  // admin.cpp

    // The MQTT face (mqtt_front.cpp).
    void on_connect(mqtt_client& c, const mqtt::connect& packet) override;
    void on_publish(mqtt_client& c, mqtt::publish&& msg) override;
    void on_subscribe(mqtt_client& c, mqtt::subscribe&& packet) override;
    void on_unsubscribe(mqtt_client& c, mqtt::unsubscribe&& packet) override;
    void on_ended(mqtt_client& c, const mqtt::server_action::ended& how) override;
    [[nodiscard]] mqtt::server_settings mqtt_server_settings() const;
    // Checks a CONNECT's username and password; false when it refused the client.
    bool authenticate(mqtt_client& c, const mqtt::connect& packet);
    void publish_will(mqtt::will_message w, const mqtt_session& s);
    // Ends a local MQTT session for good: its subscriptions and waiting messages go.
    void end_mqtt_session(const std::shared_ptr<mqtt_session>& s, const char* why);
    // An MQTT SUBSCRIBE's subscriptions into the pipeline (a client's, or a restored session's).
    void subscribe_mqtt(const std::shared_ptr<mqtt_session>& s, std::uint32_t request,
                        std::vector<mqtt::subscription> subscriptions);

    // Sessions kept beyond their connections, of both front ends (kept_sessions.cpp).
    // The expiry a session that asks for `asked` gets: at most limits.expiry, and 0 when the
    // sessions its front end keeps fill limits.max already, or those of its owner (`owners`:
    // the kept sessions of the same uid and MQTT user) limits.max_per_uid; one kept before
    // keeps its place (`was_kept`). Such a refusal is logged for `who`, naming the limit's key
    // in `section`.
    struct kept_count {
        std::size_t all = 0;
        std::size_t owners = 0;
    };
    [[nodiscard]] std::chrono::seconds grant_expiry(std::chrono::seconds asked, bool was_kept, kept_count kept,
                                                    const config::session_limits& limits, const std::string& who,
                                                    const char* section);
    // A session's expiry becomes `granted`, in memory and in the spool's file; a session that
    // starts being kept starts tracking its subscriptions from what the pipeline holds for it.
    void keep_session(session_state& s, thing::pipeline& pipe, thing::session_id flow,
                      const session_storage::owner& o, std::chrono::seconds granted);
    // Ends the sessions without a connection whose expiry passed (and publishes delayed wills
    // that are due), and sets the timer for the next.
    void expire_sessions();
    // The stored sessions of a Thing, back from the spool's file (at start, before its uplink).
    void restore_sessions(thing_entry& t);
    // Starts, reconfigures or closes the Thing's jobs service after its settings (things[].jobs).
    void reconfigure_jobs(thing_entry& t);
    // A stored MQTT or IPC session back in the hub: kept, attached, subscribed again; how many
    // messages came back with it. Nothing when the hub has that session already.
    std::optional<std::size_t> restore_mqtt_session(thing_entry& t, const spool::session_record& r, peer_credentials peer,
                                                    config::shared_grants rights, std::int64_t now, std::int64_t left);
    std::optional<std::size_t> restore_ipc_session(thing_entry& t, const spool::session_record& r, peer_credentials peer,
                                                   config::shared_grants rights, std::int64_t now, std::int64_t left);
    // Sessions of a front end kept beyond their connection (expiry > 0): all, and those of the
    // owner of `peer` (same uid and MQTT user), against limits.max and limits.max_per_uid.
    template <class Map>
    [[nodiscard]] static kept_count kept(const Map& sessions, const peer_credentials& peer) {
        kept_count n;
        for (const auto& [key, s] : sessions) {
            if (s->state().expiry.count() == 0) continue;
            ++n.all;
            if (s->peer().uid == peer.uid && s->peer().mqtt_user == peer.mqtt_user) ++n.owners;
        }
        return n;
    }

    // IPC sessions (ipc_front.cpp).
    // A version 2 hello's session: opened, resumed or taken over for `c`; what the welcome says
    // of it. Call before the welcome; bind_ipc_session() after it.
    struct session_granted {
        bool present = false;
        std::chrono::seconds expiry{0};
    };
    session_granted open_ipc_session(local_client& c, const ipc::hello& m, thing_entry& t, config::shared_grants rights);
    // The connection of a session ended: the session is kept for the next one, or ends.
    void release_ipc_session(local_client& c);
    void end_ipc_session(const std::shared_ptr<ipc_session>& s, const char* why);
    [[nodiscard]] thing_entry* thing_named(const std::string& name);
    // "a, b, c"
    [[nodiscard]] static std::string join(const std::vector<std::string>& items);

    // The Thing a greeted client chose; null when it is gone (removed by a reload).
    [[nodiscard]] thing_entry* thing_of(const local_client& c);
    void add_thing(thing_setup setup);
    void remove_thing(const std::string& name);
    void on_uplink_state(thing_entry& t, const uplink::state_event& ev);
    // A state of the Thing's link to its pipeline (its sessions), D-Bus and the status line:
    // its uplink's, or provisioning's while it has no certificate yet.
    void show_link_state(thing_entry& t, const uplink::state_event& ev);
    [[nodiscard]] thing::session_rules session_rules() const;
    void maybe_finish_shutdown();
    [[nodiscard]] std::size_t publishes_in_flight() const;

    boost::asio::io_context& io_;
    std::string daemon_version_;
    std::shared_ptr<const config::configuration> config_;
    config::grants_pool grants_;  // the rights of local sessions, one copy per distinct set
    client_limits limits_;  // referenced by every local_client; updated in place on reload
    queue_totals queue_totals_;  // kept by every local_client
    // Before things_: their upstream ports use it. Writes local sessions to spool_ (when there is one).
    session_journal journal_;
    std::map<std::string, std::unique_ptr<thing_entry>, std::less<>> things_;
    std::string default_thing_;
    std::vector<std::string> order_;  // Thing names in configuration order
    std::vector<std::function<void(const std::string&, const uplink::state_event&)>> on_thing_state_;
    std::map<client_id, std::shared_ptr<local_client>> clients_;
    std::map<client_id, std::shared_ptr<mqtt_client>> mqtt_clients_;
    // Local MQTT sessions of clients with a client id of their own, by (uid, MQTT user, client
    // id): the takeover rule among one user's clients, and sessions kept after their connection
    // ended. A TCP peer without kernel identity has uid (uid_t)-1 and is told apart by its
    // checked username.
    using mqtt_session_key = std::tuple<uid_t, std::string, std::string>;
    std::map<mqtt_session_key, std::shared_ptr<mqtt_session>> mqtt_sessions_;
    // Sessions of libthingmux apps, by (uid, Thing, session name) (IPC-43).
    using ipc_session_key = std::tuple<uid_t, std::string, std::string>;
    std::map<ipc_session_key, std::shared_ptr<ipc_session>> ipc_sessions_;
    std::unique_ptr<boost::asio::steady_timer> session_expiry_;  // the next session without a connection to expire
    std::shared_ptr<const config::password_table> mqtt_passwords_;
    logging::rate_limiter auth_refusal_log_{5, std::chrono::minutes(1)};  // wrong passwords, no identity
    thing::denial_log will_denials_;
    logging::rate_limiter mqtt_refusal_log_{5, std::chrono::seconds(10)};  // "MQTT client N refused: too many"
    std::uint64_t next_client_ = 1;
    hub_counters counters_;
    thing::publish_observer* publish_observer_ = nullptr;
    std::unique_ptr<spool::store> spool_;
    logging::rate_limiter spool_error_log_{1, std::chrono::seconds(10)};  // "cannot write the spool"
    thing::denial_log bus_denials_;
    std::function<std::string()> reload_;
    logging::rate_limiter admin_refusal_log_{5, std::chrono::minutes(1)};  // reloads refused (rights, rate)

    bool shutting_down_ = false;
    bool grace_expired_ = false;
    bool draining_ = false;
    std::size_t uplinks_running_ = 0;
    std::function<void()> shutdown_done_;
    std::unique_ptr<boost::asio::steady_timer> shutdown_timer_;
};

}  // namespace thingmux::hub
