#include "daemon/uplink/http_proxy_transport.hpp"

#include "common/printable.hpp"
#include "daemon/uplink/error.hpp"
#include "daemon/uplink/secret_file.hpp"
#include "daemon/uplink/tls_transport.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cstring>

namespace thingmux::uplink {
namespace asio = boost::asio;

namespace {

// A credentials file is one short line; anything larger is not one.
constexpr std::size_t max_credentials_bytes = 4096;
// How much of the proxy's own text goes into a message.
constexpr std::size_t max_quoted_bytes = 200;

std::string in_quotes(std::string_view from_proxy) {
    return "\"" + text::printable(from_proxy, max_quoted_bytes) + "\"";
}

bool starts_with_ignoring_case(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) {
               const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
               return lower(a) == lower(b);
           });
}

// The login for the route: from its credentials file (read now) or its URL; or why there is none.
struct login_result {
    std::optional<proxy::credentials> login;
    std::string problem;
};

login_result login_of(const proxy_route& route) {
    if (route.credentials_file.empty()) return {route.url.login, {}};
    const auto named = "proxy credentials file " + route.credentials_file.string() + " (proxy_credentials)";
    std::string bytes;
    if (auto problem = read_secret_file(route.credentials_file, named, max_credentials_bytes, bytes); !problem.empty())
        return {std::nullopt, std::move(problem)};
    auto parsed = proxy::parse_credentials(bytes);
    wipe(bytes);
    if (!parsed.value) return {std::nullopt, named + " " + parsed.problem};
    return {std::move(parsed.value), {}};
}

}  // namespace

std::string describe(const proxy_route& r) {
    auto s = proxy::to_string(r.url);
    if (r.named_by != "proxy") s += " (from " + r.named_by + ")";
    return s;
}

transport_result http_proxy_transport::create(asio::io_context& io, std::shared_ptr<transport> tcp,
                                              const proxy_route& route) {
    if (!route.unusable.empty()) return {nullptr, errc::proxy_unusable, route.unusable};
    auto login = login_of(route);
    if (!login.problem.empty()) return {nullptr, errc::credentials_unusable, std::move(login.problem)};
    std::shared_ptr<transport> lower = std::move(tcp);
    if (route.url.scheme == proxy::scheme::https) {
        auto context = make_proxy_tls_context(route.ca_file);
        if (!context.context) return {nullptr, context.code, std::move(context.error)};
        auto tls = tls_transport::create(io, std::move(lower), std::move(context.context), route.url.host,
                                         tls_settings{.ca_file = route.ca_file});
        if (!tls.link) return tls;
        lower = std::move(tls.link);
    }
    std::shared_ptr<http_proxy_transport> t(
        new http_proxy_transport(io, std::move(lower), route, std::move(login.login)));
    return {std::move(t), {}, {}};
}

http_proxy_transport::http_proxy_transport(asio::io_context& io, std::shared_ptr<transport> lower, proxy_route route,
                                           std::optional<proxy::credentials> login)
    : transport("http-proxy", "TLS handshake with"),
      io_(io),
      lower_(std::move(lower)),
      route_(std::move(route)),
      login_(std::move(login)) {}

http_proxy_transport::~http_proxy_transport() {
    wipe(request_);
    if (login_) wipe(login_->password);
}

// ---- opening ------------------------------------------------------------------------------

void http_proxy_transport::async_open(const std::string& host, std::uint16_t port, open_handler done) {
    target_host_ = host;
    target_port_ = port;
    open_done_ = std::move(done);
    lower_->async_open(route_.url.host, route_.url.port, [self = shared_from_this()](std::error_code ec, open_step step) {
        self->on_lower_open(ec, step);
    });
}

void http_proxy_transport::on_lower_open(std::error_code ec, open_step step) {
    if (closed_ && !ec) ec = std::make_error_code(std::errc::operation_canceled);
    if (ec) {
        switch (step) {
        case open_step::resolve:
            return finish_open(errc::proxy_unreachable, "cannot resolve " + proxy_name() + ": " + ec.message());
        case open_step::handshake: {
            const bool certificate = ec == errc::server_certificate_untrusted || ec == errc::server_name_mismatch;
            return finish_open(certificate ? errc::proxy_certificate_untrusted : errc::proxy_tls_failed,
                               "TLS handshake with " + proxy_name() + " failed: " + lower_->describe(ec) +
                                   (certificate ? " (set proxy_ca to the CA file that signed the proxy's certificate)"
                                                : ""));
        }
        default: return finish_open(errc::proxy_unreachable, "cannot connect to " + proxy_name() + ": " + ec.message());
        }
    }
    request_ = http_connect::request(target_host_, target_port_, login_ ? &*login_ : nullptr);
    request_buffer_ = asio::buffer(request_);
    lower_->async_write(std::span(&request_buffer_, 1), [self = shared_from_this()](std::error_code e, std::size_t) {
        self->on_request_sent(e);
    });
}

void http_proxy_transport::on_request_sent(std::error_code ec) {
    wipe(request_);
    if (closed_ && !ec) ec = std::make_error_code(std::errc::operation_canceled);
    if (ec) return finish_open(errc::proxy_closed, "sending CONNECT to " + proxy_name() + " failed: " + describe(ec));
    read_answer();
}

void http_proxy_transport::read_answer() {
    lower_->async_read_some(asio::buffer(in_), [self = shared_from_this()](std::error_code ec, std::size_t n) {
        self->on_answer(ec, n);
    });
}

