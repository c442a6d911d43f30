#include "daemon/thing/copy_counter.hpp"

#include <functional>
#include <optional>
#include <string_view>
#include <type_traits>

namespace thingmux::thing {

namespace {

// Boost's hash_combine step, widened to 64 bits.
void mix(std::uint64_t& h, std::uint64_t v) noexcept {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6U) + (h >> 2U);
}

void mix(std::uint64_t& h, std::string_view s) noexcept {
    mix(h, s.size());  // so that "ab"+"c" and "a"+"bc" differ
    mix(h, std::hash<std::string_view>{}(s));
}

template <typename T>
void mix(std::uint64_t& h, const std::optional<T>& v) noexcept {
    mix(h, std::uint64_t{v.has_value()});
    if (!v) return;
    if constexpr (std::is_integral_v<T>) {
        mix(h, static_cast<std::uint64_t>(*v));
    } else {
        mix(h, std::string_view(*v));
    }
}

}  // namespace

std::uint64_t fingerprint(const mqtt::publish& m) noexcept {
    auto h = content_fingerprint(m);
    mix(h, static_cast<std::uint64_t>(m.qos));
    mix(h, std::uint64_t{m.retain});
    mix(h, m.props.message_expiry_interval);
    return h;
}

std::uint64_t content_fingerprint(const mqtt::publish& m) noexcept {
    std::uint64_t h = 0;
    mix(h, std::string_view(m.topic));
    mix(h, std::string_view(m.payload));
    const auto& p = m.props;
    mix(h, p.payload_format_indicator);
    mix(h, p.content_type);
    mix(h, p.response_topic);
    mix(h, p.correlation_data);
    mix(h, p.user_properties.size());
    for (const auto& u : p.user_properties) {
        mix(h, std::string_view(u.key));
        mix(h, std::string_view(u.value));
    }
    return h;
}

bool copy_counter::is_copy(const mqtt::publish& m, std::size_t copies) {
    if (m.retain) copies = 0;
    // Hashing costs a pass over the payload: only when a copy is due or may come.
    if (due_ == 0 && copies < 2) return false;
    const auto f = fingerprint(m);
    if (due_ > 0 && f == fingerprint_) {
        --due_;
        return true;
    }
    fingerprint_ = f;
    due_ = copies < 2 ? 0 : copies - 1;
    return false;
}

}  // namespace thingmux::thing
