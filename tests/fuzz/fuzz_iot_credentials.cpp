// libFuzzer target for the reader of the AWS IoT credentials provider's answer
// (common/iot_credentials_response.hpp) and the name checks of its request.
//
// Input: one selector byte, then the body of an answer (or a name).
//   selector 0-239: the body of an answer with status 200 (0-159), 403 (160-199), 503 (200-239)
//   selector 240-255: the rest is a role alias and a Thing name to check
// Besides the sanitizers' findings, the target aborts when a property of the reader breaks:
//   - it gives credentials or an error of its own category, never both, never neither;
//   - given credentials, they pass problem(), have a session token and an expiration, and came
//     from a 200 answer of at most max_body_bytes;
//   - its detail never holds a control character (the provider's words are escaped) and stays
//     within max_message_bytes escaped (at most 4 bytes each: \xNN) plus the words around them;
//   - it is deterministic: the same input gives the same answer.
// Seeds: tests/fuzz/corpus/iot_credentials/.
#include "common/iot_credentials_response.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

using namespace thingmux::aws;

void require(bool condition) {
    if (!condition) std::abort();
}

void check_answer(int status, std::string_view body) {
    const auto a = iot_credentials::parse_answer(status, body);
    require(a.value.has_value() != static_cast<bool>(a.error));
    if (a.value) {
        require(status == 200 && body.size() <= iot_credentials::max_body_bytes);
        require(problem(*a.value).empty());
        require(!a.value->session_token.empty() && a.value->expiration.has_value());
        require(a.detail.empty());
    } else {
        require(a.error.category() == iot_credentials::category());
        require(!a.detail.empty() && a.detail.size() <= 4 * iot_credentials::max_message_bytes + 256);
        require(std::none_of(a.detail.begin(), a.detail.end(),
                             [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == '\x7f'; }));
    }
    const auto again = iot_credentials::parse_answer(status, body);
    require(again.error == a.error && again.detail == a.detail && again.value.has_value() == a.value.has_value());
}

void check_names(std::string_view text) {
    const auto alias_ok = iot_credentials::valid_role_alias(text);
    if (alias_ok) {
        const auto target = iot_credentials::request_target(text);
        require(target.find_first_of(" \r\n?#%") == std::string::npos);
    }
    if (iot_credentials::valid_thing_name(text)) require(text.find_first_of(" \r\n") == std::string_view::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view rest{reinterpret_cast<const char*>(data + 1), size - 1};
    if (data[0] >= 240) {
        check_names(rest);
    } else {
        check_answer(data[0] < 160 ? 200 : data[0] < 200 ? 403 : 503, rest);
    }
    return 0;
}
