// AWS IoT fleet provisioning's MQTT API, JSON format: its topics, the two requests it takes and
// strict, bounded readers of its answers.
//
//   CreateCertificateFromCsr  publish {"certificateSigningRequest": PEM} to
//                             $aws/certificates/create-from-csr/json; the answer comes on
//                             …/accepted {"certificateId", "certificatePem", "certificateOwnershipToken"}
//                             or …/rejected {"statusCode", "errorCode", "errorMessage"}.
//   RegisterThing             publish {"certificateOwnershipToken": T, "parameters": {K: V}} to
//                             $aws/provisioning-templates/TEMPLATE/provision/json; the answer comes
//                             on …/accepted {"deviceConfiguration": {K: V}, "thingName": "…"} or
//                             …/rejected (same shape as above).
//
// Pure: bytes in, values out; no I/O, no logging. Everything read from an answer is bounded and
// checked; the strings of a rejection are kept as AWS wrote them (bounded): escape them
// (text::printable) before showing them.
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace thingmux::aws::fleet_provisioning {

// Limits on what is sent and read. A real answer is 2-4 KiB (a certificate and a token).
inline constexpr std::size_t max_payload_bytes = 128 * 1024;
inline constexpr std::size_t max_json_depth = 8;
inline constexpr std::size_t max_certificate_pem_bytes = 16 * 1024;
inline constexpr std::size_t max_csr_pem_bytes = 16 * 1024;
inline constexpr std::size_t max_certificate_id_bytes = 64;  // AWS: 64 hex digits
inline constexpr std::size_t max_ownership_token_bytes = 16 * 1024;
inline constexpr std::size_t max_template_name_bytes = 36;  // AWS: 1-36 of [0-9A-Za-z_-]
inline constexpr std::size_t max_parameters = 64;
inline constexpr std::size_t max_parameter_name_bytes = 128;
inline constexpr std::size_t max_parameter_value_bytes = 2048;
inline constexpr std::size_t max_device_configuration_entries = 64;
inline constexpr std::size_t max_error_text_bytes = 1024;  // errorCode and errorMessage each

// The three topics of one operation: where the request goes, where the answers come.
struct topics {
    std::string request;
    std::string accepted;
    std::string rejected;
};

// A template name as AWS accepts one: 1 to 36 of [0-9A-Za-z_-].
[[nodiscard]] bool valid_template_name(std::string_view name) noexcept;

// $aws/certificates/create-from-csr/json and its /accepted, /rejected.
[[nodiscard]] topics create_certificate_topics();
// $aws/provisioning-templates/TEMPLATE/provision/json and its /accepted, /rejected; the caller
// checks the name first (valid_template_name): an invalid one would address another topic.
[[nodiscard]] topics register_thing_topics(std::string_view template_name);

// Why a request could not be made or an answer could not be read.
enum class errc : std::uint8_t {
    bad_request = 1,    // a request's own input is unusable (CSR, token, template name, parameters)
    payload_too_large,  // an answer over max_payload_bytes
    not_json,           // not a JSON document (or nested deeper than max_json_depth)
    bad_field,          // a field missing, of the wrong type, too long or with characters it cannot hold
};

// What went wrong, for people: "certificatePem is not a PEM certificate". Text from the answer
// in it is escaped.
struct error {
    errc code = errc::bad_field;
    std::string detail;
};

template <class T>
using result = boost::system::result<T, error>;

// For result::value() on an error: throws std::runtime_error with the detail.
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& where);

// Template parameters, name -> value (sorted: the encoding is deterministic).
using string_map = std::map<std::string, std::string>;

// {"certificateSigningRequest": PEM} for a PEM certificate request of at most max_csr_pem_bytes.
[[nodiscard]] result<std::string> encode_create_certificate_request(std::string_view csr_pem);

// The accepted answer of CreateCertificateFromCsr.
struct created_certificate {
    std::string certificate_id;
    std::string certificate_pem;
    std::string ownership_token;  // single use, for RegisterThing
};
[[nodiscard]] result<created_certificate> decode_create_certificate_accepted(std::string_view payload);

// {"certificateOwnershipToken": T, "parameters": {K: V}} (parameters left out when empty).
// Names must be 1 to max_parameter_name_bytes, values at most max_parameter_value_bytes, both
// UTF-8, and at most max_parameters of them.
[[nodiscard]] result<std::string> encode_register_thing_request(std::string_view ownership_token,
                                                                const string_map& parameters);

// The accepted answer of RegisterThing: the Thing's name (as AWS IoT accepts one) and the
// template's device configuration (string values only, as AWS documents it).
struct registered_thing {
    std::string thing_name;
    string_map device_configuration;
};
[[nodiscard]] result<registered_thing> decode_register_thing_accepted(std::string_view payload);

// A rejected answer of either operation. Missing fields stay 0 / empty: a rejection is a
// rejection even when AWS leaves a field out.
struct rejection {
    int status_code = 0;
    std::string error_code;     // raw, at most max_error_text_bytes
    std::string error_message;  // raw, at most max_error_text_bytes
};
[[nodiscard]] result<rejection> decode_rejected(std::string_view payload);

// Whether asking again unchanged may succeed: 429 (throttled) and 5xx. A 4xx needs a change
// (CSR, template, policy); anything else is not AWS's API and retrying will not fix it.
[[nodiscard]] bool retry_can_help(int status_code) noexcept;

}  // namespace thingmux::aws::fleet_provisioning
