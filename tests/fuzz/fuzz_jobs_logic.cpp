// libFuzzer target for the jobs service's decisions (daemon/services/jobs_logic.hpp): a sequence
// of events, each a message on one of its topics or a change of link, time or handlers.
//
// Input: records of one selector byte, two length bytes (big-endian) and that many payload bytes.
//   selector % 8: 0 notify-next, 1 start-next/accepted, 2 start-next/rejected, 3 J/update/accepted
//   (J: the payload's first 8 bytes), 4 J/update/rejected, 5 link up/down, 6 the clock moves by
//   (payload's first byte) seconds and due wakes tick, 7 the handlers change (count = first byte % 3).
//   "@T" in a payload becomes the clientToken of the last request, so answers can be the service's.
// Besides the sanitizers' findings, the target aborts when a property of the logic breaks:
//   - a request goes only to the Thing's Jobs topics, as a JSON object with a clientToken, on a
//     topic of at most 7 levels (a job ID never carries a separator or a wildcard);
//   - an offer names a valid operation and job ID;
//   - a REJECTED reason is at most 1024 bytes;
//   - no second start-next is sent while one is unanswered and not timed out.
// Seeds: tests/fuzz/corpus/jobs_logic/.
#include "daemon/services/jobs_logic.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

using namespace thingmux::services;

void require(bool condition) {
    if (!condition) std::abort();
}

const std::string prefix = "$aws/things/gw/jobs/";

struct runner {
    jobs_logic logic{"gw", {}, "tok-", steady_time{}};
    steady_time now{};
    std::optional<steady_time> wake;
    std::size_t handlers = 0;
    std::string last_token;
    std::optional<steady_time> start_next_until;  // an unanswered start-next, until its timeout

    void apply(jobs_actions actions) {
        for (auto& a : actions) {
            if (auto* p = std::get_if<jobs_action::publish>(&a)) {
                require(p->topic.starts_with(prefix));
                require(std::count(p->topic.begin(), p->topic.end(), '/') <= 6);
                require(p->topic.find_first_of("+#") == std::string::npos);
                boost::system::error_code ec;
                const auto body = boost::json::parse(p->payload, ec);
                require(!ec && body.is_object());
                const auto* token = body.as_object().if_contains("clientToken");
                require(token != nullptr && token->is_string() && token->as_string() == p->token);
                if (const auto* details = body.as_object().if_contains("statusDetails"))
                    require(details->at("reason").as_string().size() <= max_status_detail_bytes);
                if (p->topic == prefix + "start-next") {
                    require(!start_next_until || now >= *start_next_until);
                    start_next_until = now + std::chrono::seconds(30);
                }
                last_token = p->token;
            } else if (auto* o = std::get_if<jobs_action::offer>(&a)) {
                require(valid_operation(o->operation) && valid_job_id(o->job_id));
                apply(logic.offered(o->job_id, handlers, now));
            } else if (auto* w = std::get_if<jobs_action::wake>(&a)) {
                wake = w->at;
            }
        }
    }
    void answered() { start_next_until.reset(); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    runner r;
    r.apply(r.logic.link(true, r.now));
    std::size_t at = 0;
    while (at + 3 <= size) {
        const auto selector = data[at] % 8;
        const auto length = std::min<std::size_t>(static_cast<std::size_t>(data[at + 1]) << 8 | data[at + 2], size - at - 3);
        std::string payload(reinterpret_cast<const char*>(data + at + 3), length);
        at += 3 + length;
        for (std::size_t p; (p = payload.find("@T")) != std::string::npos;) payload.replace(p, 2, r.last_token);
        const std::string job = payload.substr(0, std::min<std::size_t>(8, payload.size()));
        switch (selector) {
            case 0: r.apply(r.logic.message(prefix + "notify-next", payload, r.now)); break;
            case 1:
            case 2:
                // Whatever the service makes of it, a start-next answered with its token is over.
                if (payload.find(r.last_token) != std::string::npos && !r.last_token.empty()) r.answered();
                r.apply(r.logic.message(prefix + (selector == 1 ? "start-next/accepted" : "start-next/rejected"), payload, r.now));
                break;
            case 3: r.apply(r.logic.message(prefix + job + "/update/accepted", payload, r.now)); break;
            case 4: r.apply(r.logic.message(prefix + job + "/update/rejected", payload, r.now)); break;
            case 5: {
                const bool up = r.logic.snapshot().state == jobs_state::offline;
                if (!up) r.answered();  // what was in flight is forgotten
                r.apply(r.logic.link(up, r.now));
                break;
            }
            case 6: {
                r.now += std::chrono::seconds(payload.empty() ? 1 : static_cast<unsigned char>(payload[0]));
                while (r.wake && *r.wake <= r.now) {
                    r.wake.reset();
                    r.apply(r.logic.tick(r.now));
                }
                break;
            }
            default: r.handlers = payload.empty() ? 0 : static_cast<unsigned char>(payload[0]) % 3; break;
        }
    }
    return 0;
}
