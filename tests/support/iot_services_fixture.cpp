#include "tests/support/iot_services_fixture.hpp"

#include "tests/support/measure.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <system_error>

namespace thingmux::test {
namespace fs = std::filesystem;
namespace json = boost::json;
namespace {

constexpr int ready_timeout_ms = 15'000;    // two cores are shared with other builds
constexpr int control_timeout_ms = 15'000;  // the responder polls its control directory every 20 ms

std::string string_at(const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::int64_t int_at(const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_number() ? v->to_number<std::int64_t>() : 0;
}

json::object parse_object(const std::string& text, const char* what) {
    boost::system::error_code ec;
    auto value = json::parse(text, ec);
    if (ec || !value.is_object())
        throw std::invalid_argument(std::string("iot_services_responder: ") + what + " is not a JSON object: " + text);
    return std::move(value.as_object());
}

// The responder's state dump ({} before its first one).
json::object state_of(const fs::path& file) {
    const auto text = read_file(file);
    if (text.empty()) return {};
    auto value = json::parse(text);  // rewritten by rename: always whole
    return value.is_object() ? std::move(value.as_object()) : json::object{};
}

// things[thing][section][key] of a state dump, or nullptr (points into `state`).
const json::value* entry(const json::object& state, const std::string& thing, const char* section,
                         const std::string& key) {
    const auto* things = state.if_contains("things");
    if (things == nullptr || !things->is_object()) return nullptr;
    const auto* t = things->as_object().if_contains(thing);
    if (t == nullptr || !t->is_object()) return nullptr;
    const auto* s = t->as_object().if_contains(section);
    if (s == nullptr || !s->is_object()) return nullptr;
    return s->as_object().if_contains(key);
}

}  // namespace

iot_services_responder::iot_services_responder(const broker_fixture& broker, options o) : broker_(broker) {
    std::string tmpl = (broker_.dir() / "iot-services-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp " + tmpl);
    dir_ = tmpl;
    fs::create_directory(dir_ / "control");
    std::vector<std::string> argv{THINGMUX_IOT_SERVICES_RESPONDER_SCRIPT,
                                  "--broker-dir",
                                  broker_.dir().string(),
                                  "--log",
                                  log_file().string(),
                                  "--control-dir",
                                  (dir_ / "control").string(),
                                  "--state-dump",
                                  (dir_ / "state.json").string(),
                                  "--client-id",
                                  "iot-services-" + dir_.filename().string()};
    for (const auto& thing : o.things) argv.insert(argv.end(), {"--thing", thing});
    for (const auto& fault : o.silent) argv.insert(argv.end(), {"--silent", fault});
    for (const auto& fault : o.delayed) argv.insert(argv.end(), {"--delay", fault});
    const auto out = output_file();
    responder_.emplace(argv, out, out);
    const bool ready = eventually(
        [&] { return count_of(read_file(out), "ready\n") > 0 || !responder_->running(); }, ready_timeout_ms);
    if (!ready || !responder_->running()) {
        responder_.reset();
        throw std::runtime_error("the IoT services responder did not subscribe:\n" + read_file(out));
    }
}

iot_services_responder::~iot_services_responder() {
    if (responder_) responder_->stop();
}

void iot_services_responder::control(const std::string& command_json) {
    const std::lock_guard lock(control_mutex_);
    const auto seq = ++control_seq_;
    char name[32];
    std::snprintf(name, sizeof name, "%08llu.json", static_cast<unsigned long long>(seq));
    // Renamed into place: the responder takes only whole files named NNNNNNNN.json.
    write_file_atomically(dir_ / "control" / name, command_json);
    const auto state_file = dir_ / "state.json";
    const bool done = eventually(
        [&] {
            const auto state = state_of(state_file);
            return static_cast<std::uint64_t>(int_at(state, "control_done")) >= seq || !responder_->running();
        },
        control_timeout_ms);
    if (!done || !responder_->running())
        throw std::runtime_error("the IoT services responder did not apply " + command_json + ":\n" +
                                 read_file(output_file()));
    const auto state = state_of(state_file);
    if (const auto* errors = state.if_contains("control_errors"); errors != nullptr && errors->is_array())
        for (const auto& e : errors->as_array())
            if (e.is_object() && static_cast<std::uint64_t>(int_at(e.as_object(), "seq")) == seq)
                throw std::runtime_error("the IoT services responder refused " + command_json + ": " +
                                         string_at(e.as_object(), "message"));
}

void iot_services_responder::add_job(const std::string& thing, const std::string& job_id,
                                     const std::string& document_json) {
    control(json::serialize(json::object{{"op", "add-job"},
                                         {"thing", thing},
                                         {"job_id", job_id},
                                         {"document", parse_object(document_json, "a job document")}}));
}

void iot_services_responder::cloud_update(const std::string& thing, const std::string& shadow,
                                          const std::string& state_json) {
    control(json::serialize(json::object{{"op", "cloud-update"},
                                         {"thing", thing},
                                         {"shadow", shadow},
                                         {"state", parse_object(state_json, "a cloud update's state")}}));
}

void iot_services_responder::silence(const std::string& kind, int n) {
    if (n < 0) throw std::invalid_argument("iot_services_responder::silence: a negative count");
    control(json::serialize(json::object{{"op", "silence"}, {"kind", kind}, {"n", n}}));
}

void iot_services_responder::delay(const std::string& kind, int n, std::chrono::milliseconds by) {
    if (n < 0 || by.count() < 0) throw std::invalid_argument("iot_services_responder::delay: a negative count or delay");
    control(json::serialize(
        json::object{{"op", "delay"}, {"kind", kind}, {"n", n}, {"ms", static_cast<std::int64_t>(by.count())}}));
}

std::vector<iot_services_responder::request> iot_services_responder::requests() const {
    std::vector<request> out;
    for (const auto& line : complete_lines(read_file(log_file()))) {
        const auto value = json::parse(line);
        const auto& o = value.as_object();
        request r;
        r.thing = string_at(o, "thing");
        r.kind = string_at(o, "kind");
        r.topic = string_at(o, "topic");
        r.shadow = string_at(o, "shadow");
        r.job_id = string_at(o, "job_id");
        r.status = string_at(o, "status");
        r.outcome = string_at(o, "outcome");
        r.client_token = string_at(o, "client_token");
        r.code = static_cast<int>(int_at(o, "code"));
        r.version = int_at(o, "version");
        r.error_code = string_at(o, "error_code");
        r.delay_ms = int_at(o, "delay_ms");
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<iot_services_responder::request> iot_services_responder::wait_for(
    std::function<bool(const request&)> pred, std::size_t n, std::chrono::milliseconds timeout) const {
    std::vector<request> matching;
    eventually(
        [&] {
            matching.clear();
            for (auto& r : requests())
                if (pred(r)) matching.push_back(std::move(r));
            return matching.size() >= n;
        },
        static_cast<int>(timeout.count()));
    return matching;
}

std::string iot_services_responder::job_status(const std::string& thing, const std::string& job_id) const {
    const auto state = state_of(dir_ / "state.json");
    const auto* job = entry(state, thing, "jobs", job_id);
    return job != nullptr && job->is_object() ? string_at(job->as_object(), "status") : std::string();
}

std::vector<std::string> iot_services_responder::job_status_history(const std::string& thing,
                                                                    const std::string& job_id) const {
    std::vector<std::string> out;
    const auto state = state_of(dir_ / "state.json");
    const auto* job = entry(state, thing, "jobs", job_id);
    if (job == nullptr || !job->is_object()) return out;
    const auto* history = job->as_object().if_contains("history");
    if (history == nullptr || !history->is_array()) return out;
    for (const auto& s : history->as_array())
        if (s.is_string()) out.emplace_back(s.get_string());
    return out;
}

std::string iot_services_responder::shadow_document(const std::string& thing, const std::string& shadow) const {
    const auto state = state_of(dir_ / "state.json");
    const auto* document = entry(state, thing, "shadows", shadow);
    return document != nullptr ? json::serialize(*document) : std::string();
}

}  // namespace thingmux::test
