// One upstream MQTT connection for one Thing: the thin Boost.Asio adapter that runs the sans-I/O
// mqtt::session and mqtt::backoff over a transport (TLS; plain TCP or a Unix socket for peers
// on this machine).
//
// All of it runs on the io_context it is given (one thread, no locks). It connects, keeps the
// session (persistent, re-subscribed, retransmitted), reconnects with backoff and full jitter,
// and reports state changes with a reason a user can act on. Callers publish/subscribe at any
// time, also while offline: QoS 1 work waits for the connection, QoS 0 fails fast.
#pragma once

#include "common/link_state.hpp"
#include "daemon/mqtt/backoff.hpp"
#include "daemon/mqtt/session.hpp"
#include "daemon/mqtt/takeover.hpp"
#include "daemon/uplink/custom_authorizer_login.hpp"
#include "daemon/uplink/error.hpp"
#include "daemon/uplink/transport.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace thingmux::uplink {

struct uplink_config {
    std::string thing_name;
    std::string host;
    std::uint16_t port = 8883;
    tls_settings tls;
    mqtt::session_config session;         // client_id defaults to thing_name
    mqtt::backoff::config backoff;
    std::chrono::milliseconds connect_timeout{10'000};  // TCP + proxy + TLS handshake
    // TLS, or WebSocket over TLS (transport: websocket). Plain TCP or a Unix socket (`host` is
    // its path) only for peers on this machine in tests and the benchmarks (a local mosquitto, as
    // in the bridge set-up they compare against; thingmuxd's MQTT face); the configuration file
    // cannot select them, since AWS IoT Core requires TLS.
    transport_kind transport = transport_kind::tls;
    // The HTTP proxy to go through (docs/connecting.md); none: directly to host:port.
    std::optional<proxy_route> proxy;
    // Log in through this AWS IoT custom authorizer (docs/connecting.md): its files are read at
    // every attempt into the CONNECT's user name and password (session.username/password unused).
    std::optional<custom_authorizer_files> custom_authorizer;
    // transport_kind::websocket: makes each attempt's upgrade request (target, headers), e.g. a
    // SigV4 presigned target; empty: GET /mqtt with no extra headers (client certificate only).
    websocket_request_source websocket_request;
};

// When a connection signed with credentials that expire at `expires` reconnects, signed anew:
// min(150 s, an eighth of what is left) before, after the AWS IoT credentials provider has
// renewed them (it does at min(5 min, a quarter of their life) before); none when that is less
// than a second away.
[[nodiscard]] std::optional<std::chrono::system_clock::duration> renewal_delay(
    std::chrono::system_clock::time_point expires, std::chrono::system_clock::time_point now);

using link_state = thingmux::link_state;  // defined once in common/, with its spellings

[[nodiscard]] const char* to_string(link_state s) noexcept;

struct state_event {
    link_state state = link_state::connecting;
    std::string reason;                 // why (empty for a plain "connecting")
    bool fatal = false;                 // retrying without a change cannot help
    // backing_off / failed / stopped: what ended the connection, as a condition to test against
    // (uplink::errc, a system error, an OpenSSL error); `reason` says it in words.
    std::error_code error;
    std::optional<std::uint8_t> reason_code;  // MQTT reason code from the broker, if any
    std::chrono::milliseconds retry_in{0};    // backing_off / failed: time until the next attempt
    bool session_present = false;       // connected: the broker kept our session
    // backing_off / failed: another connection is using our client ID (the broker said
    // "session taken over", or closed several sessions in a row right after accepting them).
    bool takeover = false;
};

struct uplink_counters {
    std::uint64_t connect_attempts = 0;
    std::uint64_t connects = 0;
    std::uint64_t messages_out = 0;
    std::uint64_t messages_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t bytes_in = 0;
};

class uplink : public std::enable_shared_from_this<uplink> {
public:
    using publish_handler = std::function<void(const mqtt::action::publish_done&)>;
    using codes_handler = std::function<void(const std::vector<std::uint8_t>& reason_codes)>;
    using message_handler = std::function<void(const mqtt::publish&, std::optional<mqtt::inbound_ticket>)>;
    using state_handler = std::function<void(const state_event&)>;
    // The broker refused a live filter while re-subscribing after it lost our session.
    using subscription_lost_handler = std::function<void(const std::string& filter, std::uint8_t reason_code)>;

    // Use create(): async operations keep the object alive through shared_from_this().
    [[nodiscard]] static std::shared_ptr<uplink> create(boost::asio::io_context& io, uplink_config config);
    ~uplink();
    uplink(const uplink&) = delete;
    uplink& operator=(const uplink&) = delete;

    void on_message(message_handler h) { on_message_ = std::move(h); }
    void on_state(state_handler h) { on_state_ = std::move(h); }
    void on_subscription_lost(subscription_lost_handler h) { on_subscription_lost_ = std::move(h); }
    // The results of publish_tagged(), each with its tag (publish_done::tag).
    void on_publish_done(publish_handler h) { on_publish_done_ = std::move(h); }

    // Starts connecting (and keeps reconnecting until stop()).
    void start();
    // Graceful: DISCONNECT when online, close, no more reconnects; `done` runs once closed.
    // Queued and in-flight publishes complete with local_error::session_closed.
    void stop(std::function<void()> done = {});

