// libFuzzer target for the metrics endpoint's request head parser (daemon/metrics/http_request.hpp)
// and the label value escaping of the scrape writer (daemon/metrics/openmetrics.hpp).
//
// Input: the bytes a metrics client sends. Besides the sanitizers' findings, the target aborts
// when a property breaks:
//   - a verdict (complete or refused) given for a prefix stays the same for the whole input: the
//     server answers as soon as it has one, so a later byte must not change it;
//   - complete means a head of at most max_head bytes, within the input;
//   - refused means one of the statuses the server answers, with a reason;
//   - nothing past max_head + one read is ever left incomplete;
//   - an escaped label value has no newline and no unescaped double quote.
// Seeds: tests/fuzz/corpus/metrics_http/.
#include "daemon/metrics/http_request.hpp"
#include "daemon/metrics/openmetrics.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace {

using namespace thingmux::metrics;

void require(bool condition) {
    if (!condition) std::abort();
}

bool known_status(int s) { return s == 400 || s == 404 || s == 405 || s == 414 || s == 431 || s == 505; }

void check_escaped(std::string_view in) {
    const auto out = escape_label_value(in);
    require(out.find('\n') == std::string::npos);
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i] == '\\') {
            require(i + 1 < out.size());
            ++i;  // the escaped character
        } else {
            require(out[i] != '"');
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view all(reinterpret_cast<const char*>(data), size);
    const auto whole = parse_request(all);
    if (whole.result == http_request::state::complete) {
        require(whole.head_bytes > 0 && whole.head_bytes <= max_head && whole.head_bytes <= size);
    } else if (whole.result == http_request::state::refused) {
        require(known_status(whole.status) && !whole.reason.empty());
    } else {
        require(size <= max_head + 1);
    }
    // The server parses after every read: the first prefix with a verdict must give the same one.
    for (std::size_t n = 1; n < size && n <= max_head + 1; n += 1 + n / 8) {
        const auto part = parse_request(all.substr(0, n));
        if (part.result == http_request::state::incomplete) continue;
        require(part.result == whole.result && part.status == whole.status && part.thing == whole.thing &&
                part.openmetrics == whole.openmetrics);
        break;
    }
    check_escaped(all);
    return 0;
}
