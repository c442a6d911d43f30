// The pipeline of one Thing: everything between its local sessions and its upstream connection.
//
//   publish:   authorize (app rules) → guardrails (topic, payload, QoS, retain, back-pressure)
//              → durable spool (QoS 1 while offline, or behind spooled messages)
//              | publish shaper (rate limits, fair between sessions) → upstream → result
//   subscribe: validate → authorize → quotas → reference-counted subscription table
//              → subscription shaper (subscription rate, fair) → upstream SUBSCRIBE/UNSUBSCRIBE;
//              a filter under one of the Thing's coverage filters is served by it (one upstream
//              subscription for all of them; subscription_table.hpp)
//   inbound:   copy filter (one copy per message) → subscription table → receive rights
//              → each matching session, encoded once per QoS → acknowledged upstream
//   shared:    "$share/NAME/FILTER" is a group holding FILTER like one more subscriber; each of
//              its messages goes to one member, in turn (share_path.cpp)
//   local:     a topic within the Thing's local_topics: authorize → the sessions whose filters
//              match (receive rights) → result; a filter within them is held locally only
//   daemon's:  "$thingmux/..." topics are thingmuxd's own, local to the Thing like local topics:
//              apps may subscribe to them (with rights), only daemon services send on them
//              (deliver_local(); an app's publish there is refused)
//   retained:  the broker's retained messages and the local retained publishes it accepted (or
//              the spool took, or local topics routed) are kept in a bounded cache; a new local
//              subscription the broker sends nothing for (its upstream filter is acknowledged
//              already) is served from it, as its Retain Handling says; the broker's retained
//              messages go only to the sessions whose subscription waited for their SUBSCRIBE
//              (retained_recipients.hpp). No Local: echo_table.hpp.
//   services:  a publish on one of the Thing's AWS IoT Device Shadow or Jobs request topics is
//              checked (a JSON object), given the daemon's clientToken and remembered; never
//              spooled. What AWS sends carrying that token has the app's token put back, and the
//              answer on …/accepted or …/rejected goes only to the app that asked; no answer in
//              services.request_timeout: a 504 rejected the daemon makes. Optional cache of the
//              last document per shadow for gets while offline (service_path.cpp).
//
// Every result goes back through the session that asked (local_session::publish_done, …), from
// one place per kind of request: publish() → complete(), subscribe() → answer(). The pipeline
// never blocks and owns no I/O: the upstream, the clock and the sessions are interfaces
// (daemon/thing/ports.hpp), so its unit tests drive it with fakes.
#pragma once

#include "config/config.hpp"
#include "daemon/thing/copy_counter.hpp"
#include "daemon/thing/echo_table.hpp"
#include "daemon/thing/latency_histogram.hpp"
#include "daemon/thing/retained_cache.hpp"
#include "daemon/thing/retained_recipients.hpp"
#include "daemon/thing/service_requests.hpp"
#include "daemon/thing/shadow_cache.hpp"
#include "daemon/thing/shaper.hpp"
#include "daemon/thing/slot_table.hpp"
#include "daemon/thing/share_groups.hpp"
#include "daemon/thing/subscription_shaper.hpp"
#include "daemon/thing/subscription_table.hpp"
#include "daemon/thing/ports.hpp"
#include "daemon/spool/spool.hpp"

#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace thingmux::thing {

// Counts of every Thing together (D-Bus shows them as the daemon's).
struct traffic_counters {
    std::uint64_t publishes = 0;
    std::uint64_t deliveries = 0;
    std::uint64_t unrouted = 0;  // inbound messages no session matched
    std::uint64_t denied = 0;    // requests refused by the app rules
    std::uint64_t spooled = 0;   // publishes written to the durable spool
    std::uint64_t spool_refused = 0;  // publishes the spool could not take (full, I/O error)
    std::uint64_t refused = 0;   // requests refused by a guardrail (topic, payload, QoS, quota, rate)
};

