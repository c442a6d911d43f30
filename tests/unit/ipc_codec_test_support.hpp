// Helpers of the IPC codec tests (ipc_codec_test.cpp: version 1, ipc_codec_v2_test.cpp:
// version 2). The byte vectors of the tests are copied from the spec, never produced by the
// encoder under test: x("00 00 00 05 ...") reads the spec's hex notation.
#pragma once

#include "ipc/codec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace thingmux::ipc::test {

using namespace std::string_literals;
using bytes = std::vector<std::uint8_t>;

// Hex as written in the spec: pairs of digits, whitespace ignored.
inline bytes x(std::string_view hex) {
    bytes out;
    int high = -1;
    for (const char c : hex) {
        int v = -1;
        if (c >= '0' && c <= '9') {
            v = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            v = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            v = c - 'A' + 10;
        }
        if (v < 0) {
            continue;
        }
        if (high < 0) {
            high = v;
        } else {
            out.push_back(static_cast<std::uint8_t>(high * 16 + v));
            high = -1;
        }
    }
    EXPECT_LT(high, 0) << "odd number of hex digits in " << hex;
    return out;
}

// A frame around a hand-written body: u32 length = 1 + body, type, body.
inline bytes frame(std::uint8_t type, const bytes& body) {
    const auto n = body.size() + 1;
    bytes out(5 + body.size());
    out[0] = static_cast<std::uint8_t>(n >> 24U);
    out[1] = static_cast<std::uint8_t>(n >> 16U);
    out[2] = static_cast<std::uint8_t>(n >> 8U);
    out[3] = static_cast<std::uint8_t>(n);
    out[4] = type;
    std::copy(body.begin(), body.end(), out.begin() + 5);
    return out;
}

// A spec string: u16 length + bytes.
// Sized up front: g++ 12 -O2 warns falsely (-Warray-bounds) on insert() after a 2-byte list.
inline bytes s(std::string_view v) {
    bytes out(2 + v.size());
    out[0] = static_cast<std::uint8_t>(v.size() >> 8U);
    out[1] = static_cast<std::uint8_t>(v.size());
    std::copy(v.begin(), v.end(), out.begin() + 2);
    return out;
}

inline bytes cat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const auto& p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

template <class R>
std::string describe(const R& r) {
    if (const auto* m = std::get_if<malformed>(&r)) {
        return "malformed (" + std::string(to_string(m->code)) + "): " + m->reason;
    }
    if (const auto* n = std::get_if<need_more>(&r)) {
        return "need_more at_least " + std::to_string(n->at_least);
    }
    return "decoded " + std::to_string(std::get<2>(r).consumed) + " bytes";
}

template <class Variant>
auto decode_any(std::span<const std::uint8_t> b, std::size_t max_frame = default_max_frame,
                wire_version version = wire_version::v1) {
    if constexpr (std::is_same_v<Variant, client_message>) {
        return decode_client_message(b, max_frame, version);
    } else {
        return decode_daemon_message(b, max_frame, version);
    }
}

// The direction a message type travels in.
template <class T>
using variant_of =
    std::conditional_t<std::is_constructible_v<client_message, T> && !std::is_constructible_v<daemon_message, T>,
                       client_message, daemon_message>;

// Decodes `b`, expecting one message of type T filling the whole buffer.
template <class T, class Variant = variant_of<T>>
T decode_as(const bytes& b, wire_version version = wire_version::v1) {
    const auto r = decode_any<Variant>(b, default_max_frame, version);
    const auto* d = std::get_if<decoded<Variant>>(&r);
    if (d == nullptr) {
        ADD_FAILURE() << describe(r);
        return T{};
    }
    EXPECT_EQ(d->consumed, b.size());
    const auto* m = std::get_if<T>(&d->message);
    if (m == nullptr) {
        ADD_FAILURE() << "decoded another message type";
        return T{};
    }
    return *m;
}

template <class Variant>
malformed failure(const bytes& b, std::size_t max_frame = default_max_frame, wire_version version = wire_version::v1) {
    const auto r = decode_any<Variant>(b, max_frame, version);
    if (const auto* m = std::get_if<malformed>(&r)) {
        return *m;
    }
    ADD_FAILURE() << "expected malformed, got " << describe(r);
    return {};
}
inline malformed client_failure(const bytes& b, std::size_t max_frame = default_max_frame) {
    return failure<client_message>(b, max_frame);
}
inline malformed daemon_failure(const bytes& b, std::size_t max_frame = default_max_frame) {
    return failure<daemon_message>(b, max_frame);
}

// Decodes the frame and encodes the value, both against the hand-written bytes.
template <class T>
void check_vector(const bytes& wire, const T& value, wire_version version = wire_version::v1) {
    EXPECT_EQ(decode_as<T>(wire, version), value);
    const variant_of<T> v{value};
    EXPECT_EQ(encode(v, version), wire);
    EXPECT_EQ(encoded_size(v, version), wire.size());
    EXPECT_EQ(encode_problem(v, version), std::nullopt);
}

// Encodes `m` and decodes it back, with the codec of `version`.
template <class Variant>
void check_round_trip(const Variant& m, wire_version version = wire_version::v1) {
    SCOPED_TRACE(to_string(type_of(m)));
    EXPECT_EQ(encode_problem(m, version), std::nullopt);
    const auto wire = encode(m, version);
    EXPECT_EQ(wire.size(), encoded_size(m, version));
    const auto r = decode_any<Variant>(wire, wire.size(), version);
    const auto* d = std::get_if<decoded<Variant>>(&r);
    ASSERT_NE(d, nullptr) << describe(r);
    EXPECT_EQ(d->consumed, wire.size());
    EXPECT_EQ(d->message, m);
    EXPECT_EQ(type_of(d->message), static_cast<message_type>(wire[4]));
}

// Every strict prefix of the frame of `m` asks for more bytes, within the frame.
template <class Variant>
void check_every_prefix_needs_more(const Variant& m, wire_version version = wire_version::v1) {
    SCOPED_TRACE(to_string(type_of(m)));
    const auto wire = encode(m, version);
    for (std::size_t k = 0; k < wire.size(); ++k) {
        const auto r = decode_any<Variant>(std::span(wire).first(k), default_max_frame, version);
        const auto* more = std::get_if<need_more>(&r);
        ASSERT_NE(more, nullptr) << "prefix of " << k << " bytes: " << describe(r);
        EXPECT_GT(more->at_least, k);
        EXPECT_LE(more->at_least, wire.size());
    }
}

inline message_properties full_properties() {
    return {.payload_format_indicator = 1,
            .message_expiry_interval = 60,
            .content_type = "c",
            .response_topic = "r",
            .correlation_data = "\x01\x02"s,
            .user_properties = {{"k", "v"}}};
}

}  // namespace thingmux::ipc::test
