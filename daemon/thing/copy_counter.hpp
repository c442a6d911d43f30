// Tells the copies of one broker message from new messages.
//
// A broker that sends a message once per matching subscription (mosquitto 2, EMQX; the MQTT
// specification allows it) sends a message whose topic N upstream filters match N times, back
// to back, identical. Nothing in the packets tells the copies apart (AWS IoT Core has no MQTT 5
// Subscription Identifiers), so the hub delivers the first and takes the next N-1 identical
// messages that arrive right after it for its copies. A message that differs, or that follows
// another message, is new: a copy is only ever expected right behind its original, so a counting
// error costs a duplicate delivery rather than a lost message. Pure: no I/O.
#pragma once

#include "daemon/mqtt/packet.hpp"

#include <cstddef>
#include <cstdint>

namespace thingmux::thing {

class copy_counter {
public:
    // `copies`: how many copies of this message the broker sends (the acknowledged upstream
    // filters matching its topic, subscription_table::upstream_copies; 0 or 1: no copies).
    // Returns true when `m` is one of the copies still due of the message just before it: it
    // must not be delivered again (but it is acknowledged like any other). A retained message
    // (retain flag set) answers one new subscription and is never counted as a copy.
    [[nodiscard]] bool is_copy(const mqtt::publish& m, std::size_t copies);
    // Expects no more copies: the connection changed (copies still due will not come; the
    // broker resends unacknowledged ones by itself).
    void reset() noexcept { due_ = 0; }

private:
    std::uint64_t fingerprint_ = 0;  // of the message whose copies are due
    std::size_t due_ = 0;            // its copies still to come
};

// A hash of everything a local client receives of a message (topic, payload, QoS, retain flag
// and the forwarded properties), not of what differs between copies (packet id, DUP).
[[nodiscard]] std::uint64_t fingerprint(const mqtt::publish& m) noexcept;
// The same without QoS, retain flag and Message Expiry Interval: what a message keeps on its
// way through the broker.
[[nodiscard]] std::uint64_t content_fingerprint(const mqtt::publish& m) noexcept;

}  // namespace thingmux::thing
