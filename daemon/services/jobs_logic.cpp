#include "daemon/services/jobs_logic.hpp"

#include "common/printable.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <utility>

namespace thingmux::services {

namespace {

namespace json = boost::json;

bool id_character(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '-';
}

// Peer text in a log line or a reason: escaped, and short.
std::string shown(std::string_view s) { return text::printable(s, 64); }

std::string seconds(std::chrono::milliseconds d) {
    const auto ms = d.count();
    return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

// The JSON object of a message, or why there is none.
std::optional<json::object> read_object(std::string_view payload, std::string& problem) {
    if (payload.size() > max_jobs_payload) {
        problem = "it has " + std::to_string(payload.size()) + " bytes, more than the " +
                  std::to_string(max_jobs_payload / 1024) + " KiB read";
        return std::nullopt;
    }
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = max_jobs_json_depth;
    auto doc = json::parse(payload.empty() ? std::string_view("{}") : payload, ec, {}, options);
    if (ec) {
        problem = "it is not JSON (" + ec.message() + ")";
        return std::nullopt;
    }
    if (!doc.is_object()) {
        problem = "it is not a JSON object";
        return std::nullopt;
    }
    return std::move(doc.as_object());
}

std::string_view string_field(const json::object& o, std::string_view name) {
    const auto* v = o.if_contains(name);
    return v != nullptr && v->is_string() ? std::string_view(v->as_string()) : std::string_view{};
}

// AWS's error answer: "CODE: message" (code a string, or the daemon's number for a timeout).
std::string error_of(const json::object& o) {
    std::string code;
    if (const auto* c = o.if_contains("code"); c != nullptr) {
        if (c->is_string())
            code = shown(c->as_string());
        else if (c->is_int64() || c->is_uint64())
            code = json::serialize(*c);
    }
    const auto message = string_field(o, "message");
    if (code.empty() && message.empty()) return "no reason given";
    return (code.empty() ? std::string("error") : code) + (message.empty() ? "" : ": " + text::printable(message, 256));
}

// The operation a job document names, or why it names none thingmuxd can hand on.
std::string operation_of(const json::object& execution, std::string& problem) {
    const auto* doc = execution.if_contains("jobDocument");
    if (doc == nullptr) {
        problem = "the job has no job document";
        return {};
    }
    if (!doc->is_object()) {
        problem = "the job document is not a JSON object";
        return {};
    }
    const auto* op = doc->as_object().if_contains("operation");
    if (op == nullptr) {
        problem = "the job document has no \"operation\"";
        return {};
    }
    if (!op->is_string()) {
        problem = "the job document's \"operation\" is not a string";
        return {};
    }
    const std::string_view s(op->as_string());
    if (s.empty() || s.size() > max_operation_bytes) {
        problem = "the job document's \"operation\" is " + std::to_string(s.size()) + " bytes long (1 to " +
                  std::to_string(max_operation_bytes) + " allowed)";
        return {};
    }
    if (!valid_operation(s)) {
        problem = "the job document's \"operation\" \"" + shown(s) + "\" holds characters other than A-Z a-z 0-9 _ . -";
        return {};
    }
    return std::string(s);
}

// At most `max` bytes, cut at a UTF-8 character boundary.
void cut_utf8(std::string& s, std::size_t max) {
    if (s.size() <= max) return;
    std::size_t end = max;
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xc0) == 0x80) --end;
    s.resize(end);
}

void replace_all(std::string& s, std::string_view what, std::string_view with) {
    for (std::size_t at = 0; (at = s.find(what, at)) != std::string::npos; at += with.size()) s.replace(at, what.size(), with);
}

jobs_action::log line(log_level level, std::string text, bool noise = false) {
    return {.level = level, .text = std::move(text), .peer_noise = noise};
}

}  // namespace

bool valid_operation(std::string_view operation) noexcept {
    return !operation.empty() && operation.size() <= max_operation_bytes &&
           std::all_of(operation.begin(), operation.end(), [](char c) { return id_character(c) || c == '.'; });
}

bool valid_job_id(std::string_view id) noexcept {
    return !id.empty() && id.size() <= max_job_id_bytes && std::all_of(id.begin(), id.end(), id_character);
}

const char* to_string(jobs_state s) noexcept {
    switch (s) {
        case jobs_state::offline: return "offline";
        case jobs_state::idle: return "idle";
        case jobs_state::requesting: return "requesting";
        case jobs_state::waiting: return "waiting for a handler";
        case jobs_state::handed: return "handed";
        case jobs_state::rejecting: return "rejecting";
        case jobs_state::left: return "left";
        case jobs_state::backing_off: return "backing off";
    }
    return "unknown";
}

