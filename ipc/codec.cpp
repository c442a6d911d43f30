#include "ipc/codec.hpp"

#include "ipc/codec_io.hpp"
#include "ipc/codec_schema.hpp"

#include <algorithm>
#include <array>
#include <type_traits>
#include <utility>

namespace thingmux::ipc {

namespace {

using namespace wire;

// ---------------------------------------------------------------------------------------------
// Directions: variant index i <-> message type first_type + i (IPC-4).

template <class Variant>
struct direction;
template <>
struct direction<client_message> {
    static constexpr std::uint8_t first_type = 0x01;
    static constexpr std::string_view sender = "a client";
};
template <>
struct direction<daemon_message> {
    static constexpr std::uint8_t first_type = 0x81;
    static constexpr std::string_view sender = "the daemon";
};

// Message types a version has: all of its direction's but ack, which version 2 added (IPC-4).
template <class Variant>
bool is_type_of(std::uint8_t type, wire_version version) noexcept {
    constexpr auto first = direction<Variant>::first_type;
    if (type < first || static_cast<std::size_t>(type - first) >= std::variant_size_v<Variant>) return false;
    if constexpr (std::is_same_v<Variant, client_message>) {
        static_assert(std::is_same_v<std::variant_alternative_t<0x06 - 0x01, client_message>, ack>);
        return version != wire_version::v1 || type != static_cast<std::uint8_t>(message_type::ack);
    } else {
        return true;
    }
}

// The largest frame of `type`: max_frame, but an admin_result may take up to
// max_admin_result_frame whatever the connection's limit (IPC-51).
template <class Variant>
std::uint64_t frame_limit(std::uint8_t type, std::size_t max_frame) noexcept {
    if constexpr (std::is_same_v<Variant, daemon_message>) {
        if (type == static_cast<std::uint8_t>(message_type::admin_result))
            return std::max<std::uint64_t>(max_frame, max_admin_result_frame);
    }
    return max_frame;
}

template <class Variant>
message_type type_for(const Variant& m) noexcept {
    return static_cast<message_type>(direction<Variant>::first_type + m.index());
}

template <class Variant, std::size_t I>
Variant read_alternative(reader& r) {
    std::variant_alternative_t<I, Variant> m;
    fields(r, m);
    return m;
}

template <class Variant, std::size_t... I>
constexpr auto make_alternative_readers(std::index_sequence<I...>) {
    return std::array<Variant (*)(reader&), sizeof...(I)>{&read_alternative<Variant, I>...};
}

template <class Variant>
std::variant<need_more, malformed, decoded<Variant>> decode_frame(std::span<const std::uint8_t> bytes,
                                                                  std::size_t max_frame, wire_version version) {
    using other = std::conditional_t<std::is_same_v<Variant, client_message>, daemon_message, client_message>;
    if (bytes.size() < length_prefix_size) {
        return need_more{length_prefix_size};
    }
    std::uint32_t length = 0;
    for (std::size_t i = 0; i < length_prefix_size; ++i) {
        length = (length << 8U) | bytes[i];
    }
    if (length == 0) {
        return malformed{errc::malformed_frame, "frame length is 0: a frame holds at least its message type"};
    }
    // 64-bit arithmetic: 4 + length may not fit a 32-bit size_t.
    const std::uint64_t total = length_prefix_size + std::uint64_t{length};
    // Only an admin_result may be larger than max_frame: its type byte decides (IPC-51).
    const bool may_exceed = frame_limit<Variant>(static_cast<std::uint8_t>(message_type::admin_result), max_frame) > max_frame;
    if (total > max_frame && (!may_exceed || total > max_admin_result_frame)) {
        return malformed{errc::frame_too_large,
                         cat("frame of ", total, " bytes exceeds the limit of ", max_frame, " bytes")};
    }
    if (bytes.size() < frame_header_size) {
        return need_more{frame_header_size};
    }
    if (const auto limit = frame_limit<Variant>(bytes[length_prefix_size], max_frame); total > limit) {
        return malformed{errc::frame_too_large, cat("frame of ", total, " bytes exceeds the limit of ", limit, " bytes")};
    }
    // The type byte is refused before the body arrives: no point waiting for a frame that will
    // be rejected anyway.
    const auto type = bytes[length_prefix_size];
    if (!is_type_of<Variant>(type, version)) {
        if (is_type_of<other>(type, version)) {
            return malformed{errc::protocol_violation,
                             cat("message type ", hex(type), " (", to_string(static_cast<message_type>(type)),
                                 ") is sent by ", direction<other>::sender, ", not by ", direction<Variant>::sender)};
        }
        return malformed{errc::malformed_frame, cat("unknown message type ", hex(type))};
    }
    const auto size = static_cast<std::size_t>(total);
    if (bytes.size() < size) {
        return need_more{size};
    }

    static constexpr auto readers =
        make_alternative_readers<Variant>(std::make_index_sequence<std::variant_size_v<Variant>>{});
    reader r{bytes.subspan(frame_header_size, size - frame_header_size), to_string(static_cast<message_type>(type)),
             version};
    auto m = readers[static_cast<std::size_t>(type - direction<Variant>::first_type)](r);
    if (const auto left = r.remaining(); left != 0) {
        r.fail(left, left == 1 ? " byte" : " bytes", " left after the last field");
    }
    if (!r.ok()) {
        return std::move(r).error();
    }
    return decoded<Variant>{std::move(m), size};
}

template <class Variant>
void encode_variant(const Variant& m, std::vector<std::uint8_t>& out, wire_version version) {
    std::visit([&](const auto& alternative) { append_frame(out, type_for(m), alternative, version); }, m);
}

template <class Variant>
std::size_t encoded_size_of(const Variant& m, wire_version version) {
    return std::visit(
        [version](const auto& alternative) {
            return static_cast<std::size_t>(length_prefix_size + 1 + body_size(alternative, version));
        },
        m);
}

template <class Variant>
std::optional<std::string> problem_of(const Variant& m, wire_version version) {
    validating_sink sink;
    const std::string_view name = to_string(type_for(m));
    std::visit(
        [&](const auto& alternative) {
            writer w{sink, name, version};
            w.check(is_type_of<Variant>(static_cast<std::uint8_t>(type_for(m)), version),
                    "no such message in protocol version ", static_cast<std::uint16_t>(version));
            fields(w, alternative);
            w.check(1 + sink.size <= max_frame_length, "frame is longer than a 32-bit length can say");
        },
        m);
    return std::move(sink.problem);
}

}  // namespace

client_decode_result decode_client_message(std::span<const std::uint8_t> bytes, std::size_t max_frame,
                                           wire_version version) {
    return decode_frame<client_message>(bytes, max_frame, version);
}

daemon_decode_result decode_daemon_message(std::span<const std::uint8_t> bytes, std::size_t max_frame,
                                           wire_version version) {
    return decode_frame<daemon_message>(bytes, max_frame, version);
}

void encode(const client_message& m, std::vector<std::uint8_t>& out, wire_version version) {
    encode_variant(m, out, version);
}

void encode(const daemon_message& m, std::vector<std::uint8_t>& out, wire_version version) {
    encode_variant(m, out, version);
}

std::vector<std::uint8_t> encode(const client_message& m, wire_version version) {
    std::vector<std::uint8_t> out;
    encode(m, out, version);
    return out;
}

std::vector<std::uint8_t> encode(const daemon_message& m, wire_version version) {
    std::vector<std::uint8_t> out;
    encode(m, out, version);
    return out;
}

std::size_t encoded_size(const client_message& m, wire_version version) {
    return encoded_size_of(m, version);
}

std::size_t encoded_size(const daemon_message& m, wire_version version) {
    return encoded_size_of(m, version);
}

std::optional<std::string> encode_problem(const client_message& m, wire_version version) {
    return problem_of(m, version);
}

std::optional<std::string> encode_problem(const daemon_message& m, wire_version version) {
    return problem_of(m, version);
}

void encode_message_frame(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                          const message_properties& props, std::vector<std::uint8_t>& out, wire_version version,
                          std::uint32_t delivery_id) {
    append_frame(out, message_type::message, message_view{topic, payload, qos, retain, props, delivery_id}, version);
}

std::size_t message_frame_size(std::string_view topic, std::string_view payload, const message_properties& props,
                               wire_version version) {
    return static_cast<std::size_t>(length_prefix_size + 1 +
                                    body_size(message_view{topic, payload, 0, false, props, 0}, version));
}

}  // namespace thingmux::ipc
