// Internal to the IPC codec (ipc/codec.cpp): the readers and writers that run the wire layout
// of ipc/codec_schema.hpp. Not part of the module's interface.
#pragma once

#include "common/utf8.hpp"
#include "ipc/codec.hpp"

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace thingmux::ipc::wire {

constexpr std::size_t max_short_string = 0xFFFF;       // u16 length prefix
constexpr std::size_t max_list_entries = 0xFFFF;       // u16 count
constexpr std::uint64_t max_blob = 0xFFFF'FFFF;        // u32 length prefix
constexpr std::uint64_t max_frame_length = 0xFFFF'FFFF;  // u32 length prefix (IPC-3)
constexpr std::size_t length_prefix_size = 4;

// Presence bits of message_properties (IPC-11). Fixed order on the wire = bit order.
constexpr std::uint8_t has_payload_format_indicator = 0x01;
constexpr std::uint8_t has_message_expiry_interval = 0x02;
constexpr std::uint8_t has_content_type = 0x04;
constexpr std::uint8_t has_response_topic = 0x08;
constexpr std::uint8_t has_correlation_data = 0x10;
constexpr std::uint8_t known_property_bits = 0x1F;

// Error text is assembled only when something fails, so callers pass numbers as numbers
// rather than paying for std::to_string on every successful read.
template <class... Parts>
std::string cat(const Parts&... parts) {
    std::string out;
    const auto append = [&out](const auto& part) {
        if constexpr (std::is_integral_v<std::remove_cvref_t<decltype(part)>>) {
            out += std::to_string(part);
        } else {
            out += std::string_view(part);
        }
    };
    (append(parts), ...);
    return out;
}

inline std::string hex(std::uint8_t v) {
    constexpr std::string_view digits = "0123456789abcdef";
    return {'0', 'x', digits[v >> 4U], digits[v & 0xFU]};
}

// A message frame whose topic and payload are borrowed: encode_message_frame() writes it with
// the schema of `message` and so produces the same bytes without copying the payload.
struct message_view {
    std::string_view topic;
    std::string_view payload;
    std::uint8_t qos;
    bool retain;
    const message_properties& props;
    std::uint32_t delivery_id;
};

template <class M, class... T>
constexpr bool is = (std::is_same_v<std::remove_const_t<M>, T> || ...);

// The wire layout of every message and nested struct, written once and run by the reader (M
// mutable) and by the writers (M const): decoder, encoder, size and validity cannot disagree.
template <class IO, class M>
void fields(IO& io, M& m);

inline std::uint8_t presence_mask(const message_properties& p) noexcept {
    return static_cast<std::uint8_t>((p.payload_format_indicator ? has_payload_format_indicator : 0U) |
                                     (p.message_expiry_interval ? has_message_expiry_interval : 0U) |
                                     (p.content_type ? has_content_type : 0U) |
                                     (p.response_topic ? has_response_topic : 0U) |
                                     (p.correlation_data ? has_correlation_data : 0U));
}

// ---------------------------------------------------------------------------------------------
// Encoding: one writer over a sink that counts, appends or validates, so sizes are computed
// without allocating and encode_problem() follows exactly the fields the encoder writes.

struct counting_sink {
    static constexpr bool validates = false;
    std::uint64_t size = 0;
    void put(std::uint8_t) noexcept { ++size; }
    void put(std::string_view s) noexcept { size += s.size(); }
};

struct appending_sink {
    static constexpr bool validates = false;
    std::vector<std::uint8_t>* out;
    void put(std::uint8_t b) { out->push_back(b); }
    void put(std::string_view s) {
        const auto* first = reinterpret_cast<const std::uint8_t*>(s.data());
        out->insert(out->end(), first, first + s.size());
    }
};

// Counts too: a frame longer than a u32 can say is a problem of its own.
struct validating_sink : counting_sink {
    static constexpr bool validates = true;
    std::optional<std::string> problem;
};

template <class Sink>
class writer {
public:
    writer(Sink& sink, std::string_view message_name, wire_version version) noexcept
        : sink_(sink), name_(message_name), version_(version) {}

    // The layout every frame but hello has: the connection's version.
    [[nodiscard]] wire_version version() const noexcept { return version_; }

    template <class... Parts>
    void check(bool condition, const Parts&... what) {
        if constexpr (Sink::validates) {
            if (!condition && !sink_.problem) {
                sink_.problem = cat(name_, ": ", what...);
            }
        }
    }

    template <std::unsigned_integral T>
        requires(!std::is_same_v<T, bool>)
    void uint(T v, std::string_view /*field*/) {
        for (std::size_t i = sizeof(T); i-- > 0;) {
            sink_.put(static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8U * i)));
        }
    }
    void boolean(bool v, std::string_view /*field*/) { sink_.put(static_cast<std::uint8_t>(v ? 1 : 0)); }
    void qos(std::uint8_t v, std::string_view field) {
        check(v <= 2, field, " is ", v, ", not 0, 1 or 2");
        uint(v, field);
    }
    template <class E>
    void enumeration(E v, std::string_view field) {
        const auto raw = static_cast<std::underlying_type_t<E>>(v);
        if constexpr (std::is_same_v<E, link_state>) {
            check(v <= last_link_state, field, " ", raw, " is not defined");
        }
        uint(raw, field);
    }
    // Values too long for their length prefix are cut rather than written with a wrapped
    // length, so a caller's mistake never desynchronizes the stream (see encode()).
    void str(std::string_view s, std::string_view field) {
        if constexpr (Sink::validates) {
            check(s.size() <= max_short_string, field, " is longer than 65535 bytes");
            check(valid_utf8(s), field, " is not valid UTF-8 or contains U+0000");
        }
        if (s.size() > max_short_string) {
            auto n = max_short_string;
            while (n > 0 && (static_cast<std::uint8_t>(s[n]) & 0xC0U) == 0x80U) {
                --n;  // s[n] continues the code point that would be split: keep it out whole
            }
            s = s.substr(0, n);
        }
        uint(static_cast<std::uint16_t>(s.size()), field);
        sink_.put(s);
    }
    void blob(std::string_view s, std::string_view field) {
        check(s.size() <= max_blob, field, " is longer than 4294967295 bytes");
        s = s.substr(0, static_cast<std::size_t>(std::min<std::uint64_t>(s.size(), max_blob)));
        uint(static_cast<std::uint32_t>(s.size()), field);
        sink_.put(s);
    }
    template <class T>
    void list(const std::vector<T>& v, std::string_view field, std::size_t min_entries) {
        check(v.size() >= min_entries, field, " has no entries");
        check(v.size() <= max_list_entries, field, " has more than 65535 entries");
        const auto count = std::min(v.size(), max_list_entries);
        uint(static_cast<std::uint16_t>(count), field);
        for (std::size_t i = 0; i < count; ++i) {
            if constexpr (std::is_same_v<T, std::string>) {
                str(v[i], field);
            } else {
                fields(*this, v[i]);
            }
        }
    }
    template <class T, class Write>
    void opt(const std::optional<T>& v, bool /*present*/, Write write) {
        if (v) {
            write(*v);
        }
    }
    // A writer writes every field of the layout of the hello's version, version 1's for a
    // version this code does not know; see reader::hello_layout().
    std::optional<wire_version> hello_layout(std::uint16_t version) noexcept {
        return known_version(version).value_or(wire_version::v1);
    }

