// One byte-stream connection to the broker, as the uplink needs it: open (resolve, TCP connect,
// then the transport's own handshake), read some, write a buffer sequence, close. The uplink
// runs the MQTT session over it without knowing whether the bytes travel over TLS, plain TCP or
// a Unix socket, directly or through an HTTP proxy, or in WebSocket messages over TLS.
//
// Contract: one open, then at most one outstanding read and one outstanding write; handlers run
// on the io_context, never inside the call that started the operation. After close() every
// pending operation completes with an error (operation aborted). Implementations keep
// themselves alive until their handlers ran, so the owner may drop its pointer after close().
// A handler a transport keeps in a member must not own the transport's owner (capture it
// weakly): the owner holds the transport, and the cycle would outlive the io_context.
#pragma once

#include "daemon/uplink/proxy_route.hpp"
#include "daemon/uplink/tls.hpp"
#include "daemon/uplink/websocket_request.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <system_error>

namespace thingmux::uplink {

// How the uplink reaches the broker. The configuration file selects TLS (transport: mqtt) or
// WebSocket over TLS (transport: websocket, wss://HOST/mqtt); plain TCP and a Unix socket (the
// host is then the socket's path and the port is not used) are for peers on this machine in
// tests and the benchmarks.
enum class transport_kind : std::uint8_t { tls, tcp, unix_socket, websocket };

// The step at which opening a connection failed; the uplink names it in its messages. `proxy`:
// anything on the way through an HTTP proxy (reaching it, its TLS, its answer to CONNECT); the
// transport's describe() says what. `upgrade`: the WebSocket upgrade (HTTP request and answer,
// after TLS).
enum class open_step : std::uint8_t { resolve, connect, handshake, proxy, upgrade };

class transport {
public:
    using open_handler = std::function<void(std::error_code ec, open_step failed_at)>;
    using io_handler = std::function<void(std::error_code ec, std::size_t bytes)>;

    virtual ~transport() = default;

    // "tls", "tcp", "unix", "websocket": for logs and messages.
    [[nodiscard]] const char* name() const noexcept { return name_; }
    // What the handshake step is called in messages ("TLS handshake with"); empty when the
    // transport has none.
    [[nodiscard]] const char* handshake_name() const noexcept { return handshake_name_; }

    // Resolves `host`, connects to the first address that answers on `port`, then performs the
    // transport's handshake. On failure `failed_at` says which step failed.
    virtual void async_open(const std::string& host, std::uint16_t port, open_handler done) = 0;
    // Reads at least one byte, and as many as are available up to the buffer's size.
    // errc::closed_by_broker when the peer closed the connection.
    virtual void async_read_some(boost::asio::mutable_buffer buffer, io_handler done) = 0;
    // Writes all of `buffers` (which must stay valid until `done` runs); `bytes` is their total.
    virtual void async_write(std::span<const boost::asio::const_buffer> buffers, io_handler done) = 0;
    // Closes the connection at once (no graceful shutdown); idempotent.
    virtual void close() = 0;

    // Explains an error this transport reported, for people: "server certificate for HOST not
    // trusted by CA file …", "Connection refused".
    [[nodiscard]] virtual std::string describe(const std::error_code& ec) const = 0;

protected:
    transport(const char* name, const char* handshake_name) noexcept : name_(name), handshake_name_(handshake_name) {}

private:
    const char* name_;
    const char* handshake_name_;
};

// A transport ready to open, or why none could be made (unreadable credentials, bad TLS
// settings) with a message naming the file or setting.
struct transport_result {
    std::shared_ptr<transport> link;
    std::error_code error;
    std::string detail;
};

// Makes the transport of `kind` for one connection attempt to `host`, through `proxy` when it is
// given (not for Unix sockets). For TLS it loads the credential files fresh (a fixed permission
// or a rotated certificate is picked up on the next attempt) and prepares SNI, host name
// verification and ALPN; the proxy's credentials and CA file are loaded fresh too. For
// WebSocket (socket -> [proxy] -> TLS -> WebSocket), `websocket` is this attempt's upgrade
// request (target and extra headers).
[[nodiscard]] transport_result make_transport(boost::asio::io_context& io, transport_kind kind,
                                              const std::string& host, const tls_settings& tls,
                                              const proxy_route* proxy = nullptr,
                                              const websocket_request& websocket = {});

// Where a connection goes, as messages name it: "HOST:PORT", "HOST:PORT through proxy URL".
[[nodiscard]] std::string destination(const std::string& host, std::uint16_t port, const proxy_route* proxy);

// The step, as messages name it: "timed out after 10000 ms while connect to HOST:PORT".
[[nodiscard]] std::string step_name(const transport& t, open_step step);

// Why opening `where` (destination()) failed at `step`, for people: "cannot resolve WHERE: …",
// "cannot connect to WHERE: …", or the transport's own account of a handshake or proxy failure.
[[nodiscard]] std::string describe_open_failure(const transport& t, const std::error_code& ec, open_step step,
                                                const std::string& where);

}  // namespace thingmux::uplink
