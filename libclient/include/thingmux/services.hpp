// AWS IoT Device Shadows and Jobs through thingmuxd: the types of client::shadow_get(),
// shadow_update(), shadow_delete(), on_job(), update_job() and jobs_get() (client.hpp), and the
// topic helpers apps use to watch a shadow themselves.
//
// These are request/response protocols on the Thing's reserved topics
// ($aws/things/THING/shadow/..., $aws/things/THING/jobs/...). The library subscribes to the
// answer topics of an operation once, the first time it is used, and keeps the subscription; it
// publishes each request with a clientToken of its own and completes the request with the answer
// that carries that token (thingmuxd makes tokens unique among its apps and routes each answer to
// the app that asked). JSON goes in and out as text (std::string): the library only reads the
// few fields it needs and leaves the documents as AWS wrote them.
#pragma once

#include "thingmux/error.hpp"
#include "thingmux/export.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux {

// How long a shadow or jobs request waits for its answer unless client::set_service_timeout()
// says otherwise: longer than thingmuxd's own services.request_timeout (10 s by default), so that
// the daemon's answer ({"code":504,...} on .../rejected) normally comes first.
inline constexpr std::chrono::milliseconds default_service_timeout{15000};
// Shadow and jobs requests of one client waiting for their answer; past it: quota_exceeded.
// thingmuxd has the same bound per app by default (services.max_pending_per_session).
inline constexpr std::size_t max_pending_service_requests = 100;

// The answer to a shadow or jobs request.
//
// `outcome` says whether an answer came: ok when AWS (or thingmuxd for it) answered, accepted or
// rejected; otherwise why not: timed_out (no answer within the service timeout), not_connected
// (thingmuxd or its uplink is offline), not_authorized (the local policy denies the topic),
// quota_exceeded, invalid_argument (a bad shadow name, job id or JSON document), invalid_payload,
// closed, ... with outcome.message saying more.
struct service_reply {
    result outcome{};
    // The answer came on .../accepted.
    bool accepted = false;
    // Rejected: the error's "code" (shadows: 400 bad request, 401, 403, 404 no such shadow, 409
    // version conflict, 413 too large, 429, 500; thingmuxd: 504 when AWS did not answer in time)
    // and its "message". Jobs name their errors (error_code: InvalidRequest, ResourceNotFound,
    // InvalidStateTransition, VersionMismatch, TerminalStateReached, RequestThrottled,
    // InternalError, ServiceUnavailable); `code` is then the HTTP status AWS documents for it (400,
    // 404, 409, 409, 410, 429, 500, 503; 400 for one this library does not know).
    int code = 0;
    std::string error_code{};
    std::string error_message{};
    // The answer's JSON payload as it came (accepted: the state document or the job execution
    // state; rejected: the error object), clientToken included. Empty when no answer came.
    std::string document{};
    // A shadow get answered by thingmuxd's shadow cache while the Thing is offline
    // (services.shadow_cache): the last document thingmuxd saw, with its version.
    bool cached = false;
    // The shadow's "version" (the job execution's versionNumber for job updates) when the answer
    // has one, else -1.
    std::int64_t version = -1;

    // An answer came and it was accepted.
    [[nodiscard]] bool ok() const noexcept { return outcome.ok() && accepted; }
    explicit operator bool() const noexcept { return ok(); }
};

using shadow_reply = service_reply;
using job_update_reply = service_reply;

// One entry of a jobs_get() answer (AWS's JobExecutionSummary).
struct job_summary {
    std::string id{};
    std::int64_t version = 0;           // versionNumber
    std::int64_t execution_number = 0;  // executionNumber
    std::int64_t queued_at = 0;         // seconds since the epoch; 0 when absent
};

// The answer to jobs_get(): the Thing's pending job executions.
struct jobs_list_reply {
    service_reply reply{};
    std::vector<job_summary> in_progress{};  // inProgressJobs
    std::vector<job_summary> queued{};       // queuedJobs
};

// A job execution thingmuxd hands to the app registered for its operation (client::on_job()).
struct job {
    std::string id{};                     // jobId
    std::string operation{};              // jobDocument.operation
    std::string document{};               // jobDocument, as JSON text
    std::string status{};                 // QUEUED, IN_PROGRESS, ...
    std::int64_t version = 0;           // versionNumber: pass it as expected_version to update_job()
    std::int64_t execution_number = 0;  // executionNumber
    std::string execution{};              // the whole execution object, as JSON text
};

using service_handler = std::function<void(const service_reply&)>;
using jobs_list_handler = std::function<void(const jobs_list_reply&)>;
using job_handler = std::function<void(const job&)>;

// A shadow name AWS accepts: 1 to 64 characters of [A-Za-z0-9:_-]. The classic (unnamed)
// shadow is the empty name in this API.
[[nodiscard]] THINGMUX_API bool valid_shadow_name(std::string_view name) noexcept;

// A job id AWS accepts: 1 to 64 characters of [A-Za-z0-9_-].
[[nodiscard]] THINGMUX_API bool valid_job_id(std::string_view id) noexcept;

// A job operation thingmuxd hands out: 1 to 64 characters of [A-Za-z0-9_.-].
[[nodiscard]] THINGMUX_API bool valid_job_operation(std::string_view operation) noexcept;

// The topic of a shadow of `thing`: "$aws/things/THING/shadow[/name/NAME]/SUFFIX", e.g. with the
// suffix "update/delta" or "update/documents" for what client::subscribe() can watch. An empty
// `shadow_name` is the classic shadow. Does not check its arguments.
[[nodiscard]] THINGMUX_API std::string shadow_topic(std::string_view thing, std::string_view shadow_name,
                                                    std::string_view suffix);

}  // namespace thingmux
