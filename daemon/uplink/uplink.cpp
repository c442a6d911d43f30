#include "daemon/uplink/uplink.hpp"

#include "common/link_state.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/random.h>

namespace thingmux::uplink {

namespace asio = boost::asio;

const char* to_string(link_state s) noexcept { return link_state_label(s); }

struct uplink::attempt {
    attempt(asio::io_context& io, std::shared_ptr<transport> t) : link(std::move(t)), connect_timer(io) {}

    std::shared_ptr<transport> link;
    asio::steady_timer connect_timer;
    std::vector<std::uint8_t> read_buf = std::vector<std::uint8_t>(16 * 1024);
    std::vector<std::uint8_t> pending;  // queued by the session, not yet handed to the transport
    std::vector<std::uint8_t> writing;  // the one outstanding write
    asio::const_buffer writing_buffer;  // `writing`, as the write's buffer sequence
    bool write_in_flight = false;
    bool flush_posted = false;  // a flush is queued for the end of this event-loop turn
    bool established = false;  // transport open, session running on it
    bool closed = false;
    bool close_after_flush = false;
    bool timed_out = false;
};

struct uplink::timer_set {
    explicit timer_set(asio::io_context& io) : session(io), reconnect(io), renewal(io) {}
    asio::steady_timer session;
    asio::steady_timer reconnect;
    asio::steady_timer renewal;  // a connection signed with expiring credentials: sign anew
    std::optional<mqtt::time_point> session_armed;  // when `session` is set to fire, if it is
};

namespace {

std::uint64_t os_random_seed() {
    std::uint64_t seed = 0;
    // The CSPRNG seed keeps a fleet of gateways from reconnecting in lock-step.
    if (::getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed))
        seed = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    return seed;
}

uplink_config with_defaults(uplink_config c) {
    if (c.session.client_id.empty()) c.session.client_id = c.thing_name;
    return c;
}

mqtt::time_point now() { return mqtt::clock::now(); }

// A session shorter than the backoff's "stable" age counts toward a takeover row.
mqtt::takeover_detector::config takeover_settings(const uplink_config& c) {
    return {.threshold = 3, .stable_after = c.backoff.stable_after};
}

// Where a connection goes, as messages name it: "HOST:PORT", "HOST:PORT through proxy URL".
std::string destination(const uplink_config& c) {
    if (c.transport == transport_kind::unix_socket) return c.host;
    return thingmux::uplink::destination(c.host, c.port, c.proxy ? &*c.proxy : nullptr);
}

}  // namespace

std::shared_ptr<uplink> uplink::create(asio::io_context& io, uplink_config config) {
    return std::shared_ptr<uplink>(new uplink(io, std::move(config)));
}

uplink::uplink(asio::io_context& io, uplink_config config)
    : io_(io),
      config_(with_defaults(std::move(config))),
      session_(config_.session),
      backoff_(config_.backoff, os_random_seed()),
      timers_(std::make_unique<timer_set>(io)),
      takeover_(takeover_settings(config_)) {}

uplink::~uplink() {
    if (attempt_) attempt_->link->close();
}

void uplink::start() {
    stopping_ = false;
    start_attempt();
}

void uplink::set_state(state_event ev) {
    state_ = ev.state;
    last_event_ = ev;
    if (on_state_) on_state_(last_event_);
}

// ---- connecting ---------------------------------------------------------------------------

void uplink::start_attempt() {
    if (stopping_) return;
    ++counters_.connect_attempts;
    backoff_.on_attempt(now());
    takeover_.on_attempt();
    set_state({.state = link_state::connecting});
    if (config_.custom_authorizer) {
        // Read now, so that a fixed or rotated token is used at the next attempt; the secrets go
        // to the session's CONNECT only, never into config_ (which the daemon shows).
        auto login = load_mqtt_login(*config_.custom_authorizer);
        if (login.error) return end_attempt(nullptr, login.error, std::move(login.detail));
        auto with_login = config_.session;
        with_login.username = std::move(login.username);
        with_login.password = std::move(login.password);
        session_.reconfigure(std::move(with_login));
    }

    if (config_.transport == transport_kind::websocket) return prepare_websocket_request();
    open_attempt({});
}

