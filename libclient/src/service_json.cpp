#include "service_json.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace thingmux::detail {

namespace json = boost::json;

namespace {

// Whether every number in `v` is finite: Boost.JSON reads 1e999 as infinity and would write it
// back as `Infinity`, which is not JSON. Depth is bounded by the parser (max_service_json_depth).
bool finite_numbers(const json::value& v) {
    if (v.is_double()) {
        return std::isfinite(v.get_double());
    }
    if (v.is_array()) {
        return std::all_of(v.get_array().begin(), v.get_array().end(), finite_numbers);
    }
    if (v.is_object()) {
        return std::all_of(v.get_object().begin(), v.get_object().end(),
                           [](const json::key_value_pair& kv) { return finite_numbers(kv.value()); });
    }
    return true;
}

// Parses `text` within the bounds; nothing for anything else (never throws on bad input).
std::optional<json::value> parse_bounded(std::string_view text) {
    if (text.size() > max_service_json) {
        return std::nullopt;
    }
    json::parse_options po;
    po.max_depth = max_service_json_depth;
    boost::system::error_code ec;
    json::value v = json::parse(text, ec, {}, po);
    if (ec || !finite_numbers(v)) {
        return std::nullopt;
    }
    return v;
}

std::optional<std::int64_t> integer(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) {
        return std::nullopt;
    }
    if (v->is_int64()) {
        return v->get_int64();
    }
    if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return static_cast<std::int64_t>(v->get_uint64());
    }
    if (v->is_double()) {
        const double d = v->get_double();
        // AWS writes integers; a double in range is taken for what it says.
        if (d >= -9.0e18 && d <= 9.0e18) {
            return static_cast<std::int64_t>(d);
        }
    }
    return std::nullopt;
}

