// The metrics endpoint's HTTP/1.1 server, on the daemon's io_context: `GET /metrics` answered
// with a scrape, everything else refused (http_request.hpp), one request per connection
// (Connection: close). Served on the metrics Unix socket and the optional TCP listener.
//
// Limits (every local user that may open the socket, or hosts with metrics.allow_remote): at
// most max_connections at once, a request head of at most 8 KiB, read within read_timeout (else
// closed), the answer written within write_timeout. When all places are taken, a new connection
// takes the place of the oldest one still waiting for its request (closed): idle connections
// cannot keep a scraper out; only when every place is busy answering is it answered 503.
// Refusals are logged rate-limited; nothing a peer sent goes into the log.
#pragma once

#include "daemon/logging.hpp"
#include "daemon/metrics/openmetrics.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>

namespace thingmux::metrics {

struct http_limits {
    std::size_t max_connections = 16;
    std::chrono::milliseconds read_timeout{10'000};
    std::chrono::milliseconds write_timeout{10'000};
};

struct http_counters {
    std::uint64_t scrapes = 0;       // answered 200
    std::uint64_t refused = 0;       // answered 4xx/5xx (bad requests, 503 when full)
    std::uint64_t timed_out = 0;     // closed for a head that did not come in time
    std::uint64_t evicted = 0;       // closed, still waiting for their request, to make room
};

// A connection as the server tracks it while it waits for its request.
class http_waiting {
public:
    virtual ~http_waiting() = default;
    virtual void evict() = 0;
};

class http_server {
public:
    // `scrape` makes the text of a scrape in a format, for one Thing or (empty) all.
    using scrape_fn = std::function<std::string(format, std::string_view thing)>;

    http_server(boost::asio::io_context& io, scrape_fn scrape, http_limits limits = {});
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    // Takes a freshly accepted connection.
    void serve(boost::asio::local::stream_protocol::socket s);
    void serve(boost::asio::ip::tcp::socket s);

    [[nodiscard]] std::size_t open_connections() const noexcept { return open_; }
    [[nodiscard]] const http_counters& counters() const noexcept { return counters_; }

private:
    template <class Socket>
    friend class http_connection;
    template <class Socket>
    void start(Socket s, std::string peer);
    // Closes the oldest connection still waiting for its request; false when there is none.
    bool evict_oldest();
    void refused(const std::string& peer, int status, std::string_view reason);

    boost::asio::io_context& io_;
    scrape_fn scrape_;
    http_limits limits_;
    std::size_t open_ = 0;
    std::list<std::weak_ptr<http_waiting>> waiting_;  // oldest first; expired entries are skipped
    http_counters counters_;
    logging::rate_limiter refusal_log_{5, std::chrono::minutes(1)};
    // Connections outlive the server only while their handlers drain (shutdown): they look here.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace thingmux::metrics