jobs_logic::jobs_logic(std::string thing, config::jobs_settings settings, std::string token_prefix, steady_time started,
                       std::chrono::milliseconds request_timeout)
    : thing_(std::move(thing)), prefix_("$aws/things/" + thing_ + "/jobs/"), settings_(std::move(settings)),
      token_prefix_(std::move(token_prefix)), started_(started), request_timeout_(request_timeout) {}

std::vector<std::string> jobs_logic::filters() const {
    return {prefix_ + "notify-next", prefix_ + "start-next/accepted", prefix_ + "start-next/rejected",
            prefix_ + "+/update/accepted", prefix_ + "+/update/rejected"};
}

jobs_actions jobs_logic::link(bool up, steady_time now) {
    jobs_actions out;
    if (!up) {
        // What was in flight is answered on a connection that no longer exists, if at all.
        state_ = jobs_state::offline;
        token_.clear();
        renotified_ = false;
        deadline_.reset();
        return out;
    }
    if (state_ != jobs_state::offline) return out;
    // A reconnect does not cut a back-off short: what failed may fail again at once.
    if (retry_at_ && *retry_at_ > now) {
        state_ = jobs_state::backing_off;
        deadline_ = retry_at_;
        wake_if_due(out);
        return out;
    }
    request_start_next(now, out);
    wake_if_due(out);
    return out;
}

jobs_actions jobs_logic::message(std::string_view topic, std::string_view payload, steady_time now) {
    jobs_actions out;
    if (state_ == jobs_state::offline || !topic.starts_with(prefix_)) return out;
    const auto rest = topic.substr(prefix_.size());
    static constexpr std::string_view accepted = "/update/accepted";
    static constexpr std::string_view rejected = "/update/rejected";
    if (rest == "notify-next") {
        on_notify_next(payload, now, out);
    } else if (rest == "start-next/accepted" || rest == "start-next/rejected") {
        on_start_next_answer(rest == "start-next/accepted", payload, now, out);
    } else if (rest.ends_with(accepted)) {
        on_update_answer(rest.substr(0, rest.size() - accepted.size()), true, payload, now, out);
    } else if (rest.ends_with(rejected)) {
        on_update_answer(rest.substr(0, rest.size() - rejected.size()), false, payload, now, out);
    }
    wake_if_due(out);
    return out;
}

jobs_actions jobs_logic::publish_failed(std::string_view token, std::string_view why, steady_time now) {
    jobs_actions out;
    if (token.empty() || token != token_ || state_ == jobs_state::offline) return out;
    const auto what = request_ == request_kind::start_next ? std::string("start-next") : "the REJECTED update of " + describe_job();
    fail("thingmuxd could not send " + what + ": " + text::printable(why, 256), now, out);
    wake_if_due(out);
    return out;
}

jobs_actions jobs_logic::offered(std::string_view job_id, std::size_t count, steady_time now) {
    jobs_actions out;
    if (state_ != jobs_state::waiting || !job_ || job_->id != job_id) return out;
    if (count > 0) {
        state_ = jobs_state::handed;
        job_->handed = true;
        deadline_.reset();
        succeeded();
        ++counts_.handed;
        out.emplace_back(line(log_level::info, describe_job() + " handed to " + std::to_string(count) + " app(s)"));
    } else if (now - started_ >= settings_.handler_wait) {
        unhandled(now, out);
    } else {
        // Apps start in any order: the one for this operation may not have subscribed yet.
        if (!job_->wait_logged) {
            job_->wait_logged = true;
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.handler_wait - (now - started_));
            out.emplace_back(line(log_level::info, describe_job() + " waits for an app subscribed to " +
                                                       std::string(jobs_topic_prefix) + job_->operation + " (at most " +
                                                       seconds(left) + " more, jobs.handler_wait)"));
        }
        deadline_ = now + handler_recheck;
    }
    wake_if_due(out);
    return out;
}

jobs_actions jobs_logic::tick(steady_time now) {
    jobs_actions out;
    if (!deadline_ || now < *deadline_) {
        wake_if_due(out);
        return out;
    }
    switch (state_) {
        case jobs_state::requesting:
            fail("AWS IoT did not answer start-next within " + seconds(request_timeout_), now, out);
            break;
        case jobs_state::rejecting:
            fail("AWS IoT did not answer the REJECTED update of " + describe_job() + " within " + seconds(request_timeout_), now,
                 out);
            break;
        case jobs_state::backing_off:
            retry_at_.reset();
            request_start_next(now, out);
            break;
        case jobs_state::waiting:
            deadline_.reset();
            out.emplace_back(jobs_action::offer{.operation = job_->operation, .job_id = job_->id, .execution = job_->execution});
            break;
        default:
            deadline_.reset();
            break;
    }
    wake_if_due(out);
    return out;
}

jobs_snapshot jobs_logic::snapshot() const {
    jobs_snapshot s;
    s.state = state_;
    if (job_) {
        s.job_id = job_->id;
        s.operation = job_->operation;
        s.job_status = job_->status;
    }
    s.counts = counts_;
    if (state_ == jobs_state::backing_off) s.retry_at = deadline_;
    return s;
}

