// libFuzzer target for the service router's payload handling (daemon/thing/service_requests.hpp,
// daemon/thing/shadow_cache.hpp): the check of a request's payload, the clientToken rewrite, the
// restore in what AWS sends back, and the shadow cache's reading of answers.
//
// Input: one selector byte, then a payload.
//   selector 0-127:   the payload as an app's request
//   selector 128-255: the payload as an inbound message (an answer, documents)
// Besides the sanitizers' findings, the target aborts when a property breaks:
//   - a request it accepts, given the daemon's token, is still accepted, and its token found there;
//   - an app's token put back gives the app's payload again, byte for byte;
//   - the scanner's offsets stay within the text, and what it finds is a string of the token's form;
//   - the cache's answer is a JSON object with "cached" (checked by the request check itself).
// Seeds: tests/fuzz/corpus/service_payload/.
#include "daemon/thing/service_requests.hpp"
#include "daemon/thing/shadow_cache.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace thingmux::thing;
using namespace thingmux::thing::services;

void require(bool condition) {
    if (!condition) std::abort();
}

constexpr std::string_view daemon_token = "tmx-0123456789abcdef";

void as_request(std::string_view payload) {
    const auto c = check_request(payload);
    if (!c.problem.empty()) {
        require(!c.token);
        return;
    }
    if (c.token) require(c.token->value_end <= payload.size() && c.token->value_begin < c.token->value_end);
    const auto sent = with_token(payload, c, daemon_token);
    const auto again = check_request(sent);
    // The daemon's token adds at most 36 bytes: only the size bound may refuse it now.
    require(again.problem.empty() || sent.size() > max_request_payload);
    const auto found = find_daemon_token(sent);
    require(found.has_value() && found->token == daemon_token);
    if (c.token) {
        const std::string original(payload.substr(c.token->value_begin, c.token->value_end - c.token->value_begin));
        require(restore_token(sent, found->where, original) == payload);
    } else {
        const auto back = restore_token(sent, found->where, std::nullopt);
        require(check_request(back).problem.empty() && !check_request(back).token);
    }
}

void as_inbound(std::string_view payload) {
    if (const auto t = find_daemon_token(payload)) {
        require(t->where.value_end <= payload.size() && t->where.begin < t->where.value_begin);
        require(t->token.size() == token_size);
        (void)restore_token(payload, t->where, std::string("\"app\""));
        (void)restore_token(payload, t->where, std::nullopt);
    }
    shadow_cache cache;
    cache.from_get_accepted("", payload);
    cache.from_documents("n", payload);
    for (const auto* name : {"", "n"}) {
        if (const auto a = cache.answer(name, std::string("\"t\""))) {
            const auto c = check_request(*a);
            require(c.problem.empty() || a->size() > max_request_payload);
            require(find_member(*a, "cached").has_value());
        }
    }
    require(cache.size() <= 2);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
    if (data[0] < 128) {
        as_request(payload);
    } else {
        as_inbound(payload);
    }
    return 0;
}
