// The error categories of daemon/mqtt: decode_error (codec.hpp) and local_error (session.hpp).
#include "daemon/mqtt/codec.hpp"
#include "daemon/mqtt/session.hpp"

#include <string>

namespace thingmux::mqtt {

namespace {

const char* describe(decode_error e) noexcept {
    switch (e) {
    case decode_error::bad_fixed_header: return "the fixed header has reserved flags or an unknown packet type";
    case decode_error::bad_remaining_length: return "the remaining length is longer than 4 bytes or not minimal";
    case decode_error::packet_too_large: return "the packet is larger than the maximum packet size";
    case decode_error::truncated: return "a field runs past the end of the packet";
    case decode_error::trailing_bytes: return "bytes are left in the packet after its last field";
    case decode_error::bad_utf8: return "a string is not well-formed UTF-8 or contains U+0000";
    case decode_error::bad_topic: return "a topic name or filter is not valid";
    case decode_error::bad_property:
        return "a property is unknown, repeated, not allowed in the packet or has a bad value";
    case decode_error::protocol_violation: return "the packet breaks the MQTT protocol";
    }
    return "unknown MQTT decoding error";
}

class decode_error_category final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "mqtt.decode"; }
    [[nodiscard]] std::string message(int value) const override {
        return describe(static_cast<decode_error>(value));
    }
};

class session_error_category final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "mqtt.session"; }
    [[nodiscard]] std::string message(int value) const override {
        return to_string(static_cast<local_error>(value));
    }
};

}  // namespace

const std::error_category& decode_category() noexcept {
    static const decode_error_category category;
    return category;
}

std::error_code make_error_code(decode_error e) noexcept {
    return {static_cast<int>(e), decode_category()};
}

const char* to_string(local_error e) noexcept {
    switch (e) {
    case local_error::none: return "no error";
    case local_error::not_connected: return "not connected to the broker";
    case local_error::packet_too_large: return "packet larger than the broker's Maximum Packet Size";
    case local_error::qos_not_supported: return "QoS not supported by the broker";
    case local_error::invalid_topic: return "invalid topic";
    case local_error::session_closed: return "session closed";
    case local_error::retain_not_supported: return "retain not supported by the broker";
    case local_error::refused_by_broker: return "the broker closed the connection each time this message was sent";
    }
    return "unknown error";
}

const std::error_category& session_category() noexcept {
    static const session_error_category category;
    return category;
}

std::error_code make_error_code(local_error e) noexcept {
    return {static_cast<int>(e), session_category()};
}

}  // namespace thingmux::mqtt
