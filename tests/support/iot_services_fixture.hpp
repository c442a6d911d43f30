// The cloud side of the AWS IoT Device Shadow and Jobs MQTT APIs for integration tests:
// tests/support/iot-services-responder (python3-paho-mqtt) on a broker_fixture's broker, connected
// as its observer. It answers the shadow requests (classic and named: get, update, delete, with
// documents and delta messages) and the jobs requests (get, start-next, J/get, J/update, with
// notify and notify-next) of the Things it serves, as AWS IoT does; the test queues jobs, makes
// desired-state updates from the cloud side and scripts silences at run time. Every request
// leaves one record, for the tests to count. docs/services.md says where it differs
// from AWS.
//
// Every call that changes the responder waits until it applied the change (bounded: throws
// std::runtime_error when it did not, or refused it), so what a test does next sees it.
// The responder records a request and its change of state before it publishes the answers and
// notifications: once a test received one, requests() and the state queries show what made it.
#pragma once

#include "tests/support/broker_fixture.hpp"
#include "tests/support/process.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::test {

class iot_services_responder {
public:
    struct options {
        std::vector<std::string> things;  // Things served (requests for others are ignored and recorded)
        // "KIND:N": no answer to the next N requests of KIND (shadow-get, shadow-update,
        // shadow-delete, jobs-get (jobs/get and jobs/J/get), jobs-start-next, jobs-update).
        std::vector<std::string> silent;
        // "KIND:N:MS": the next N requests of KIND are answered MS milliseconds late (as delay()).
        std::vector<std::string> delayed;
    };

    // Starts the responder and waits until it is subscribed (throws std::runtime_error with its
    // output when it fails or does not get there in time).
    iot_services_responder(const broker_fixture& broker, options o);
    ~iot_services_responder();  // stops it
    iot_services_responder(const iot_services_responder&) = delete;
    iot_services_responder& operator=(const iot_services_responder&) = delete;

    // Jobs: queues a job for `thing` (document: JSON object text, e.g. {"operation":"reboot"}).
    // It publishes jobs/notify (and jobs/notify-next when the job is the Thing's next) as AWS does.
    void add_job(const std::string& thing, const std::string& job_id, const std::string& document_json);
    // A desired-state update from the cloud side ("" = the classic shadow): `state_json` is the
    // desired section ({"led":"on"}), or a whole state node ({"desired":{...}} and/or
    // {"reported":{...}}). The responder publishes update/accepted, update/documents and, when
    // desired differs from reported, update/delta, without clientToken.
    void cloud_update(const std::string& thing, const std::string& shadow, const std::string& state_json);
    // A scripted fault from the next request on: no answer to the next `n` requests of `kind`.
    void silence(const std::string& kind, int n);
    // A scripted fault from the next request on: the next `n` requests of `kind` are handled `by`
    // later, as if they had just arrived (a late answer; its record is written then, with delay_ms).
    void delay(const std::string& kind, int n, std::chrono::milliseconds by);

    // One request as the responder saw it.
    struct request {
        std::string thing, kind, topic, shadow, job_id, status, outcome, client_token;
        int code = 0;              // shadow: 200 or the rejection's code; jobs: 200, 400, 404, 409, 500
        std::int64_t version = 0;  // the shadow's or the job execution's version after it (0: none)
        std::string error_code;    // a jobs rejection's code (InvalidRequest, VersionMismatch, ...)
        std::int64_t delay_ms = 0; // how late it was answered (delay())
    };
    // Every request handled so far, in order (outcome: accepted, rejected, silent, or ignored for a
    // Thing not served).
    [[nodiscard]] std::vector<request> requests() const;
    // Waits until at least `n` requests matching `pred` are recorded or `timeout` passed; returns
    // those it saw.
    std::vector<request> wait_for(std::function<bool(const request&)> pred, std::size_t n,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;

    // A job execution's status as the responder has it ("" when it has no such job), and the status
    // of every start-next (IN_PROGRESS) and J/update it accepted for it, in order.
    [[nodiscard]] std::string job_status(const std::string& thing, const std::string& job_id) const;
    [[nodiscard]] std::vector<std::string> job_status_history(const std::string& thing, const std::string& job_id) const;
    // The shadow document as get/accepted would give it without timestamp and clientToken
    // ({"state":{"desired","reported","delta"},"metadata","version"}; "" when there is none).
    [[nodiscard]] std::string shadow_document(const std::string& thing, const std::string& shadow) const;

    [[nodiscard]] std::filesystem::path log_file() const { return dir_ / "requests.log"; }
    [[nodiscard]] std::filesystem::path output_file() const { return dir_ / "responder.out"; }

private:
    // Hands a control command (a JSON object) to the responder and waits until it applied it.
    void control(const std::string& command_json);

    const broker_fixture& broker_;
    std::filesystem::path dir_;
    std::optional<child_process> responder_;
    std::mutex control_mutex_;  // one command at a time: each waits for its own acknowledgement
    std::uint64_t control_seq_ = 0;
};

}  // namespace thingmux::test