private:
    Sink& sink_;
    std::string_view name_;
    wire_version version_;
};

// Smallest wire size of a list entry: bounds a decoded count by the bytes left before the list
// is allocated (IPC-7).
template <class T>
std::size_t min_entry_size() {
    counting_sink sink;
    writer w{sink, "", wire_version::v1};  // list entries have one layout in every version
    const T empty{};
    if constexpr (std::is_same_v<T, std::string>) {
        w.str(empty, "");
    } else {
        fields(w, empty);
    }
    return static_cast<std::size_t>(sink.size);
}

template <class M>
std::uint64_t body_size(const M& m, wire_version version) {
    counting_sink sink;
    writer w{sink, "", version};
    fields(w, m);
    return sink.size;
}

template <class M>
void append_frame(std::vector<std::uint8_t>& out, message_type type, const M& m, wire_version version) {
    const auto body = body_size(m, version);
    const auto total = static_cast<std::size_t>(length_prefix_size + 1 + body);
    // Grow geometrically: callers append many frames to one buffer.
    if (out.capacity() - out.size() < total) {
        out.reserve(std::max(out.size() + total, 2 * out.capacity()));
    }
    appending_sink sink{&out};
    writer w{sink, "", version};
    w.uint(static_cast<std::uint32_t>(1 + body), "frame length");
    w.uint(static_cast<std::uint8_t>(type), "message type");
    fields(w, m);
}