// Settings that are not the Thing's own: the IPC section's per-session limits and the spool's
// policy for QoS 0 while offline.
struct session_rules {
    std::size_t max_subscriptions = 1000;      // ipc.client_subscriptions
    std::size_t max_pending_publishes = 1000;  // ipc.client_inflight
    config::offline_qos0 offline_qos0 = config::offline_qos0::drop;
};

// What the pipeline shares with the daemon: counters, the spool (null: none), its error log.
struct shared_parts {
    traffic_counters& counters;
    spool::store* spool = nullptr;
    logging::rate_limiter& spool_error_log;
    std::function<void()> publish_settled;  // after every publish result (the daemon's shutdown waits on them)
    publish_observer* observer = nullptr;   // the per-app metrics; null: none
};

// What D-Bus shows of the pipeline's part of a Thing.
struct pipeline_status {
    std::vector<std::string> upstream_filters;
    std::uint64_t waiting = 0;        // accepted publishes not yet handed upstream (+ spool rows)
    std::uint64_t waiting_bytes = 0;
    std::uint64_t at_upstream = 0;    // handed upstream, awaiting their result
    std::uint64_t spool_rejected = 0;
    std::uint64_t offline_dropped = 0;
    std::uint64_t shared_dropped = 0;  // messages of a shared subscription no member could take
    std::uint64_t retained_messages = 0;  // in the retained cache
    std::uint64_t retained_bytes = 0;     // their topic + payload bytes
    std::uint64_t retained_dropped = 0;   // retained messages the cache's bounds cost (retained_cache::dropped)
    std::uint64_t service_requests = 0;   // shadow and jobs requests awaiting AWS IoT's answer
    std::uint64_t service_timeouts = 0;   // requests answered by the daemon's 504: AWS IoT did not answer in time
    std::uint64_t cached_shadows = 0;     // documents in the shadow cache (services.shadow_cache)
    // For the metrics (docs/metrics.md):
    std::uint64_t throttle_waits = 0;     // publishes that waited in the shaper for the rate limits
    std::uint64_t suback_failures = 0;    // upstream filters the broker refused (SUBACK >= 0x80, or lost at a reconnect)
    std::uint64_t local_subscriptions = 0;  // filters held by sessions (upstream and local ones)
    std::uint64_t spool_messages = 0;     // this Thing's rows in the durable spool
    std::uint64_t spool_bytes = 0;
    std::chrono::seconds spool_oldest_age{0};  // of its oldest row (rows older than this run: since it started)
    latency_histogram round_trip;         // QoS 1 PUBLISH handed upstream → PUBACK
};

// How the pipeline routes a message: whose publish it is (No Local), and whether it is the
// broker's retained message answering a SUBSCRIBE (only for the sessions that await it).
struct routing {
    std::optional<session_id> publisher;
    bool subscribe_answer = false;
};

// Topics under this prefix belong to thingmuxd's services (the jobs service hands jobs out on
// "$thingmux/jobs/OPERATION"): never sent upstream, never published by an app.
inline constexpr std::string_view daemon_topic_prefix = "$thingmux/";
[[nodiscard]] bool is_daemon_topic(std::string_view topic_or_filter) noexcept;

class pipeline : public std::enable_shared_from_this<pipeline> {
public:
    // One-shot publishes (D-Bus calls, the wills of MQTT clients that are gone) share one queue;
    // spooled messages have theirs; subscription changes the broker's answers cause (a wider
    // filter acknowledged replaces narrower ones) have theirs.
    static constexpr session_id one_shot_flow{0};
    static constexpr session_id spool_flow{~std::uint64_t{0}};
    static constexpr session_id table_flow{~std::uint64_t{0} - 1};

    pipeline(config::thing settings, session_rules rules, shared_parts shared, upstream& up, clock& clk);
    pipeline(const pipeline&) = delete;
    pipeline& operator=(const pipeline&) = delete;
    ~pipeline();

