// The head of an HTTP/1.1 request to the metrics endpoint, parsed from the bytes received so far:
// the request line and the header fields a scrape needs (Accept). Everything else is refused
// with the status to answer. The endpoint serves `GET /metrics` only, so this parser knows no
// body, no chunking, no keep-alive.
//
// Limits (the peer is any local user, or a host with metrics.allow_remote): the head is at most
// max_head bytes (431 beyond), at most max_fields header fields (431), a request line of at most
// max_request_line bytes (414 for a longer target); control bytes, obsolete line folding and
// malformed fields are 400s.
//
// Pure: standard library only; never logs. Fuzzed by tests/fuzz/fuzz_metrics_http.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace thingmux::metrics {

inline constexpr std::size_t max_head = 8 * 1024;
inline constexpr std::size_t max_fields = 64;
inline constexpr std::size_t max_request_line = 2048;

struct http_request {
    enum class state : std::uint8_t {
        incomplete,  // the head has not ended yet: read more
        complete,    // a GET of the metrics
        refused,     // answer `status` with `reason` and close
    };
    state result = state::incomplete;
    int status = 0;          // refused: 400, 404, 405, 414, 431, 505
    std::string reason;      // refused: why, for the log line and the response body (ASCII)
    bool openmetrics = false;  // complete: Accept names application/openmetrics-text
    std::string thing;         // complete: "?thing=NAME" (percent-decoded); empty: every Thing
    std::size_t head_bytes = 0;  // complete or refused after the head: its length
};

// Parses the head at the start of `received`. Bytes after the head (a body, a pipelined
// request) are ignored.
[[nodiscard]] http_request parse_request(std::string_view received);

// The reason phrase of a status this endpoint answers.
[[nodiscard]] std::string_view status_text(int status) noexcept;

}  // namespace thingmux::metrics