    // Drops the current connection (if any) and connects again as soon as the CONNECT pacing
    // allows, with `config` when given (a reload changed the settings or rotated the
    // certificate). Queued publishes and live subscriptions carry over.
    void reconnect(const std::string& why, std::optional<uplink_config> config = std::nullopt);

    void publish(mqtt::publish msg, publish_handler done);
    // The same for a caller with many publishes in flight: the result goes to the on_publish_done()
    // handler with `tag`, so that no handler is stored per publish.
    void publish_tagged(mqtt::publish&& msg, std::uint64_t tag);
    void subscribe(std::vector<mqtt::subscription> subs, codes_handler done);
    void unsubscribe(std::vector<std::string> filters, codes_handler done);
    // Acknowledges an inbound QoS 1 message once every local recipient has it.
    void acknowledge(mqtt::inbound_ticket ticket);

    [[nodiscard]] link_state state() const noexcept { return state_; }
    [[nodiscard]] const state_event& last_event() const noexcept { return last_event_; }
    [[nodiscard]] const mqtt::session& session() const noexcept { return session_; }
    [[nodiscard]] const uplink_config& config() const noexcept { return config_; }
    [[nodiscard]] const uplink_counters& counters() const noexcept { return counters_; }

private:
    struct attempt;  // one connection attempt: its transport, timer and I/O state
    struct timer_set;
    // Why the current connection ends, as far as the session said before the transport closed,
    // and what takeover detection needs to know about it.
    struct ending {
        std::error_code error;  // empty: the transport's own error applies
        std::string reason;
        std::optional<std::uint8_t> reason_code;
        std::optional<mqtt::action::end_cause> cause;  // what the session saw
        bool suspect = false;           // a publish sent alone was left unacknowledged
        bool closed_by_broker = false;  // the broker closed the transport
    };

    uplink(boost::asio::io_context& io, uplink_config config);

    // Connecting, step by step: a WebSocket's upgrade request first when it needs one (signed,
    // with credentials that may take an exchange to get), then the transport.
    void start_attempt();
    void prepare_websocket_request();
    void open_attempt(websocket_request request);
    // Reconnects, signed anew, shortly before the credentials of signed_until_ expire.
    void arm_renewal();
    void on_connect_timeout(const std::shared_ptr<attempt>& a);
    void on_open(const std::shared_ptr<attempt>& a, std::error_code ec, open_step step);
    void on_established(const std::shared_ptr<attempt>& a);
    // The read loop and the write loop of an established attempt.
    void read_next(const std::shared_ptr<attempt>& a);
    void on_read(const std::shared_ptr<attempt>& a, std::error_code ec, std::size_t n);
    void read_failed(const std::shared_ptr<attempt>& a, std::error_code ec);
    void schedule_flush(const std::shared_ptr<attempt>& a);
    void flush(const std::shared_ptr<attempt>& a);
    void on_written(const std::shared_ptr<attempt>& a, std::error_code ec, std::size_t n);
    // The end of an attempt (nullptr: it never got a transport) and the next one.
    void end_attempt(const std::shared_ptr<attempt>& a, std::error_code error, std::string reason);
    void close_attempt(const std::shared_ptr<attempt>& a);
    void schedule_attempt(mqtt::time_point at);
    void detect_takeover(state_event& ev);

    void run_actions();
    void arm_session_timer();
    void on_session_timer();
    void set_state(state_event ev);
    void handle(mqtt::action::send& a);
    void handle(mqtt::action::close& a);
    void handle(mqtt::action::connected& a);
    void handle(mqtt::action::connect_failed& a);
    void handle(mqtt::action::disconnected& a);
    void handle(mqtt::action::publish_done& a);
    void handle(mqtt::action::subscribe_done& a);
    void handle(mqtt::action::unsubscribe_done& a);
    void handle(mqtt::action::message& a);
    void handle(mqtt::action::subscription_lost& a);
    void complete_codes(mqtt::op_id id, const std::vector<std::uint8_t>& codes);

    boost::asio::io_context& io_;
    uplink_config config_;
    mqtt::session session_;
    mqtt::backoff backoff_;
    std::shared_ptr<attempt> attempt_;
    std::unique_ptr<timer_set> timers_;
    link_state state_ = link_state::stopped;
    state_event last_event_;
    uplink_counters counters_;
    bool stopping_ = false;
    std::function<void()> stopped_;
    std::uint64_t request_generation_ = 0;  // which attempt a WebSocket request being prepared is for
    // When the credentials the current connection's WebSocket request was signed with expire.
    std::optional<std::chrono::system_clock::time_point> signed_until_;
    ending ending_;
    mqtt::takeover_detector takeover_;

    bool in_run_actions_ = false;
    std::vector<mqtt::session_action> actions_;  // the batch run_actions() handles; kept for its capacity

    std::map<mqtt::op_id, publish_handler> publish_waiters_;  // publish()'s; publish_tagged()'s go to on_publish_done_
    publish_handler on_publish_done_;
    std::map<mqtt::op_id, codes_handler> codes_waiters_;
    message_handler on_message_;
    state_handler on_state_;
    subscription_lost_handler on_subscription_lost_;
};

}  // namespace thingmux::uplink