    // Configuration reload: new limits and rules for requests from now on; what waits stays.
    void reconfigure(config::thing settings, session_rules rules);

    // Sessions: attached ones receive messages and link states.
    void attach(std::shared_ptr<local_session> s);
    struct detached {
        std::size_t released = 0;  // upstream filters released
        std::size_t dropped = 0;   // publishes still waiting for their turn, dropped
    };
    // The session is gone: its waiting publishes are dropped (it gets no result, so it has no
    // reason to believe they were sent), its subscriptions released.
    detached detach(session_id id);

    // Requests. The answer always comes through the session's …_done(), possibly at once.
    void publish(const std::shared_ptr<local_session>& s, std::uint32_t request_id, ipc::publish m);
    // `options`: the MQTT 5 subscription options of each filter, in order; absent ones (all, for
    // IPC and D-Bus sessions) are the defaults. `answer_at_registration` (IPC-61): the session
    // also gets subscribe_registered() once every filter is checked and registered.
    void subscribe(const std::shared_ptr<local_session>& s, std::uint32_t request_id,
                   std::vector<ipc::subscription> filters, std::vector<subscription_options> options = {},
                   bool answer_at_registration = false);
    void unsubscribe(const std::shared_ptr<local_session>& s, std::uint32_t request_id, const std::vector<std::string>& filters);

    // Daemon services (daemon/services/): a message on a "$thingmux/..." topic for every attached
    // session holding a matching filter with receive rights; returns how many were handed it.
    std::size_t deliver_local(std::string topic, std::string payload);
    // Whether an attached session holds a filter matching `topic` (within the local topics or
    // "$thingmux/...") and may receive it.
    [[nodiscard]] bool has_local_subscriber(std::string_view topic) const;
    // The distinct filters sessions hold locally that start with `prefix`, sorted.
    [[nodiscard]] std::vector<std::string> local_filters(std::string_view prefix) const;

    // Upstream events.
    void on_link(ipc::state s);
    void on_message(const mqtt::publish& msg, std::optional<mqtt::inbound_ticket> ticket);
    void on_subscription_lost(const std::string& filter, std::uint8_t reason_code);
    // The result of a publish handed to upstream::publish(), with the tag it was given.
    void on_published(const mqtt::action::publish_done& d);
    // The wake-up asked for with clock::wake_at().
    void on_timer();

    // Stopping: refuses new publishes, releases what waits regardless of the link state.
    void stop_accepting();
    // Publishes accepted and not yet answered by the upstream (waiting or in flight).
    [[nodiscard]] std::size_t unfinished() const noexcept;
    // Answers every publish still waiting for its turn with daemon_shutting_down.
    void abandon_waiting();

    [[nodiscard]] const config::thing& settings() const noexcept { return settings_; }
    [[nodiscard]] const ipc::state& link() const noexcept { return link_; }
    [[nodiscard]] bool online() const noexcept { return link_.link == ipc::link_state::connected; }
    [[nodiscard]] pipeline_status status() const;
    [[nodiscard]] std::vector<std::string> filters_of(session_id id) const;
    [[nodiscard]] std::size_t pending_publishes(session_id flow) const;
    [[nodiscard]] const retained_cache& retained() const noexcept { return retained_; }

private:
    // Who gets a publish's result: a session (by its request id), or the spool (by its row).
    struct publish_owner {
        std::shared_ptr<local_session> session;  // null for a spooled message
        session_id flow;                         // its queue in the shaper
        std::uint32_t request_id = 0;
        std::int64_t spool_id = 0;  // > 0: a spooled message, deleted once the broker answered it
        std::shared_ptr<const mqtt::publish> retained;  // a retained publish: cached once accepted
        std::uint64_t echo = 0;  // content_fingerprint() of an echo expected for No Local (0: none)
        std::string request_token;  // a service request: the daemon's clientToken (empty: none)
        std::size_t bytes = 0;      // topic + payload, for the metrics
    };
    // A publish on its way upstream: waiting in the shaper, then at the upstream until its result.
    struct queued_publish {
        mqtt::publish msg;
        publish_owner owner;
    };
    // What waits for the upstream's result of a publish (under the tag the publish went up with).
    struct upstream_publish {
        publish_owner owner;
        std::optional<clock_type::time_point> sent;  // QoS 1: for the round-trip histogram
    };
    // Everything one SUBSCRIBE request waits for; answered when the last filter's result is known
    // (at once, or when the upstream SUBACK arrives).
    struct subscribe_request {
        std::shared_ptr<local_session> owner;
        std::uint32_t request_id = 0;
        std::vector<ipc::result> results;
        std::size_t remaining = 0;
        // Filters (index, filter) served from the retained cache once the request is answered.
        std::vector<std::pair<std::size_t, std::string>> from_cache;
    };
    // One filter of a SUBSCRIBE request waiting for an upstream filter serving it to be acknowledged.
    struct waiter {
        std::shared_ptr<subscribe_request> request;
        std::size_t index = 0;
        std::uint8_t requested_qos = 0;
    };

