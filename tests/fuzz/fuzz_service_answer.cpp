// libFuzzer target for what libthingmux reads of the broker's shadow and jobs messages
// (libclient/src/service_json.hpp): answers, job executions, jobs lists, and the request payloads
// it builds from an app's document.
//
// Input: one selector byte, then the payload.
//   selector 0-63: an answer (parse_answer)         64-127: a job execution (parse_job)
//   128-191: a jobs list (parse_jobs_list)          192-255: an app's update document (request_payload)
// Besides the sanitizers' findings, the target aborts when a property breaks:
//   - nothing over max_service_json bytes is ever accepted;
//   - a rejection's named error code stays within 64 bytes and maps to a status in 400..599;
//   - a job always has a non-empty id, and its document and execution are JSON the reader accepts;
//   - a built request payload is a JSON object whose clientToken is the library's, and reads back
//     as an answer carrying that token;
//   - parsing is deterministic.
// Seeds: tests/fuzz/corpus/service_answer/.
#include "service_json.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

using namespace thingmux;
using namespace thingmux::detail;

void require(bool condition) {
    if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t selector = data[0];
    const std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
    if (selector < 64) {
        const auto a = parse_answer(payload);
        require(!a || payload.size() <= max_service_json);
        if (a) {
            require(a->error_code.size() <= 64);
            require(a->error_code.empty() || (a->code >= 400 && a->code <= 599));
            const auto again = parse_answer(payload);
            require(again && again->client_token == a->client_token && again->code == a->code &&
                    again->version == a->version && again->message == a->message);
        }
    } else if (selector < 128) {
        const auto j = parse_job(payload);
        require(!j || payload.size() <= max_service_json);
        if (j) {
            require(!j->id.empty());
            require(parse_job(j->execution).has_value());
            require(j->document.empty() || parse_answer("{\"d\":" + j->document + "}").has_value());
        }
    } else if (selector < 192) {
        jobs_list_reply out;
        parse_jobs_list(payload, out);
        for (const auto& s : out.in_progress) require(!s.id.empty());
        for (const auto& s : out.queued) require(!s.id.empty());
    } else {
        const auto built = request_payload(payload, "tmxl-fuzz-1");
        if (is_payload(built)) {
            require(payload.size() <= max_service_json);
            const auto a = parse_answer(std::get<0>(built));
            require(a && a->client_token == "tmxl-fuzz-1");
        } else {
            require(!std::get<1>(built).empty());
        }
    }
    return 0;
}
