// Debian's tinyproxy for integration tests: a real HTTP CONNECT proxy on a free loopback port,
// with or without Basic authentication, optionally allowing CONNECT to some ports only (it then
// answers 403 for the others). With a certificate it sits behind a TLS front (Debian's socat,
// OPENSSL-LISTEN), which makes it an https:// proxy: TLS to the proxy, CONNECT inside it.
//
// Its log (LogLevel Connect) has one "Connect (file descriptor N): ..." line per connection and
// one "Request (file descriptor N): CONNECT host:port HTTP/1.1" line per request: tests count
// what reached the proxy from it. Everything lives in a fresh temporary directory, removed with
// the object; both processes are stopped then.
#pragma once

#include "tests/support/process.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::test {

class tinyproxy_fixture {
public:
    struct options {
        std::string user;      // non-empty: BasicAuth user password
        std::string password;
        std::vector<std::uint16_t> connect_ports;  // CONNECT allowed to these ports only; empty: any
        // Both set: an https:// proxy (socat terminates TLS with them in front of tinyproxy).
        std::filesystem::path tls_cert;
        std::filesystem::path tls_key;
    };

    // Starts tinyproxy (and the TLS front) and waits until it accepts connections. Throws
    // std::runtime_error with its log when it does not come up.
    explicit tinyproxy_fixture(options opts);
    ~tinyproxy_fixture();
    tinyproxy_fixture(const tinyproxy_fixture&) = delete;
    tinyproxy_fixture& operator=(const tinyproxy_fixture&) = delete;

    // Where clients connect: the TLS front when there is one, else tinyproxy.
    [[nodiscard]] std::uint16_t port() const noexcept;
    // "http://127.0.0.1:PORT" or "https://localhost:PORT" (the TLS front's certificate names
    // localhost), with `userinfo` ("user:password") before the host when given.
    [[nodiscard]] std::string url(const std::string& userinfo = {}) const;
    [[nodiscard]] std::filesystem::path log_file() const;
    // CONNECT requests in tinyproxy's log so far (to `target` "host:port" only, when given).
    [[nodiscard]] std::size_t connect_requests(const std::string& target = {}) const;
    // Connections tinyproxy accepted so far.
    [[nodiscard]] std::size_t connections() const;

private:
    void start_tinyproxy();
    void start_tls_front();

    options opts_;
    std::filesystem::path dir_;
    std::uint16_t proxy_port_ = 0;  // tinyproxy's
    std::uint16_t front_port_ = 0;  // the TLS front's (0: none)
    std::optional<child_process> tinyproxy_;
    std::optional<child_process> front_;
};

}  // namespace thingmux::test
