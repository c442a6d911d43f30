// libFuzzer target for the IPC decoders (ipc/codec.hpp, docs/ipc-protocol.md).
//
// Input: one selector byte, then a byte stream as it would arrive on a connection.
//   selector bit 0:    direction (0 = frames a client sent, decoded by the daemon;
//                      1 = frames the daemon sent, decoded by a client)
//   selector bits 1-2: frame size limit (default 266240, 16, 256, 65536 bytes)
//   selector bit 3:    protocol version of the connection (0 = version 1, 1 = version 2); a hello
//                      is decoded by its own version field whatever this says (IPC-9)
// Besides the sanitizers' findings, the target aborts when a property of the codec breaks:
//   - need_more asks for more than the bytes at hand, and strict prefixes of a frame that decodes
//     are need_more with a bound inside that frame (the limit is checked from the header);
//   - a decoded message has no encode_problem(), re-encodes to encoded_size() bytes that are the
//     very bytes it came from (the encoding is canonical; a hello of a version whose layout the
//     codec does not know keeps only its version, IPC-9), and those decode to an equal message
//     (round trip), all with the connection's version;
//   - no frame is larger than the limit but an admin_result, up to max_admin_result_frame (IPC-51).
// Seeds: tests/fuzz/corpus/ipc/ (selector byte + valid frames of both directions).
#include "ipc/codec.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <type_traits>
#include <variant>

namespace {

using namespace thingmux::ipc;

void require(bool condition) {
    if (!condition) {
        std::abort();
    }
}

constexpr std::array<std::size_t, 4> frame_limits{default_max_frame, 16, 256, 65536};

bool canonical(const client_message& m) {
    const auto* h = std::get_if<hello>(&m);
    return h == nullptr || known_version(h->version).has_value();
}
bool canonical(const daemon_message&) {
    return true;
}

template <class Variant, class Decode>
void run(std::span<const std::uint8_t> rest, std::size_t limit, wire_version version, Decode decode) {
    for (;;) {
        const auto result = decode(rest, limit, version);
        if (const auto* more = std::get_if<need_more>(&result)) {
            require(more->at_least > rest.size());
            return;
        }
        const auto* first = std::get_if<decoded<Variant>>(&result);
        if (first == nullptr) {
            return;  // malformed input is refused, which is all it can expect
        }
        const auto consumed = first->consumed;
        // Only an admin_result may exceed the limit, up to its own (IPC-51).
        bool exempt = false;
        if constexpr (std::is_same_v<Variant, daemon_message>) exempt = std::holds_alternative<admin_result>(first->message);
        require(consumed >= frame_header_size && consumed <= rest.size() &&
                consumed <= (exempt ? std::max(limit, max_admin_result_frame) : limit));

        for (const std::size_t k : {consumed - 1, consumed / 2, std::size_t{4}}) {
            const auto partial = decode(rest.first(k), limit, version);
            const auto* more = std::get_if<need_more>(&partial);
            require(more != nullptr && more->at_least > k && more->at_least <= consumed);
        }

        require(!encode_problem(first->message, version).has_value());
        const auto wire = encode(first->message, version);
        require(wire.size() == encoded_size(first->message, version));
        if (canonical(first->message)) {
            require(std::ranges::equal(wire, rest.first(consumed)));
        }
        const auto again = decode(wire, wire.size(), version);
        const auto* second = std::get_if<decoded<Variant>>(&again);
        require(second != nullptr && second->consumed == wire.size() && second->message == first->message);

        rest = rest.subspan(consumed);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const auto limit = frame_limits[(data[0] >> 1U) & 3U];
    const auto version = (data[0] & 8U) != 0 ? wire_version::v2 : wire_version::v1;
    const std::span<const std::uint8_t> rest(data + 1, size - 1);
    if ((data[0] & 1U) == 0) {
        run<client_message>(rest, limit, version, [](auto bytes, std::size_t max, wire_version v) {
            return decode_client_message(bytes, max, v);
        });
    } else {
        run<daemon_message>(rest, limit, version, [](auto bytes, std::size_t max, wire_version v) {
            return decode_daemon_message(bytes, max, v);
        });
    }
    return 0;
}
