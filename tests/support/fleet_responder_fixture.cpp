#include "tests/support/fleet_responder_fixture.hpp"

#include "tests/support/measure.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>
#include <system_error>

namespace thingmux::test {
namespace fs = std::filesystem;
namespace {

constexpr int ready_timeout_ms = 15'000;  // two cores are shared with other builds

// A field of a template spec goes between spaces on one line.
const std::string& checked(const std::string& field) {
    if (field.empty() || field.find_first_of(" \t\r\n") != std::string::npos)
        throw std::invalid_argument("fleet_responder_fixture: empty, or whitespace in template field '" + field + "'");
    return field;
}

std::string spec_of(const fleet_responder_fixture::provisioning_template& t) {
    std::string spec = "name=" + checked(t.name) + " thing=" + checked(t.thing_name);
    for (const auto& p : t.required) spec += " require=" + checked(p);
    for (const auto& [param, value] : t.refused) spec += " refuse=" + checked(param) + ":" + checked(value);
    for (const auto& [key, value] : t.device_configuration) spec += " config=" + checked(key) + ":" + checked(value);
    return spec;
}

// The responder's fault lines ("silent KIND N", "fail KIND N", "exit-after N") for `f`.
std::string fault_lines(const fleet_responder_fixture::faults& f) {
    std::string out;
    const auto add = [&](const char* what, const char* kind, unsigned n) {
        if (n > 0) out += std::string(what) + " " + kind + " " + std::to_string(n) + "\n";
    };
    add("silent", "csr", f.silent_create);
    add("silent", "register", f.silent_register);
    add("fail", "csr", f.fail_create);
    add("fail", "register", f.fail_register);
    if (f.exit_after > 0) out += "exit-after " + std::to_string(f.exit_after) + "\n";
    return out;
}

std::string string_at(const boost::json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

}  // namespace

fleet_responder_fixture::fleet_responder_fixture(const broker_fixture& broker, options opts)
    : broker_(broker), opts_(std::move(opts)) {
    std::string tmpl = (broker_.dir() / "fleet-responder-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp " + tmpl);
    dir_ = tmpl;
    std::string specs;
    for (const auto& t : opts_.templates) specs += spec_of(t) + "\n";
    write_file_atomically(dir_ / "templates", specs);
    start();
}

fleet_responder_fixture::fleet_responder_fixture(const broker_fixture& broker)
    : fleet_responder_fixture(broker, options{}) {}

fleet_responder_fixture::~fleet_responder_fixture() { stop(); }

void fleet_responder_fixture::start() {
    if (running()) return;
    // The start's faults, as a fault file the responder reads at its first request.
    if (const auto lines = fault_lines(opts_.at_start); !lines.empty()) write_file_atomically(dir_ / "faults", lines);
    const auto out = dir_ / "responder.out";
    const auto ready_before = count_of(read_file(out), "ready\n");
    responder_.emplace(
        std::vector<std::string>{THINGMUX_FLEET_RESPONDER_SCRIPT, "--broker-dir", broker_.dir().string(), "--log",
                                 log_file().string(), "--templates", (dir_ / "templates").string(), "--days",
                                 std::to_string(opts_.certificate_days), "--subject",
                                 opts_.aws_subject ? "aws" : "csr", "--token-lifetime",
                                 std::to_string(opts_.token_lifetime.count()), "--faults-file",
                                 (dir_ / "faults").string(), "--state", (dir_ / "state.json").string(),
                                 "--client-id", "fleet-responder-" + dir_.filename().string()},
        out, out);
    const bool ready = eventually(
        [&] { return count_of(read_file(out), "ready\n") > ready_before || !responder_->running(); },
        ready_timeout_ms);
    if (!ready || !responder_->running()) {
        responder_.reset();
        throw std::runtime_error("the fleet responder did not subscribe:\n" + read_file(out));
    }
}

void fleet_responder_fixture::stop() {
    if (responder_) responder_->stop();
    responder_.reset();
}

bool fleet_responder_fixture::running() { return responder_ && responder_->running(); }

bool fleet_responder_fixture::wait_exited(int timeout_ms) {
    return !responder_ || responder_->wait(timeout_ms).has_value();
}

void fleet_responder_fixture::inject(const faults& f) const {
    // Faults not yet taken stay: the responder removes the file when it reads it.
    const auto file = dir_ / "faults";
    write_file_atomically(file, read_file(file) + fault_lines(f));
}

std::vector<fleet_responder_fixture::record> fleet_responder_fixture::records() const {
    std::vector<record> out;
    for (const auto& line : complete_lines(read_file(log_file()))) {
        const auto value = boost::json::parse(line);
        const auto& o = value.as_object();
        record r;
        r.time = o.at("time").to_number<double>();
        r.what = string_at(o, "kind") == "register" ? kind::register_thing : kind::create_certificate;
        r.topic = string_at(o, "topic");
        r.outcome = string_at(o, "outcome");
        r.status = o.at("status").to_number<int>();
        r.error_code = string_at(o, "error_code");
        r.template_name = string_at(o, "template");
        r.certificate_id = string_at(o, "certificate_id");
        r.certificate_cn = string_at(o, "certificate_cn");
        r.thing_name = string_at(o, "thing_name");
        out.push_back(std::move(r));
    }
    return out;
}

std::size_t fleet_responder_fixture::count(kind k, const std::string& outcome) const {
    const auto all = records();
    return static_cast<std::size_t>(std::count_if(all.begin(), all.end(), [&](const record& r) {
        return r.what == k && (outcome.empty() || r.outcome == outcome);
    }));
}

std::size_t fleet_responder_fixture::requests(kind k) const { return count(k, ""); }
std::size_t fleet_responder_fixture::accepted(kind k) const { return count(k, "accepted"); }
std::size_t fleet_responder_fixture::rejected(kind k) const { return count(k, "rejected"); }

std::size_t fleet_responder_fixture::wait_for_records(std::size_t n, int timeout_ms) const {
    eventually([&] { return records().size() >= n; }, timeout_ms);
    return records().size();
}

}  // namespace thingmux::test