// ---------------------------------------------------------------------------------------------
// Decoding

// Bounds-checked reads from one frame body. The first failure is kept and later reads return
// zeros with remaining() at 0, so the schema reads a whole message in straight-line code and the
// outcome is looked at once.
class reader {
public:
    reader(std::span<const std::uint8_t> body, std::string_view message_name, wire_version version) noexcept
        : bytes_(body), name_(message_name), version_(version) {}

    // The layout every frame but hello has: the connection's version.
    [[nodiscard]] wire_version version() const noexcept { return version_; }

    [[nodiscard]] bool ok() const noexcept { return !error_.has_value(); }
    [[nodiscard]] std::size_t remaining() const noexcept { return ok() ? bytes_.size() - pos_ : 0; }

    template <class... Parts>
    void fail(const Parts&... what) {
        if (ok()) {
            error_ = malformed{errc::malformed_frame, cat(name_, ": ", what...)};
        }
    }
    template <class... Parts>
    void check(bool condition, const Parts&... what) {
        if (!condition) {
            fail(what...);
        }
    }

    template <std::unsigned_integral T>
        requires(!std::is_same_v<T, bool>)
    void uint(T& v, std::string_view field) {
        std::uint64_t value = 0;
        for (const char c : raw(sizeof(T), field)) {
            value = (value << 8U) | static_cast<std::uint8_t>(c);
        }
        v = static_cast<T>(value);
    }
    void boolean(bool& v, std::string_view field) {
        std::uint8_t b = 0;
        uint(b, field);
        check(b <= 1, field, " is ", b, ", not 0 or 1");
        v = b == 1;
    }
    void qos(std::uint8_t& v, std::string_view field) {
        uint(v, field);
        check(v <= 2, field, " is ", v, ", not 0, 1 or 2");
    }
    // errc values this code does not know are kept (IPC-12); link states are not (IPC-22).
    template <class E>
    void enumeration(E& v, std::string_view field) {
        std::underlying_type_t<E> raw_value = 0;
        uint(raw_value, field);
        v = static_cast<E>(raw_value);
        if constexpr (std::is_same_v<E, link_state>) {
            check(v <= last_link_state, field, " ", raw_value, " is not defined");
        }
    }
    void str(std::string& v, std::string_view field) {
        std::uint16_t length = 0;
        uint(length, field);
        v = raw(length, field);
        check(!ok() || valid_utf8(v), field, " is not valid UTF-8 or contains U+0000");
    }
    void blob(std::string& v, std::string_view field) {
        std::uint32_t length = 0;
        uint(length, field);
        v = raw(length, field);
    }
    template <class T>
    void list(std::vector<T>& v, std::string_view field, std::size_t min_entries) {
        std::uint16_t count = 0;
        uint(count, field);
        check(count >= min_entries, field, " has no entries");
        const auto entry_size = min_entry_size<T>();
        check(std::size_t{count} * entry_size <= remaining(), field, ": ", count,
              " entries cannot fit in the ", remaining(), " bytes left");
        if (!ok()) {
            return;
        }
        v.resize(count);
        for (auto& entry : v) {
            if constexpr (std::is_same_v<T, std::string>) {
                str(entry, field);
            } else {
                fields(*this, entry);
            }
        }
    }
    template <class T, class Read>
    void opt(std::optional<T>& v, bool present, Read read) {
        if (present) {
            read(v.emplace());
        }
    }
    // A hello's layout is that of its own version (IPC-9): the daemon learns the connection's
    // version from it. A hello of a version this code does not know keeps only its version
    // field: the daemon must be able to answer unsupported_version whatever else that version
    // put in the hello.
    std::optional<wire_version> hello_layout(std::uint16_t version) noexcept {
        const auto layout = known_version(version);
        if (!layout) {
            pos_ = bytes_.size();
        }
        return layout;
    }

    [[nodiscard]] malformed error() && { return std::move(*error_); }

private:
    std::string_view raw(std::size_t n, std::string_view field) {
        if (n > remaining()) {
            fail(field, " runs past the end of the frame");
            return {};
        }
        const auto* first = reinterpret_cast<const char*>(bytes_.data() + pos_);
        pos_ += n;
        return {first, n};
    }

    std::span<const std::uint8_t> bytes_;
    std::size_t pos_ = 0;
    std::string_view name_;
    wire_version version_;
    std::optional<malformed> error_;
};

}  // namespace thingmux::ipc::wire
