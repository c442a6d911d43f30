#include "service_engine.hpp"

#include "core.hpp"
#include "request_checks.hpp"
#include "service_json.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace thingmux::detail {

namespace {

constexpr std::size_t max_status = 32;
constexpr std::size_t max_detail_key = 128;
constexpr std::size_t max_detail_value = 1024;  // AWS's bound for a statusDetails value
constexpr std::chrono::milliseconds max_timeout{3'600'000};

service_reply failed_reply(result r) {
    service_reply reply;
    reply.outcome = std::move(r);
    return reply;
}

bool valid_status(std::string_view s) {
    return !s.empty() && s.size() <= max_status &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'A' && c <= 'Z') || c == '_'; });
}

}  // namespace

service_engine::service_engine(core& c, std::string configured_thing)
    : core_(c), configured_thing_(std::move(configured_thing)) {}

std::optional<std::string> service_engine::thing() const {
    if (auto info = core_.daemon(); info && !info->thing.empty()) {
        return info->thing;
    }
    if (!configured_thing_.empty()) {
        return configured_thing_;
    }
    return std::nullopt;
}

std::optional<std::pair<std::string, std::string>> service_engine::prepare(const service_handler& done) {
    auto t = thing();
    if (!t) {
        call_quietly(done, failed_reply(make_result(error_code::not_connected,
                                                    "not connected to thingmuxd, so the Thing is not known yet")));
        return std::nullopt;
    }
    std::lock_guard lk(mutex_);
    return std::pair{std::move(*t), tokens_.next()};
}

void service_engine::set_timeout(std::chrono::milliseconds timeout) {
    std::lock_guard lk(mutex_);
    timeout_ = std::clamp(timeout, std::chrono::milliseconds{1}, max_timeout);
}

void service_engine::shadow(std::string shadow_name, std::string operation, std::string document,
                            service_handler done) {
    if (!shadow_name.empty() && !valid_shadow_name(shadow_name)) {
        call_quietly(done, failed_reply(make_result(
                               error_code::invalid_argument,
                               "\"" + shadow_name + "\" is not a shadow name (1 to 64 of A-Z a-z 0-9 : _ -)")));
        return;
    }
    auto ready = prepare(done);
    if (!ready) {
        return;
    }
    auto& [t, token] = *ready;
    auto payload = request_payload(document, token);
    if (!is_payload(payload)) {
        call_quietly(done, failed_reply(make_result(error_code::invalid_argument,
                                                    "shadow " + operation + ": " + std::get<1>(payload))));
        return;
    }
    std::string topic = shadow_topic(t, shadow_name, operation);
    std::string filter = topic + "/+";
    start(std::move(topic), std::move(filter), std::move(token), std::move(std::get<0>(payload)), std::move(done));
}

void service_engine::update_job(std::string job_id, std::string status, std::map<std::string, std::string> details,
                                std::optional<std::int64_t> expected_version, service_handler done) {
    std::string problem;
    if (!valid_job_id(job_id)) {
        problem = "\"" + job_id + "\" is not a job id (1 to 64 of A-Z a-z 0-9 _ -)";
    } else if (!valid_status(status)) {
        problem = "\"" + status + "\" is not a job execution status (e.g. IN_PROGRESS, SUCCEEDED, FAILED)";
    } else {
        for (const auto& [k, v] : details) {
            if (k.empty() || k.size() > max_detail_key || v.size() > max_detail_value) {
                problem = "statusDetails keys must have 1 to 128 bytes and values at most 1024";
                break;
            }
        }
    }
    if (!problem.empty()) {
        call_quietly(done, failed_reply(make_result(error_code::invalid_argument, std::move(problem))));
        return;
    }
    auto ready = prepare(done);
    if (!ready) {
        return;
    }
    auto& [t, token] = *ready;
    std::string payload = job_update_payload(status, details, expected_version, token);
    std::string topic = "$aws/things/" + t + "/jobs/" + job_id + "/update";
    // One subscription for the updates of every job: job ids are not bounded.
    std::string filter = "$aws/things/" + t + "/jobs/+/update/+";
    start(std::move(topic), std::move(filter), std::move(token), std::move(payload), std::move(done));
}