    // local topics (local_path.cpp): routed between the Thing's sessions, never upstream
    [[nodiscard]] bool local_only(std::string_view topic_or_filter) const noexcept;
    void publish_locally(const std::shared_ptr<local_session>& s, std::uint32_t request_id, ipc::publish m);
    // Hands a message to every attached session with a matching filter in `tables` that may
    // receive it; returns how many were handed it.
    std::size_t route(const mqtt::publish& msg, std::initializer_list<const subscription_table*> tables,
                      routing how = {});
    // retained messages and No Local (retained_path.cpp)
    [[nodiscard]] static std::shared_ptr<const mqtt::publish> retained_copy(const mqtt::publish& m);
    void spooled_by(local_session& s, const ipc::publish& m);
    [[nodiscard]] std::uint64_t expect_echo(local_session& s, const mqtt::publish& m);
    void from_broker(const mqtt::publish& msg);
    void wants_retained(subscribe_request& req, std::size_t index, session_id flow, const std::string& filter);
    void serve_retained(local_session& s, const std::vector<std::pair<std::string, std::uint8_t>>& filters);
    // shared subscriptions (share_path.cpp)
    // Hands a message for `group` to one of its members; false when none could take it.
    bool deliver_shared(session_id group, inbound_message& m);
    // What a session that ended took of its groups' messages goes to the other members.
    void hand_on(std::vector<shared_leftover> leftovers);
    // The groups of a session that left them: those it was the last member of release their filter.
    void release_groups(const std::vector<share_groups::left>& left);
    // publish path (publish_path.cpp)
    [[nodiscard]] std::optional<ipc::result> check_publish(local_session& s, ipc::publish& m);
    [[nodiscard]] ipc::result deny(local_session& s, config::refused what, const std::string& topic);
    void enqueue(queued_publish&& p);
    [[nodiscard]] bool releasing() const noexcept { return online() || stopping_; }
    void release_publishes();
    void send_upstream(queued_publish&& p);
    void complete(publish_owner& owner, ipc::result r);
    // Tells the metrics what `s` was answered for a publish of `bytes` (topic + payload).
    void observe(const local_session& s, const ipc::result& r, std::size_t bytes) const;
    // spool (spool_path.cpp)
    [[nodiscard]] std::optional<ipc::result> maybe_spool(const ipc::publish& m);
    void drain_spool();  // moves a batch of spooled messages into the shaper, when their turn has come
    void spooled_done(std::int64_t id, const ipc::result& r);
    // subscribe path (subscribe_path.cpp)
    [[nodiscard]] std::optional<ipc::result> check_filter(local_session& s, const std::string& filter);
    [[nodiscard]] std::optional<ipc::result> check_subscription_rate(session_id flow, const std::string& filter) const;
    std::size_t sync_upstream(session_id flow, upstream_plan first = {});
    void send_plan(session_id flow, upstream_plan plan);
    void release_subscription_changes();
    void upstream_subscribed(const std::string& filter, std::uint64_t generation, std::uint8_t code);
    void answer(waiter& w, ipc::result r);
    void finish(subscribe_request& req);
    // AWS IoT service requests and their answers (service_path.cpp)
    [[nodiscard]] bool service_request(std::string_view topic) const noexcept;
    void publish_request(const std::shared_ptr<local_session>& s, std::uint32_t request_id, ipc::publish m);
    // An inbound message seen by the service router first: true when it was an answer to a local
    // request (delivered to its requester) or a late one (counted unrouted). Otherwise, when it
    // carried one of the daemon's tokens, `restored` is the message with the app's token back.
    bool from_service(const mqtt::publish& msg, std::optional<mqtt::publish>& restored);
    void feed_shadow_cache(const mqtt::publish& m, const std::optional<services::response_topic>& response);
    // A message for one session only (an answer to its request), at the QoS of its matching
    // subscription or 0, if it may receive it.
    void deliver_answer(local_session& s, const mqtt::publish& answer);
    void expire_requests();
    // Counts and logs (rate-limited) an inbound message no session gets.
    void count_unrouted(const mqtt::publish& msg, std::string_view why);
    // Asks the clock for the next wake-up either shaper or a service request needs.
    void schedule(clock_type::time_point now);

