// The cloud side of AWS IoT fleet provisioning for integration tests: tests/support/fleet-responder
// (python3-paho-mqtt) on a broker_fixture's broker, connected as its observer. It answers
// CreateCertificateFromCsr (the CSR signed by the test CA) and RegisterThing (templates given
// here) on the topics and with the answers of AWS's device provisioning MQTT API, with scripted
// faults (no answer, a transient 500, exiting after an answer). Every request leaves one record,
// for the tests to count. docs/identity.md (*The test responder*) says where it differs from AWS.
//
// Its files live in a directory under the broker's; the issued tokens survive stop()/start().
#pragma once

#include "tests/support/broker_fixture.hpp"
#include "tests/support/process.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace thingmux::test {

class fleet_responder_fixture {
public:
    enum class kind : std::uint8_t {
        create_certificate,  // CreateCertificateFromCsr
        register_thing,      // RegisterThing
    };

    // A provisioning template as the responder understands one. Names and values hold no
    // whitespace (they go on the responder's command line).
    struct provisioning_template {
        std::string name = "thingmux-fleet";
        std::string thing_name = "{ThingName}";  // each {PARAM} replaced by that parameter's value
        std::vector<std::string> required;       // besides every {PARAM} of thing_name
        // RegisterThing is refused (403 AccessDenied) when a parameter has one of these values: a
        // pre-provisioning hook saying no.
        std::vector<std::pair<std::string, std::string>> refused;
        std::vector<std::pair<std::string, std::string>> device_configuration;  // answered as is
    };

    // Counted from when they are set (at start or by inject()), per kind of request.
    struct faults {
        unsigned silent_create = 0;    // no answer to the next N CreateCertificateFromCsr
        unsigned silent_register = 0;  // ... RegisterThing
        unsigned fail_create = 0;      // the next N rejected with 500 InternalFailure (transient)
        unsigned fail_register = 0;
        unsigned exit_after = 0;  // exit once N more answers (accepted or rejected) reached the broker
    };

    struct options {
        std::vector<provisioning_template> templates{provisioning_template{}};
        int certificate_days = 365;
        // The issued certificate's subject: the CSR's (false), or CN=AWS IoT Certificate.
        bool aws_subject = false;
        std::chrono::seconds token_lifetime{3600};  // AWS: one hour
        faults at_start;
    };

    // One request as the responder saw it.
    struct record {
        double time = 0;  // seconds since the epoch
        kind what = kind::create_certificate;
        std::string topic;
        std::string outcome;  // "accepted", "rejected" or "silent"
        int status = 0;       // 200, the rejection's statusCode, 0 when silent
        std::string error_code;
        std::string template_name;
        std::string certificate_id;  // issued, or the one the token belongs to
        std::string certificate_cn;
        std::string thing_name;  // registered
    };

    // Starts the responder and waits until it is subscribed (throws std::runtime_error with its
    // output when it does not get there).
    fleet_responder_fixture(const broker_fixture& broker, options opts);
    explicit fleet_responder_fixture(const broker_fixture& broker);  // default options
    ~fleet_responder_fixture();
    fleet_responder_fixture(const fleet_responder_fixture&) = delete;
    fleet_responder_fixture& operator=(const fleet_responder_fixture&) = delete;

    // Starts it again (after stop() or an exit_after fault) with options::at_start's faults, and
    // waits until it is subscribed. A no-op while it runs.
    void start();
    void stop();
    [[nodiscard]] bool running();
    // Waits until it exited by itself (exit_after) or `timeout_ms` passed; returns whether it did.
    [[nodiscard]] bool wait_exited(int timeout_ms = 10'000);
    // Adds faults from the next request on.
    void inject(const faults& f) const;

    // The request topics, and the answer topics a device subscribes to.
    [[nodiscard]] static std::string create_topic() { return "$aws/certificates/create-from-csr/json"; }
    [[nodiscard]] static std::string provision_topic(const std::string& template_name) {
        return "$aws/provisioning-templates/" + template_name + "/provision/json";
    }

    // Every request so far, in order; and counts of them.
    [[nodiscard]] std::vector<record> records() const;
    [[nodiscard]] std::size_t requests(kind k) const;
    [[nodiscard]] std::size_t accepted(kind k) const;
    [[nodiscard]] std::size_t rejected(kind k) const;
    // Waits until at least `n` requests were recorded or `timeout_ms` passed; returns how many were.
    std::size_t wait_for_records(std::size_t n, int timeout_ms = 10'000) const;
    [[nodiscard]] std::filesystem::path log_file() const { return dir_ / "requests.log"; }

private:
    [[nodiscard]] std::size_t count(kind k, const std::string& outcome) const;

    const broker_fixture& broker_;
    options opts_;
    std::filesystem::path dir_;
    std::optional<child_process> responder_;
};

}  // namespace thingmux::test
