// libFuzzer target for the MQTT decoder (daemon/mqtt/codec.hpp).
//
// Input: one selector byte, then a byte stream as it would arrive on a connection.
//   selector bit 0:    protocol version (0 = MQTT 3.1.1, 1 = MQTT 5)
//   selector bits 1-2: packet size limit (none, 16, 256, 65536 bytes)
// Besides the sanitizers' findings, the target aborts when a property of the codec breaks:
//   - need_more asks for more than the bytes at hand, and strict prefixes of a packet that
//     decodes are need_more with a bound inside that packet (the limit is checked from the header);
//   - a decoded packet re-encodes to encoded_size() bytes that decode to an equal packet.
// Seeds: tests/fuzz/corpus/mqtt/ (selector byte + valid packets of both versions).
#include "daemon/mqtt/codec.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <variant>

namespace {

using namespace thingmux::mqtt;

void require(bool condition) {
    if (!condition) {
        std::abort();
    }
}

constexpr std::array<std::size_t, 4> limits{max_mqtt_packet_size, 16, 256, 65536};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const auto version = (data[0] & 1U) != 0 ? protocol_version::v5 : protocol_version::v311;
    const auto limit = limits[(data[0] >> 1U) & 3U];
    std::span<const std::uint8_t> rest(data + 1, size - 1);

    for (;;) {
        const auto result = decode(rest, version, limit);
        if (const auto* more = std::get_if<need_more>(&result)) {
            require(more->at_least > rest.size());
            return 0;
        }
        const auto* first = std::get_if<decoded>(&result);
        if (first == nullptr) {
            return 0;  // malformed input is refused, which is all it can expect
        }
        const auto consumed = first->consumed;
        require(consumed >= 2 && consumed <= rest.size() && consumed <= limit);

        for (const std::size_t k : {consumed - 1, consumed / 2}) {
            const auto partial = decode(rest.first(k), version, limit);
            const auto* more = std::get_if<need_more>(&partial);
            require(more != nullptr && more->at_least > k && more->at_least <= consumed);
        }

        const auto wire = encode(first->packet, version);
        require(wire.size() == encoded_size(first->packet, version));
        const auto again = decode(wire, version);
        const auto* second = std::get_if<decoded>(&again);
        require(second != nullptr && second->consumed == wire.size() && second->packet == first->packet);

        rest = rest.subspan(consumed);
    }
}