    config::thing settings_;
    session_rules rules_;
    shared_parts shared_;
    upstream& up_;
    clock& clock_;
    ipc::state link_{.link = ipc::link_state::connecting, .reason = {}, .fatal = false, .retry_in_ms = 0};
    bool stopping_ = false;

    std::map<session_id, std::shared_ptr<local_session>> sessions_;  // attached
    std::map<session_id, std::size_t> pending_;  // per flow: publishes awaiting their result (until detach)

    publish_shaper<queued_publish> shaper_;
    // Handed upstream, awaiting their result; the key is the tag given to upstream::publish(), so
    // no callback is allocated per publish.
    slot_table<upstream_publish> at_upstream_;
    bool releasing_publishes_ = false;     // release_publishes() runs; a nested call only asks it to go round again
    bool release_again_ = false;

    subscription_table table_;
    subscription_table local_table_;  // filters within local_topics: held here, never upstream
    std::map<std::string, std::vector<waiter>, std::less<>> waiting_;  // by local filter
    subscription_shaper filters_;
    std::map<std::string, std::uint64_t, std::less<>> subscribe_generations_;  // of SUBSCRIBEs in filters_
    copy_counter copies_;
    retained_cache retained_;
    retained_recipients retained_recipients_;
    echo_table echoes_;
    std::set<session_id> no_local_sessions_;  // sessions that subscribed with No Local
    std::vector<delivery> match_scratch_;
    share_groups groups_;
    std::uint64_t shared_dropped_ = 0;
    logging::rate_limiter shared_drop_log_{1, std::chrono::seconds(10)};

    std::int64_t spool_cursor_ = 0;  // highest spool id moved into the shaper
    std::size_t spool_loaded_ = 0;   // spooled messages in the shaper or upstream
    std::uint64_t spool_rejected_ = 0;
    std::uint64_t offline_dropped_ = 0;
    // For the metrics: when the spool rows of this run were written (by id), and when the
    // pipeline began (the time given to rows of an earlier run); the shaper's waits, refused
    // upstream filters, the round-trip times.
    std::map<std::int64_t, clock_type::time_point> spool_times_;
    clock_type::time_point started_;
    std::uint64_t throttle_waits_ = 0;
    std::uint64_t suback_failures_ = 0;
    latency_histogram round_trip_;

    services::request_table requests_;
    shadow_cache shadows_;
    std::uint64_t service_timeouts_ = 0;
    logging::rate_limiter unrouted_log_{1, std::chrono::seconds(10)};
};

}  // namespace thingmux::thing