void uplink::prepare_websocket_request() {
    signed_until_.reset();
    websocket_request request;
    if (config_.custom_authorizer) {
        // The custom authorizer's values as upgrade headers, read now like the MQTT login.
        auto login = load_websocket_login(*config_.custom_authorizer);
        if (login.error) return end_attempt(nullptr, login.error, std::move(login.detail));
        for (auto& p : login.parameters) request.headers.emplace_back(std::move(p.name), std::move(p.value));
        request.refusal_advice = "the custom authorizer " + config_.custom_authorizer->name +
                                 " refused the token (custom_authorizer: token and signature files)";
    }
    if (!config_.websocket_request) return open_attempt(std::move(request));
    // A request that waits (the credentials provider) belongs to this attempt only: a reconnect
    // or stop() meanwhile makes its answer stale.
    const auto generation = ++request_generation_;
    config_.websocket_request(io_, config_.host, config_.port,
                              [weak = weak_from_this(), generation](websocket_request_result r) {
                                  const auto self = weak.lock();
                                  if (!self || self->stopping_ || generation != self->request_generation_) return;
                                  if (r.error) return self->end_attempt(nullptr, r.error, std::move(r.detail));
                                  self->signed_until_ = r.expires;
                                  self->open_attempt(std::move(r.request));
                              });
}

void uplink::open_attempt(websocket_request request) {
    auto made = make_transport(io_, config_.transport, config_.host, config_.tls,
                               config_.proxy ? &*config_.proxy : nullptr, std::move(request));
    if (!made.link) return end_attempt(nullptr, made.error, std::move(made.detail));
    auto a = std::make_shared<attempt>(io_, std::move(made.link));
    attempt_ = a;
    auto self = shared_from_this();
    a->connect_timer.expires_after(config_.connect_timeout);
    a->connect_timer.async_wait([self, a](boost::system::error_code ec) {
        if (!ec) self->on_connect_timeout(a);
    });
    // Handlers the transport keeps hold the uplink and the attempt weakly: the attempt holds the
    // transport, so strong ones would keep all three alive for ever if the io_context went away
    // with the operation pending. The current attempt is held by attempt_.
    a->link->async_open(config_.host, config_.port,
                        [weak = weak_from_this(), wa = std::weak_ptr(a)](std::error_code ec, open_step step) {
                            const auto me = weak.lock();
                            if (const auto at = wa.lock(); me && at) me->on_open(at, ec, step);
                        });
}

void uplink::on_connect_timeout(const std::shared_ptr<attempt>& a) {
    if (a->established || a->closed) return;
    a->timed_out = true;
    a->link->close();  // fails the pending step with operation_aborted
}

void uplink::on_open(const std::shared_ptr<attempt>& a, std::error_code ec, open_step step) {
    if (a->closed) return;
    if (!ec) return on_established(a);
    const std::string where = destination(config_);
    if (a->timed_out) {
        return end_attempt(a, errc::timed_out,
                           "timed out after " + std::to_string(config_.connect_timeout.count()) + " ms while " +
                               step_name(*a->link, step) + " " + where);
    }
    end_attempt(a, ec, describe_open_failure(*a->link, ec, step, where));
}

void uplink::on_established(const std::shared_ptr<attempt>& a) {
    a->established = true;
    a->connect_timer.cancel();
    session_.on_transport_open(now());
    read_next(a);
    run_actions();
}

// ---- reading and writing ------------------------------------------------------------------

void uplink::read_next(const std::shared_ptr<attempt>& a) {
    a->link->async_read_some(
        asio::buffer(a->read_buf),
        [weak = weak_from_this(), wa = std::weak_ptr(a)](std::error_code ec, std::size_t n) {
            const auto self = weak.lock();
            if (const auto at = wa.lock(); self && at) self->on_read(at, ec, n);
        });
}

void uplink::on_read(const std::shared_ptr<attempt>& a, std::error_code ec, std::size_t n) {
    if (a->closed) return;
    if (ec) return read_failed(a, ec);
    counters_.bytes_in += n;
    session_.on_bytes(std::span<const std::uint8_t>(a->read_buf.data(), n), now());
    run_actions();
    if (!a->closed) read_next(a);
}

void uplink::read_failed(const std::shared_ptr<attempt>& a, std::error_code ec) {
    if (ec == errc::closed_by_broker) {
        ending_.closed_by_broker = true;
        return end_attempt(a, ec, "broker closed the connection");
    }
    end_attempt(a, ec, a->link->describe(ec));
}

void uplink::schedule_flush(const std::shared_ptr<attempt>& a) {
    // Writing at the end of the event-loop turn, not per packet, puts every packet queued by
    // this turn's handlers (a batch of app publishes, the PUBACKs for a read's worth of
    // messages) into one TLS record and one send(). While a write is in flight its completion
    // flushes what queued meanwhile.
    if (a->closed || a->write_in_flight || a->flush_posted) return;
    a->flush_posted = true;
    asio::post(io_, [self = shared_from_this(), a] {
        a->flush_posted = false;
        self->flush(a);
    });
}