void service_engine::jobs_get(jobs_list_handler done) {
    auto wrapped = [d = std::move(done)](const service_reply& r) {
        jobs_list_reply out;
        out.reply = r;
        if (r.ok()) {
            parse_jobs_list(r.document, out);
        }
        call_quietly(d, out);
    };
    auto ready = prepare(wrapped);
    if (!ready) {
        return;
    }
    auto& [t, token] = *ready;
    auto payload = request_payload({}, token);
    std::string topic = "$aws/things/" + t + "/jobs/get";
    std::string filter = topic + "/+";
    start(std::move(topic), std::move(filter), std::move(token), std::move(std::get<0>(payload)), std::move(wrapped));
}

void service_engine::on_job(std::string operation, job_handler handler, completion_handler done) {
    if (!valid_job_operation(operation)) {
        call_quietly(done, make_result(error_code::invalid_argument,
                                       "\"" + operation + "\" is not a job operation (1 to 64 of A-Z a-z 0-9 _ . -)"));
        return;
    }
    if (!handler) {
        call_quietly(done, make_result(error_code::invalid_argument, "on_job needs a handler"));
        return;
    }
    // Executions that are not one (no jobId) cannot be reported on: thingmuxd sends none.
    auto on_message = [h = std::move(handler)](const message& m) {
        if (auto j = parse_job(m.payload)) {
            h(*j);
        }
    };
    core_.submit(subscribe_cmd{"$thingmux/jobs/" + operation, 1, std::move(on_message), std::move(done)});
}

void service_engine::start(std::string request_topic, std::string answer_filter, std::string token, std::string payload,
                           service_handler done) {
    service_request req;
    req.token = token;
    req.request_topic = request_topic;
    req.answer_filter = answer_filter;
    req.payload = payload;
    req.done = std::move(done);

    std::optional<result> refused;
    std::optional<service_table::filter_action> action;
    bool arm = false;
    service_clock::time_point deadline;
    {
        std::lock_guard lk(mutex_);
        deadline = service_clock::now() + timeout_;
        req.deadline = deadline;
        action = table_.need(answer_filter);
        if (!action) {
            refused = make_result(error_code::quota_exceeded, "this client already uses the answer topics of " +
                                                                  std::to_string(table_.filters()) +
                                                                  " shadow and jobs operations, the library's bound");
        } else {
            req.published = *action == service_table::filter_action::publish;
            if (!table_.add(std::move(req))) {
                refused = make_result(error_code::quota_exceeded,
                                      std::to_string(max_pending_service_requests) +
                                          " shadow and jobs requests of this client already wait for their answer");
                if (*action == service_table::filter_action::subscribe) {
                    [[maybe_unused]] const auto none = table_.settle(answer_filter, false);
                }
            } else {
                arm = arm_locked(deadline);
            }
        }
    }
    if (refused) {
        call_quietly(req.done, failed_reply(std::move(*refused)));
        return;
    }
    if (arm) {
        schedule(deadline);
    }
    if (*action == service_table::filter_action::publish) {
        publish(token, std::move(request_topic), std::move(payload));
    } else if (*action == service_table::filter_action::subscribe) {
        std::weak_ptr<service_engine> weak = weak_from_this();
        auto handler = [weak](const message& m) {
            if (auto self = weak.lock()) {
                self->on_answer(m);
            }
        };
        auto subscribed = [weak, answer_filter](const result& r) {
            if (auto self = weak.lock()) {
                self->on_subscribed(answer_filter, r);
            }
        };
        core_.submit(subscribe_cmd{answer_filter, 1, std::move(handler), std::move(subscribed)});
    }
}

void service_engine::publish(const std::string& token, std::string topic, std::string payload) {
    message m;
    m.topic = std::move(topic);
    m.payload = std::move(payload);
    m.qos = 1;
    m.content_type = "application/json";
    std::weak_ptr<service_engine> weak = weak_from_this();
    core_.submit(publish_cmd{std::move(m), [weak, token](const result& r) {
                                 if (auto self = weak.lock()) {
                                     self->on_published(token, r);
                                 }
                             }});
}

