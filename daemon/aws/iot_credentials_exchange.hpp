// One exchange with the AWS IoT credentials provider: GET /role-aliases/ALIAS/credentials with
// the x-amzn-iot-thingname header, over mutual TLS with the Thing's certificate and key (the CA
// file checked, with host name verification and SNI), through the Thing's HTTP proxy when one is
// set: the uplink's transport stack (socket -> [proxy] -> TLS) with Boost.Beast's HTTP on top.
//
// Bounded: the whole exchange (connect, proxy, TLS, request, answer) within `timeout`; the
// answer's head within 8 KiB and its body within iot_credentials::max_body_bytes (Beast's parser
// limits). One connection per exchange ("Connection: close"). The outcome says what went wrong
// and which file or setting fixes it; it never holds a secret or a token.
#pragma once

#include "common/aws_credentials.hpp"
#include "daemon/uplink/proxy_route.hpp"
#include "daemon/uplink/tls.hpp"
#include "daemon/uplink/transport.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

namespace thingmux::aws {

// Where and how a Thing asks the AWS IoT credentials provider (things[].aws_credentials[]
// .iot_credentials_provider, resolved by the composition root).
struct iot_credentials_settings {
    std::string thing_name;  // sent as x-amzn-iot-thingname; AWS checks it is attached to the certificate
    std::string endpoint;    // PREFIX.credentials.iot.REGION.amazonaws.com (aws iot describe-endpoint
                             // --endpoint-type iot:CredentialProvider)
    std::uint16_t port = 443;
    std::string role_alias;
    // ca_file: the CA of the provider's certificate (iot_credentials_provider.ca, default: the
    // Thing's ca); cert_file, key_file: the Thing's. No ALPN.
    uplink::tls_settings tls;
    std::optional<uplink::proxy_route> proxy;   // the Thing's HTTP proxy, if any
    std::chrono::milliseconds timeout{10'000};  // one exchange, from connecting to the answer's last byte
};

// What one exchange gave.
struct exchange_outcome {
    std::optional<credentials> value;  // with an expiration in the future (by this machine's clock)
    // When !value: an uplink::errc (credentials_provider_*, timed_out, a TLS condition) or a system
    // error (connection refused, host not found).
    std::error_code error;
    // When !value, for people: "the AWS IoT credentials provider localhost:8443 answered HTTP 403:
    // Access Denied (role alias thingmux, thing name gateway-01)". Text from the provider is escaped.
    std::string detail;
};

class iot_credentials_exchange : public std::enable_shared_from_this<iot_credentials_exchange> {
public:
    using done_handler = std::function<void(exchange_outcome)>;

    // Starts an exchange; `done` runs once, on the io_context, never inside start(). Settings that
    // cannot be used (a role alias or thing name AWS IoT would refuse, unreadable credentials
    // files) end it at once with a message naming them.
    [[nodiscard]] static std::shared_ptr<iot_credentials_exchange> start(boost::asio::io_context& io,
                                                                         const iot_credentials_settings& settings,
                                                                         done_handler done);
    ~iot_credentials_exchange();
    iot_credentials_exchange(const iot_credentials_exchange&) = delete;
    iot_credentials_exchange& operator=(const iot_credentials_exchange&) = delete;

    // Ends the exchange now: `done` runs with operation_canceled (once its pending I/O returned).
    void cancel();

    // "the AWS IoT credentials provider HOST:PORT [through proxy URL]": how messages name the peer.
    [[nodiscard]] static std::string peer_name(const iot_credentials_settings& settings);

private:
    struct state;
    iot_credentials_exchange(boost::asio::io_context& io, const iot_credentials_settings& settings, done_handler done);

    void begin();
    void on_open(std::error_code ec, uplink::open_step step);
    void on_written(std::error_code ec);
    void on_read(std::error_code ec);
    void on_timeout();
    // Why the request or the answer failed once TLS stood, for people.
    [[nodiscard]] std::string failure_after_handshake(const std::error_code& ec) const;
    void fail(std::error_code ec, std::string detail);
    void finish(exchange_outcome outcome);

    std::unique_ptr<state> s_;
};

}  // namespace thingmux::aws
