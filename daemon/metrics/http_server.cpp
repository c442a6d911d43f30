#include "daemon/metrics/http_server.hpp"

#include "daemon/metrics/http_request.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <sys/socket.h>

#include <array>
#include <memory>

namespace thingmux::metrics {

namespace asio = boost::asio;

namespace {

std::string response(int status, std::string_view content_type, std::string_view body, bool allow_get = false) {
    std::string r = "HTTP/1.1 " + std::to_string(status) + ' ' + std::string(status_text(status)) + "\r\n";
    r += "Content-Type: " + std::string(content_type) + "\r\n";
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (allow_get) r += "Allow: GET\r\n";
    r += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
    r += body;
    return r;
}

std::string error_response(int status, std::string_view reason) {
    return response(status, "text/plain; charset=utf-8",
                    std::to_string(status) + ' ' + std::string(status_text(status)) + ": " + std::string(reason) + '\n',
                    status == 405);
}

// "uid 1000 pid 42" of a Unix socket's peer; the kernel's word, for the refusal log lines.
std::string unix_peer(asio::local::stream_protocol::socket& s) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "a client of the metrics socket";
    return "metrics client (uid " + std::to_string(cred.uid) + " pid " + std::to_string(cred.pid) + ")";
}

std::string tcp_peer(asio::ip::tcp::socket& s) {
    boost::system::error_code ec;
    const auto ep = s.remote_endpoint(ec);
    if (ec) return "a metrics client over TCP";
    return "metrics client " + ep.address().to_string() + ":" + std::to_string(ep.port());
}

}  // namespace

template <class Socket>
class http_connection final : public http_waiting, public std::enable_shared_from_this<http_connection<Socket>> {
public:
    http_connection(http_server& server, Socket s, std::string peer)
        : server_(server), alive_(server.alive_), socket_(std::move(s)), timer_(socket_.get_executor()), peer_(std::move(peer)) {
        ++server_.open_;
    }
    ~http_connection() override { close(); }

    void evict() override {
        if (done_ || writing_) return;
        if (*alive_) ++server_.counters_.evicted;
        close();
    }
    [[nodiscard]] bool waiting() const noexcept { return !done_ && !writing_; }

    void start() {
        timer_.expires_after(server_.limits_.read_timeout);
        timer_.async_wait([self = this->shared_from_this()](const boost::system::error_code& ec) {
            if (ec || self->done_) return;
            if (*self->alive_ && !self->writing_) ++self->server_.counters_.timed_out;
            self->close();
        });
        read();
    }

private:
    void read() {
        socket_.async_read_some(asio::buffer(chunk_), [self = this->shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
            if (self->done_ || !*self->alive_) return;
            if (ec) return self->close();  // the client went away before its request was whole
            self->received_.append(self->chunk_.data(), n);
            const auto r = parse_request(self->received_);
            switch (r.result) {
            case http_request::state::incomplete:
                // parse_request() refuses a head past max_head: what is kept stays bounded.
                return self->read();
            case http_request::state::refused:
                self->server_.refused(self->peer_, r.status, r.reason);
                return self->write(error_response(r.status, r.reason));
            case http_request::state::complete: {
                const auto f = r.openmetrics ? format::openmetrics : format::prometheus;
                ++self->server_.counters_.scrapes;
                return self->write(response(200, content_type(f), self->server_.scrape_(f, r.thing)));
            }
            }
        });
    }

    void write(std::string text) {
        writing_ = true;
        out_ = std::move(text);
        received_.clear();
        received_.shrink_to_fit();
        timer_.expires_after(server_.limits_.write_timeout);
        timer_.async_wait([self = this->shared_from_this()](const boost::system::error_code& ec) {
            if (ec || self->done_) return;
            self->close();
        });
        asio::async_write(socket_, asio::buffer(out_), [self = this->shared_from_this()](const boost::system::error_code&, std::size_t) {
            boost::system::error_code ignored;
            self->socket_.shutdown(asio::socket_base::shutdown_send, ignored);
            self->close();
        });
    }

    void close() {
        if (done_) return;
        done_ = true;
        if (*alive_) --server_.open_;
        boost::system::error_code ignored;
        timer_.cancel();
        socket_.close(ignored);
    }

    http_server& server_;
    std::shared_ptr<bool> alive_;
    Socket socket_;
    asio::steady_timer timer_;
    std::string peer_;
    std::array<char, 4096> chunk_{};
    std::string received_;
    std::string out_;
    bool writing_ = false;
    bool done_ = false;
};

http_server::http_server(asio::io_context& io, scrape_fn scrape, http_limits limits)
    : io_(io), scrape_(std::move(scrape)), limits_(limits) {}

http_server::~http_server() { *alive_ = false; }

void http_server::refused(const std::string& peer, int status, std::string_view reason) {
    ++counters_.refused;
    if (auto note = refusal_log_.admit())
        spdlog::warn("{}: refused with {} {}: {}{}", logging::escaped(peer), status, status_text(status), logging::escaped(reason), *note);
}

template <class Socket>
void http_server::start(Socket s, std::string peer) {
    if (open_ >= limits_.max_connections && evict_oldest()) {
        if (auto note = refusal_log_.admit())
            spdlog::warn("metrics: {} connections at once: closed the oldest one still waiting for its request{}",
                         limits_.max_connections, *note);
    }
    if (open_ >= limits_.max_connections) {
        // Every place is busy answering: a refused client costs no more than this.
        refused(peer, 503, "too many metrics connections at once (" + std::to_string(limits_.max_connections) + ")");
        const auto text = error_response(503, "too many metrics connections at once");
        boost::system::error_code ec;
        s.non_blocking(true, ec);
        if (!ec) (void)s.write_some(asio::buffer(text), ec);
        s.close(ec);
        return;
    }
    auto c = std::make_shared<http_connection<Socket>>(*this, std::move(s), std::move(peer));
    // Entries of connections that ended are dropped before they could add up.
    if (waiting_.size() >= 2 * limits_.max_connections) waiting_.remove_if([](const auto& w) { return w.expired(); });
    waiting_.push_back(c);
    c->start();
}

bool http_server::evict_oldest() {
    while (!waiting_.empty()) {
        auto c = waiting_.front().lock();
        waiting_.pop_front();
        if (!c) continue;
        const auto before = open_;
        c->evict();
        if (open_ < before) return true;
    }
    return false;
}

void http_server::serve(asio::local::stream_protocol::socket s) {
    auto peer = unix_peer(s);
    start(std::move(s), std::move(peer));
}

void http_server::serve(asio::ip::tcp::socket s) {
    auto peer = tcp_peer(s);
    start(std::move(s), std::move(peer));
}

}  // namespace thingmux::metrics
