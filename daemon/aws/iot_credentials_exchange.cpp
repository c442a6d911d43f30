#include "daemon/aws/iot_credentials_exchange.hpp"

#include "common/iot_credentials_response.hpp"
#include "common/printable.hpp"
#include "common/utc_time.hpp"
#include "daemon/uplink/error.hpp"
#include "daemon/uplink/transport_stream.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>


namespace thingmux::aws {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using uplink::errc;

namespace {

// The answer's status line and headers: AWS sends a few hundred bytes.
constexpr std::uint32_t max_head_bytes = 8 * 1024;
// Bytes read from the connection at a time (the parser moves the body out of it as it goes).
constexpr std::size_t read_buffer_bytes = 16 * 1024;


// What the credentials provider's own words mean for the uplink (retry or not).
std::error_code uplink_condition(iot_credentials::errc e) {
    switch (e) {
        case iot_credentials::errc::refused:
            return errc::credentials_provider_refused;
        case iot_credentials::errc::unavailable:
            return errc::credentials_provider_unavailable;
        default:
            return errc::credentials_provider_bad_answer;
    }
}

// Why Beast could not read an answer, for people.
std::string read_failure(const boost::system::error_code& ec) {
    if (ec == http::error::body_limit)
        return "its answer's body is larger than " + std::to_string(iot_credentials::max_body_bytes / 1024) + " KiB";
    if (ec == http::error::header_limit)
        return "its answer's head is larger than " + std::to_string(max_head_bytes / 1024) + " KiB";
    if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof)
        return "it closed the connection before its answer was complete";
    return "its answer is not HTTP/1.1 (" + ec.message() + ")";
}

}  // namespace

struct iot_credentials_exchange::state {
    state(asio::io_context& context, const iot_credentials_settings& s, done_handler d)
        : io(context), settings(s), done(std::move(d)), timer(context) {
        settings.tls.peer = "the AWS IoT credentials provider";
        settings.tls.alpn.clear();
    }

    asio::io_context& io;
    iot_credentials_settings settings;
    done_handler done;
    asio::steady_timer timer;
    std::shared_ptr<uplink::transport> link;
    std::optional<uplink::transport_stream> stream;
    http::request<http::empty_body> request;
    http::response_parser<http::string_body> parser;
    boost::beast::flat_buffer buffer{read_buffer_bytes};
    std::string step = "connecting to";  // for the timeout's message
    bool timed_out = false;
    bool finished = false;
};

std::string iot_credentials_exchange::peer_name(const iot_credentials_settings& settings) {
    return "the AWS IoT credentials provider " +
           uplink::destination(settings.endpoint, settings.port, settings.proxy ? &*settings.proxy : nullptr);
}

std::shared_ptr<iot_credentials_exchange> iot_credentials_exchange::start(asio::io_context& io,
                                                                          const iot_credentials_settings& settings,
                                                                          done_handler done) {
    std::shared_ptr<iot_credentials_exchange> self(new iot_credentials_exchange(io, settings, std::move(done)));
    asio::post(io, [self] { self->begin(); });
    return self;
}

iot_credentials_exchange::iot_credentials_exchange(asio::io_context& io, const iot_credentials_settings& settings,
                                                   done_handler done)
    : s_(std::make_unique<state>(io, settings, std::move(done))) {}

iot_credentials_exchange::~iot_credentials_exchange() = default;

void iot_credentials_exchange::begin() {
    if (s_->finished) return;
    const auto& cfg = s_->settings;
    if (!iot_credentials::valid_role_alias(cfg.role_alias))
        return fail(errc::credentials_provider_refused,
                    "the role alias \"" + text::printable(cfg.role_alias, 64) +
                        "\" is not one AWS IoT accepts (1 to 128 of A-Z a-z 0-9 _ = , @ -): fix "
                        "iot_credentials_provider.role_alias");
    if (!iot_credentials::valid_thing_name(cfg.thing_name))
        return fail(errc::credentials_provider_refused,
                    "the thing name \"" + text::printable(cfg.thing_name, 64) +
                        "\" is not one AWS IoT accepts (1 to 128 of A-Z a-z 0-9 : _ -)");
    auto made = uplink::make_transport(s_->io, uplink::transport_kind::tls, cfg.endpoint, cfg.tls,
                                       cfg.proxy ? &*cfg.proxy : nullptr);
    if (!made.link) return fail(made.error, std::move(made.detail));
    s_->link = std::move(made.link);
    s_->stream.emplace(s_->io, s_->link);

    s_->timer.expires_after(cfg.timeout);
    s_->timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
        if (const auto self = weak.lock(); self && !ec) self->on_timeout();
    });
    s_->link->async_open(
        cfg.endpoint, cfg.port,
        [self = shared_from_this()](std::error_code ec, uplink::open_step step) { self->on_open(ec, step); });
}

