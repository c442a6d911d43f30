// Local subscriptions of all IPC clients of one Thing, and the reference counts that decide when
// a filter must be subscribed or unsubscribed upstream.
//
// N clients on one filter = one upstream subscription: add() reports when a filter gets its first
// holder, remove()/remove_client() when it loses its last one. match() walks a topic trie, so
// routing an inbound message costs O(topic levels), not O(subscriptions). Pure: no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::hub {

struct client_id {
    std::uint64_t value = 0;
    friend auto operator<=>(const client_id&, const client_id&) = default;
};

struct delivery {
    client_id client;
    std::uint8_t max_qos = 0;  // highest QoS among this client's filters that matched
    friend bool operator==(const delivery&, const delivery&) = default;
};

class subscription_table {
public:
    subscription_table();
    ~subscription_table();
    subscription_table(const subscription_table&) = delete;
    subscription_table& operator=(const subscription_table&) = delete;

    // Adds (or updates the QoS of) `client`'s subscription to `filter` (a valid MQTT topic
    // filter). Returns true when the filter had no holder before: subscribe upstream.
    bool add(client_id client, std::string_view filter, std::uint8_t max_qos);
    // Removes one subscription. Returns true when that was the filter's last holder:
    // unsubscribe upstream. Removing a subscription the client does not hold returns false.
    bool remove(client_id client, std::string_view filter);
    // Removes every subscription of a client (it disconnected). Returns the filters that lost
    // their last holder, in lexicographic order.
    std::vector<std::string> remove_client(client_id client);

    // Appends one delivery per distinct client with at least one filter matching `topic` (a
    // client with overlapping filters gets the message once, at the highest matching QoS).
    // MQTT rules: '+' one level, '#' this level and below (incl. the parent: "a/#" matches "a"),
    // and filters starting with a wildcard never match topics starting with '$'.
    void match(std::string_view topic, std::vector<delivery>& out) const;

    [[nodiscard]] bool holds(client_id client, std::string_view filter) const;
    [[nodiscard]] std::size_t holder_count(std::string_view filter) const;
    [[nodiscard]] std::size_t upstream_count() const noexcept;  // distinct filters with a holder
    [[nodiscard]] std::vector<std::string> upstream_filters() const;  // sorted
    [[nodiscard]] std::size_t client_count(client_id client) const;   // filters held by a client
    [[nodiscard]] std::vector<std::string> client_filters(client_id client) const;  // sorted

private:
    struct node;
    // Drops `client` from the trie node of `filter` (pruning emptied nodes) and decrements the
    // filter's holder count; true when that was the last holder. by_client_ is the caller's job.
    bool detach(client_id client, std::string_view filter);

    std::unique_ptr<node> root_;
    std::map<std::string, std::size_t, std::less<>> holders_;            // filter -> holder count
    std::map<client_id, std::map<std::string, std::uint8_t, std::less<>>> by_client_;
};

}  // namespace thingmux::hub
