#include "daemon/uplink/websocket_transport.hpp"

#include "common/printable.hpp"
#include "common/proxy_url.hpp"
#include "daemon/uplink/error.hpp"
#include "daemon/uplink/transport_stream.hpp"

#include <boost/asio/post.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

namespace thingmux::uplink {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ws = beast::websocket;

constexpr std::size_t max_quoted_bytes = 200;  // of a reason phrase, a body, a close reason

std::string server_text(std::string_view from_server) {
    return "\"" + text::printable(from_server, max_quoted_bytes) + "\"";
}

// A target or header value that could end the request line or a header early.
bool breaks_request(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

class websocket_transport final : public transport, public std::enable_shared_from_this<websocket_transport> {
public:
    websocket_transport(asio::io_context& io, std::shared_ptr<transport> lower, websocket_request request)
        : transport("websocket", lower->handshake_name()),  // open_step::handshake is the TLS below
          io_(io),
          lower_(lower),
          request_(std::move(request)),
          ws_(io, std::move(lower)) {
        ws_.binary(true);
        ws_.read_message_max(websocket_message_max);
        ws_.set_option(ws::stream_base::decorator([this](ws::request_type& r) {
            r.set(http::field::sec_websocket_protocol, "mqtt");
            r.set(http::field::user_agent, "thingmuxd");
            for (const auto& [name, value] : request_.headers) r.set(name, value);
        }));
    }

    void async_open(const std::string& host, std::uint16_t port, open_handler done) override {
        open_done_ = std::move(done);
        host_ = host;
        // Host names the endpoint as the server knows it: without the port when it is https's.
        const auto authority = proxy::authority(host, port);
        host_header_ = port == 443 ? authority.substr(0, authority.rfind(':')) : authority;
        lower_->async_open(host, port, [self = shared_from_this()](std::error_code ec, open_step step) {
            if (ec) {
                if (auto d = std::exchange(self->open_done_, {})) d(ec, step);
                return;
            }
            self->upgrade();
        });
    }

    // Beast copies into the buffers it was given whenever the stream below hands it bytes, even
    // after close(), when the caller's buffers may be gone with their owner: Beast reads into and
    // writes from buffers of ours, and the caller's are touched only while we are open.
    void async_read_some(asio::mutable_buffer buffer, io_handler done) override {
        if (closed_) return post_failure(std::move(done), std::make_error_code(std::errc::operation_canceled));
        in_.resize(std::min(buffer.size(), read_chunk));
        ws_.async_read_some(asio::buffer(in_), [self = shared_from_this(), buffer, done = std::move(done)](
                                                   beast::error_code ec, std::size_t n) {
            if (self->closed_) return done(std::make_error_code(std::errc::operation_canceled), 0);
            if (!ec && self->ws_.got_text()) {
                self->failure_ =
                    "the WebSocket server at " + self->host_ + " sent a text message; MQTT travels in binary ones";
                return done(errc::websocket_malformed, 0);
            }
            if (ec) return done(self->classify(ec), 0);
            std::memcpy(buffer.data(), self->in_.data(), n);
            done({}, n);
        });
    }

    void async_write(std::span<const asio::const_buffer> buffers, io_handler done) override {
        if (closed_) return post_failure(std::move(done), std::make_error_code(std::errc::operation_canceled));
        out_.clear();
        for (const auto& b : buffers) {
            const auto* bytes = static_cast<const std::uint8_t*>(b.data());
            out_.insert(out_.end(), bytes, bytes + b.size());
        }
        ws_.async_write(asio::buffer(out_),
                        [self = shared_from_this(), done = std::move(done)](beast::error_code ec, std::size_t n) {
                            if (ec) return done(self->classify(ec), 0);
                            done({}, n);
                        });
    }

    void close() override {
        closed_ = true;
        lower_->close();
    }

    [[nodiscard]] std::string describe(const std::error_code& ec) const override {
        if (ec == errc::websocket_upgrade_refused || ec == errc::websocket_wrong_subprotocol ||
            ec == errc::websocket_closed || ec == errc::websocket_oversized || ec == errc::websocket_malformed)
            return failure_;
        if (ec == errc::closed_by_broker && !upgraded_)
            return url() + " closed the connection before answering the WebSocket upgrade";
        return lower_->describe(ec);
    }

private:
    void upgrade() {
        if (closed_) return finish_open(std::make_error_code(std::errc::operation_canceled));
        // Beast reads the whole answer, body included: a hostile server must not fill memory.
        ws_.next_layer().limit_reads(websocket_upgrade_answer_max, errc::websocket_oversized);
        ws_.async_handshake(answer_, host_header_, request_.target, [self = shared_from_this()](beast::error_code ec) {
            self->ws_.next_layer().unlimit_reads();
            self->on_upgraded(ec);
        });
    }

    void on_upgraded(beast::error_code ec) {
        if (ec) return finish_open(classify(ec));
        const auto chosen = answer_[http::field::sec_websocket_protocol];
        if (chosen != "mqtt") {
            failure_ = url() +
                       (chosen.empty() ? std::string(" chose no WebSocket subprotocol")
                                       : " chose the WebSocket subprotocol " + server_text(chosen)) +
                       " instead of mqtt: it is not an MQTT endpoint (check endpoint, port and transport)";
            return finish_open(errc::websocket_wrong_subprotocol);
        }
        answer_ = {};
        upgraded_ = true;
        finish_open({});
    }

    void finish_open(std::error_code ec) {
        if (auto d = std::exchange(open_done_, {})) d(ec, open_step::upgrade);
    }

    void post_failure(io_handler done, std::error_code ec) {
        asio::post(io_, [done = std::move(done), ec] { done(ec, 0); });
    }

    // "wss://HOST/mqtt" (the target's path only: its query may hold a signature).
    [[nodiscard]] std::string url() const {
        return "wss://" + host_header_ +
               text::printable(std::string_view(request_.target).substr(0, request_.target.find('?')));
    }

    // Beast's error as the uplink's condition, worded in failure_ for describe(); errors of the
    // transport below pass unchanged.
    std::error_code classify(const beast::error_code& ec) {
        if (ec == ws::error::upgrade_declined) {
            failure_ = refusal();
            return errc::websocket_upgrade_refused;
        }
        if (ec == ws::error::closed) {
            const auto& why = ws_.reason();
            failure_ = "the WebSocket server at " + host_ + " closed the connection with code " +
                       std::to_string(why.code) +
                       (why.reason.empty()
                            ? std::string()
                            : " and reason " + server_text(std::string_view(why.reason.data(), why.reason.size())));
            return errc::websocket_closed;
        }
        if (ec == ws::error::message_too_big) {
            failure_ = "the WebSocket server at " + host_ + " sent a message longer than " +
                       std::to_string(websocket_message_max) + " bytes; refused";
            return errc::websocket_oversized;
        }
        if (ec == make_error_code(errc::websocket_oversized)) {
            failure_ = "the answer of " + url() + " to the WebSocket upgrade is longer than " +
                       std::to_string(websocket_upgrade_answer_max) + " bytes; refused";
            return errc::websocket_oversized;
        }
        if (ec == asio::error::eof || ec == http::error::end_of_stream || ec == ws::error::no_connection)
            return errc::closed_by_broker;
        if (ec.category() == ws::make_error_code(ws::error::closed).category() ||
            ec.category() == http::make_error_code(http::error::end_of_stream).category()) {
            failure_ = "WebSocket protocol error with " + url() + ": " + ec.message();
            return errc::websocket_malformed;
        }
        return static_cast<std::error_code>(ec);
    }

    [[nodiscard]] std::string refusal() const {
        const unsigned status = answer_.result_int();
        auto words = url() + " refused the WebSocket upgrade with HTTP " + std::to_string(status);
        if (!answer_.reason().empty()) words += " " + server_text(answer_.reason());
        if (!answer_.body().empty()) words += " (" + server_text(answer_.body()) + ")";
        if (status == 401 || status == 403) {
            words += ": " + (request_.refusal_advice.empty()
                                 ? std::string("the server does not accept this connection's credentials "
                                               "(AWS IoT Core takes WebSocket connections only with auth: sigv4 "
                                               "or auth: custom-authorizer)")
                                 : request_.refusal_advice);
        } else if (status == 404) {
            words += ": no WebSocket endpoint there (check endpoint and port)";
        }
        return words;
    }

    asio::io_context& io_;
    std::shared_ptr<transport> lower_;
    websocket_request request_;
    ws::stream<transport_stream> ws_;
    ws::response_type answer_;  // the upgrade's answer, until it was checked
    std::string host_;
    std::string host_header_;
    open_handler open_done_;
    static constexpr std::size_t read_chunk = 16 * 1024;
    std::vector<std::uint8_t> in_;   // what the read in flight reads into
    std::vector<std::uint8_t> out_;  // the payload of the write in flight
    std::string failure_;            // the words for the last failure classified
    bool upgraded_ = false;
    bool closed_ = false;
};

}  // namespace

transport_result make_websocket_transport(asio::io_context& io, std::shared_ptr<transport> lower,
                                          websocket_request request) {
    if (request.target.empty() || request.target.front() != '/' || breaks_request(request.target) ||
        request.target.find(' ') != std::string::npos)
        return {nullptr, errc::credentials_unusable,
                "the WebSocket request target " + server_text(request.target) + " is not a path starting with '/'"};
    for (const auto& [name, value] : request.headers) {
        if (name.empty() || breaks_request(name) || name.find_first_of(" :") != std::string::npos ||
            breaks_request(value))
            return {
                nullptr, errc::credentials_unusable,
                "the WebSocket request header " + server_text(name) +
                    " has a line break or control character in its name or value (a token file's trailing newline?)"};
    }
    return {std::make_shared<websocket_transport>(io, std::move(lower), std::move(request)), {}, {}};
}

}  // namespace thingmux::uplink
