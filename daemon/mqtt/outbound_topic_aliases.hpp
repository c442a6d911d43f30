// The topic aliases a server sets toward one MQTT 5 client (spec 3.3.2.3.4): which alias stands
// for which topic on this network connection. Pure: no I/O, no clock.
//
// Policy: a topic gets the lowest free alias while there is one; once `maximum` are taken, a new
// topic takes over the alias of the least recently used one. Every topic gets one, so a client
// that receives a few topics repeatedly gets them as empty topic names with a 3-byte property; a
// client receiving more distinct topics than its maximum in turn (least recently used first)
// gets each with its topic name and an alias, which is 3 bytes more than without. The mappings
// exist for one connection only (MQTT-3.3.2-7): a new connection starts with a new table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace thingmux::mqtt {

class outbound_topic_aliases {
public:
    // At most `maximum` aliases, numbered 1..maximum: never 0 (MQTT-3.3.2-8), never above the
    // client's Topic Alias Maximum (MQTT-3.1.2-26, 3.3.2-11); 0: none is ever given (3.1.2-27).
    explicit outbound_topic_aliases(std::uint16_t maximum = 0) noexcept : maximum_(maximum) {}

    // The alias the client already holds for `topic`, now its most recently used; nullopt if none.
    [[nodiscard]] std::optional<std::uint16_t> known(std::string_view topic);
    // Gives `topic` an alias from now on: a free one, or the least recently used one's (the
    // PUBLISH that carries `topic` with it replaces the client's mapping). nullopt when the
    // maximum is 0. Only for a topic without one (known() said nullopt).
    [[nodiscard]] std::optional<std::uint16_t> assign(std::string_view topic);
    // Forgets every mapping and takes a new maximum (a new connection).
    void reset(std::uint16_t maximum);

    [[nodiscard]] std::uint16_t maximum() const noexcept { return maximum_; }
    [[nodiscard]] std::size_t size() const noexcept { return by_use_.size(); }

private:
    struct entry {
        std::string topic;
        std::uint16_t alias = 0;
    };
    std::uint16_t maximum_ = 0;
    std::list<entry> by_use_;  // most recently used first; nodes never move, so views of their topics stay valid
    std::unordered_map<std::string_view, std::list<entry>::iterator> by_topic_;
};

}  // namespace thingmux::mqtt
