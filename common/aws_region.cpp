#include "common/aws_region.hpp"

#include "common/plain_text.hpp"

#include <algorithm>

namespace thingmux::aws {
bool valid_region(std::string_view region) noexcept {
    if (region.empty() || region.size() > 32 || region.front() < 'a' || region.front() > 'z') return false;
    return std::all_of(region.begin(), region.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

std::string region_from_endpoint(std::string_view host) {
    auto name = text::ascii_lower(host);
    if (name.ends_with('.')) name.pop_back();  // a fully qualified name
    std::string_view rest = name;
    if (rest.ends_with(".amazonaws.com")) {
        rest.remove_suffix(std::string_view(".amazonaws.com").size());
    } else if (rest.ends_with(".amazonaws.com.cn")) {
        rest.remove_suffix(std::string_view(".amazonaws.com.cn").size());
    } else {
        return {};
    }
    // ... "iot" REGION (the region is the last label before the domain).
    const auto labels = text::split(rest, '.');
    if (labels.size() < 2) return {};
    const auto service = labels[labels.size() - 2];
    const auto region = labels.back();
    if ((service != "iot" && service != "iot-fips") || !valid_region(region)) return {};
    return std::string(region);
}

}  // namespace thingmux::aws
