// The public helpers of services.hpp.
#include "thingmux/services.hpp"

#include <algorithm>

namespace thingmux {

namespace {

constexpr std::size_t max_name = 64;

bool alnum(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

template <typename Extra>
bool name_of(std::string_view s, Extra extra) noexcept {
    return !s.empty() && s.size() <= max_name &&
           std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || extra(c); });
}

}  // namespace

bool valid_shadow_name(std::string_view name) noexcept {
    return name_of(name, [](char c) { return c == ':' || c == '_' || c == '-'; });
}

bool valid_job_id(std::string_view id) noexcept {
    return name_of(id, [](char c) { return c == '_' || c == '-'; });
}

bool valid_job_operation(std::string_view operation) noexcept {
    return name_of(operation, [](char c) { return c == '_' || c == '.' || c == '-'; });
}

std::string shadow_topic(std::string_view thing, std::string_view shadow_name, std::string_view suffix) {
    std::string t = "$aws/things/";
    t += thing;
    t += "/shadow/";
    if (!shadow_name.empty()) {
        t += "name/";
        t += shadow_name;
        t += '/';
    }
    t += suffix;
    return t;
}

}  // namespace thingmux
