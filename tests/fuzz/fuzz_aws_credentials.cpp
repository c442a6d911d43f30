// libFuzzer target for the readers of AWS credentials' static sources and the timestamps and
// endpoint names beside them (common/aws_credentials.hpp, common/aws_region.hpp).
//
// Input: one selector byte, then the text.
//   selector bits 0-1: 0, 1 = the rest is a shared credentials file, read for profile "default"
//                      (0) or "dev" (1); 2 = an expiration time; 3 = an endpoint name
// Besides the sanitizers' findings, the target aborts when a property breaks:
//   - a profile that is found holds credentials problem() accepts; one that is not has a reason;
//   - the file read with CRLF line ends turned into LF gives the same answer;
//   - a region read from an endpoint is a valid region name.
// Seeds: tests/fuzz/corpus/aws_credentials/.
#include "common/aws_credentials.hpp"
#include "common/aws_region.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace thingmux;

void require(bool condition) {
    if (!condition) std::abort();
}

bool same(const aws::lookup& a, const aws::lookup& b) {
    if (a.found.has_value() != b.found.has_value() || a.why_not != b.why_not) return false;
    if (!a.found) return true;
    return a.found->access_key_id == b.found->access_key_id &&
           a.found->secret_access_key == b.found->secret_access_key && a.found->session_token == b.found->session_token;
}

void check_file(std::string_view text, std::string_view profile) {
    const auto r = aws::parse_credentials_file(text, profile);
    if (r.found) {
        require(aws::problem(*r.found).empty());
        require(r.why_not.empty());
    } else {
        require(!r.why_not.empty());
    }
    std::string lf;
    lf.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
        lf.push_back(text[i]);
    }
    require(same(r, aws::parse_credentials_file(lf, profile)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view text{reinterpret_cast<const char*>(data + 1), size - 1};
    switch (data[0] & 3U) {
        case 0:
            check_file(text, "default");
            break;
        case 1:
            check_file(text, "dev");
            break;
        case 2:
            (void)aws::parse_timestamp(text);
            break;
        default: {
            const auto region = aws::region_from_endpoint(text);
            require(region.empty() || aws::valid_region(region));
            break;
        }
    }
    return 0;
}