void jobs_logic::request_start_next(steady_time now, jobs_actions& out) {
    token_ = token_prefix_ + std::to_string(next_token_++);
    request_ = request_kind::start_next;
    state_ = jobs_state::requesting;
    deadline_ = now + request_timeout_;
    renotified_ = false;
    json::object body;
    body["clientToken"] = token_;
    out.emplace_back(jobs_action::publish{.topic = prefix_ + "start-next", .payload = json::serialize(body), .qos = 0, .token = token_});
}

void jobs_logic::succeeded() {
    consecutive_failures_ = 0;
    retry_at_.reset();
}

void jobs_logic::fail(std::string what, steady_time now, jobs_actions& out) {
    ++counts_.failures;
    ++consecutive_failures_;
    const auto doublings = std::min<std::uint32_t>(consecutive_failures_ - 1, 16);
    const auto delay = std::min<std::chrono::seconds>(first_retry * (std::int64_t{1} << doublings), last_retry);
    state_ = jobs_state::backing_off;
    token_.clear();
    deadline_ = retry_at_ = now + delay;
    out.emplace_back(line(log_level::warning, std::move(what) + "; start-next again in " + std::to_string(delay.count()) + " s"));
}

void jobs_logic::on_notify_next(std::string_view payload, steady_time now, jobs_actions& out) {
    std::string problem;
    const auto doc = read_object(payload, problem);
    if (!doc) {
        ++counts_.malformed;
        out.emplace_back(line(log_level::warning, "ignored a notify-next message: " + problem, true));
        return;
    }
    const auto* execution = doc->if_contains("execution");
    if (execution != nullptr && !execution->is_object() && !execution->is_null()) {
        ++counts_.malformed;
        out.emplace_back(line(log_level::warning, "ignored a notify-next message: its \"execution\" is not a JSON object", true));
        return;
    }
    // AWS sends notify-next without an execution when no job is pending any more.
    const bool next_exists = execution != nullptr && execution->is_object();
    const auto next_id = next_exists ? string_field(execution->as_object(), "jobId") : std::string_view{};
    switch (state_) {
        case jobs_state::requesting:
            // One start-next at a time: its answer names the job; ask again only if it names none.
            if (next_exists) renotified_ = true;
            break;
        case jobs_state::idle:
            if (next_exists) request_start_next(now, out);
            break;
        case jobs_state::waiting:
        case jobs_state::handed:
        case jobs_state::left:
        case jobs_state::rejecting:
            // The current job is still the next one (its status changed, or a repeat): nothing to do.
            if (next_exists && job_ && next_id == job_->id) break;
            move_on(next_exists, now, out);
            break;
        case jobs_state::offline:
        case jobs_state::backing_off:
            break;  // start-next goes at its retry time anyway
    }
}

void jobs_logic::on_start_next_answer(bool accepted, std::string_view payload, steady_time now, jobs_actions& out) {
    std::string problem;
    const auto doc = read_object(payload, problem);
    if (!doc) {
        // Unreadable, it cannot be told to be ours; if it was, the request times out.
        ++counts_.malformed;
        out.emplace_back(line(log_level::warning, std::string("ignored a start-next/") + (accepted ? "accepted" : "rejected") +
                                                      " message: " + problem,
                              true));
        return;
    }
    // Another party's answer (an app's own start-next, when answers are not routed by token).
    if (state_ != jobs_state::requesting || request_ != request_kind::start_next || string_field(*doc, "clientToken") != token_)
        return;
    token_.clear();
    deadline_.reset();
    if (!accepted) return fail("AWS IoT refused start-next (" + error_of(*doc) + ")", now, out);
    const auto* execution = doc->if_contains("execution");
    if (execution == nullptr || execution->is_null()) {
        succeeded();
        // No job pending; unless notify-next named one meanwhile, wait for the next notify-next.
        if (renotified_) return request_start_next(now, out);
        state_ = jobs_state::idle;
        job_.reset();
        return;
    }
    const auto bad = [&](std::string why) {
        ++counts_.malformed;
        fail("AWS IoT's start-next answer " + why, now, out);
    };
    if (!execution->is_object()) return bad("has an \"execution\" that is not a JSON object");
    const auto& e = execution->as_object();
    const auto id = string_field(e, "jobId");
    // The job ID becomes a topic level of the update: nothing else may pass.
    if (!valid_job_id(id)) return bad("names no valid job ID (\"" + shown(id) + "\")");
    // The back-off ends with the job's outcome (handed, rejected, left), not here: a job whose
    // rejection AWS refuses comes back with every start-next.
    job j;
    j.id = std::string(id);
    if (const auto* n = e.if_contains("executionNumber"); n != nullptr && n->is_int64()) j.execution_number = n->as_int64();
    j.status = text::printable(string_field(e, "status"), 32);
    // The same execution again (start-next after a reconnect): its apps have it already.
    if (job_ && job_->handed && job_->id == j.id && job_->execution_number == j.execution_number) {
        job_->status = std::move(j.status);
        state_ = jobs_state::handed;
        succeeded();
        return;
    }
    j.operation = operation_of(e, j.problem);
    j.execution = json::serialize(e);
    take(std::move(j), now, out);
}

