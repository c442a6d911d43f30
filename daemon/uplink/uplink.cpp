#include "daemon/uplink/uplink.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/random.h>

namespace thingmux::uplink {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

const char* to_string(link_state s) noexcept {
    switch (s) {
    case link_state::connecting: return "connecting";
    case link_state::connected: return "connected";
    case link_state::backing_off: return "backing-off";
    case link_state::failed: return "failed";
    case link_state::stopped: return "stopped";
    }
    return "unknown";
}

struct uplink::connection {
    connection(asio::io_context& io, std::shared_ptr<asio::ssl::context> c)
        : ctx(std::move(c)), stream(io, *ctx), resolver(io), connect_timer(io) {}

    std::shared_ptr<asio::ssl::context> ctx;  // must outlive the stream
    asio::ssl::stream<tcp::socket> stream;
    tcp::resolver resolver;
    asio::steady_timer connect_timer;
    std::vector<std::uint8_t> read_buf = std::vector<std::uint8_t>(16 * 1024);
    std::vector<std::uint8_t> pending;  // queued by the session, not yet handed to the socket
    std::vector<std::uint8_t> writing;  // the one outstanding write
    bool write_in_flight = false;
    bool flush_posted = false;  // a flush is queued for the end of this event-loop turn
    bool established = false;  // TLS handshake done, session running on it
    bool closed = false;
    bool close_after_flush = false;
    bool timed_out = false;
};

struct uplink::timer_set {
    explicit timer_set(asio::io_context& io) : session(io), reconnect(io) {}
    asio::steady_timer session;
    asio::steady_timer reconnect;
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
    if (conn_) {
        boost::system::error_code ignored;
        conn_->stream.lowest_layer().close(ignored);
    }
}

void uplink::start() {
    stopping_ = false;
    attempt();
}

void uplink::set_state(state_event ev) {
    state_ = ev.state;
    last_event_ = ev;
    if (on_state_) on_state_(last_event_);
}

void uplink::attempt() {
    if (stopping_) return;
    ++counters_.connect_attempts;
    backoff_.on_attempt(now());
    takeover_.on_attempt();
    set_state({.state = link_state::connecting});

    auto tls = config_.plaintext ? tls_context_result{.context = std::make_shared<asio::ssl::context>(
                                                          asio::ssl::context::tls_client)}
                                 : make_tls_context(config_.tls);
    if (!tls.context) {
        conn_.reset();
        pending_reason_ = tls.error;
        pending_fatal_ = tls.fatal;
        connection_lost(nullptr, {}, tls.fatal);
        return;
    }
    auto c = std::make_shared<connection>(io_, std::move(tls.context));
    conn_ = c;
    if (auto err = config_.plaintext ? std::string()
                                     : prepare_ssl(c->stream.native_handle(), config_.host, config_.tls.alpn);
        !err.empty()) {
        connection_lost(c, err, true);
        return;
    }

    auto self = shared_from_this();
    c->connect_timer.expires_after(config_.connect_timeout);
    c->connect_timer.async_wait([self, c](boost::system::error_code ec) {
        if (ec || c->established || c->closed) return;
        c->timed_out = true;
        boost::system::error_code ignored;
        c->stream.lowest_layer().close(ignored);  // fails the pending step with operation_aborted
    });
    const std::string where = config_.host + ":" + std::to_string(config_.port);
    auto fail = [self, c, where](const std::string& step, boost::system::error_code ec) {
        if (c->timed_out) {
            self->connection_lost(c, "timed out after " + std::to_string(self->config_.connect_timeout.count()) +
                                         " ms while " + step + " " + where, false);
        } else {
            self->connection_lost(c, "cannot " + step + " " + where + ": " + ec.message(), false);
        }
    };
    c->resolver.async_resolve(config_.host, std::to_string(config_.port),
        [self, c, fail](boost::system::error_code ec, const tcp::resolver::results_type& results) {
            if (c->closed) return;
            if (ec) return fail("resolve", ec);
            asio::async_connect(c->stream.lowest_layer(), results,
                [self, c, fail](boost::system::error_code ec2, const tcp::endpoint&) {
                    if (c->closed) return;
                    if (ec2) return fail("connect to", ec2);
                    boost::system::error_code ignored;
                    c->stream.lowest_layer().set_option(tcp::no_delay(true), ignored);
                    if (self->config_.plaintext) return self->on_established(c);
                    c->stream.async_handshake(asio::ssl::stream_base::client,
                        [self, c, fail](boost::system::error_code ec3) {
                            if (c->closed) return;
                            if (c->timed_out) return fail("TLS handshake with", ec3);
                            if (ec3) {
                                bool fatal = false;
                                auto why = describe_tls_error(ec3, c->stream.native_handle(), self->config_.host,
                                                              self->config_.tls, fatal);
                                return self->connection_lost(c, why, fatal);
                            }
                            self->on_established(c);
                        });
                });
        });
}

void uplink::on_established(const std::shared_ptr<connection>& c) {
    c->established = true;
    c->connect_timer.cancel();
    session_.on_transport_open(now());
    read(c);
    run_actions();
}

void uplink::read(const std::shared_ptr<connection>& c) {
    auto self = shared_from_this();
    auto on_read = [self, c](boost::system::error_code ec, std::size_t n) {
        if (c->closed) return;
        if (ec) return self->read_failed(c, ec);
        self->counters_.bytes_in += n;
        self->session_.on_bytes(std::span<const std::uint8_t>(c->read_buf.data(), n), now());
        if (!self->config_.plaintext) self->read_buffered_records(c);
        if (c->closed) return;
        self->run_actions();
        if (!c->closed) self->read(c);
    };
    if (config_.plaintext) c->stream.next_layer().async_read_some(asio::buffer(c->read_buf), std::move(on_read));
    else c->stream.async_read_some(asio::buffer(c->read_buf), std::move(on_read));
}

void uplink::read_failed(const std::shared_ptr<connection>& c, const boost::system::error_code& ec) {
    bool fatal = false;
    std::string why;
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated || ec == asio::error::connection_reset) {
        why = "broker closed the connection";
        closed_by_broker_ = true;
    } else
        why = describe_tls_error(ec, c->stream.native_handle(), config_.host, config_.tls, fatal);
    connection_lost(c, why, fatal);
}

