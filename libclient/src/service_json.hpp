// The JSON of shadow and jobs requests and answers, as much of it as the library reads or writes:
// the request payloads with the library's clientToken, the fields of an answer that complete a
// request, a job execution and a jobs list.
//
// Pure: no socket, no thread. Every input comes from the broker or the app: parsing is bounded in
// size (max_service_json) and depth (max_service_json_depth), and refuses rather than throws.
#pragma once

#include "thingmux/services.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace thingmux::detail {

// Larger than anything AWS sends for a shadow (8 KiB state; documents about twice that with
// metadata) or a job (32 KiB document), smaller than thingmuxd's default max_payload.
inline constexpr std::size_t max_service_json = 256 * 1024;
inline constexpr unsigned max_service_json_depth = 64;
// AWS's bound for a clientToken (and thingmuxd's, A.1).
inline constexpr std::size_t max_client_token = 64;

// A request payload: `base` (empty counts as {}) with "clientToken" set to `token`, or why it is
// not one (not JSON, not an object, too large or deep).
[[nodiscard]] std::variant<std::string, std::string> request_payload(std::string_view base, std::string_view token);
[[nodiscard]] inline bool is_payload(const std::variant<std::string, std::string>& v) noexcept {
    return v.index() == 0;
}

// The payload of $aws/things/T/jobs/J/update; statusDetails omitted when `details` is empty.
[[nodiscard]] std::string job_update_payload(std::string_view status, const std::map<std::string, std::string>& details,
                                             std::optional<std::int64_t> expected_version, std::string_view token);

// What an answer on REQUEST/accepted or REQUEST/rejected says.
struct parsed_answer {
    std::optional<std::string> client_token;  // absent when not a string
    int code = 0;                             // "code" of a rejected answer (0: absent), see error_code
    std::string error_code;                   // a Jobs rejection's named "code" (VersionMismatch, ...)
    std::string message;                      // "message" of a rejected answer
    bool cached = false;                      // "cached": true (thingmuxd's shadow cache)
    std::int64_t version = -1;                // "version", or executionState.versionNumber
};
// Nothing when the payload is not a JSON object within the bounds.
[[nodiscard]] std::optional<parsed_answer> parse_answer(std::string_view payload);

// Which answer of which request a topic is: "REQUEST/accepted" or "REQUEST/rejected".
struct answer_topic {
    std::string_view request_topic;
    bool accepted = false;
};
[[nodiscard]] std::optional<answer_topic> split_answer_topic(std::string_view topic) noexcept;

// A job execution as thingmuxd hands it over (the execution object, or an object without a
// jobId whose "execution" member holds it); nothing when it has no string jobId.
[[nodiscard]] std::optional<job> parse_job(std::string_view payload);

// The lists of a jobs/get/accepted answer (absent lists are empty).
void parse_jobs_list(std::string_view payload, jobs_list_reply& out);

}  // namespace thingmux::detail