void service_engine::on_published(const std::string& token, const result& r) {
    if (r.ok()) {
        return;  // the answer completes it (spooled: it may come after the reconnect, or time out)
    }
    std::optional<service_request> req;
    {
        std::lock_guard lk(mutex_);
        req = table_.take(token);
    }
    if (req) {
        call_quietly(req->done, failed_reply(r));
    }
}

void service_engine::on_subscribed(const std::string& filter, const result& r) {
    std::vector<service_request> failed;
    std::vector<std::pair<std::string, std::pair<std::string, std::string>>> to_publish;
    {
        std::lock_guard lk(mutex_);
        for (const auto& token : table_.settle(filter, r.ok())) {
            if (r.ok()) {
                if (const auto* req = table_.find(token)) {
                    to_publish.push_back({token, {req->request_topic, req->payload}});
                }
            } else if (auto req = table_.take(token)) {
                failed.push_back(std::move(*req));
            }
        }
    }
    for (auto& [token, tp] : to_publish) {
        publish(token, std::move(tp.first), std::move(tp.second));
    }
    if (!failed.empty()) {
        result why = r;
        why.message = "subscribing to the answer topics " + filter + ": " + why.message;
        for (auto& req : failed) {
            call_quietly(req.done, failed_reply(why));
        }
    }
}

void service_engine::on_answer(const message& m) {
    const auto topic = split_answer_topic(m.topic);
    if (!topic) {
        return;  // update/delta, update/documents: not an answer
    }
    const auto parsed = parse_answer(m.payload);
    if (!parsed || !parsed->client_token) {
        return;  // not one of ours (another device's or the cloud's request)
    }
    std::optional<service_request> req;
    {
        std::lock_guard lk(mutex_);
        req = table_.take_answered(*parsed->client_token, topic->request_topic);
    }
    if (!req) {
        return;
    }
    service_reply reply;
    reply.accepted = topic->accepted;
    reply.code = topic->accepted ? 0 : parsed->code;
    reply.error_message = topic->accepted ? std::string() : parsed->message;
    reply.error_code = topic->accepted ? std::string() : parsed->error_code;
    reply.document = m.payload;
    reply.cached = parsed->cached;
    reply.version = parsed->version;
    call_quietly(req->done, reply);
}

bool service_engine::arm_locked(service_clock::time_point at) {
    if (armed_ && *armed_ <= at) {
        return false;
    }
    armed_ = at;
    return true;
}

void service_engine::schedule(service_clock::time_point at) {
    std::weak_ptr<service_engine> weak = weak_from_this();
    core_.schedule(at, [weak](const result* cancelled) {
        if (auto self = weak.lock()) {
            self->on_deadline(cancelled);
        }
    });
}

void service_engine::on_deadline(const result* cancelled) {
    std::vector<service_request> done;
    std::optional<service_clock::time_point> next;
    std::chrono::milliseconds timeout{};
    {
        std::lock_guard lk(mutex_);
        const auto now = service_clock::now();
        // A timer fires for the deadline it was armed with; an earlier one armed since has its own.
        if (armed_ && *armed_ <= now) {
            armed_.reset();
        }
        if (cancelled != nullptr) {
            armed_.reset();
            done = table_.take_all();
        } else {
            done = table_.take_expired(now);
            if (auto e = table_.earliest_deadline(); e && arm_locked(*e)) {
                next = e;
            }
        }
        timeout = timeout_;
    }
    if (next) {
        schedule(*next);
    }
    const result why = cancelled != nullptr
                           ? *cancelled
                           : make_result(error_code::timed_out,
                                         "no answer from AWS IoT through thingmuxd within the library's timeout (" +
                                             std::to_string(timeout.count()) + " ms)");
    for (auto& req : done) {
        call_quietly(req.done, failed_reply(why));
    }
}

}  // namespace thingmux::detail