// OpenSSL returns one TLS record per read, and a broker sends each PUBACK in a record of its own.
// Read by read, every record would cost an event-loop turn, and the results of a batch of
// publishes would leave for the apps one write each. So the records a socket read already brought
// are decrypted here, in the same turn. A partial record stays for the next asynchronous read;
// an error is reported as that read would report it.
void uplink::read_buffered_records(const std::shared_ptr<connection>& c) {
    SSL* ssl = c->stream.native_handle();
    // Records not yet pulled into the SSL object wait in the input side of the stream's BIO pair.
    const auto buffered = [ssl] { return SSL_has_pending(ssl) == 1 || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0; };
    while (!c->closed && session_.state() != mqtt::session_state::offline && buffered()) {
        ERR_clear_error();
        const int n = SSL_read(ssl, c->read_buf.data(), static_cast<int>(c->read_buf.size()));
        if (n > 0) {
            counters_.bytes_in += static_cast<std::size_t>(n);
            session_.on_bytes(std::span<const std::uint8_t>(c->read_buf.data(), static_cast<std::size_t>(n)), now());
            continue;
        }
        switch (SSL_get_error(ssl, n)) {
        case SSL_ERROR_ZERO_RETURN: return read_failed(c, asio::error::eof);  // close_notify
        case SSL_ERROR_SSL:
            return read_failed(c, boost::system::error_code(static_cast<int>(ERR_get_error()),
                                                            asio::error::get_ssl_category()));
        default: return;  // the rest of the record has not arrived yet
        }
    }
}

void uplink::flush(const std::shared_ptr<connection>& c) {
    if (c->closed || c->write_in_flight || !c->established) return;
    if (c->pending.empty()) {
        if (c->close_after_flush) connection_lost(c, pending_reason_.empty() ? "closed" : pending_reason_, false);
        return;
    }
    // Everything queued so far goes out in one write: fewer TLS records and syscalls under load.
    c->writing.swap(c->pending);
    c->pending.clear();
    c->write_in_flight = true;
    auto self = shared_from_this();
    auto on_written = [self, c](boost::system::error_code ec, std::size_t n) {
        c->write_in_flight = false;
        if (c->closed) return;
        if (ec) return self->connection_lost(c, "write to broker failed: " + ec.message(), false);
        self->counters_.bytes_out += n;
        c->writing.clear();
        self->flush(c);
    };
    if (config_.plaintext) asio::async_write(c->stream.next_layer(), asio::buffer(c->writing), std::move(on_written));
    else asio::async_write(c->stream, asio::buffer(c->writing), std::move(on_written));
}

void uplink::close_transport(const std::shared_ptr<connection>& c) {
    c->closed = true;
    c->connect_timer.cancel();
    boost::system::error_code ignored;
    c->resolver.cancel();
    c->stream.lowest_layer().shutdown(tcp::socket::shutdown_both, ignored);
    c->stream.lowest_layer().close(ignored);
}

void uplink::connection_lost(const std::shared_ptr<connection>& c, std::string reason, bool fatal) {
    if (c) {
        if (c->closed) return;
        close_transport(c);
        if (c->established) {
            session_.on_transport_closed(now(), reason);
            run_actions();
        }
    }
    if (c && conn_ != c) return;  // an older connection; the current one owns the state
    conn_.reset();

    // A reason the session recorded (CONNACK refusal, broker DISCONNECT, dead link) is more
    // precise than the transport's "connection closed".
    state_event ev;
    ev.reason = pending_reason_.empty() ? std::move(reason) : std::move(pending_reason_);
    ev.fatal = fatal || pending_fatal_;
    ev.reason_code = pending_code_;
    timers_->session.cancel();
    timers_->session_armed.reset();
    detect_takeover(ev);
    pending_reason_.clear();
    pending_fatal_ = false;
    pending_code_.reset();
    pending_cause_.reset();
    pending_suspect_ = false;
    closed_by_broker_ = false;

    if (stopping_) {
        ev.state = link_state::stopped;
        set_state(ev);
        if (auto done = std::exchange(stopped_, {})) done();
        return;
    }
    const auto t = now();
    const auto next = backoff_.next_attempt(t);
    ev.state = ev.fatal ? link_state::failed : link_state::backing_off;
    ev.retry_in = std::chrono::duration_cast<std::chrono::milliseconds>(next - t);
    set_state(ev);
    timers_->reconnect.expires_at(next);
    auto self = shared_from_this();
    timers_->reconnect.async_wait([self](boost::system::error_code ec) {
        if (!ec) self->attempt();
    });
}