void http_proxy_transport::on_answer(std::error_code ec, std::size_t n) {
    if (closed_ && !ec) ec = std::make_error_code(std::errc::operation_canceled);
    if (ec) {
        const auto so_far = answer_.received_bytes() == 0
                                ? std::string(" before answering CONNECT")
                                : " in the middle of its answer to CONNECT, after " + in_quotes(answer_.received_start());
        const auto how = ec == errc::closed_by_broker ? std::string() : " (" + lower_->describe(ec) + ")";
        return finish_open(errc::proxy_closed, proxy_name() + " closed the connection" + so_far + how + tls_advice());
    }
    const std::size_t taken = answer_.feed(std::span<const std::uint8_t>(in_.data(), n));
    switch (answer_.current()) {
    case http_connect::response_parser::state::need_more: return read_answer();
    case http_connect::response_parser::state::done: return on_answer_head(n, taken);
    case http_connect::response_parser::state::failed: break;
    }
    auto detail = proxy_name() + " answered CONNECT with something that is not an HTTP proxy's answer (" +
                  answer_.error().message() + "): " + in_quotes(answer_.received_start());
    if (answer_.error() == http_connect::errc::not_http) detail += tls_advice();
    finish_open(errc::proxy_malformed_answer, std::move(detail));
}

void http_proxy_transport::on_answer_head(std::size_t n, std::size_t taken) {
    const auto status = in_quotes(answer_.status_line());
    switch (http_connect::classify(answer_.status())) {
    case http_connect::verdict::tunnel:
        // The endpoint's first bytes may have come with the head; they are the first read's.
        early_.assign(in_.begin() + static_cast<std::ptrdiff_t>(taken), in_.begin() + static_cast<std::ptrdiff_t>(n));
        return finish_open({});
    case http_connect::verdict::auth_required: {
        auto detail = proxy_name() + " refused CONNECT to " + target() + ": it requires authentication and " +
                      (login_ ? "refused our credentials" : "we sent none") + " (" + status;
        const auto& offers = answer_.challenges();
        bool basic = offers.empty();
        for (std::size_t i = 0; i < offers.size(); ++i) {
            detail += std::string(i == 0 ? "; the proxy offers " : ", ") + text::printable(offers[i], max_quoted_bytes);
            basic = basic || starts_with_ignoring_case(offers[i], "basic");
        }
        detail += "): " + credentials_advice();
        if (!basic) detail += "; thingmuxd supports Basic authentication only";
        return finish_open(errc::proxy_auth_required, std::move(detail));
    }
    case http_connect::verdict::forbidden:
        return finish_open(errc::proxy_forbidden,
                           proxy_name() + " forbids connections to " + target() + " (" + status + "): ask for " +
                               target() + " to be allowed" +
                               (target_port_ != 443 ? std::string("; many proxies allow CONNECT to port 443 only, "
                                                                  "where AWS IoT Core takes MQTT too (port: 443)")
                                                    : std::string()));
    case http_connect::verdict::refused:
        return finish_open(errc::proxy_refused,
                           proxy_name() + " could not open a tunnel to " + target() + " (" + status + ")");
    case http_connect::verdict::refused_permanently:
        return finish_open(errc::proxy_refused_permanently,
                           proxy_name() + " refused CONNECT to " + target() + " (" + status + ")");
    }
}

void http_proxy_transport::finish_open(std::error_code ec, std::string detail) {
    failure_ = ec;
    failure_detail_ = std::move(detail);
    if (auto done = std::exchange(open_done_, {})) done(ec, open_step::proxy);
}

std::string http_proxy_transport::proxy_name() const {
    return "proxy " + proxy::authority(route_.url.host, route_.url.port) +
           (route_.named_by != "proxy" ? " (from " + route_.named_by + ")" : std::string());
}

std::string http_proxy_transport::tls_advice() const {
    // A TLS proxy hangs up on a plain CONNECT, or answers it with a TLS alert.
    if (route_.url.scheme == proxy::scheme::https || answer_.received_start().starts_with("HTTP")) return {};
    return "; if the proxy expects TLS, write https:// in " + route_.named_by;
}

std::string http_proxy_transport::target() const { return proxy::authority(target_host_, target_port_); }

std::string http_proxy_transport::credentials_advice() const {
    if (!login_)
        return "put user:password in a file only thingmuxd may read and name it in proxy_credentials";
    if (!route_.credentials_file.empty())
        return "fix the user name or password in " + route_.credentials_file.string() + " (proxy_credentials)";
    if (route_.named_by == "proxy") return "fix the user name or password in proxy: (better: in a proxy_credentials file)";
    return "fix the user name or password in " + route_.named_by;
}

// ---- the tunnel ---------------------------------------------------------------------------

void http_proxy_transport::async_read_some(asio::mutable_buffer buffer, io_handler done) {
    if (early_offset_ < early_.size()) {
        const std::size_t n = std::min(buffer.size(), early_.size() - early_offset_);
        std::memcpy(buffer.data(), early_.data() + early_offset_, n);
        early_offset_ += n;
        asio::post(io_, [self = shared_from_this(), done = std::move(done), n] { done({}, n); });
        return;
    }
    lower_->async_read_some(buffer, std::move(done));
}

void http_proxy_transport::async_write(std::span<const asio::const_buffer> buffers, io_handler done) {
    lower_->async_write(buffers, std::move(done));
}

void http_proxy_transport::close() {
    closed_ = true;
    lower_->close();
}

std::string http_proxy_transport::describe(const std::error_code& ec) const {
    if (ec && ec == failure_ && !failure_detail_.empty()) return failure_detail_;
    return lower_->describe(ec);
}

}  // namespace thingmux::uplink
