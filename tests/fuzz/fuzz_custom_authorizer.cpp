// libFuzzer target for the builder of a custom authorizer's MQTT user name and WebSocket
// parameters (common/custom_authorizer.hpp): the token and signature come from files an operator
// or a provisioning tool writes, so any bytes may be in them.
//
// Input: four length bytes, then the user name, name, token key name and token of those lengths
// (cut short where the input ends), then the signature (the rest).
// Besides the sanitizers' findings, the target aborts when a property breaks:
//   - a user name is built or a reason is given, never both or neither;
//   - a built user name is at most 65535 bytes, starts with the user name and '?', and after it
//     holds only unreserved characters, '%' escapes, '&' and '=';
//   - its query, percent-decoded, is exactly websocket_parameters() in order, and query_string()
//     of them is that query.
// Seeds: tests/fuzz/corpus/custom_authorizer/.
#include "common/custom_authorizer.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace thingmux;

void require(bool condition) {
    if (!condition) std::abort();
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string decoded(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        require(i + 2 < s.size());
        const int hi = hex_value(s[i + 1]);
        const int lo = hex_value(s[i + 2]);
        require(hi >= 0 && lo >= 0);
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

bool allowed_in_query(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("-._~%&=").find(c) != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    if (in.size() < 4) return 0;
    const auto lengths = in.substr(0, 4);
    in.remove_prefix(4);
    std::string_view fields[4];
    for (std::size_t i = 0; i < 4; ++i) {
        const auto n = std::min<std::size_t>(static_cast<unsigned char>(lengths[i]), in.size());
        fields[i] = in.substr(0, n);
        in.remove_prefix(n);
    }
    const custom_authorizer::login l{
        .username = fields[0], .name = fields[1], .token_key_name = fields[2], .token = fields[3], .signature = in};
    const auto r = custom_authorizer::mqtt_user_name(l);
    require(r.value.has_value() != !r.problem.empty());
    if (!r.value) return 0;
    const std::string& user = *r.value;
    require(user.size() <= custom_authorizer::max_mqtt_user_name_bytes);
    require(user.starts_with(std::string(l.username) + "?"));
    const std::string_view query = std::string_view(user).substr(l.username.size() + 1);
    for (const char c : query) require(allowed_in_query(c));

    const auto params = custom_authorizer::websocket_parameters(l);
    require(custom_authorizer::query_string(params) == query);
    std::vector<std::string_view> pairs;
    for (std::size_t start = 0; start <= query.size();) {
        auto end = query.find('&', start);
        if (end == std::string_view::npos) end = query.size();
        pairs.push_back(query.substr(start, end - start));
        start = end + 1;
    }
    require(pairs.size() == params.size());
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        const auto eq = pairs[i].find('=');
        require(eq != std::string_view::npos);
        require(decoded(pairs[i].substr(0, eq)) == params[i].name);
        require(decoded(pairs[i].substr(eq + 1)) == params[i].value);
    }
    return 0;
}