void uplink::detect_takeover(state_event& ev) {
    using kind = mqtt::takeover_detector::end_kind;
    const bool said_so = ev.reason_code == mqtt::reason::session_taken_over;
    // Only a close by the broker that nothing of ours explains may be a takeover: not an error
    // of ours, a DISCONNECT with another reason, a dead link, a TLS failure or a publish the
    // broker keeps refusing.
    const bool unexplained = closed_by_broker_ && pending_cause_ == mqtt::action::end_cause::closed && !pending_suspect_;
    const kind k = said_so ? kind::taken_over : unexplained ? kind::closed : kind::explained;
    if (!takeover_.on_end(now(), k) || stopping_) return;
    ev.takeover = true;
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
    if (conn_) schedule_flush(conn_);
    arm_session_timer();
}

void uplink::schedule_flush(const std::shared_ptr<connection>& c) {
    // Writing at the end of the event-loop turn, not per packet, puts every packet queued by
    // this turn's handlers (a batch of app publishes, the PUBACKs for a read's worth of
    // messages) into one TLS record and one send(). While a write is in flight its completion
    // flushes what queued meanwhile.
    if (c->closed || c->write_in_flight || c->flush_posted) return;
    c->flush_posted = true;
    asio::post(io_, [self = shared_from_this(), c] {
        c->flush_posted = false;
        self->flush(c);
    });
}

void uplink::handle(mqtt::action::send& a) {
    if (!conn_ || conn_->closed) return;
    if (conn_->pending.empty()) conn_->pending = std::move(a.bytes);
    else conn_->pending.insert(conn_->pending.end(), a.bytes.begin(), a.bytes.end());
}

void uplink::handle(mqtt::action::close& a) {
    if (pending_reason_.empty()) pending_reason_ = std::move(a.reason);
    if (conn_) conn_->close_after_flush = true;
}

void uplink::handle(mqtt::action::connected& a) {
    backoff_.on_connected(now());
    takeover_.on_connected(now());
    ++counters_.connects;
    set_state({.state = link_state::connected, .session_present = a.session_present});
}

void uplink::handle(mqtt::action::connect_failed& a) {
    pending_reason_ = "broker refused connection: " + a.reason;
    pending_fatal_ = a.fatal;
    pending_code_ = a.reason_code;
}

void uplink::handle(mqtt::action::disconnected& a) {
    if (pending_reason_.empty()) pending_reason_ = std::move(a.reason);
    if (a.reason_code) pending_code_ = a.reason_code;
    pending_cause_ = a.cause;
    pending_suspect_ = a.suspect.has_value();
}

void uplink::handle(mqtt::action::publish_done& a) {
    if (a.error == mqtt::local_error::none && a.reason_code < 0x80) ++counters_.messages_out;
    if (auto it = publish_waiters_.find(a.id); it != publish_waiters_.end()) {
        auto h = std::move(it->second);
        publish_waiters_.erase(it);
        if (h) h(a);
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
    auto self = shared_from_this();
    timers_->session.async_wait([self](boost::system::error_code ec) {
        if (ec) return;
        self->timers_->session_armed.reset();
        self->session_.on_tick(now());
        self->run_actions();
    });
}

void uplink::reconnect(const std::string& why, std::optional<uplink_config> config) {
    if (stopping_) return;
    if (conn_) connection_lost(conn_, "reconnecting: " + why, false);
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
               .retry_in = std::chrono::duration_cast<std::chrono::milliseconds>(next - t)});
    timers_->reconnect.expires_at(next);
    auto self = shared_from_this();
    timers_->reconnect.async_wait([self](boost::system::error_code ec) {
        if (!ec) self->attempt();
    });
}

void uplink::publish(mqtt::publish msg, publish_handler done) {
    const auto id = session_.publish(std::move(msg), now());
    publish_waiters_.emplace(id, std::move(done));
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
    timers_->reconnect.cancel();
    const bool online = session_.state() == mqtt::session_state::online;
    if (online) session_.disconnect(now());  // DISCONNECT goes out before the transport closes
    session_.abandon();
    run_actions();
    if (conn_ && !online) {
        connection_lost(conn_, "stopped", false);
    } else if (!conn_) {
        set_state({.state = link_state::stopped, .reason = "stopped"});
        if (auto d = std::exchange(stopped_, {})) asio::post(io_, std::move(d));
    }
}

}  // namespace thingmux::uplink
