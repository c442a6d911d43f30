// The retained messages of one Thing as thingmuxd last saw them, so that a local subscriber can
// get them when the broker will not send them: the broker sends retained messages only in answer
// to a SUBSCRIBE, and a local client that joins a filter the Thing already holds upstream causes
// none. Local topics (things[].local_topics) never reach the broker: this cache is their only
// retained store.
//
// - One message per topic, the last one written; a message with an empty payload deletes the
//   topic's entry (MQTT's rule for retained messages).
// - Bounded by a count and by bytes (topic + payload); the oldest-written entries are evicted
//   first to make room. A message larger than the byte bound on its own is not kept, nor is any
//   with a bound of 0 messages. Both are counted as dropped.
// - A message with an MQTT 5 Message Expiry Interval expires in the cache as it would at a
//   broker, and is served with the interval that remains.
// Pure: no I/O; the caller passes the time.
#pragma once

#include "daemon/mqtt/packet.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::thing {

struct retained_limits {
    std::size_t messages = 1000;      // entries; 0: keep none
    std::size_t bytes = 1024 * 1024;  // topic + payload of all entries
};

class retained_cache {
public:
    using time_point = std::chrono::steady_clock::time_point;

    explicit retained_cache(retained_limits limits = {}) : limits_(limits) {}

    // New bounds; entries over them are evicted, oldest-written first.
    void set_limits(retained_limits limits);
    // Stores `m` (its topic, payload and message properties) as its topic's retained message,
    // or deletes the topic's entry when the payload is empty.
    void put(const mqtt::publish& m, time_point now);
    // Deletes the entry of `topic`; true when there was one.
    bool erase(std::string_view topic);
    // A message on `m.topic` other than the cached one arrived without its retain flag: it may
    // have replaced the retained message at the broker, so the cached one is deleted (a cached
    // message is never older than the last message seen on its topic). True when deleted.
    bool forget_if_different(const mqtt::publish& m);
    // The unexpired entries whose topic `filter` matches (MQTT matching, '$' rule included),
    // oldest-written first, with retain set and the Message Expiry Interval that remains.
    // Expired entries are deleted on the way.
    [[nodiscard]] std::vector<mqtt::publish> matching(std::string_view filter, time_point now);

    [[nodiscard]] std::size_t size() const noexcept { return by_topic_.size(); }
    [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }
    // Messages the bounds cost since construction: entries evicted to make room (not deleted,
    // not expired, not replaced by their topic's next message) and messages not kept at all.
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }
    [[nodiscard]] const retained_limits& limits() const noexcept { return limits_; }

private:
    struct entry {
        mqtt::publish msg;
        time_point stored{};
        std::uint64_t written = 0;  // key in by_age_
        [[nodiscard]] std::size_t bytes() const noexcept { return msg.topic.size() + msg.payload.size(); }
    };
    using topic_map = std::map<std::string, entry, std::less<>>;
    void remove(topic_map::iterator it);
    void evict_to_fit(std::size_t more_messages, std::size_t more_bytes);
    // Whether `e` expired by `now`; otherwise sets `out`'s Message Expiry Interval to what remains.
    [[nodiscard]] static bool expired(const entry& e, time_point now, mqtt::publish* out);

    retained_limits limits_;
    topic_map by_topic_;
    std::map<std::uint64_t, std::string> by_age_;  // write order -> topic
    std::uint64_t next_write_ = 0;
    std::size_t bytes_ = 0;
    std::uint64_t dropped_ = 0;
};

}  // namespace thingmux::thing
