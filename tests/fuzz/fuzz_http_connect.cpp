// libFuzzer target for the parser of a proxy's answer to CONNECT (common/http_connect.hpp), and
// for the proxy URL and no_proxy readers it sits beside (common/proxy_url.hpp).
//
// Input: one selector byte, then the bytes a proxy sends (or a URL / no_proxy list).
//   selector bits 0-1: 0, 1 = the answer, fed in pieces of (selector >> 2) + 1 bytes (1..64);
//                      2 = the rest is a proxy URL; 3 = the rest is a no_proxy list
// Besides the sanitizers' findings, the target aborts when a property of the parser breaks:
//   - it never takes more bytes than it is given, nor more than max_head_bytes in all;
//   - fed in pieces it ends in the same state, with the same status, status line, challenges
//     and error, having taken the same number of bytes, as when fed everything at once;
//   - done means a status in 100..999 and a status line that starts with "HTTP/1."; failed
//     means an error of its own category; the challenges stay within their bounds;
//   - a URL that parses has a host and a port, and to_string() of it parses to the same place.
// Seeds: tests/fuzz/corpus/http_connect/.
#include "common/http_connect.hpp"
#include "common/proxy_url.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>

namespace {

using namespace thingmux;

void require(bool condition) {
    if (!condition) std::abort();
}

void check_answer(std::span<const std::uint8_t> answer, std::size_t piece) {
    http_connect::response_parser whole;
    const std::size_t taken_whole = whole.feed(answer);
    require(taken_whole <= answer.size() && taken_whole <= http_connect::max_head_bytes);

    http_connect::response_parser pieces;
    std::size_t taken = 0;
    for (std::size_t at = 0; at < answer.size(); at += piece) {
        const auto part = answer.subspan(at, std::min(piece, answer.size() - at));
        const std::size_t n = pieces.feed(part);
        require(n <= part.size());
        taken += n;
    }
    require(taken == taken_whole);
    require(pieces.current() == whole.current());
    require(pieces.error() == whole.error());
    require(pieces.status() == whole.status());
    require(pieces.status_line() == whole.status_line());
    require(pieces.challenges() == whole.challenges());

    using state = http_connect::response_parser::state;
    if (whole.current() == state::done) {
        require(whole.status() >= 100 && whole.status() <= 999);
        require(whole.status_line().starts_with("HTTP/1."));
        require(whole.challenges().size() <= http_connect::max_challenges);
        for (const auto& c : whole.challenges()) require(c.size() <= http_connect::max_challenge_bytes);
    } else if (whole.current() == state::failed) {
        require(whole.error().category() == http_connect::category());
    } else {
        require(taken_whole == answer.size());
    }
    require(whole.received_start().size() <= 128);
}

void check_url(std::string_view text) {
    const auto parsed = proxy::parse_url(text, true);
    if (!parsed.value) {
        require(!parsed.problem.empty());
        return;
    }
    require(!parsed.value->host.empty() && parsed.value->port != 0);
    const auto again = proxy::parse_url(proxy::to_string(*parsed.value));
    require(again.value.has_value());
    require(again.value->host == parsed.value->host && again.value->port == parsed.value->port &&
            again.value->scheme == parsed.value->scheme);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::span<const std::uint8_t> rest{data + 1, size - 1};
    const std::string_view text{reinterpret_cast<const char*>(rest.data()), rest.size()};
    switch (data[0] & 3U) {
    case 2: check_url(text); break;
    case 3: (void)proxy::bypasses(text, "broker.example.com", 8883); break;
    default: check_answer(rest, static_cast<std::size_t>(data[0] >> 2U) + 1); break;
    }
    return 0;
}
