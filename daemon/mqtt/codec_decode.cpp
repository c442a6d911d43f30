// The MQTT decoder: fixed header, then one reader per packet type over a bounds-checked view of
// the packet (codec.hpp).
#include "daemon/mqtt/codec.hpp"
#include "daemon/mqtt/codec_common.hpp"
#include "daemon/mqtt/topic.hpp"

#include <optional>
#include <string_view>
#include <utility>

namespace thingmux::mqtt {

namespace {

using namespace detail;

template <class... F>
struct overloaded : F... {
    using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;  // clang 14 lacks aggregate deduction

// ---------------------------------------------------------------------------------------------
// Error text

std::string hex(std::uint32_t v) {
    constexpr std::string_view digits = "0123456789ABCDEF";
    std::string out;
    do {
        out.insert(out.begin(), digits[v & 0xFU]);
        v >>= 4U;
    } while (v != 0);
    if (out.size() % 2 != 0) {
        out.insert(out.begin(), '0');
    }
    return "0x" + out;
}

template <class... Parts>
std::string cat(const Parts&... parts) {
    std::string out;
    (out.append(std::string_view(parts)), ...);
    return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

// Bounds-checked reads from one packet's variable header and payload. The first failure is kept
// and later reads return zeros with remaining() at 0, so a decoder can read a whole packet in
// straight-line code and look at the outcome once.
class reader {
public:
    reader(std::span<const std::uint8_t> bytes, const char* packet_name) noexcept
        : bytes_(bytes), end_(bytes.size()), packet_(packet_name) {}

    [[nodiscard]] bool ok() const noexcept { return !error_.has_value(); }
    [[nodiscard]] std::size_t remaining() const noexcept { return ok() ? end_ - pos_ : 0; }

    // The reason is assembled from `what` only on failure: reads that succeed cost no allocation.
    template <class... Parts>
    void fail(decode_error code, const Parts&... what) {
        if (ok()) {
            error_ = malformed{code, cat(packet_, ": ", what...)};
        }
    }
    // As fail(), for a failure that ends the connection with its own MQTT 5 reason code.
    template <class... Parts>
    void fail_as(std::uint8_t disconnect_reason, decode_error code, const Parts&... what) {
        if (ok()) {
            fail(code, what...);
            error_->disconnect_reason = disconnect_reason;
        }
    }
    // Fails unless `condition` holds; true when it held and nothing failed before.
    template <class... Parts>
    bool check(bool condition, decode_error code, const Parts&... what) {
        if (!condition) {
            fail(code, what...);
        }
        return condition && ok();
    }

    std::uint8_t u8(std::string_view field) { return static_cast<std::uint8_t>(big_endian(1, field)); }
    std::uint16_t u16(std::string_view field) { return static_cast<std::uint16_t>(big_endian(2, field)); }
    std::uint32_t u32(std::string_view field) { return big_endian(4, field); }

    // Variable byte integers inside a packet only occur in property blocks, hence bad_property.
    std::uint32_t vbi(std::string_view field) {
        std::uint32_t value = 0;
        for (unsigned i = 0; i < 4; ++i) {
            const auto b = u8(field);
            value |= static_cast<std::uint32_t>(b & 0x7FU) << (7 * i);
            if ((b & 0x80U) == 0) {
                check(i == 0 || b != 0, decode_error::bad_property, field, " is not minimally encoded");
                return value;
            }
        }
        fail(decode_error::bad_property, field, " is longer than 4 bytes");
        return 0;
    }

    std::string_view raw(std::size_t n, std::string_view field) {
        if (!check(n <= remaining(), decode_error::truncated, field, " runs past the end of the ",
                   narrowed_ ? "properties" : "packet")) {
            return {};
        }
        const auto* first = reinterpret_cast<const char*>(bytes_.data() + pos_);
        pos_ += n;
        return {first, n};
    }
    std::string binary(std::string_view field) { return std::string(raw(u16(field), field)); }
    std::string utf8(std::string_view field) {
        auto s = binary(field);
        check(!ok() || valid_utf8(s), decode_error::bad_utf8, field, " is not well-formed UTF-8 or contains U+0000");
        return s;
    }
    std::string rest(std::string_view field) { return std::string(raw(remaining(), field)); }

    // Confines reads to the next `n` bytes, which a property block must hold exactly; widen()
    // with the returned value lifts the limit.
    [[nodiscard]] std::size_t narrow(std::size_t n) noexcept {
        const auto outer = end_;
        end_ = pos_ + n;
        narrowed_ = true;
        return outer;
    }
    void widen(std::size_t outer) noexcept {
        end_ = outer;
        narrowed_ = false;
    }

    [[nodiscard]] malformed error() && { return std::move(*error_); }

private:
    std::uint32_t big_endian(std::size_t n, std::string_view field) {
        std::uint32_t value = 0;
        for (const char c : raw(n, field)) {
            value = (value << 8U) | static_cast<std::uint8_t>(c);
        }
        return value;
    }

    std::span<const std::uint8_t> bytes_;
    std::size_t pos_ = 0;
    std::size_t end_;
    bool narrowed_ = false;
    const char* packet_;
    std::optional<malformed> error_;
};

void read_property(reader& r, const property_def& def, properties& props) {
    const std::string_view name = def.name;
    const auto check_value = [&](std::uint32_t v) {
        if (def.check == rule::boolean && v > 1) {
            r.fail(decode_error::bad_property, name, " is ", std::to_string(v), ", not 0 or 1");
        } else if (def.check == rule::nonzero) {
            r.check(v != 0, decode_error::bad_property, name, " is 0");
        }
    };
    std::visit(
        overloaded{
            [&](std::optional<std::uint8_t> properties::*m) { check_value(*(props.*m = r.u8(name))); },
            [&](std::optional<std::uint16_t> properties::*m) { check_value(*(props.*m = r.u16(name))); },
            [&](std::optional<std::uint32_t> properties::*m) { check_value(*(props.*m = r.u32(name))); },
            [&](std::vector<std::uint32_t> properties::*m) { check_value((props.*m).emplace_back(r.vbi(name))); },
            [&](std::optional<std::string> properties::*m) {
                const auto& s = props.*m = def.check == rule::binary ? r.binary(name) : r.utf8(name);
                if (def.check == rule::topic_name && r.ok()) {
                    if (const char* problem = topic_name_problem(*s)) {
                        r.fail(decode_error::bad_property, name, " ", problem);
                    }
                }
            },
            [&](std::vector<user_property> properties::*m) {
                auto key = r.utf8("User Property name");
                auto value = r.utf8("User Property value");
                (props.*m).push_back({std::move(key), std::move(value)});
            },
        },
        def.member);
}

// Reads a property block (length + properties) for the packet or will whose bit is `where`.
properties read_properties(reader& r, std::uint32_t where) {
    const bool will = where == will_bit;
    properties props;
    const auto length = r.vbi(will ? "will property length" : "property length");
    if (!r.check(length <= r.remaining(), decode_error::truncated, will ? "will properties" : "properties",
                 " run past the end of the packet")) {
        return props;
    }
    const auto outer = r.narrow(length);
    std::uint64_t seen = 0;
    while (r.remaining() > 0) {
        const auto id = r.u8("property identifier");
        const auto* def = find_property(id);
        if (def == nullptr) {
            r.fail(decode_error::bad_property, "unknown property identifier ", hex(id),
                   will ? " in will properties" : "");
            break;
        }
        if ((def->allowed & where) == 0) {
            r.fail(decode_error::bad_property, "property ", def->name, " (", hex(id), ") is not allowed in ",
                   will ? "will properties" : "this packet");
            break;
        }
        const auto id_bit = std::uint64_t{1} << id;
        if ((seen & id_bit) != 0 && (def->repeatable & where) == 0) {
            r.fail(decode_error::bad_property, "property ", def->name, " (", hex(id), ") appears more than once");
            break;
        }
        seen |= id_bit;
        read_property(r, *def, props);
    }
    r.widen(outer);
    r.check(!props.authentication_data || props.authentication_method, decode_error::bad_property,
            "Authentication Data without Authentication Method");
    return props;
}

std::uint16_t read_packet_id(reader& r) {
    const auto id = r.u16("packet identifier");
    r.check(id != 0, decode_error::protocol_violation, "packet identifier is 0");
    return id;
}

void check_reason_code(reader& r, packet_type t, std::uint8_t code) {
    if (!reason_code_allowed(t, code)) {
        r.fail(decode_error::protocol_violation, "reason code ", hex(code), " is not allowed in this packet");
    }
}

// MQTT 5 acks, DISCONNECT and AUTH may end early: no reason code means success, no property
// length means no properties.
void read_reason_and_properties(reader& r, packet_type t, std::uint8_t& code, properties& props) {
    if (r.remaining() == 0) {
        return;
    }
    code = r.u8("reason code");
    check_reason_code(r, t, code);
    if (r.remaining() != 0) {
        props = read_properties(r, bit(t));
    }
}

void check_topic_filter(reader& r, std::string_view filter) {
    if (!r.ok()) return;
    const auto problem = topic::subscription_problem(filter);
    if (!problem) return;
    // A shared subscription's form (spec 4.8.2, [MQTT-4.8.2-1], [MQTT-4.8.2-2]) is a rule of the
    // protocol on a well-formed string: breaking it is a Protocol Error, not a Malformed Packet.
    using topic::errc;
    const bool share_form = problem == errc::empty_share_name || problem == errc::wildcard_in_share_name ||
                            problem == errc::share_without_filter;
    r.fail_as(share_form ? reason::protocol_error : reason::malformed_packet, decode_error::bad_topic, "topic filter ",
              topic_filter_problem(filter));
}

connect read_connect(reader& r) {
    connect c;
    const auto protocol = r.utf8("protocol name");
    const auto level = r.u8("protocol level");
    if (!r.check(protocol == "MQTT", decode_error::protocol_violation, "protocol name is not \"MQTT\"") ||
        !r.check(level == 4 || level == 5, decode_error::protocol_violation, "unsupported protocol level ",
                 std::to_string(level))) {
        return c;
    }
    c.version = static_cast<protocol_version>(level);
    const bool v5 = c.version == protocol_version::v5;
    const auto flags = r.u8("connect flags");
    c.keep_alive = r.u16("keep alive");
    c.clean_start = (flags & 0x02U) != 0;
    const bool will = (flags & 0x04U) != 0;
    const auto will_qos = static_cast<std::uint8_t>((flags >> 3U) & 3U);
    const bool will_retain = (flags & 0x20U) != 0;
    const bool has_password = (flags & 0x40U) != 0;
    const bool has_user_name = (flags & 0x80U) != 0;
    r.check((flags & 0x01U) == 0, decode_error::protocol_violation, "reserved connect flag is set");
    r.check(will || (will_qos == 0 && !will_retain), decode_error::protocol_violation,
            "will QoS or will retain is set without the will flag");
    r.check(will_qos != 3, decode_error::protocol_violation, "will QoS is 3");
    r.check(v5 || has_user_name || !has_password, decode_error::protocol_violation,
            "password flag is set without the user name flag");
    if (v5) {
        c.props = read_properties(r, bit(packet_type::connect));
    }
    c.client_id = r.utf8("client identifier");
    if (will) {
        auto& w = c.will.emplace();
        w.qos = static_cast<qos>(will_qos);
        w.retain = will_retain;
        if (v5) {
            w.props = read_properties(r, will_bit);
        }
        w.topic = r.utf8("will topic");
        if (const char* problem = r.ok() ? topic_name_problem(w.topic) : nullptr) {
            r.fail(decode_error::bad_topic, "will topic ", problem);
        }
        w.payload = r.binary("will payload");
    }
    if (has_user_name) {
        c.username = r.utf8("user name");
    }
    if (has_password) {
        c.password = r.binary("password");
    }
    return c;
}

connack read_connack(reader& r, bool v5) {
    connack c;
    const auto flags = r.u8("acknowledge flags");
    c.reason_code = r.u8(v5 ? "reason code" : "return code");
    c.session_present = (flags & 0x01U) != 0;
    r.check((flags & 0xFEU) == 0, decode_error::protocol_violation, "reserved acknowledge flags are set");
    if (v5) {
        check_reason_code(r, packet_type::connack, c.reason_code);
    } else if (c.reason_code > 5) {
        r.fail(decode_error::protocol_violation, "reserved return code ", hex(c.reason_code));
    }
    r.check(!c.session_present || c.reason_code == 0, decode_error::protocol_violation,
            "session present is set on a refused connection");
    if (v5) {
        c.props = read_properties(r, bit(packet_type::connack));
    }
    return c;
}

publish read_publish(reader& r, std::uint8_t flags, bool v5) {
    publish p;
    p.retain = (flags & 0x01U) != 0;
    p.qos = static_cast<qos>((flags >> 1U) & 3U);  // 3 was refused with the fixed header
    p.dup = (flags & 0x08U) != 0;
    p.topic = r.utf8("topic name");
    if (p.qos != qos::at_most_once) {
        p.packet_id = read_packet_id(r);
    }
    if (v5) {
        p.props = read_properties(r, bit(packet_type::publish));
        if (p.props.topic_alias == 0) {
            r.fail_as(reason::topic_alias_invalid, decode_error::bad_property, "Topic Alias is 0");
        }
    }
    if (r.ok() && p.topic.empty() && v5) {
        r.check(p.props.topic_alias.has_value(), decode_error::bad_topic,
                "topic name is empty and there is no Topic Alias");
    } else if (const char* problem = r.ok() ? topic_name_problem(p.topic) : nullptr) {
        r.fail(decode_error::bad_topic, "topic name ", problem);
    }
    p.payload = r.rest("payload");
    return p;
}

template <class Ack>
Ack read_ack(reader& r, bool v5) {
    Ack a;
    a.packet_id = read_packet_id(r);
    if (v5) {
        read_reason_and_properties(r, Ack::type, a.reason_code, a.props);
    }
    return a;
}

subscribe read_subscribe(reader& r, bool v5) {
    subscribe s;
    s.packet_id = read_packet_id(r);
    if (v5) {
        s.props = read_properties(r, bit(packet_type::subscribe));
    }
    while (r.remaining() > 0) {
        auto& sub = s.subscriptions.emplace_back();
        sub.filter = r.utf8("topic filter");
        const auto options = r.u8("subscription options");
        check_topic_filter(r, sub.filter);
        r.check((options & (v5 ? 0xC0U : 0xFCU)) == 0, decode_error::protocol_violation,
                "reserved subscription option bits are set");
        r.check((options & 3U) != 3, decode_error::protocol_violation, "subscription requests QoS 3");
        sub.max_qos = static_cast<qos>(options & 3U);
        if (v5) {
            sub.no_local = (options & 0x04U) != 0;
            sub.retain_as_published = (options & 0x08U) != 0;
            sub.retain_handling = static_cast<std::uint8_t>((options >> 4U) & 3U);
            r.check(sub.retain_handling != 3, decode_error::protocol_violation, "retain handling is 3");
            if (sub.no_local && topic::is_shared(sub.filter))  // spec 3.8.3.1, [MQTT-3.8.3-4]
                r.fail_as(reason::protocol_error, decode_error::protocol_violation,
                          "no local is set on a shared subscription");
        }
    }
    r.check(!s.subscriptions.empty(), decode_error::protocol_violation, "no topic filters");
    return s;
}

suback read_suback(reader& r, bool v5) {
    suback s;
    s.packet_id = read_packet_id(r);
    if (v5) {
        s.props = read_properties(r, bit(packet_type::suback));
    }
    while (r.remaining() > 0) {
        const auto code = s.reason_codes.emplace_back(r.u8("reason code"));
        if (v5) {
            check_reason_code(r, packet_type::suback, code);
        } else {
            if (code > 2 && code != reason::suback_failure_v311) {
                r.fail(decode_error::protocol_violation, "reserved return code ", hex(code));
            }
        }
    }
    r.check(!s.reason_codes.empty(), decode_error::protocol_violation, "no return codes");
    return s;
}

unsubscribe read_unsubscribe(reader& r, bool v5) {
    unsubscribe u;
    u.packet_id = read_packet_id(r);
    if (v5) {
        u.props = read_properties(r, bit(packet_type::unsubscribe));
    }
    while (r.remaining() > 0) {
        check_topic_filter(r, u.filters.emplace_back(r.utf8("topic filter")));
    }
    r.check(!u.filters.empty(), decode_error::protocol_violation, "no topic filters");
    return u;
}

unsuback read_unsuback(reader& r, bool v5) {
    unsuback u;
    u.packet_id = read_packet_id(r);
    if (!v5) {
        return u;  // MQTT 3.1.1 UNSUBACK has no payload
    }
    u.props = read_properties(r, bit(packet_type::unsuback));
    while (r.remaining() > 0) {
        check_reason_code(r, packet_type::unsuback, u.reason_codes.emplace_back(r.u8("reason code")));
    }
    r.check(!u.reason_codes.empty(), decode_error::protocol_violation, "no reason codes");
    return u;
}

template <class Packet>
Packet read_reason_only(reader& r, bool v5) {
    Packet p;
    if (v5) {
        read_reason_and_properties(r, type_for<Packet>(), p.reason_code, p.props);
    }
    return p;
}

packet read_body(reader& r, packet_type type, std::uint8_t flags, bool v5) {
    switch (type) {
        case packet_type::connect: return read_connect(r);
        case packet_type::connack: return read_connack(r, v5);
        case packet_type::publish: return read_publish(r, flags, v5);
        case packet_type::puback: return read_ack<puback>(r, v5);
        case packet_type::pubrec: return read_ack<pubrec>(r, v5);
        case packet_type::pubrel: return read_ack<pubrel>(r, v5);
        case packet_type::pubcomp: return read_ack<pubcomp>(r, v5);
        case packet_type::subscribe: return read_subscribe(r, v5);
        case packet_type::suback: return read_suback(r, v5);
        case packet_type::unsubscribe: return read_unsubscribe(r, v5);
        case packet_type::unsuback: return read_unsuback(r, v5);
        case packet_type::pingreq: return pingreq{};
        case packet_type::pingresp: return pingresp{};
        case packet_type::disconnect: return read_reason_only<disconnect>(r, v5);
        case packet_type::auth: return read_reason_only<auth>(r, v5);
    }
    return pingreq{};  // unreachable: check_fixed_header() refused type 0
}

// The first byte alone can already be refused, before any length is known.
std::optional<malformed> check_fixed_header(std::uint8_t first, protocol_version version) {
    const auto type = static_cast<packet_type>(first >> 4U);
    const auto flags = static_cast<std::uint8_t>(first & 0x0FU);
    if (first >> 4U == 0) {
        return malformed{decode_error::bad_fixed_header, "reserved packet type 0"};
    }
    if (type == packet_type::auth && version != protocol_version::v5) {
        return malformed{decode_error::bad_fixed_header, "AUTH: packet type 15 is reserved in MQTT 3.1.1"};
    }
    const std::string_view name = to_string(type);
    if (type == packet_type::publish) {
        const auto q = (flags >> 1U) & 3U;
        if (q == 3) {
            return malformed{decode_error::protocol_violation, cat(name, ": QoS 3 in the fixed header")};
        }
        if (q == 0 && (flags & 0x08U) != 0) {
            return malformed{decode_error::protocol_violation, cat(name, ": DUP is set on a QoS 0 message")};
        }
        return std::nullopt;
    }
    const bool needs_0010 =
        type == packet_type::pubrel || type == packet_type::subscribe || type == packet_type::unsubscribe;
    const std::uint8_t expected = needs_0010 ? 0x02 : 0x00;
    if (flags != expected) {
        return malformed{decode_error::bad_fixed_header,
                         cat(name, ": fixed header flags are ", hex(flags), ", must be ", hex(expected))};
    }
    return std::nullopt;
}

}  // namespace

decode_result decode(std::span<const std::uint8_t> bytes, protocol_version version, std::size_t max_packet_size) {
    if (bytes.empty()) {
        return need_more{1};
    }
    if (auto bad = check_fixed_header(bytes[0], version)) {
        return std::move(*bad);
    }
    const auto type = static_cast<packet_type>(bytes[0] >> 4U);
    const std::string_view name = to_string(type);

    std::size_t length = 0;
    std::size_t header = 1;  // bytes of fixed header seen so far
    for (;;) {
        if (header == bytes.size()) {
            return need_more{header + 1};
        }
        const auto b = bytes[header];
        length |= static_cast<std::size_t>(b & 0x7FU) << (7 * (header - 1));
        ++header;
        if ((b & 0x80U) == 0) {
            if (header > 2 && b == 0) {
                return malformed{decode_error::bad_remaining_length,
                                 cat(name, ": remaining length is not minimally encoded")};
            }
            break;
        }
        if (header == 5) {
            return malformed{decode_error::bad_remaining_length,
                             cat(name, ": remaining length is longer than 4 bytes")};
        }
    }
    const auto total = header + length;
    if (total > max_packet_size) {
        return malformed{decode_error::packet_too_large,
                         cat(name, ": packet of ", std::to_string(total), " bytes exceeds the limit of ",
                             std::to_string(max_packet_size), " bytes"),
                         reason::packet_too_large};
    }
    if (bytes.size() < total) {
        return need_more{total};
    }

    reader r{bytes.subspan(header, length), to_string(type)};
    auto p = read_body(r, type, static_cast<std::uint8_t>(bytes[0] & 0x0FU), version == protocol_version::v5);
    if (r.remaining() != 0) {
        const auto left = r.remaining();
        r.fail(decode_error::trailing_bytes, std::to_string(left), left == 1 ? " byte" : " bytes",
               " left after the last field");
    }
    if (!r.ok()) {
        return std::move(r).error();
    }
    return decoded{std::move(p), total};
}

}  // namespace thingmux::mqtt