void jobs_logic::on_update_answer(std::string_view job_id, bool accepted, std::string_view payload, steady_time now,
                                  jobs_actions& out) {
    if (state_ != jobs_state::rejecting || !job_ || job_id != job_->id) return;  // an app's update, not ours
    std::string problem;
    const auto doc = read_object(payload, problem);
    if (!doc) {
        ++counts_.malformed;
        out.emplace_back(line(log_level::warning, "ignored an update answer of " + describe_job() + ": " + problem, true));
        return;
    }
    if (string_field(*doc, "clientToken") != token_) return;
    token_.clear();
    deadline_.reset();
    if (!accepted) return fail("AWS IoT refused the REJECTED update of " + describe_job() + " (" + error_of(*doc) + ")", now, out);
    succeeded();
    ++counts_.rejected;
    // The job is over: AWS names the next one (or none) with notify-next, whichever of the two
    // messages comes first.
    job_.reset();
    state_ = jobs_state::idle;
}

void jobs_logic::take(job j, steady_time now, jobs_actions& out) {
    job_ = std::move(j);
    if (!job_->problem.empty()) return unhandled(now, out);
    state_ = jobs_state::waiting;
    deadline_.reset();
    out.emplace_back(jobs_action::offer{.operation = job_->operation, .job_id = job_->id, .execution = job_->execution});
}

void jobs_logic::unhandled(steady_time now, jobs_actions& out) {
    const auto why = job_->problem.empty() ? "no app on this device is subscribed to " + std::string(jobs_topic_prefix) + job_->operation
                                           : job_->problem;
    if (settings_.unhandled == config::unhandled_jobs::leave) {
        state_ = jobs_state::left;
        deadline_.reset();
        succeeded();
        ++counts_.left;
        out.emplace_back(line(log_level::warning, describe_job() + ": " + why +
                                                      "; left IN_PROGRESS for another agent (jobs.unhandled: leave)"));
        return;
    }
    const auto reason = reject_reason();
    token_ = token_prefix_ + std::to_string(next_token_++);
    request_ = request_kind::reject;
    state_ = jobs_state::rejecting;
    deadline_ = now + request_timeout_;
    json::object body;
    body["status"] = "REJECTED";
    body["statusDetails"] = json::object{{"reason", reason}};
    body["clientToken"] = token_;
    out.emplace_back(line(log_level::warning, describe_job() + ": " + why + "; reporting it REJECTED (\"" + reason + "\")"));
    out.emplace_back(jobs_action::publish{.topic = prefix_ + job_->id + "/update", .payload = json::serialize(body), .qos = 1, .token = token_});
}

void jobs_logic::move_on(bool next_exists, steady_time now, jobs_actions& out) {
    if (state_ == jobs_state::rejecting) {
        ++counts_.rejected;  // AWS moved on before its answer came: the job is over
    } else if (state_ == jobs_state::handed || state_ == jobs_state::left) {
        out.emplace_back(line(log_level::info, describe_job() + " is over; " +
                                                   (next_exists ? "starting the next job" : "no other job is pending")));
    }
    job_.reset();
    token_.clear();
    deadline_.reset();
    if (next_exists)
        request_start_next(now, out);
    else
        state_ = jobs_state::idle;
}

void jobs_logic::wake_if_due(jobs_actions& out) const {
    switch (state_) {
        case jobs_state::requesting:
        case jobs_state::rejecting:
        case jobs_state::backing_off:
        case jobs_state::waiting:
            if (deadline_) out.emplace_back(jobs_action::wake{.at = *deadline_});
            break;
        default:
            break;
    }
}

std::string jobs_logic::describe_job() const {
    if (!job_) return "no job";
    return "job " + job_->id + (job_->operation.empty() ? std::string(" (no valid operation)") : " (operation " + job_->operation + ")");
}

std::string jobs_logic::reject_reason() const {
    std::string reason;
    if (!job_->problem.empty()) {
        reason = "thingmuxd: " + job_->problem + " (it hands each job to the app registered for its jobDocument.operation)";
    } else {
        reason = settings_.reject_reason;
        replace_all(reason, "${operation}", job_->operation);
        replace_all(reason, "${job}", job_->id);
    }
    cut_utf8(reason, max_status_detail_bytes);
    return reason;
}

}  // namespace thingmux::services
