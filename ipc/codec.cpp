#include "ipc/codec.hpp"

#include "common/utf8.hpp"

#include <algorithm>
#include <array>
#include <concepts>
#include <type_traits>
#include <utility>

namespace thingmux::ipc {

namespace {

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

std::string hex(std::uint8_t v) {
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
};

template <class M, class... T>
constexpr bool is = (std::is_same_v<std::remove_const_t<M>, T> || ...);

// The wire layout of every message and nested struct, written once and run by the reader (M
// mutable) and by the writers (M const): decoder, encoder, size and validity cannot disagree.
template <class IO, class M>
void fields(IO& io, M& m);

std::uint8_t presence_mask(const message_properties& p) noexcept {
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
    writer(Sink& sink, std::string_view message_name) noexcept : sink_(sink), name_(message_name) {}

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
    // A writer writes every field it is given; see reader::interpret_rest().
    bool interpret_rest(bool /*known_layout*/) noexcept { return true; }

private:
    Sink& sink_;
    std::string_view name_;
};

// Smallest wire size of a list entry: bounds a decoded count by the bytes left before the list
// is allocated (IPC-7).
template <class T>
std::size_t min_entry_size() {
    counting_sink sink;
    writer w{sink, ""};
    const T empty{};
    if constexpr (std::is_same_v<T, std::string>) {
        w.str(empty, "");
    } else {
        fields(w, empty);
    }
    return static_cast<std::size_t>(sink.size);
}

template <class M>
std::uint64_t body_size(const M& m) {
    counting_sink sink;
    writer w{sink, ""};
    fields(w, m);
    return sink.size;
}

template <class M>
void append_frame(std::vector<std::uint8_t>& out, message_type type, const M& m) {
    const auto body = body_size(m);
    const auto total = static_cast<std::size_t>(length_prefix_size + 1 + body);
    // Grow geometrically: callers append many frames to one buffer.
    if (out.capacity() - out.size() < total) {
        out.reserve(std::max(out.size() + total, 2 * out.capacity()));
    }
    appending_sink sink{&out};
    writer w{sink, ""};
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
    reader(std::span<const std::uint8_t> body, std::string_view message_name) noexcept
        : bytes_(body), name_(message_name) {}

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
    // A hello of another protocol version keeps only its version field: the daemon must be
    // able to answer unsupported_version whatever else that version put in the hello (IPC-9).
    bool interpret_rest(bool known_layout) noexcept {
        if (!known_layout) {
            pos_ = bytes_.size();
        }
        return known_layout;
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
    std::optional<malformed> error_;
};

// ---------------------------------------------------------------------------------------------
// The schema (docs/ipc-protocol.md, IPC-11 .. IPC-24)

template <class IO, class M>
void fields(IO& io, M& m) {
    if constexpr (is<M, hello>) {
        io.uint(m.version, "version");
        if (io.interpret_rest(m.version == protocol_version)) {
            io.str(m.app_name, "app name");
            io.str(m.thing, "thing");
        }
    } else if constexpr (is<M, publish, message, message_view>) {
        if constexpr (is<M, publish>) {
            io.uint(m.request_id, "request id");
        }
        io.str(m.topic, "topic");
        io.blob(m.payload, "payload");
        io.qos(m.qos, "qos");
        io.boolean(m.retain, "retain");
        fields(io, m.props);
    } else if constexpr (is<M, message_properties>) {
        std::uint8_t mask = presence_mask(m);  // the reader overwrites it with the wire value
        io.uint(mask, "property presence mask");
        io.check((mask & ~known_property_bits) == 0, "property presence mask ", mask, " has reserved bits set");
        io.opt(m.payload_format_indicator, (mask & has_payload_format_indicator) != 0, [&io](auto& v) {
            io.uint(v, "payload format indicator");
            io.check(v <= 1, "payload format indicator is ", v, ", not 0 or 1");
        });
        io.opt(m.message_expiry_interval, (mask & has_message_expiry_interval) != 0,
               [&io](auto& v) { io.uint(v, "message expiry interval"); });
        io.opt(m.content_type, (mask & has_content_type) != 0, [&io](auto& v) { io.str(v, "content type"); });
        io.opt(m.response_topic, (mask & has_response_topic) != 0, [&io](auto& v) { io.str(v, "response topic"); });
        io.opt(m.correlation_data, (mask & has_correlation_data) != 0,
               [&io](auto& v) { io.blob(v, "correlation data"); });
        io.list(m.user_properties, "user properties", 0);
    } else if constexpr (is<M, user_property>) {
        io.str(m.key, "user property key");
        io.str(m.value, "user property value");
    } else if constexpr (is<M, subscribe>) {
        io.uint(m.request_id, "request id");
        io.list(m.subscriptions, "subscriptions", 1);
    } else if constexpr (is<M, subscription>) {
        io.str(m.filter, "filter");
        io.qos(m.max_qos, "max qos");
    } else if constexpr (is<M, unsubscribe>) {
        io.uint(m.request_id, "request id");
        io.list(m.filters, "filters", 1);
    } else if constexpr (is<M, ping, pong>) {
        io.uint(m.token, "token");
    } else if constexpr (is<M, welcome>) {
        io.uint(m.version, "version");
        io.str(m.daemon_version, "daemon version");
        io.str(m.thing, "thing");
        io.str(m.connection_id, "connection id");
        fields(io, m.limits);
        io.enumeration(m.link, "link state");
    } else if constexpr (is<M, limits>) {
        io.uint(m.max_frame, "max frame");
        io.uint(m.max_payload, "max payload");
        io.uint(m.max_topic_length, "max topic length");
        io.uint(m.max_subscriptions, "max subscriptions");
        io.uint(m.max_queue_bytes, "max queue bytes");
        io.uint(m.max_inflight, "max inflight");
    } else if constexpr (is<M, publish_result>) {
        io.uint(m.request_id, "request id");
        fields(io, m.outcome);
    } else if constexpr (is<M, subscribe_result, unsubscribe_result>) {
        io.uint(m.request_id, "request id");
        io.list(m.results, "results", 1);
    } else if constexpr (is<M, result>) {
        io.enumeration(m.code, "result code");
        io.uint(m.mqtt_reason_code, "mqtt reason code");
        io.str(m.message, "result message");
    } else if constexpr (is<M, state>) {
        io.enumeration(m.link, "link state");
        io.str(m.reason, "reason");
        io.boolean(m.fatal, "fatal");
        io.uint(m.retry_in_ms, "retry in ms");
    } else if constexpr (is<M, error>) {
        io.enumeration(m.code, "error code");
        io.str(m.message, "error message");
    } else {
        static_assert(sizeof(M) == 0, "no wire layout for this type");
    }
}

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

template <class Variant>
bool is_type_of(std::uint8_t type) noexcept {
    constexpr auto first = direction<Variant>::first_type;
    return type >= first && type - first < static_cast<int>(std::variant_size_v<Variant>);
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
                                                                  std::size_t max_frame) {
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
    if (total > max_frame) {
        return malformed{errc::frame_too_large,
                         cat("frame of ", total, " bytes exceeds the limit of ", max_frame, " bytes")};
    }
    if (bytes.size() < frame_header_size) {
        return need_more{frame_header_size};
    }
    // The type byte is refused before the body arrives: no point waiting for a frame that will
    // be rejected anyway.
    const auto type = bytes[length_prefix_size];
    if (!is_type_of<Variant>(type)) {
        if (is_type_of<other>(type)) {
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
    reader r{bytes.subspan(frame_header_size, size - frame_header_size),
             to_string(static_cast<message_type>(type))};
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
void encode_variant(const Variant& m, std::vector<std::uint8_t>& out) {
    std::visit([&](const auto& alternative) { append_frame(out, type_for(m), alternative); }, m);
}

template <class Variant>
std::size_t encoded_size_of(const Variant& m) {
    return std::visit(
        [](const auto& alternative) {
            return static_cast<std::size_t>(length_prefix_size + 1 + body_size(alternative));
        },
        m);
}

template <class Variant>
std::optional<std::string> problem_of(const Variant& m) {
    validating_sink sink;
    const std::string_view name = to_string(type_for(m));
    std::visit(
        [&](const auto& alternative) {
            writer w{sink, name};
            fields(w, alternative);
            w.check(1 + sink.size <= max_frame_length, "frame is longer than a 32-bit length can say");
        },
        m);
    return std::move(sink.problem);
}

}  // namespace

client_decode_result decode_client_message(std::span<const std::uint8_t> bytes, std::size_t max_frame) {
    return decode_frame<client_message>(bytes, max_frame);
}

daemon_decode_result decode_daemon_message(std::span<const std::uint8_t> bytes, std::size_t max_frame) {
    return decode_frame<daemon_message>(bytes, max_frame);
}

void encode(const client_message& m, std::vector<std::uint8_t>& out) {
    encode_variant(m, out);
}

void encode(const daemon_message& m, std::vector<std::uint8_t>& out) {
    encode_variant(m, out);
}

std::vector<std::uint8_t> encode(const client_message& m) {
    std::vector<std::uint8_t> out;
    encode(m, out);
    return out;
}

std::vector<std::uint8_t> encode(const daemon_message& m) {
    std::vector<std::uint8_t> out;
    encode(m, out);
    return out;
}

std::size_t encoded_size(const client_message& m) {
    return encoded_size_of(m);
}

std::size_t encoded_size(const daemon_message& m) {
    return encoded_size_of(m);
}

std::optional<std::string> encode_problem(const client_message& m) {
    return problem_of(m);
}

std::optional<std::string> encode_problem(const daemon_message& m) {
    return problem_of(m);
}

void encode_message_frame(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                          const message_properties& props, std::vector<std::uint8_t>& out) {
    append_frame(out, message_type::message, message_view{topic, payload, qos, retain, props});
}

std::size_t message_frame_size(std::string_view topic, std::string_view payload, const message_properties& props) {
    return static_cast<std::size_t>(length_prefix_size + 1 + body_size(message_view{topic, payload, 0, false, props}));
}

}  // namespace thingmux::ipc