std::string string_or_empty(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

constexpr std::size_t max_error_code = 64;

// The HTTP status AWS IoT Jobs documents for its named errors.
int jobs_error_status(std::string_view name) {
    static constexpr std::pair<std::string_view, int> statuses[] = {
        {"InvalidTopic", 400},           {"InvalidJson", 400},      {"InvalidRequest", 400},
        {"InvalidStateTransition", 409}, {"ResourceNotFound", 404}, {"VersionMismatch", 409},
        {"InternalError", 500},          {"RequestThrottled", 429}, {"TerminalStateReached", 410},
        {"ServiceUnavailable", 503},
    };
    for (const auto& [n, status] : statuses) {
        if (n == name) {
            return status;
        }
    }
    return 400;
}

std::vector<job_summary> summaries(const json::object& o, std::string_view key) {
    std::vector<job_summary> out;
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_array()) {
        return out;
    }
    for (const auto& e : v->get_array()) {
        if (!e.is_object()) {
            continue;
        }
        const auto& eo = e.get_object();
        job_summary s;
        s.id = string_or_empty(eo, "jobId");
        if (s.id.empty()) {
            continue;
        }
        s.version = integer(eo, "versionNumber").value_or(0);
        s.execution_number = integer(eo, "executionNumber").value_or(0);
        s.queued_at = integer(eo, "queuedAt").value_or(0);
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace

std::variant<std::string, std::string> request_payload(std::string_view base, std::string_view token) {
    json::object o;
    if (!base.empty()) {
        if (base.size() > max_service_json) {
            return std::variant<std::string, std::string>(
                std::in_place_index<1>, "the document is larger than " + std::to_string(max_service_json) + " bytes");
        }
        auto v = parse_bounded(base);
        if (!v) {
            return std::variant<std::string, std::string>(std::in_place_index<1>,
                                                          "the document is not valid JSON (or is nested deeper than " +
                                                              std::to_string(max_service_json_depth) +
                                                              " levels, or holds a number too large for a double)");
        }
        if (!v->is_object()) {
            return std::variant<std::string, std::string>(std::in_place_index<1>,
                                                          "the document is not a JSON object ({...})");
        }
        o = std::move(v->get_object());
    }
    o["clientToken"] = token;
    return std::variant<std::string, std::string>(std::in_place_index<0>, json::serialize(o));
}

std::string job_update_payload(std::string_view status, const std::map<std::string, std::string>& details,
                               std::optional<std::int64_t> expected_version, std::string_view token) {
    json::object o;
    o["status"] = status;
    if (!details.empty()) {
        json::object d;
        for (const auto& [k, v] : details) {
            d[k] = v;
        }
        o["statusDetails"] = std::move(d);
    }
    if (expected_version) {
        o["expectedVersion"] = *expected_version;
    }
    o["clientToken"] = token;
    return json::serialize(o);
}

std::optional<parsed_answer> parse_answer(std::string_view payload) {
    auto v = parse_bounded(payload.empty() ? std::string_view("{}") : payload);
    if (!v || !v->is_object()) {
        return std::nullopt;
    }
    const auto& o = v->get_object();
    parsed_answer a;
    if (const auto* t = o.if_contains("clientToken"); t != nullptr && t->is_string()) {
        a.client_token = std::string(t->get_string());
    }
    if (auto c = integer(o, "code"); c && *c >= 0 && *c <= 999'999) {
        a.code = static_cast<int>(*c);
    } else if (const auto* named = o.if_contains("code"); named != nullptr && named->is_string()) {
        const std::string_view name = named->get_string();
        a.error_code = std::string(name.substr(0, max_error_code));
        a.code = jobs_error_status(name);
    }
    a.message = string_or_empty(o, "message");
    if (const auto* c = o.if_contains("cached"); c != nullptr && c->is_bool()) {
        a.cached = c->get_bool();
    }
    if (auto ver = integer(o, "version")) {
        a.version = *ver;
    } else if (const auto* es = o.if_contains("executionState"); es != nullptr && es->is_object()) {
        a.version = integer(es->get_object(), "versionNumber").value_or(-1);
    }
    return a;
}

std::optional<answer_topic> split_answer_topic(std::string_view topic) noexcept {
    constexpr std::string_view accepted = "/accepted";
    constexpr std::string_view rejected = "/rejected";
    if (topic.size() > accepted.size() && topic.ends_with(accepted)) {
        return answer_topic{topic.substr(0, topic.size() - accepted.size()), true};
    }
    if (topic.size() > rejected.size() && topic.ends_with(rejected)) {
        return answer_topic{topic.substr(0, topic.size() - rejected.size()), false};
    }
    return std::nullopt;
}

std::optional<job> parse_job(std::string_view payload) {
    auto v = parse_bounded(payload);
    if (!v || !v->is_object()) {
        return std::nullopt;
    }
    const json::object* o = &v->get_object();
    // start-next/accepted wraps the execution: {"execution":{...},"timestamp":...}.
    if (const auto* e = o->if_contains("execution"); e != nullptr && e->is_object() && !o->contains("jobId")) {
        o = &e->get_object();
    }
    job j;
    j.id = string_or_empty(*o, "jobId");
    if (j.id.empty()) {
        return std::nullopt;
    }
    j.status = string_or_empty(*o, "status");
    j.version = integer(*o, "versionNumber").value_or(0);
    j.execution_number = integer(*o, "executionNumber").value_or(0);
    if (const auto* d = o->if_contains("jobDocument"); d != nullptr) {
        j.document = json::serialize(*d);
        if (d->is_object()) {
            j.operation = string_or_empty(d->get_object(), "operation");
        }
    }
    j.execution = json::serialize(*o);
    return j;
}

void parse_jobs_list(std::string_view payload, jobs_list_reply& out) {
    auto v = parse_bounded(payload);
    if (!v || !v->is_object()) {
        return;
    }
    out.in_progress = summaries(v->get_object(), "inProgressJobs");
    out.queued = summaries(v->get_object(), "queuedJobs");
}

}  // namespace thingmux::detail
