// Frame encoder and incremental decoder of the thingmux IPC protocol (docs/ipc-protocol.md).
//
// decode_*_message() looks at the front of a byte span and answers one of three things: more
// bytes are needed, the bytes are malformed (with the errc to put in the error frame and a reason
// fit for a log line), or a message was decoded and how many bytes it used. The frame length is
// checked against `max_frame` as soon as its 4 bytes are there, and every length inside a frame
// against the bytes left in it, before anything is allocated: hostile input cannot make the
// decoder allocate more than the frame it sent.
//
// Each direction has its own decoder, so a frame sent the wrong way is a protocol violation.
//
// Versions (IPC-9, IPC-39): every function takes the protocol version of the connection, version
// 1 unless told. A hello is the exception: its own version field selects its layout (the daemon
// learns the connection's version from it), so it decodes the same whatever version is passed.
// Frames of version 1 are the same bytes whichever code writes them.
#pragma once

#include "common/utf8.hpp"
#include "ipc/messages.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace thingmux::ipc {

struct need_more {
    // Lower bound on the total number of bytes needed before the decoder can make progress.
    std::size_t at_least = 0;
};

struct malformed {
    // malformed_frame (layout broken, unknown type), frame_too_large (IPC-5) or
    // protocol_violation (a type of the other direction): the code for the error frame.
    errc code = errc::malformed_frame;
    std::string reason;  // e.g. "publish: topic runs past the end of the frame"
};

template <class Message>
struct decoded {
    Message message;
    std::size_t consumed = 0;  // bytes used from the front of the span (the whole frame)
};

using client_decode_result = std::variant<need_more, malformed, decoded<client_message>>;
using daemon_decode_result = std::variant<need_more, malformed, decoded<daemon_message>>;

// Decodes one frame a client sent (the daemon's side of the socket).
[[nodiscard]] client_decode_result decode_client_message(std::span<const std::uint8_t> bytes,
                                                         std::size_t max_frame = default_max_frame,
                                                         wire_version version = wire_version::v1);

// Decodes one frame the daemon sent (the client's side of the socket).
[[nodiscard]] daemon_decode_result decode_daemon_message(std::span<const std::uint8_t> bytes,
                                                         std::size_t max_frame = default_max_frame,
                                                         wire_version version = wire_version::v1);

// Appends the frame of `m` to `out`. Precondition: encode_problem(m) is empty; the encoder does
// not check (it would cost a UTF-8 pass per string on the hot path). A violation never breaks
// the framing of the stream: a string over 65535 bytes is cut at a code point boundary and a
// list over 65535 entries is cut, so the peer sees at worst a shortened text or a frame it
// refuses (invalid UTF-8, QoS 3, empty list).
// A message or field the version does not have (an ack, a delivery id in version 1) is a
// violation too: the field is left out, the ack frame is one the peer refuses.
void encode(const client_message& m, std::vector<std::uint8_t>& out, wire_version version = wire_version::v1);
void encode(const daemon_message& m, std::vector<std::uint8_t>& out, wire_version version = wire_version::v1);

[[nodiscard]] std::vector<std::uint8_t> encode(const client_message& m, wire_version version = wire_version::v1);
[[nodiscard]] std::vector<std::uint8_t> encode(const daemon_message& m, wire_version version = wire_version::v1);

// Size in bytes of the frame of `m`, length prefix included (what encode() would append).
// Compare it with limits::max_frame before sending.
[[nodiscard]] std::size_t encoded_size(const client_message& m, wire_version version = wire_version::v1);
[[nodiscard]] std::size_t encoded_size(const daemon_message& m, wire_version version = wire_version::v1);

// Why the decoder would refuse the frame of `m` (a string that is not UTF-8 or longer than
// 65535 bytes, an empty filter list, QoS 3, a field or message `version` does not have, ...), or
// nullopt when the frame would decode to a value equal to `m`. Exception: a hello of a version
// this code does not know decodes with its other fields empty (IPC-9). Does not apply
// max_frame: compare encoded_size() for that.
[[nodiscard]] std::optional<std::string> encode_problem(const client_message& m,
                                                        wire_version version = wire_version::v1);
[[nodiscard]] std::optional<std::string> encode_problem(const daemon_message& m,
                                                        wire_version version = wire_version::v1);

// Appends the frame of message{topic, payload, qos, retain, props, delivery_id} without copying
// the payload into a message value first: the daemon encodes one delivery frame and shares its
// bytes among all recipients of that version without a delivery id (IPC-31). Same bytes as
// encode(message{...}, version), same precondition (a delivery id only in version 2).
void encode_message_frame(std::string_view topic, std::string_view payload, std::uint8_t qos, bool retain,
                          const message_properties& props, std::vector<std::uint8_t>& out,
                          wire_version version = wire_version::v1, std::uint32_t delivery_id = 0);

// What encode_message_frame() would append, in bytes (the delivery id's value does not matter).
[[nodiscard]] std::size_t message_frame_size(std::string_view topic, std::string_view payload,
                                             const message_properties& props, wire_version version = wire_version::v1);

// Well-formed UTF-8 (RFC 3629: shortest form, no surrogates, at most U+10FFFF) without U+0000:
// the rule for every string field (IPC-6). Clients check user input with it before encoding.
using text::valid_utf8;

}  // namespace thingmux::ipc