void uplink::flush(const std::shared_ptr<attempt>& a) {
    if (a->closed || a->write_in_flight || !a->established) return;
    if (a->pending.empty()) {
        if (a->close_after_flush)
            end_attempt(a, errc::session_ended, ending_.reason.empty() ? "closed" : ending_.reason);
        return;
    }
    // Everything queued so far goes out in one write: fewer TLS records and syscalls under load.
    a->writing.swap(a->pending);
    a->pending.clear();
    a->write_in_flight = true;
    a->writing_buffer = asio::buffer(a->writing);
    a->link->async_write(
        std::span(&a->writing_buffer, 1),
        [weak = weak_from_this(), wa = std::weak_ptr(a)](std::error_code ec, std::size_t n) {
            const auto self = weak.lock();
            if (const auto at = wa.lock(); self && at) self->on_written(at, ec, n);
        });
}

void uplink::on_written(const std::shared_ptr<attempt>& a, std::error_code ec, std::size_t n) {
    a->write_in_flight = false;
    if (a->closed) return;
    if (ec) return end_attempt(a, ec, "write to broker failed: " + ec.message());
    counters_.bytes_out += n;
    a->writing.clear();
    flush(a);
}

// ---- the end of an attempt ----------------------------------------------------------------

void uplink::close_attempt(const std::shared_ptr<attempt>& a) {
    timers_->renewal.cancel();
    a->closed = true;
    a->connect_timer.cancel();
    a->link->close();
}

void uplink::end_attempt(const std::shared_ptr<attempt>& a, std::error_code error, std::string reason) {
    if (a) {
        if (a->closed) return;
        close_attempt(a);
        if (a->established) {
            session_.on_transport_closed(now(), reason);
            run_actions();
        }
    }
    if (a && attempt_ != a) return;  // an older attempt; the current one owns the state
    attempt_.reset();

    // A reason the session recorded (CONNACK refusal, broker DISCONNECT, dead link) is more
    // precise than the transport's "connection closed".
    state_event ev;
    const bool recorded = !ending_.reason.empty();
    ev.reason = recorded ? std::move(ending_.reason) : std::move(reason);
    ev.error = ending_.error ? ending_.error : error;
    ev.fatal = is_fatal(error) || is_fatal(ending_.error);
    ev.reason_code = ending_.reason_code;
    timers_->session.cancel();
    timers_->session_armed.reset();
    detect_takeover(ev);
    ending_ = {};

    if (stopping_) {
        ev.state = link_state::stopped;
        ev.error = errc::stopped;
        set_state(ev);
        if (auto done = std::exchange(stopped_, {})) done();
        return;
    }
    const auto t = now();
    const auto next = backoff_.next_attempt(t);
    ev.state = ev.fatal ? link_state::failed : link_state::backing_off;
    ev.retry_in = std::chrono::duration_cast<std::chrono::milliseconds>(next - t);
    set_state(ev);
    schedule_attempt(next);
}

void uplink::schedule_attempt(mqtt::time_point at) {
    timers_->reconnect.expires_at(at);
    timers_->reconnect.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->start_attempt();
    });
}

void uplink::detect_takeover(state_event& ev) {
    using kind = mqtt::takeover_detector::end_kind;
    const bool said_so = ev.reason_code == mqtt::reason::session_taken_over;
    // Only a close by the broker that nothing of ours explains may be a takeover: not an error
    // of ours, a DISCONNECT with another reason, a dead link, a TLS failure or a publish the
    // broker keeps refusing.
    const bool unexplained =
        ending_.closed_by_broker && ending_.cause == mqtt::action::end_cause::closed && !ending_.suspect;
    const kind k = said_so ? kind::taken_over : unexplained ? kind::closed : kind::explained;
    if (!takeover_.on_end(now(), k) || stopping_) return;
    ev.takeover = true;
    ev.error = errc::client_id_in_use;
    const auto& id = config_.session.client_id;
    const auto window = std::chrono::duration_cast<std::chrono::seconds>(takeover_.settings().stable_after).count();
    ev.reason = "client ID '" + id + "' is in use by another connection (" +
                (said_so ? std::string("the broker says the session was taken over")
                         : "most likely: the broker closed " + std::to_string(takeover_.row()) +
                               " sessions in a row within " + std::to_string(window) +
                               " s of accepting them, giving no reason, with no error of ours; a broker restarting "
                               "again and again does that too") +
                "): another process or device connects as '" + id +
                "'; give it its own identity or let it publish through thingmuxd. Last error: " + ev.reason;
}

