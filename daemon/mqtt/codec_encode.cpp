// The MQTT encoder (codec.hpp).
#include "daemon/mqtt/codec.hpp"
#include "daemon/mqtt/codec_common.hpp"

#include <algorithm>
#include <string_view>
#include <type_traits>

namespace thingmux::mqtt {

namespace {

using namespace detail;

// ---------------------------------------------------------------------------------------------
// Encoding: one set of write functions, run over a sink that either counts or appends, so
// encoded_size() and the length prefixes are computed without allocating.

struct counting_sink {
    std::size_t size = 0;
    void put(std::uint8_t) noexcept { ++size; }
    void put(std::string_view s) noexcept { size += s.size(); }
};

struct appending_sink {
    std::vector<std::uint8_t>* out;
    void put(std::uint8_t b) { out->push_back(b); }
    void put(std::string_view s) {
        const auto* first = reinterpret_cast<const std::uint8_t*>(s.data());
        out->insert(out->end(), first, first + s.size());
    }
};

template <class Sink>
class writer {
public:
    explicit writer(Sink sink) : sink_(sink) {}

    void u8(std::uint8_t v) { sink_.put(v); }
    void u16(std::uint16_t v) {
        u8(static_cast<std::uint8_t>(v >> 8U));
        u8(static_cast<std::uint8_t>(v));
    }
    void u32(std::uint32_t v) {
        u16(static_cast<std::uint16_t>(v >> 16U));
        u16(static_cast<std::uint16_t>(v));
    }
    void vbi(std::size_t v) {
        do {
            auto b = static_cast<std::uint8_t>(v & 0x7FU);
            v >>= 7U;
            if (v != 0) {
                b |= 0x80U;
            }
            u8(b);
        } while (v != 0);
    }
    // Strings and binary data longer than 65535 bytes are not valid values (see encode()).
    void str(std::string_view s) {
        u16(static_cast<std::uint16_t>(s.size()));
        sink_.put(s);
    }
    void raw(std::string_view s) { sink_.put(s); }
    // Counts `n` bytes already measured (counting only).
    void skip(std::size_t n) noexcept
        requires std::is_same_v<Sink, counting_sink>
    {
        sink_.size += n;
    }

