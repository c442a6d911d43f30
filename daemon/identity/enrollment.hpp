// One enrollment with AWS IoT's fleet provisioning MQTT API, sans I/O: CreateCertificateFromCsr,
// then (when a template is given) RegisterThing. The caller feeds it events and carries out the
// actions it returns; it owns no socket, timer or clock, so a test drives it step by step.
//
//   start(csr)      -> subscribe(accepted + rejected topics of both steps)   (before publishing,
//                                                                            as AWS recommends)
//   subscribed(ok)  -> publish(create-from-csr request)
//   message(create-from-csr/json/accepted)
//                   -> publish(RegisterThing request)    or, without a template:
//                   -> unsubscribe(all), done(result)
//   message(provision/json/accepted) -> unsubscribe(all), done(result)
//   a rejection, a SUBACK failure, a failed publish, an unreadable answer, timeout() or stop()
//                   -> unsubscribe(all) (when subscribed), failed(error)
// Messages on other topics are ignored. After done/failed every event is ignored. The caller
// arms a timer whenever it carries out a subscribe or a publish action, and calls timeout() when
// it fires before the next answer. No logging.
#pragma once

#include "common/fleet_provisioning.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace thingmux::identity {

// What an enrollment is for.
enum class enrollment_purpose : std::uint8_t {
    provisioning,  // from a claim certificate: RegisterThing is required (a template must be given)
    rotation,      // a new certificate for the Thing: RegisterThing only when a template is given
};

struct enrollment_request {
    enrollment_purpose purpose = enrollment_purpose::rotation;
    std::string template_name;                       // empty: no RegisterThing
    aws::fleet_provisioning::string_map parameters;  // RegisterThing's, already expanded (${thing})
    std::chrono::seconds answer_timeout{30};         // for messages; the caller's timer uses it
};

// What AWS IoT gave.
struct enrollment_result {
    std::string certificate_pem;
    std::string certificate_id;
    std::string thing_name;  // from RegisterThing; empty without it
    aws::fleet_provisioning::string_map device_configuration;
};

// The step that failed.
enum class enrollment_step : std::uint8_t {
    key,      // preparing the key and its CSR (the runner)
    request,  // checking what is to be sent
    subscribe,
    create_certificate,
    register_thing,
    store,  // writing the new certificate and key (the runner)
};

struct enrollment_error {
    enrollment_step step = enrollment_step::request;
    // For people: which step, AWS's statusCode, errorCode and errorMessage (escaped), what to do.
    std::string message;
    // Whether the same request later may succeed: timeouts, lost publishes, 429 and 5xx. A 4xx,
    // a refused subscription or an unreadable answer needs a change (policy, template, CSR).
    bool retry_can_help = false;
};

// Actions for the caller.
struct subscribe_action {
    std::vector<std::string> filters;  // QoS 1
};
struct unsubscribe_action {
    std::vector<std::string> filters;
};
struct publish_action {
    std::string topic;  // QoS 1
    std::string payload;
};
struct done_action {
    enrollment_result result;
};
struct failed_action {
    enrollment_error error;
};
using enrollment_action =
    std::variant<subscribe_action, unsubscribe_action, publish_action, done_action, failed_action>;
using enrollment_actions = std::vector<enrollment_action>;

[[nodiscard]] const char* step_name(enrollment_step step) noexcept;

class enrollment {
public:
    explicit enrollment(enrollment_request request);

    // Starts with the CSR (PEM) of the new key. A request that cannot be made (no template for
    // provisioning, a bad template name, parameters, CSR) fails here, before anything is sent.
    [[nodiscard]] enrollment_actions start(std::string_view csr_pem);

    // The SUBACK's reason codes, one per filter of the subscribe action (>= 0x80: refused).
    [[nodiscard]] enrollment_actions subscribed(const std::vector<std::uint8_t>& reason_codes);
    // The PUBACK of the last publish, or why it failed ("" when it went through).
    [[nodiscard]] enrollment_actions published(std::string_view failure);
    // A message on the session; only the answer topics of the current step are read.
    [[nodiscard]] enrollment_actions message(std::string_view topic, std::string_view payload);
    // The caller's timer fired while waiting.
    [[nodiscard]] enrollment_actions timeout();
    // The caller gives up (the session is gone, the daemon stops): fails with `why`, transient.
    [[nodiscard]] enrollment_actions stop(std::string_view why);

    // Whether `topic` is one this enrollment reads (for routing messages to it).
    [[nodiscard]] bool wants(std::string_view topic) const;
    [[nodiscard]] bool finished() const noexcept { return state_ == state::finished; }

private:
    enum class state : std::uint8_t { idle, subscribing, creating, registering, finished };

    [[nodiscard]] enrollment_actions on_created(std::string_view payload);
    [[nodiscard]] enrollment_actions on_registered(std::string_view payload);
    [[nodiscard]] enrollment_actions on_rejected(enrollment_step step, std::string_view payload);
    [[nodiscard]] enrollment_actions fail(enrollment_step step, std::string message, bool retry_can_help);
    [[nodiscard]] enrollment_actions succeed();
    [[nodiscard]] std::vector<std::string> filters() const;
    [[nodiscard]] enrollment_step current_step() const noexcept;

    enrollment_request request_;
    aws::fleet_provisioning::topics create_;
    aws::fleet_provisioning::topics register_;
    std::string create_payload_;
    enrollment_result result_;
    state state_ = state::idle;
};

}  // namespace thingmux::identity
