// MQTT's byte stream through an HTTP proxy: the lower transport reaches the proxy (TCP, or TLS
// over TCP for an https:// proxy), a CONNECT request asks it for a tunnel to the endpoint, and
// once it answered 2xx the bytes pass through untouched (the TLS transport to the endpoint runs
// on top). The exchange itself is common/http_connect (pure, fuzzed); this is its Asio adapter.
//
// Every failure before the tunnel stands is reported with open_step::proxy and an uplink::errc
// (proxy_unreachable, proxy_auth_required, ...) that says whether retrying can help; describe()
// words it for people, naming the proxy, the endpoint and the setting to fix. Text from the
// proxy is escaped before it goes into a message.
#pragma once

#include "common/http_connect.hpp"
#include "daemon/uplink/transport.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::uplink {

class http_proxy_transport final : public transport, public std::enable_shared_from_this<http_proxy_transport> {
public:
    // A transport through `route` over `tcp` (a TCP transport to be opened to the proxy), or why
    // there is none: errc::proxy_unusable (the route's own message), errc::credentials_unusable
    // (the credentials file or the proxy's CA file cannot be used, named in the message), or the
    // TLS set-up error for an https:// proxy. Reads the credentials file and the CA file now.
    [[nodiscard]] static transport_result create(boost::asio::io_context& io, std::shared_ptr<transport> tcp,
                                                 const proxy_route& route);
    ~http_proxy_transport() override;
    http_proxy_transport(const http_proxy_transport&) = delete;
    http_proxy_transport& operator=(const http_proxy_transport&) = delete;

    // Opens the connection to the proxy and the tunnel to host:port (the endpoint).
    void async_open(const std::string& host, std::uint16_t port, open_handler done) override;
    void async_read_some(boost::asio::mutable_buffer buffer, io_handler done) override;
    void async_write(std::span<const boost::asio::const_buffer> buffers, io_handler done) override;
    void close() override;
    [[nodiscard]] std::string describe(const std::error_code& ec) const override;

private:
    http_proxy_transport(boost::asio::io_context& io, std::shared_ptr<transport> lower, proxy_route route,
                         std::optional<proxy::credentials> login);

    void on_lower_open(std::error_code ec, open_step step);
    void on_request_sent(std::error_code ec);
    void read_answer();
    void on_answer(std::error_code ec, std::size_t n);
    void on_answer_head(std::size_t n, std::size_t taken);
    // Ends opening: success, or `ec` worded by `detail` for describe().
    void finish_open(std::error_code ec, std::string detail = {});

    // "proxy proxy.corp:3128", and the endpoint "broker:8883", as messages name them.
    [[nodiscard]] std::string proxy_name() const;
    [[nodiscard]] std::string target() const;
    // What to fix when the proxy wants other credentials (407).
    [[nodiscard]] std::string credentials_advice() const;
    // "; if the proxy expects TLS, write https:// in proxy" when an http:// proxy's answer
    // suggests it speaks TLS (nothing, or not HTTP); empty otherwise.
    [[nodiscard]] std::string tls_advice() const;

    boost::asio::io_context& io_;
    std::shared_ptr<transport> lower_;
    proxy_route route_;
    std::optional<proxy::credentials> login_;  // wiped when this transport goes
    std::string target_host_;
    std::uint16_t target_port_ = 0;

    open_handler open_done_;
    std::string request_;  // the CONNECT request while it is written (holds the credentials)
    boost::asio::const_buffer request_buffer_;
    http_connect::response_parser answer_;
    std::vector<std::uint8_t> in_ = std::vector<std::uint8_t>(4096);
    std::vector<std::uint8_t> early_;  // tunnel bytes that came with the answer's head
    std::size_t early_offset_ = 0;
    std::error_code failure_;  // the error opening ended with, and its words
    std::string failure_detail_;
    bool closed_ = false;
};

}  // namespace thingmux::uplink