void uplink::run_actions() {
    // Handlers may call back into publish()/subscribe(), which land here again: the outer call
    // keeps draining, so actions are handled once and in order.
    if (in_run_actions_) return;
    in_run_actions_ = true;
    for (session_.drain_actions(actions_); !actions_.empty(); session_.drain_actions(actions_)) {
        for (auto& a : actions_) {
            std::visit([this](auto& act) { handle(act); }, a);
        }
    }
    in_run_actions_ = false;
    if (attempt_) schedule_flush(attempt_);
    arm_session_timer();
}

void uplink::handle(mqtt::action::send& a) {
    if (attempt_ && !attempt_->closed) {
        auto& pending = attempt_->pending;
        if (pending.empty())
            pending.swap(a.bytes);  // a.bytes now holds pending's empty buffer
        else
            pending.insert(pending.end(), a.bytes.begin(), a.bytes.end());
    }
    // The session encodes its next packets into it: no buffer is allocated per write.
    session_.recycle(std::move(a.bytes));
}

void uplink::handle(mqtt::action::close& a) {
    if (ending_.reason.empty()) {
        ending_.reason = std::move(a.reason);
        ending_.error = errc::session_ended;
    }
    if (attempt_) attempt_->close_after_flush = true;
}

void uplink::handle(mqtt::action::connected& a) {
    backoff_.on_connected(now());
    takeover_.on_connected(now());
    ++counters_.connects;
    set_state({.state = link_state::connected, .session_present = a.session_present});
    arm_renewal();
}

std::optional<std::chrono::system_clock::duration> renewal_delay(std::chrono::system_clock::time_point expires,
                                                                 std::chrono::system_clock::time_point now) {
    using namespace std::chrono_literals;
    const auto remaining = expires - now;
    const auto delay = remaining - std::min<std::chrono::system_clock::duration>(150s, remaining / 8);
    if (delay < 1s) return std::nullopt;
    return delay;
}

void uplink::arm_renewal() {
    if (!signed_until_) return;
    const auto delay = renewal_delay(*signed_until_, std::chrono::system_clock::now());
    if (!delay) return;  // too close to the expiry to gain anything: the broker decides
    timers_->renewal.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(*delay));
    timers_->renewal.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
        if (const auto self = weak.lock(); self && !ec)
            self->reconnect("the AWS credentials this connection was signed with expire soon; signing with fresh ones");
    });
}

void uplink::handle(mqtt::action::connect_failed& a) {
    ending_.reason = "broker refused connection: " + a.reason;
    ending_.error = a.fatal ? errc::broker_refused_permanently : errc::broker_refused;
    ending_.reason_code = a.reason_code;
    // MQTT 5 0x86/0x87, 3.1.1 return codes 4/5 (mapped): the authorizer's Lambda said no.
    const bool refused_login =
        a.reason_code == mqtt::reason::not_authorized || a.reason_code == mqtt::reason::bad_user_name_or_password;
    if (config_.custom_authorizer && refused_login) {
        ending_.reason = denied_message(*config_.custom_authorizer, a.reason);
        ending_.error = errc::custom_authorizer_denied;
    }
}

void uplink::handle(mqtt::action::disconnected& a) {
    if (ending_.reason.empty()) {
        ending_.reason = std::move(a.reason);
        // A close the session merely saw (cause `closed`) keeps the transport's error.
        if (a.cause != mqtt::action::end_cause::closed) ending_.error = errc::session_ended;
    }
    if (a.reason_code) ending_.reason_code = a.reason_code;
    ending_.cause = a.cause;
    ending_.suspect = a.suspect.has_value();
}

void uplink::handle(mqtt::action::publish_done& a) {
    if (a.error == mqtt::local_error::none && a.reason_code < 0x80) ++counters_.messages_out;
    if (auto it = publish_waiters_.find(a.id); it != publish_waiters_.end()) {
        auto h = std::move(it->second);
        publish_waiters_.erase(it);
        if (h) h(a);
    } else if (on_publish_done_) {
        on_publish_done_(a);
    }
}

void uplink::complete_codes(mqtt::op_id id, const std::vector<std::uint8_t>& codes) {
    if (auto it = codes_waiters_.find(id); it != codes_waiters_.end()) {
        auto h = std::move(it->second);
        codes_waiters_.erase(it);
        if (h) h(codes);
    }
}