    [[nodiscard]] const Sink& sink() const noexcept { return sink_; }

private:
    Sink sink_;
};

using counter = writer<counting_sink>;

std::size_t vbi_size(std::size_t v) {
    counter c{{}};
    c.vbi(v);
    return c.sink().size;
}

// Most packets carry no properties at all (a PUBLISH is measured twice and written once): one
// test of each field then replaces a pass over the whole property table. Field by field rather
// than `props == properties{}`: that compares every field with the default's, several times per
// PUBLISH. Every entry of property_table is here (MqttCodec.EveryPropertyIsEncoded checks it).
bool no_properties(const properties& p) {
    return !p.payload_format_indicator && !p.message_expiry_interval && !p.content_type && !p.response_topic &&
           !p.correlation_data && p.subscription_identifiers.empty() && !p.session_expiry_interval &&
           !p.assigned_client_identifier && !p.server_keep_alive && !p.authentication_method &&
           !p.authentication_data && !p.request_problem_information && !p.will_delay_interval &&
           !p.request_response_information && !p.response_information && !p.server_reference &&
           !p.reason_string && !p.receive_maximum && !p.topic_alias_maximum && !p.topic_alias && !p.maximum_qos &&
           !p.retain_available && p.user_properties.empty() && !p.maximum_packet_size &&
           !p.wildcard_subscription_available && !p.subscription_identifier_available &&
           !p.shared_subscription_available;
}

template <class W>
void write_property_list(W& w, const properties& props) {
    if (no_properties(props)) {
        return;
    }
    for (const auto& def : property_table) {
        std::visit(
            [&](auto member) {
                const auto& field = props.*member;
                using F = std::remove_cvref_t<decltype(field)>;
                if constexpr (std::is_same_v<F, std::vector<std::uint32_t>>) {
                    for (const auto v : field) {
                        w.u8(def.id);
                        w.vbi(v);
                    }
                } else if constexpr (std::is_same_v<F, std::vector<user_property>>) {
                    for (const auto& [key, value] : field) {
                        w.u8(def.id);
                        w.str(key);
                        w.str(value);
                    }
                } else if (field) {
                    using T = typename F::value_type;
                    w.u8(def.id);
                    if constexpr (std::is_same_v<T, std::string>) {
                        w.str(*field);
                    } else if constexpr (sizeof(T) == 1) {
                        w.u8(*field);
                    } else if constexpr (sizeof(T) == 2) {
                        w.u16(*field);
                    } else {
                        w.u32(*field);
                    }
                }
            },
            def.member);
    }
}

std::size_t property_list_size(const properties& props) {
    counter c{{}};
    write_property_list(c, props);
    return c.sink().size;
}

template <class W>
void write_properties(W& w, const properties& props) {
    const auto size = property_list_size(props);
    w.vbi(size);
    if constexpr (std::is_same_v<W, counter>) {
        w.skip(size);
    } else {
        write_property_list(w, props);
    }
}

// The short forms the decoder accepts, chosen whenever they say the same.
template <class W>
void write_reason_and_properties(W& w, std::uint8_t code, const properties& props) {
    const auto list_size = property_list_size(props);
    if (code == reason::success && list_size == 0) {
        return;
    }
    w.u8(code);
    if (list_size != 0) {
        w.vbi(list_size);
        write_property_list(w, props);
    }
}

template <class W>
void write_body(W& w, const connect& c, bool v5) {
    std::uint8_t flags = c.clean_start ? 0x02 : 0x00;
    if (c.will) {
        flags |=
            static_cast<std::uint8_t>(0x04U | static_cast<unsigned>(c.will->qos) << 3U | (c.will->retain ? 0x20U : 0U));
    }
    if (c.password) {
        flags |= 0x40U;
    }
    if (c.username) {
        flags |= 0x80U;
    }
    w.str("MQTT");
    w.u8(static_cast<std::uint8_t>(c.version));
    w.u8(flags);
    w.u16(c.keep_alive);
    if (v5) {
        write_properties(w, c.props);
    }
    w.str(c.client_id);
    if (c.will) {
        if (v5) {
            write_properties(w, c.will->props);
        }
        w.str(c.will->topic);
        w.str(c.will->payload);
    }
    if (c.username) {
        w.str(*c.username);
    }
    if (c.password) {
        w.str(*c.password);
    }
}

template <class W>
void write_body(W& w, const connack& c, bool v5) {
    w.u8(c.session_present ? 1 : 0);
    w.u8(c.reason_code);
    if (v5) {
        write_properties(w, c.props);
    }
}

template <class W>
void write_body(W& w, const publish& p, bool v5) {
    w.str(p.topic);
    if (p.qos != qos::at_most_once) {
        w.u16(p.packet_id);
    }
    if (v5) {
        write_properties(w, p.props);
    }
    w.raw(p.payload);
}

template <class W, packet_type Type>
void write_body(W& w, const basic_ack<Type>& a, bool v5) {
    w.u16(a.packet_id);
    if (v5) {
        write_reason_and_properties(w, a.reason_code, a.props);
    }
}

template <class W>
void write_body(W& w, const subscribe& s, bool v5) {
    w.u16(s.packet_id);
    if (v5) {
        write_properties(w, s.props);
    }
    for (const auto& sub : s.subscriptions) {
        auto options = static_cast<unsigned>(sub.max_qos);
        if (v5) {
            options |= (sub.no_local ? 0x04U : 0U) | (sub.retain_as_published ? 0x08U : 0U) |
                       static_cast<unsigned>(sub.retain_handling) << 4U;
        }
        w.str(sub.filter);
        w.u8(static_cast<std::uint8_t>(options));
    }
}

template <class W>
void write_body(W& w, const suback& s, bool v5) {
    w.u16(s.packet_id);
    if (v5) {
        write_properties(w, s.props);
    }
    for (const auto code : s.reason_codes) {
        w.u8(code);
    }
}

template <class W>
void write_body(W& w, const unsubscribe& u, bool v5) {
    w.u16(u.packet_id);
    if (v5) {
        write_properties(w, u.props);
    }
    for (const auto& filter : u.filters) {
        w.str(filter);
    }
}

template <class W>
void write_body(W& w, const unsuback& u, bool v5) {
    w.u16(u.packet_id);
    if (v5) {
        write_properties(w, u.props);
        for (const auto code : u.reason_codes) {
            w.u8(code);
        }
    }
}

template <class W>
void write_body(W&, const pingreq&, bool) {}

template <class W>
void write_body(W&, const pingresp&, bool) {}

template <class W, class Packet>
    requires std::is_same_v<Packet, disconnect> || std::is_same_v<Packet, auth>
void write_body(W& w, const Packet& p, bool v5) {
    if (v5) {
        write_reason_and_properties(w, p.reason_code, p.props);
    }
}

template <class Packet>
std::uint8_t first_byte(const Packet& p) {
    constexpr auto type = static_cast<unsigned>(type_for<Packet>()) << 4U;
    if constexpr (std::is_same_v<Packet, publish>) {
        return static_cast<std::uint8_t>(type | (p.dup ? 0x08U : 0U) | static_cast<unsigned>(p.qos) << 1U |
                                         (p.retain ? 0x01U : 0U));
    } else if constexpr (std::is_same_v<Packet, pubrel> || std::is_same_v<Packet, subscribe> ||
                         std::is_same_v<Packet, unsubscribe>) {
        return static_cast<std::uint8_t>(type | 0x02U);
    } else {
        return static_cast<std::uint8_t>(type);
    }
}

// CONNECT carries its own protocol level, in both directions.
template <class Packet>
bool is_v5(const Packet& p, protocol_version version) {
    if constexpr (std::is_same_v<Packet, connect>) {
        return p.version == protocol_version::v5;
    } else {
        return version == protocol_version::v5;
    }
}

template <class Packet>
std::size_t body_size(const Packet& p, bool v5) {
    counter c{{}};
    write_body(c, p, v5);
    return c.sink().size;
}

template <class Packet>
void encode_packet(const Packet& pkt, protocol_version version, std::vector<std::uint8_t>& out) {
    const bool v5 = is_v5(pkt, version);
    const auto length = body_size(pkt, v5);
    const auto total = 1 + vbi_size(length) + length;
    // Grow geometrically: callers append many packets to one buffer.
    if (out.capacity() - out.size() < total) {
        out.reserve(std::max(out.size() + total, 2 * out.capacity()));
    }
    writer w{appending_sink{&out}};
    w.u8(first_byte(pkt));
    w.vbi(length);
    write_body(w, pkt, v5);
}

template <class Packet>
std::size_t packet_size(const Packet& pkt, protocol_version version) {
    const auto length = body_size(pkt, is_v5(pkt, version));
    return 1 + vbi_size(length) + length;
}

}  // namespace

void encode(const packet& p, protocol_version version, std::vector<std::uint8_t>& out) {
    std::visit([&](const auto& pkt) { encode_packet(pkt, version, out); }, p);
}

void encode(const publish& p, protocol_version version, std::vector<std::uint8_t>& out) {
    encode_packet(p, version, out);
}

std::vector<std::uint8_t> encode(const packet& p, protocol_version version) {
    std::vector<std::uint8_t> out;
    encode(p, version, out);
    return out;
}

std::size_t encoded_size(const packet& p, protocol_version version) {
    return std::visit([&](const auto& pkt) { return packet_size(pkt, version); }, p);
}

std::size_t encoded_size(const publish& p, protocol_version version) {
    return packet_size(p, version);
}

}  // namespace thingmux::mqtt
