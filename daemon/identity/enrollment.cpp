#include "daemon/identity/enrollment.hpp"

#include "common/printable.hpp"

#include <algorithm>
#include <cstdio>

namespace thingmux::identity {
namespace {

namespace fp = aws::fleet_provisioning;

// SUBACK reason codes from 0x80 up refuse the subscription (MQTT 3.1.1 and 5).
constexpr std::uint8_t first_failure_code = 0x80;

std::string quoted(std::string_view peer_text) {
    return "\"" + text::printable(peer_text, fp::max_error_text_bytes) + "\"";
}

std::string hex_byte(std::uint8_t b) {
    char text[8];
    std::snprintf(text, sizeof text, "0x%02x", b);
    return text;
}

}  // namespace

const char* step_name(enrollment_step step) noexcept {
    switch (step) {
        case enrollment_step::key:
            return "preparing the key and its CSR";
        case enrollment_step::request:
            return "preparing the request";
        case enrollment_step::subscribe:
            return "subscribing to the answer topics";
        case enrollment_step::create_certificate:
            return "CreateCertificateFromCsr";
        case enrollment_step::register_thing:
            return "RegisterThing";
        case enrollment_step::store:
            return "storing the new certificate and key";
    }
    return "enrollment";
}

enrollment::enrollment(enrollment_request request)
    : request_(std::move(request)),
      create_(fp::create_certificate_topics()),
      register_(fp::valid_template_name(request_.template_name) ? fp::register_thing_topics(request_.template_name)
                                                                : fp::topics{}) {}

enrollment_actions enrollment::start(std::string_view csr_pem) {
    if (state_ != state::idle) return {};
    if (request_.purpose == enrollment_purpose::provisioning && request_.template_name.empty())
        return fail(enrollment_step::request, "provisioning needs the name of a provisioning template", false);
    if (!request_.template_name.empty() && !fp::valid_template_name(request_.template_name))
        return fail(enrollment_step::request,
                    "the provisioning template name " + quoted(request_.template_name) +
                        " is not one AWS accepts (1 to 36 of A-Z a-z 0-9 _ -)",
                    false);
    // The parameters are checked now, so that a bad one fails before a certificate is issued.
    if (auto checked = fp::encode_register_thing_request("check", request_.parameters); !checked)
        return fail(enrollment_step::request, "the template parameters cannot be sent: " + checked.error().detail,
                    false);
    auto payload = fp::encode_create_certificate_request(csr_pem);
    if (!payload) return fail(enrollment_step::request, payload.error().detail, false);
    create_payload_ = std::move(*payload);
    state_ = state::subscribing;
    return {subscribe_action{filters()}};
}

enrollment_actions enrollment::subscribed(const std::vector<std::uint8_t>& reason_codes) {
    if (state_ != state::subscribing) return {};
    const auto wanted = filters();
    if (reason_codes.size() != wanted.size())
        return fail(enrollment_step::subscribe,
                    "the SUBACK has " + std::to_string(reason_codes.size()) + " reason codes for " +
                        std::to_string(wanted.size()) + " topic filters",
                    false);
    for (std::size_t i = 0; i < wanted.size(); ++i) {
        if (reason_codes[i] >= first_failure_code)
            return fail(enrollment_step::subscribe,
                        "AWS IoT refused the subscription to " + wanted[i] + " (reason code " +
                            hex_byte(reason_codes[i]) +
                            "): the certificate's IoT policy must allow iot:Subscribe on this topic filter and "
                            "iot:Receive on the topic",
                        false);
    }
    state_ = state::creating;
    return {publish_action{create_.request, create_payload_}};
}

enrollment_actions enrollment::published(std::string_view failure) {
    if (failure.empty() || (state_ != state::creating && state_ != state::registering)) return {};
    const auto& topic = state_ == state::creating ? create_.request : register_.request;
    return fail(current_step(), "the request to " + topic + " was not delivered: " + text::printable(failure), true);
}

enrollment_actions enrollment::message(std::string_view topic, std::string_view payload) {
    if (state_ == state::creating) {
        if (topic == create_.accepted) return on_created(payload);
        if (topic == create_.rejected) return on_rejected(enrollment_step::create_certificate, payload);
    } else if (state_ == state::registering) {
        if (topic == register_.accepted) return on_registered(payload);
        if (topic == register_.rejected) return on_rejected(enrollment_step::register_thing, payload);
    }
    return {};
}

enrollment_actions enrollment::timeout() {
    const auto seconds = std::to_string(request_.answer_timeout.count()) + " s";
    switch (state_) {
        case state::subscribing:
            return fail(enrollment_step::subscribe,
                        "AWS IoT did not acknowledge the subscription to the answer topics within " + seconds, true);
        case state::creating:
            return fail(enrollment_step::create_certificate,
                        "AWS IoT did not answer " + create_.request + " within " + seconds, true);
        case state::registering:
            return fail(enrollment_step::register_thing,
                        "AWS IoT did not answer " + register_.request + " within " + seconds, true);
        case state::idle:
        case state::finished:
            break;
    }
    return {};
}

enrollment_actions enrollment::stop(std::string_view why) {
    if (state_ == state::finished) return {};
    const auto step = state_ == state::idle          ? enrollment_step::request
                      : state_ == state::subscribing ? enrollment_step::subscribe
                                                     : current_step();
    return fail(step, "stopped: " + text::printable(why), true);
}

bool enrollment::wants(std::string_view topic) const {
    if (state_ == state::idle || state_ == state::finished) return false;
    const auto all = filters();
    return std::find(all.begin(), all.end(), topic) != all.end();
}

enrollment_actions enrollment::on_created(std::string_view payload) {
    auto created = fp::decode_create_certificate_accepted(payload);
    if (!created)
        return fail(enrollment_step::create_certificate,
                    "AWS IoT's answer on " + create_.accepted + " cannot be read: " + created.error().detail, false);
    result_.certificate_pem = std::move(created->certificate_pem);
    result_.certificate_id = std::move(created->certificate_id);
    if (request_.template_name.empty()) return succeed();
    auto request = fp::encode_register_thing_request(created->ownership_token, request_.parameters);
    if (!request)  // the token was checked when read and the parameters at start: kept for safety
        return fail(enrollment_step::register_thing, request.error().detail, false);
    state_ = state::registering;
    return {publish_action{register_.request, std::move(*request)}};
}

enrollment_actions enrollment::on_registered(std::string_view payload) {
    auto registered = fp::decode_register_thing_accepted(payload);
    if (!registered)
        return fail(enrollment_step::register_thing,
                    "AWS IoT's answer on " + register_.accepted + " cannot be read: " + registered.error().detail,
                    false);
    result_.thing_name = std::move(registered->thing_name);
    result_.device_configuration = std::move(registered->device_configuration);
    return succeed();
}

enrollment_actions enrollment::on_rejected(enrollment_step step, std::string_view payload) {
    auto rejected = fp::decode_rejected(payload);
    if (!rejected)
        return fail(step, "AWS IoT rejected the request with an answer that cannot be read: " + rejected.error().detail,
                    false);
    const bool transient = fp::retry_can_help(rejected->status_code);
    return fail(step,
                "AWS IoT rejected the request: statusCode " + std::to_string(rejected->status_code) + ", errorCode " +
                    quoted(rejected->error_code) + ", errorMessage " + quoted(rejected->error_message) +
                    (transient ? " (AWS IoT is busy or throttling: a later retry can succeed)"
                               : " (retrying will not help until the CSR, the template or its parameters, or the "
                                 "IoT policy change)"),
                transient);
}

enrollment_actions enrollment::fail(enrollment_step step, std::string message, bool retry_can_help) {
    enrollment_actions actions;
    if (state_ != state::idle) actions.emplace_back(unsubscribe_action{filters()});
    state_ = state::finished;
    message.insert(0, std::string(step_name(step)) + ": ");
    actions.emplace_back(failed_action{{step, std::move(message), retry_can_help}});
    return actions;
}

enrollment_actions enrollment::succeed() {
    enrollment_actions actions;
    actions.emplace_back(unsubscribe_action{filters()});
    state_ = state::finished;
    actions.emplace_back(done_action{std::move(result_)});
    return actions;
}

std::vector<std::string> enrollment::filters() const {
    std::vector<std::string> all{create_.accepted, create_.rejected};
    if (!request_.template_name.empty()) {
        all.push_back(register_.accepted);
        all.push_back(register_.rejected);
    }
    return all;
}

enrollment_step enrollment::current_step() const noexcept {
    return state_ == state::registering ? enrollment_step::register_thing : enrollment_step::create_certificate;
}

}  // namespace thingmux::identity
