// Shadow and jobs requests over the client's own publish and subscribe (client.hpp, services.hpp):
// one answer subscription per operation (and shadow), kept; a clientToken per request; the
// request completes with the answer carrying its token, or with timed_out at its deadline.
//
// Threads: the public calls come from any app thread; answers, publish and subscribe results and
// deadlines come on the client's loop. One lock guards the table; completions run outside it, on
// the loop (or, for a request refused before it is queued, on the calling thread).
#pragma once

#include "thingmux/client.hpp"

#include "service_table.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace thingmux::detail {

class core;

class service_engine : public std::enable_shared_from_this<service_engine> {
public:
    // `c` outlives the engine's use: the engine lives in the client's impl, and what the core
    // holds of it (handlers, timers) holds it weakly.
    service_engine(core& c, std::string configured_thing);

    // `operation`: "get", "update" or "delete"; `document`: the update's JSON (else empty).
    void shadow(std::string shadow_name, std::string operation, std::string document, service_handler done);
    void update_job(std::string job_id, std::string status, std::map<std::string, std::string> details,
                    std::optional<std::int64_t> expected_version, service_handler done);
    void jobs_get(jobs_list_handler done);
    void on_job(std::string operation, job_handler handler, completion_handler done);
    void set_timeout(std::chrono::milliseconds timeout);

private:
    // The Thing the requests are for, or nothing while unknown.
    [[nodiscard]] std::optional<std::string> thing() const;
    // The Thing and a new clientToken for a request; nothing, after failing `done` with
    // not_connected, while the Thing is not known.
    [[nodiscard]] std::optional<std::pair<std::string, std::string>> prepare(const service_handler& done);
    void start(std::string request_topic, std::string answer_filter, std::string token, std::string payload,
               service_handler done);
    void publish(const std::string& token, std::string topic, std::string payload);
    void on_published(const std::string& token, const result& r);
    void on_subscribed(const std::string& filter, const result& r);
    void on_answer(const message& m);
    void on_deadline(const result* cancelled);
    // Schedules the deadline timer if `at` is earlier than the one armed (lock held); true when the
    // caller must call core_.schedule() after unlocking.
    [[nodiscard]] bool arm_locked(service_clock::time_point at);
    void schedule(service_clock::time_point at);

    core& core_;
    const std::string configured_thing_;

    std::mutex mutex_;
    service_table table_;
    token_maker tokens_;
    std::chrono::milliseconds timeout_ = default_service_timeout;
    std::optional<service_clock::time_point> armed_;
};

}  // namespace thingmux::detail
