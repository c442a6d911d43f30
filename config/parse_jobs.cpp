// A Thing's jobs: block (docs/config.md, docs/services.md): whether thingmuxd takes the
// Thing's AWS IoT jobs, and what it does with a job no app handles.
#include "common/utf8.hpp"
#include "config/parser.hpp"

#include <array>

namespace thingmux::config {

const char* to_string(unhandled_jobs v) noexcept {
    switch (v) {
        case unhandled_jobs::reject: return "reject";
        case unhandled_jobs::leave: return "leave";
    }
    return "unknown";
}

namespace detail {
namespace {

constexpr std::array<std::string_view, 3> jobs_keys{"unhandled", "reject_reason", "handler_wait"};
// AWS IoT Jobs: a statusDetails value is 1 to 1024 characters, none of them a control character.
constexpr std::size_t max_reject_reason = 1024;

// What is wrong with a reject_reason as written, or "" (its variables are expanded later, with
// values that are themselves safe in a statusDetails value).
std::string reason_problem(std::string_view s) {
    if (s.empty()) return "is empty";
    if (s.size() > max_reject_reason)
        return "is " + std::to_string(s.size()) + " bytes long, more than " + std::to_string(max_reject_reason);
    if (!text::valid_utf8(s)) return "is not UTF-8";
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        // C0, DEL, and C1 (U+0080..U+009F: 0xC2 0x80..0x9F in UTF-8)
        const bool c1 = c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) <= 0x9f;
        if (c < 0x20 || c == 0x7f || c1) return "holds a control character";
    }
    std::string rest(s);
    for (const std::string_view known : {std::string_view("${operation}"), std::string_view("${job}")}) {
        for (std::size_t at; (at = rest.find(known)) != std::string::npos;) rest.erase(at, known.size());
    }
    if (rest.find("${") != std::string::npos) return "uses a variable other than ${operation} and ${job}";
    return {};
}

}  // namespace

void parser::parse_jobs(const fields& f, const std::string& path, thing& t) {
    const auto* jobs = find(f, "jobs");
    if (jobs == nullptr) return;
    const auto p = [&](std::string_view key) { return path + ".jobs." + std::string(key); };
    const auto g = mapping(jobs->value, path + ".jobs", jobs_keys);
    if (!g) return;
    for (const auto& [k, v] : *g) t.fields["jobs." + k] = location_of(v.value);
    jobs_settings s;
    if (const auto* x = find(*g, "unhandled")) {
        static constexpr std::array<choice<unhandled_jobs>, 2> choices{
            {{"reject", unhandled_jobs::reject}, {"leave", unhandled_jobs::leave}}};
        if (auto v = enumeration(x->value, p("unhandled"), choices)) s.unhandled = *v;
    }
    if (const auto* x = find(*g, "reject_reason")) {
        if (auto v = string(x->value, p("reject_reason"), true)) {
            if (const auto problem = reason_problem(*v); !problem.empty())
                error(x->value, p("reject_reason"), problem,
                      "1 to 1024 characters, no control characters (AWS IoT's limit for a statusDetails value); "
                      "${operation} and ${job} are replaced by the job's");
            else
                s.reject_reason = std::move(*v);
        }
    }
    if (const auto* x = find(*g, "handler_wait")) {
        if (auto v = time(x->value, p("handler_wait"), duration{0}, std::chrono::hours{1})) s.handler_wait = *v;
    }
    t.jobs = std::move(s);
}

}  // namespace detail
}  // namespace thingmux::config
