// The jobs service's decisions, without I/O (docs/services.md): which AWS IoT Jobs request
// to send when, which local app gets a job, and what happens to a job no app handles.
//
// AWS IoT's start-next model, one job at a time: on connect, and whenever notify-next names a
// job, ask for the next one ($aws/things/T/jobs/start-next, which also moves it to IN_PROGRESS);
// hand the execution AWS gives to the apps registered for its jobDocument.operation (holders of
// "$thingmux/jobs/OPERATION"); the app reports progress and the end itself, and a terminal
// status makes AWS send notify-next with the next job. A job whose operation no app holds (once
// the service has run for handler_wait; until then it waits for one, checked every second) or
// whose document names no valid operation is rejected with a reason, or left IN_PROGRESS.
//
// Inputs are the calls below, each with the current time; outputs are actions the caller
// carries out in order (jobs_service.cpp): publish a request, offer an execution to an
// operation's apps (answered with offered()), log a line, wake me at T (a later wake replaces an
// earlier one). Answers are matched by this service's own clientToken, so they are recognised
// whether or not the pipeline routes answers by token. Every peer-controlled input is bounded:
// a payload of at most 64 KiB and JSON depth 32, job IDs and operations of at most 64 known
// characters. Pure: no Asio, no logging.
#pragma once

#include "config/config.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace thingmux::services {

using steady_time = std::chrono::steady_clock::time_point;

inline constexpr std::size_t max_jobs_payload = 64 * 1024;
inline constexpr unsigned max_jobs_json_depth = 32;
inline constexpr std::size_t max_operation_bytes = 64;
inline constexpr std::size_t max_job_id_bytes = 64;           // AWS IoT: [a-zA-Z0-9_-]+, at most 64
inline constexpr std::size_t max_status_detail_bytes = 1024;  // AWS IoT: a statusDetails value
inline constexpr std::chrono::seconds first_retry{5};
inline constexpr std::chrono::seconds last_retry{300};
inline constexpr std::chrono::seconds handler_recheck{1};
// The local topic an app subscribes to for the jobs of one operation.
inline constexpr std::string_view jobs_topic_prefix = "$thingmux/jobs/";

// Whether `operation` may name a job operation: 1 to 64 of A-Z a-z 0-9 _ . - (it becomes a topic level).
[[nodiscard]] bool valid_operation(std::string_view operation) noexcept;
// Whether `id` may be an AWS IoT job ID: 1 to 64 of A-Z a-z 0-9 _ - (it becomes a topic level).
[[nodiscard]] bool valid_job_id(std::string_view id) noexcept;

enum class log_level : std::uint8_t { info, warning, error };

namespace jobs_action {
// Send this request through the Thing's pipeline; if the pipeline refuses it, tell
// publish_failed() with the token.
struct publish {
    std::string topic;
    std::string payload;
    std::uint8_t qos = 0;
    std::string token;  // the request's clientToken
};
// Deliver `execution` on "$thingmux/jobs/OPERATION" to the sessions holding a matching filter,
// then call offered() with how many got it.
struct offer {
    std::string operation;
    std::string job_id;
    std::string execution;  // the execution object AWS gave, as JSON
};
// One log line. `peer_noise`: about an unreadable message from the broker's side, which a
// flood could repeat (the caller rate-limits those).
struct log {
    log_level level = log_level::info;
    std::string text;  // peer text in it is escaped already
    bool peer_noise = false;
};
// Call tick() at `at` (replaces the wake asked for before).
struct wake {
    steady_time at;
};
}  // namespace jobs_action
using jobs_step = std::variant<jobs_action::publish, jobs_action::offer, jobs_action::log, jobs_action::wake>;
using jobs_actions = std::vector<jobs_step>;

// What the service is doing, for status (D-Bus, thingmuxctl).
enum class jobs_state : std::uint8_t {
    offline,      // the Thing is not connected
    idle,         // no job to run; waiting for notify-next
    requesting,   // start-next sent, answer awaited
    waiting,      // a job waits for an app of its operation (within handler_wait)
    handed,       // the job is with its app(s); waiting for notify-next to name another
    rejecting,    // REJECTED sent for a job no app handles, answer awaited
    left,         // a job no app handles left IN_PROGRESS (unhandled: leave) until it ends
    backing_off,  // a request failed; start-next again later
};
[[nodiscard]] const char* to_string(jobs_state s) noexcept;

