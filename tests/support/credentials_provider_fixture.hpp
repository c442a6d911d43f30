// A local AWS IoT credentials provider for integration tests: tests/support/iot-credentials-provider
// (Python's ssl and http.server) on a free loopback port, with real TLS and the test PKI of
// tests/support/aws-like-broker (server certificate for localhost, Thing certificates, a
// certificate from a CA it does not trust). It requires the client certificate, checks the role
// alias in the path and the x-amzn-iot-thingname header against the certificate's Thing, and
// answers credentials that live `lifetime`; a `mode` makes it answer with something hostile
// instead. Every connection leaves one record, for the tests to count and check. Everything
// lives in a fresh temporary directory, removed with the object; the server is stopped then.
#pragma once

#include "tests/support/broker_fixture.hpp"
#include "tests/support/process.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::test {

class credentials_provider_fixture {
public:
    enum class mode : std::uint8_t {
        credentials,  // the provider's answer, credentials that live `lifetime`
        refuse,       // 403 {"message": "Access Denied\n\x1b[31mFORGED LOG LINE"}
        garbage,      // 200 with a body that is not JSON
        huge,         // 200 with an endless body (until the client hangs up, 256 MiB at most)
        silent,       // reads the request and never answers
        expired,      // credentials that expired an hour ago
    };
    struct options {
        std::string role_alias = "thingmux-role";
        std::chrono::seconds lifetime{3600};
        mode answer = mode::credentials;
    };

    // One connection as the server saw it.
    struct record {
        double time = 0;  // seconds since the epoch, when it answered (or gave up)
        int status = 0;   // 0: no answer sent (TLS refused, silent)
        std::string path;
        std::string thing;          // the x-amzn-iot-thingname header
        std::string cert_cn;        // the client certificate's CN
        std::string access_key_id;  // of the credentials answered
        double expiration = 0;      // of the credentials answered, seconds since the epoch
        std::string note;           // "tls: …" when the handshake failed; "huge: N bytes sent"
    };

    explicit credentials_provider_fixture(options opts);
    credentials_provider_fixture() : credentials_provider_fixture(options{}) {}
    ~credentials_provider_fixture();
    credentials_provider_fixture(const credentials_provider_fixture&) = delete;
    credentials_provider_fixture& operator=(const credentials_provider_fixture&) = delete;

    [[nodiscard]] std::string host() const { return "localhost"; }
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] const std::string& role_alias() const noexcept { return opts_.role_alias; }
    [[nodiscard]] std::filesystem::path ca_file() const;  // signed the server's and the Things' certificates
    [[nodiscard]] identity thing(const std::string& name = "gateway-01") const;
    [[nodiscard]] identity wrong_ca() const;                    // gateway-rogue, from a CA the server does not trust
    [[nodiscard]] std::filesystem::path other_ca_file() const;  // did not sign the server's certificate

    // Answers with `m` from the next request on.
    void set_mode(mode m) const;

    // Every connection so far, in the order answered.
    [[nodiscard]] std::vector<record> records() const;
    // Of them, those that got an answer with `status`.
    [[nodiscard]] std::size_t answered(int status) const;

private:
    options opts_;
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    std::optional<child_process> server_;
};

}  // namespace thingmux::test