void iot_credentials_exchange::on_open(std::error_code ec, uplink::open_step step) {
    if (s_->finished) return;
    const auto& cfg = s_->settings;
    if (ec) {
        s_->step = uplink::step_name(*s_->link, step);
        if (s_->timed_out) return on_timeout();
        return fail(ec, uplink::describe_open_failure(*s_->link, ec, step, peer_name(cfg)));
    }
    auto& req = s_->request;
    req.method(http::verb::get);
    req.target(iot_credentials::request_target(cfg.role_alias));
    req.version(11);
    req.set(http::field::host, cfg.port == 443 ? cfg.endpoint : proxy::authority(cfg.endpoint, cfg.port));
    req.set("x-amzn-iot-thingname", cfg.thing_name);
    req.set(http::field::accept, "application/json");
    req.set(http::field::user_agent, "thingmux");
    req.set(http::field::connection, "close");
    s_->step = "sending the request to";
    http::async_write(*s_->stream, req, [self = shared_from_this()](boost::system::error_code wec, std::size_t) {
        self->on_written(wec);
    });
}

void iot_credentials_exchange::on_written(std::error_code ec) {
    if (s_->finished) return;
    if (s_->timed_out) return on_timeout();
    if (ec) return fail(ec, failure_after_handshake(ec));
    s_->step = "waiting for the answer of";
    s_->parser.header_limit(max_head_bytes);
    s_->parser.body_limit(iot_credentials::max_body_bytes);
    http::async_read(*s_->stream, s_->buffer, s_->parser,
                     [self = shared_from_this()](boost::system::error_code rec, std::size_t) { self->on_read(rec); });
}

void iot_credentials_exchange::on_read(std::error_code ec) {
    if (s_->finished) return;
    if (s_->timed_out) return on_timeout();
    const std::string who = peer_name(s_->settings);
    if (ec) {
        const boost::system::error_code bec = ec;
        if (bec.category() == make_error_code(http::error::end_of_stream).category() ||  // Beast's HTTP errors
            bec == asio::error::eof)
            return fail(errc::credentials_provider_bad_answer, who + ": " + read_failure(bec));
        return fail(ec, failure_after_handshake(ec));
    }
    const auto& response = s_->parser.get();
    const auto answer = iot_credentials::parse_answer(static_cast<int>(response.result_int()), response.body());
    if (!answer.value) {
        const auto reason = static_cast<iot_credentials::errc>(answer.error.value());
        const bool answered_no = reason == iot_credentials::errc::refused ||
                                 reason == iot_credentials::errc::unavailable ||
                                 reason == iot_credentials::errc::unexpected_status;
        std::string detail =
            who + (answered_no ? " answered " : " gave an answer that cannot be used: ") + answer.detail;
        if (reason == iot_credentials::errc::refused)
            detail += " (role alias " + s_->settings.role_alias + ", thing name " + s_->settings.thing_name +
                      ", certificate " + s_->settings.tls.cert_file.string() + ")";
        return fail(uplink_condition(reason), std::move(detail));
    }
    const auto now = std::chrono::system_clock::now();
    if (*answer.value->expiration <= now) {
        const auto behind = std::chrono::duration_cast<std::chrono::seconds>(now - *answer.value->expiration);
        return fail(errc::credentials_provider_expired,
                    who + " gave credentials that expire at " +
                        utc_text(*answer.value->expiration, utc_format::iso8601) + ", " +
                        std::to_string(behind.count()) + " s before this machine's clock (" +
                        utc_text(now, utc_format::iso8601) + "): is the clock right? (timedatectl status)");
    }
    finish({answer.value, {}, {}});
}

std::string iot_credentials_exchange::failure_after_handshake(const std::error_code& ec) const {
    // A server that refuses the client certificate after a TLS 1.3 handshake sends an alert and
    // closes; the request crossing that close may come back as a reset instead of the alert.
    if (ec == errc::closed_by_broker || ec == std::errc::connection_reset || ec == std::errc::broken_pipe)
        return peer_name(s_->settings) + " closed the connection before answering (" + ec.message() +
               "); does it accept the client certificate " + s_->settings.tls.cert_file.string() + "?";
    return s_->link->describe(ec);
}

void iot_credentials_exchange::on_timeout() {
    if (s_->finished) return;
    if (!s_->timed_out) {
        s_->timed_out = true;
        // Fails the pending step with operation_aborted; its handler ends the exchange.
        if (s_->link) return s_->link->close();
    }
    fail(errc::timed_out, "timed out after " + std::to_string(s_->settings.timeout.count()) + " ms while " + s_->step +
                              " " + peer_name(s_->settings));
}

void iot_credentials_exchange::cancel() {
    if (s_->finished) return;
    if (s_->link) s_->link->close();
    fail(std::make_error_code(std::errc::operation_canceled), "cancelled");
}

void iot_credentials_exchange::fail(std::error_code ec, std::string detail) {
    finish({std::nullopt, ec, std::move(detail)});
}

void iot_credentials_exchange::finish(exchange_outcome outcome) {
    if (s_->finished) return;
    s_->finished = true;
    s_->timer.cancel();
    if (s_->link) s_->link->close();
    if (auto done = std::exchange(s_->done, {})) done(std::move(outcome));
}

}  // namespace thingmux::aws
