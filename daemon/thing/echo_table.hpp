// No Local for messages that make the round trip through the broker.
//
// thingmuxd's local sessions share one connection to the broker, so the broker's No Local cannot
// tell them apart: a local client's publish comes back from the broker like anyone's. When a
// session publishes on a topic that one of its own No Local subscriptions matches, the pipeline
// expects the echo: it notes the message's content (content_fingerprint(): topic, payload and
// properties, not what the broker may change) with the publisher, and the first message from the
// broker with that content is taken for the echo and not delivered to the publisher. Bounded:
// the oldest expectations go first when more are noted (an echo that never comes, because no
// upstream subscription of the Thing matches or QoS 0 lost it, is forgotten that way). A message
// from another client with exactly the same content that arrives before the echo is taken for it
// instead (the publisher misses that one and gets its own echo, which has the same content).
// Pure: no I/O.
#pragma once

#include "daemon/thing/subscription_table.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>

namespace thingmux::thing {

class echo_table {
public:
    explicit echo_table(std::size_t capacity = 256) : capacity_(capacity) {}

    // `publisher` published a message with this content, which the broker will send back.
    void expect(session_id publisher, std::uint64_t content);
    // The publish was refused: no echo will come.
    void cancel(session_id publisher, std::uint64_t content);
    // The publisher of a message with this content arriving from the broker, when it is an
    // expected echo (the expectation is used up).
    [[nodiscard]] std::optional<session_id> take(std::uint64_t content);
    // The session is gone.
    void forget(session_id publisher);
    [[nodiscard]] bool empty() const noexcept { return expected_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return expected_.size(); }
    // Expectations pushed out by newer ones, since construction.
    [[nodiscard]] std::uint64_t overflowed() const noexcept { return overflowed_; }

private:
    struct expectation {
        session_id publisher;
        std::uint64_t content = 0;
    };
    std::size_t capacity_;
    std::deque<expectation> expected_;  // oldest first
    std::uint64_t overflowed_ = 0;
};

}  // namespace thingmux::thing
