// An AWS-IoT-Core-like broker for integration tests: Debian's mosquitto 2.0 with mTLS, a
// throwaway PKI made by `openssl` at test time, identity-as-username and a Thing-scoped ACL.
//
// The PKI and mosquitto configuration come from tests/support/aws-like-broker (the same script
// the demo and benchmarks use); this class runs mosquitto as a child process so a test can stop,
// restart (same port, same persistence directory) and kill it. Everything lives in a fresh
// temporary directory that is removed, and every process stopped, when the object is destroyed.
#pragma once

#include "tests/support/process.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::test {

// File paths of one client identity (certificate CN = name).
struct identity {
    std::string name;
    std::filesystem::path cert;
    std::filesystem::path key;
};

class broker_fixture {
public:
    struct options {
        std::vector<std::string> things{"gateway-01"};  // Thing certificates to issue
        std::size_t max_packet_size = 140'000;          // AWS IoT Core: 128 KiB payload
        // Also accept MQTT over plain TCP (no TLS) on plain_port() and over a Unix socket at
        // plain_socket(), for the uplink's plain transports. Clients there log in with
        // username = Thing name and plain_password(), so the same Thing-scoped ACL applies.
        bool plain_listener = false;
        // A user name and password a TLS client may log in with on login_port(), allowed the
        // topics of `thing` (as that Thing's certificate would be).
        struct login {
            std::string username;
            std::string password;
            std::string thing;
        };
        // Also accept TLS clients that log in with one of `logins` on login_port(): the broker side
        // of a custom authorizer, holding exactly the user name and password a client must send
        // (mosquitto's password_file). A client certificate is then required or not.
        std::vector<login> logins;
        bool login_requires_certificate = false;
    };

    // Creates the PKI and starts the broker (start() is then a no-op), so a test can use it at once.
    broker_fixture();  // default options
    explicit broker_fixture(options opts);
    ~broker_fixture();
    broker_fixture(const broker_fixture&) = delete;
    broker_fixture& operator=(const broker_fixture&) = delete;

    // Starts mosquitto (on first start: on a free loopback port) and waits until it accepts TLS
    // connections. Throws std::runtime_error with mosquitto's log tail if it does not come up.
    void start();
    // SIGTERM and wait: mosquitto writes its persistence file.
    void stop();
    // stop() then start() on the same port with the same persistence directory.
    void restart();
    // SIGKILL: no persistence written since the last autosave.
    void kill();
    [[nodiscard]] bool running() const;

    [[nodiscard]] std::uint16_t port() const noexcept;
    // The plain TCP listener's port (options::plain_listener; 0 without one) and the password
    // of every Thing there.
    [[nodiscard]] std::uint16_t plain_port() const noexcept;
    // The login listener's port (options::logins; 0 without one).
    [[nodiscard]] std::uint16_t login_port() const noexcept;
    // The plain Unix socket listener's path (options::plain_listener).
    [[nodiscard]] std::filesystem::path plain_socket() const;
    [[nodiscard]] static std::string plain_password() { return "plain-listener-password"; }
    [[nodiscard]] std::string host() const { return "localhost"; }
    [[nodiscard]] const std::filesystem::path& dir() const noexcept;  // the temporary directory
    [[nodiscard]] std::filesystem::path ca_file() const;              // trusted CA (PEM)
    [[nodiscard]] identity thing(const std::string& name) const;      // issued Thing certificate
    // The "cloud side" observer: may subscribe and publish to any topic (for assertions).
    [[nodiscard]] identity observer() const;
    // The fleet provisioning claim (CN claim-fleet): allowed to publish to the provisioning
    // requests ($aws/certificates/create-from-csr/json, $aws/provisioning-templates/+/provision/json)
    // and to receive their /accepted and /rejected answers, nothing else (AWS's claim policy).
    // Every Thing may use those topics too (rotation).
    [[nodiscard]] identity claim() const;
    // Issues a client certificate for the PKCS#10 request `csr` with the test CA, valid `days`,
    // with the request's subject, into `out_cert` (written whole or not at all). Throws
    // std::runtime_error with openssl's words when the request is not valid.
    void sign_csr(const std::filesystem::path& csr, const std::filesystem::path& out_cert, int days = 365) const;
    // Expired certificate for `gateway-expired`, and a certificate from a CA the broker does
    // not trust for `gateway-rogue`.
    [[nodiscard]] identity expired() const;
    [[nodiscard]] identity wrong_ca() const;
    // A CA file that did not sign the broker's certificate (for "server not trusted" tests).
    [[nodiscard]] std::filesystem::path other_ca_file() const;
    [[nodiscard]] std::filesystem::path log_file() const;
    // Revokes `cert` (issued by the test CA) in a CRL the broker checks from its next start()
    // (restart() it): clients presenting it are refused.
    void revoke(const std::filesystem::path& cert) const;