struct jobs_counts {
    std::uint64_t handed = 0;    // executions given to apps
    std::uint64_t rejected = 0;  // jobs reported REJECTED (AWS accepted it, or moved on)
    std::uint64_t left = 0;      // jobs left IN_PROGRESS (unhandled: leave)
    std::uint64_t failures = 0;  // requests that failed or were not answered
    std::uint64_t malformed = 0; // messages that could not be read (not JSON, too big, bad fields)
};

struct jobs_snapshot {
    jobs_state state = jobs_state::offline;
    std::string job_id;      // the current job; empty: none
    std::string operation;   // its operation (empty when its document names no valid one)
    std::string job_status;  // the execution's status as AWS last gave it ("IN_PROGRESS")
    jobs_counts counts;
    std::optional<steady_time> retry_at;  // backing_off: when start-next goes again
};

class jobs_logic {
public:
    // `token_prefix`: the start of this service's clientTokens, unique per daemon run (at most
    // 40 bytes; a counter follows). `started`: when the service started (handler_wait counts from it).
    jobs_logic(std::string thing, config::jobs_settings settings, std::string token_prefix, steady_time started,
               std::chrono::milliseconds request_timeout = std::chrono::seconds(30));

    // The topics this service subscribes to (each also as AWS sends answers without a
    // subscription: the broker in between may not).
    [[nodiscard]] std::vector<std::string> filters() const;

    // The Thing's connection came up or went down.
    [[nodiscard]] jobs_actions link(bool up, steady_time now);
    // A message on one of filters().
    [[nodiscard]] jobs_actions message(std::string_view topic, std::string_view payload, steady_time now);
    // The pipeline refused the request with `token` (offline, a guardrail): `why` is its message.
    [[nodiscard]] jobs_actions publish_failed(std::string_view token, std::string_view why, steady_time now);
    // The answer to jobs_action::offer: how many sessions got the execution.
    [[nodiscard]] jobs_actions offered(std::string_view job_id, std::size_t count, steady_time now);
    // The time asked for with jobs_action::wake (or later; early calls do nothing).
    [[nodiscard]] jobs_actions tick(steady_time now);
    // Configuration reload: new settings from the next decision on.
    void reconfigure(config::jobs_settings settings) { settings_ = std::move(settings); }

    [[nodiscard]] jobs_snapshot snapshot() const;
    [[nodiscard]] const config::jobs_settings& settings() const noexcept { return settings_; }

private:
    struct job {
        std::string id;
        std::optional<std::int64_t> execution_number;
        std::string operation;  // valid, or empty with `problem` saying why
        std::string problem;
        std::string status;
        std::string execution;  // as JSON, for the offers
        bool handed = false;
        bool wait_logged = false;
    };
    enum class request_kind : std::uint8_t { start_next, reject };

    void request_start_next(steady_time now, jobs_actions& out);
    void fail(std::string what, steady_time now, jobs_actions& out);
    void succeeded();
    void on_notify_next(std::string_view payload, steady_time now, jobs_actions& out);
    void on_start_next_answer(bool accepted, std::string_view payload, steady_time now, jobs_actions& out);
    void on_update_answer(std::string_view job_id, bool accepted, std::string_view payload, steady_time now,
                          jobs_actions& out);
    void take(job j, steady_time now, jobs_actions& out);
    void unhandled(steady_time now, jobs_actions& out);
    // The current job is over (notify-next names another, or none): the next one, if any.
    void move_on(bool next_exists, steady_time now, jobs_actions& out);
    void wake_if_due(jobs_actions& out) const;
    [[nodiscard]] std::string describe_job() const;
    [[nodiscard]] std::string reject_reason() const;

    std::string thing_;
    std::string prefix_;  // "$aws/things/THING/jobs/"
    config::jobs_settings settings_;
    std::string token_prefix_;
    steady_time started_;
    std::chrono::milliseconds request_timeout_;

    jobs_state state_ = jobs_state::offline;
    std::optional<job> job_;
    std::string token_;  // of the request in flight; empty: none
    request_kind request_ = request_kind::start_next;
    std::optional<steady_time> deadline_;  // request timeout, retry time, or next handler check
    std::optional<steady_time> retry_at_;  // after failures: no start-next before (kept across reconnects)
    bool renotified_ = false;              // notify-next named a job while start-next was in flight
    std::uint64_t next_token_ = 1;
    std::uint32_t consecutive_failures_ = 0;
    jobs_counts counts_;
};

}  // namespace thingmux::services