void uplink::handle(mqtt::action::subscribe_done& a) { complete_codes(a.id, a.reason_codes); }
void uplink::handle(mqtt::action::unsubscribe_done& a) { complete_codes(a.id, a.reason_codes); }

void uplink::handle(mqtt::action::message& a) {
    ++counters_.messages_in;
    if (on_message_) {
        on_message_(a.msg, a.ticket);
    } else if (a.ticket) {
        session_.acknowledge(*a.ticket, now());  // nobody to hand it to: do not make the broker redeliver forever
    }
}

void uplink::handle(mqtt::action::subscription_lost& a) {
    if (on_subscription_lost_) on_subscription_lost_(a.filter, a.reason_code);
}

void uplink::arm_session_timer() {
    const auto deadline = session_.next_deadline();
    auto& armed = timers_->session_armed;
    if (!deadline) {
        if (armed) timers_->session.cancel();
        armed.reset();
        return;
    }
    // Sending moves the keep-alive deadline later with every packet. Re-arming the timer for each
    // would cost a timerfd update and a cancelled wait per packet; a timer that fires before the
    // deadline is harmless (on_tick checks the real deadlines, and this re-arms it).
    if (armed && *armed <= *deadline) return;
    armed = *deadline;
    timers_->session.expires_at(*deadline);
    timers_->session.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->on_session_timer();
    });
}

void uplink::on_session_timer() {
    timers_->session_armed.reset();
    session_.on_tick(now());
    run_actions();
}

void uplink::reconnect(const std::string& why, std::optional<uplink_config> config) {
    if (stopping_) return;
    ++request_generation_;  // a request still being prepared is for the attempt that ends here
    // The attempt ends without announcing a state of its own: the one below says why, with the
    // delay that holds (a second "backing off" with the backoff's delay reached D-Bus, the apps
    // and the log too). The attempt end_attempt() schedules is replaced below.
    if (attempt_) {
        auto announce = std::exchange(on_state_, {});
        end_attempt(attempt_, errc::reconnect_requested, "reconnecting: " + why);
        on_state_ = std::move(announce);
    }
    if (config) {
        config_ = with_defaults(std::move(*config));
        session_.reconfigure(config_.session);
        backoff_.reconfigure(config_.backoff);
        takeover_.reconfigure(takeover_settings(config_));
    }
    // A settings change deserves a prompt attempt, not the backoff a failing setup earned; the
    // one-CONNECT-per-second pacing still applies.
    backoff_.reset();
    takeover_.reset();
    const auto t = now();
    const auto next = backoff_.next_attempt(t);
    timers_->reconnect.cancel();
    set_state({.state = link_state::backing_off,
               .reason = "reconnecting: " + why,
               .error = errc::reconnect_requested,
               .retry_in = std::chrono::duration_cast<std::chrono::milliseconds>(next - t)});
    schedule_attempt(next);
}

void uplink::publish(mqtt::publish msg, publish_handler done) {
    const auto id = session_.publish(std::move(msg), now());
    publish_waiters_.emplace(id, std::move(done));
    run_actions();
}

void uplink::publish_tagged(mqtt::publish&& msg, std::uint64_t tag) {
    static_cast<void>(session_.publish(std::move(msg), now(), tag));
    run_actions();
}

void uplink::subscribe(std::vector<mqtt::subscription> subs, codes_handler done) {
    const auto id = session_.subscribe(std::move(subs), now());
    codes_waiters_.emplace(id, std::move(done));
    run_actions();
}

void uplink::unsubscribe(std::vector<std::string> filters, codes_handler done) {
    const auto id = session_.unsubscribe(std::move(filters), now());
    codes_waiters_.emplace(id, std::move(done));
    run_actions();
}

void uplink::acknowledge(mqtt::inbound_ticket ticket) {
    session_.acknowledge(ticket, now());
    run_actions();
}

void uplink::stop(std::function<void()> done) {
    stopping_ = true;
    stopped_ = std::move(done);
    ++request_generation_;
    timers_->reconnect.cancel();
    timers_->renewal.cancel();
    const bool online = session_.state() == mqtt::session_state::online;
    if (online) session_.disconnect(now());  // DISCONNECT goes out before the transport closes
    session_.abandon();
    run_actions();
    if (attempt_ && !online) {
        end_attempt(attempt_, errc::stopped, "stopped");
    } else if (!attempt_) {
        set_state({.state = link_state::stopped, .reason = "stopped", .error = errc::stopped});
        if (auto d = std::exchange(stopped_, {})) asio::post(io_, std::move(d));
    }
}

}  // namespace thingmux::uplink