    // Arguments for mosquitto_pub / mosquitto_sub to connect as `who` with mTLS (-h, -p,
    // --cafile, --cert, --key, -i).
    [[nodiscard]] std::vector<std::string> client_args(const identity& who, const std::string& client_id) const;

private:
    void wait_until_ready();
    // The listeners of options::plain_listener and options::logins, and the ACL entries of the
    // logins, appended to what the script wrote.
    void add_password_listeners() const;

    options opts_;
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    std::uint16_t plain_port_ = 0;
    std::uint16_t login_port_ = 0;
    mutable std::optional<child_process> mosquitto_;  // running() reaps, so it is not const
};

// A `mosquitto_sub` process on the broker side that records every message it receives as one
// line "topic payload" in a file. Persistent session (-c, QoS 1), so it keeps messages across
// broker restarts. Used to count what really reached the broker. Construction discards any
// session an earlier observer left under the same client ID; two live observers need distinct IDs
// (the broker would make them take each other's connection over).
class observer_subscription {
public:
    observer_subscription(const broker_fixture& broker, std::string filter, std::string client_id = "observer");
    ~observer_subscription();
    // Waits until the subscription is live (a probe message published by the observer identity
    // came back), up to `timeout_ms`; returns false on timeout.
    [[nodiscard]] bool wait_ready(int timeout_ms = 10'000);
    // Lines received so far ("topic payload"), excluding the readiness probes.
    [[nodiscard]] std::vector<std::string> lines() const;
    // Waits until at least `n` lines were received or `timeout_ms` passed; returns lines().size().
    // Duplicates count: to wait for particular messages, use wait_for_all().
    std::size_t wait_for(std::size_t n, int timeout_ms);
    // Waits until every one of `expected` was received at least once or `timeout_ms` passed;
    // returns how many of them are still missing. QoS 1 duplicates do not make up for a
    // message that has not arrived yet.
    std::size_t wait_for_all(const std::vector<std::string>& expected, int timeout_ms);
    // Waits until the broker received the observer's PUBACK for every QoS 1 message it sent it
    // (its log says so) or `timeout_ms` passed; returns true when none is unacknowledged. The
    // observer prints a message as it sends its PUBACK: until the broker has read it, the message
    // is in flight, and a broker stopped now sends it again after its restart (QoS 1).
    [[nodiscard]] bool wait_acknowledged(int timeout_ms = 10'000) const;

private:
    [[nodiscard]] bool probe_seen() const;
    void revive() const;  // starts mosquitto_sub again if it exited

    const broker_fixture& broker_;
    std::string filter_;
    std::string client_id_;
    std::string probe_topic_;  // also subscribed; its lines are filtered out of lines()
    std::filesystem::path out_;
    std::vector<std::string> sub_;  // the mosquitto_sub command line
    std::filesystem::path err_;
    mutable std::optional<child_process> proc_;
};

}  // namespace thingmux::test
