// Local subscriptions of all IPC clients of one Thing, and the filters the Thing holds upstream
// on their behalf.
//
// N clients on one filter = one upstream subscription, and a filter covered by another local
// filter needs none of its own: while "a/#" is held upstream, "a/+/c" is served by it. The
// upstream set is therefore the local filters that no other local filter covers (wildcard-free
// filters always go upstream themselves: only their own SUBSCRIBE makes the broker send their
// retained message). plan() tells the caller what to SUBSCRIBE and UNSUBSCRIBE to reach that
// set; a filter that is no longer needed upstream is unsubscribed only once every local filter
// it serves is served by another filter the broker has acknowledged, so no message is missed in
// between (and the subscription quota is never exceeded on the way: while a replacement does not
// fit, the wider filter stays). match() walks a topic trie, so routing an inbound message costs
// O(topic levels), not O(subscriptions). Pure: no I/O.
//
// Coverage filters (set_coverage(), things[].coverage) trade precision for the quota: a held
// filter a coverage filter covers, wildcard-free or not, never goes upstream itself; the coverage
// filter does, while at least one held filter is under it, and serves them all (match() filters
// locally, as for any upstream filter). So any number of local filters costs one upstream
// subscription per coverage filter. The price: AWS IoT Core sends a retained message only to a
// subscription whose filter is its topic exactly, so the retained messages under a coverage
// filter come only from the Thing's retained cache (retained_cache.hpp). A held filter wider than
// a coverage filter (cmd/# for coverage cmd/T/#) goes upstream as itself and serves what the
// coverage filter would have. A broker refusing a coverage filter refuses every held filter
// under it that nothing else serves (unserved()).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::thing {

struct session_id {
    std::uint64_t value = 0;
    friend auto operator<=>(const session_id&, const session_id&) = default;
};

// MQTT 5 subscription options of one local subscription (IPC and D-Bus sessions have the
// defaults, MQTT 3.1.1's behaviour).
struct subscription_options {
    bool no_local = false;             // the session's own publishes are not sent back to it
    bool retain_as_published = false;  // live deliveries keep the retain flag they came with
    std::uint8_t retain_handling = 0;  // at subscribe: retained messages 0 always, 1 if new, 2 never
    friend bool operator==(const subscription_options&, const subscription_options&) = default;
};

struct delivery {
    session_id client;
    std::uint8_t max_qos = 0;  // highest QoS among this client's filters that matched
    bool no_local = false;     // every matching filter of this client has No Local
    bool retain_as_published = false;  // some matching filter of this client has Retain As Published
    friend bool operator==(const delivery&, const delivery&) = default;
};

// Merges the deliveries from index `first` on into one per client: the highest QoS, No Local
// only when all of the client's matching filters have it, Retain As Published when any has.
void merge_by_client(std::vector<delivery>& deliveries, std::size_t first = 0);

// True when every topic `filter` matches is also matched by `wider`, both under the MQTT
// specification's matching and under AWS IoT Core's (where "a/#" does not match "a"): a
// conservative relation, safe to serve `filter` from an upstream subscription to `wider`.
// Reflexive. Shared subscriptions ("$share/...") cover and are covered only by themselves.
[[nodiscard]] bool covers(std::string_view wider, std::string_view filter) noexcept;

// True when some topic may match both filters (under the MQTT specification's matching, which
// matches at least as much as AWS IoT Core's): the broker may send a message twice.
[[nodiscard]] bool overlap(std::string_view a, std::string_view b) noexcept;

// What the caller must send upstream, in this order: every SUBSCRIBE, then every UNSUBSCRIBE.
struct upstream_plan {
    struct subscription {
        std::string filter;
        std::uint64_t generation = 0;  // pass back to subscribed() with the SUBACK's code
    };
    std::vector<subscription> subscribe;
    std::vector<std::string> unsubscribe;
    [[nodiscard]] bool empty() const noexcept { return subscribe.empty() && unsubscribe.empty(); }
    void append(upstream_plan&& more);
};

// A local filter no upstream filter serves any more, and none will: its holders must be dropped.
struct unserved_filter {
    std::string filter;
    std::optional<std::uint8_t> refused;  // the broker's SUBACK code; nullopt: no room in the quota
};

class subscription_table {
public:
    subscription_table();
    ~subscription_table();
    subscription_table(const subscription_table&) = delete;
    subscription_table& operator=(const subscription_table&) = delete;

    // Adds (or updates the QoS and options of) `client`'s subscription to `filter` (a valid MQTT
    // topic filter). Returns true when the filter had no holder before. What goes upstream: plan().
    bool add(session_id client, std::string_view filter, std::uint8_t max_qos, subscription_options options = {});
    // Removes one subscription. Returns true when that was the filter's last holder. Removing a
    // subscription the client does not hold returns false.
    bool remove(session_id client, std::string_view filter);
    // Removes every subscription of a client (it disconnected). Returns the filters that lost
    // their last holder, in lexicographic order.
    std::vector<std::string> remove_client(session_id client);
    // The clients holding `filter`, in client order.
    [[nodiscard]] std::vector<session_id> holders(std::string_view filter) const;

    // --- upstream ---
    // The coverage filters (valid, non-shared topic filters): duplicates and filters another one
    // covers are dropped. Returns true when that changed the list; plan() then moves the upstream
    // set over as for any local change (what replaces a filter is acknowledged before it goes).
    bool set_coverage(std::vector<std::string> filters);
    [[nodiscard]] const std::vector<std::string>& coverage() const noexcept { return coverage_; }
    // Whether holding `filter` sends nothing upstream because a coverage filter covering it is
    // upstream already or wanted there for another held filter.
    [[nodiscard]] bool served_by_coverage(std::string_view filter) const;
    // What to send after local changes or SUBACKs so the upstream set serves every local filter
    // with as few upstream filters as possible. The filters to subscribe count as upstream
    // (pending) from now on; the filters to unsubscribe are gone. `quota`: most upstream filters
    // at once (nullopt: no limit); filters that do not fit wait (see unserved()).
    [[nodiscard]] upstream_plan plan(std::optional<std::size_t> quota);
    // Whether a client may start holding `filter` under `quota`: true when an upstream filter,
    // another local filter or a coverage filter in use already serves it, or there is room for one
    // more upstream filter.
    [[nodiscard]] bool fits(std::string_view filter, std::optional<std::size_t> quota) const;
    enum class suback { stale, granted, refused };
    // The broker's SUBACK code for an upstream filter of plan(); `stale` when that filter was
    // unsubscribed (or planned again) since. A refused filter is not planned again while held.
    suback subscribed(std::string_view filter, std::uint64_t generation, std::uint8_t code);
    // The broker refused an upstream filter when re-subscribing it after losing the session.
    void lost(std::string_view filter, std::uint8_t code);
    // Local filters that the upstream set does not serve after plan(): refused by the broker, or
    // no room in the quota (for a coverage filter: every held filter under it that no other
    // upstream filter serves, with the coverage filter's SUBACK code). Their holders must be
    // dropped (then plan() again).
    [[nodiscard]] std::vector<unserved_filter> unserved() const;
    // The upstream filters serving `filter` whose SUBSCRIBE the broker has not answered yet: the
    // broker sends their retained messages once it does.
    [[nodiscard]] std::vector<std::string> awaiting_suback(std::string_view filter) const;
    // The highest QoS the broker granted to an upstream filter that serves `filter`; nullopt
    // while none is acknowledged.
    [[nodiscard]] std::optional<std::uint8_t> granted_qos(std::string_view filter) const;
    // How many copies of a message on `topic` a broker that sends one per matching subscription
    // sends for certain: the acknowledged upstream filters that match it (counted as AWS IoT
    // Core matches, "a/#" not matching "a", so a copy is never expected that may not come).
    [[nodiscard]] std::size_t upstream_copies(std::string_view topic) const;

    // Appends one delivery per distinct client with at least one filter matching `topic` (a
    // client with overlapping filters gets the message once, merged by merge_by_client()).
    // MQTT rules: '+' one level, '#' this level and below (incl. the parent: "a/#" matches "a"),
    // and filters starting with a wildcard never match topics starting with '$'.
    void match(std::string_view topic, std::vector<delivery>& out) const;

    [[nodiscard]] bool holds(session_id client, std::string_view filter) const;
    [[nodiscard]] std::size_t holder_count(std::string_view filter) const;
    [[nodiscard]] std::size_t filter_count() const noexcept;          // distinct filters with a holder
    [[nodiscard]] std::vector<std::string> filters() const;           // sorted
    [[nodiscard]] std::size_t upstream_count() const noexcept;        // upstream filters (pending or acknowledged)
    [[nodiscard]] std::vector<std::string> upstream_filters() const;  // sorted
    [[nodiscard]] std::size_t filters_held(session_id client) const;   // filters held by a client
    [[nodiscard]] std::vector<std::string> client_filters(session_id client) const;  // sorted

private:
    struct node;
    struct upstream_entry {
        std::uint64_t generation = 0;
        bool granted = false;
        std::uint8_t qos = 0;  // granted QoS
    };
    // Drops `client` from the trie node of `filter` (pruning emptied nodes) and decrements the
    // filter's holder count. When that was the last holder, the filter's entry in holders_ goes
    // and its string is returned (`filter` may view it). by_client_ is the caller's job.
    std::optional<std::string> detach(session_id client, std::string_view filter);
    // Keeps wanted_ in step with a filter that got its first holder / lost its last one.
    void gained(std::string_view filter);
    void dropped(std::string_view filter);
    // Whether another held filter covers `filter` (a wildcard filter; a trie walk).
    [[nodiscard]] bool covered_locally(std::string_view filter) const;
    // The same for any filter, wildcard-free ones included.
    [[nodiscard]] bool held_filter_covers(std::string_view filter) const;
    // Calls f(coverage filter) for every coverage filter that covers `filter`.
    template <typename F>
    void for_each_coverage(std::string_view filter, F&& f) const;
    [[nodiscard]] bool under_coverage(std::string_view filter) const;
    // Recomputes wanted_ and in_use_ from the held filters (after set_coverage()).
    void rebuild_wanted();
    // Whether an upstream filter other than `except` serves `filter`; only acknowledged ones when
    // `granted_only`.
    [[nodiscard]] bool served(std::string_view filter, std::string_view except, bool granted_only) const;
    // Calls f(filter) for every held filter that `wider` covers (itself included when held).
    template <typename F>
    void for_each_covered(std::string_view wider, F&& f) const;
    void refresh_overlaps();

    std::unique_ptr<node> root_;
    std::map<std::string, std::size_t, std::less<>> holders_;  // filter -> holder count
    // Each client's filters, sorted: views of the keys of holders_, whose entries live as long as
    // the filter has a holder. Per client and filter 16 bytes, not a map node and a string (over
    // 100 bytes): idle clients are mostly their subscriptions. The QoS is in the trie.
    std::map<session_id, std::vector<std::string_view>> by_client_;
    // What should be upstream: the held filters no coverage filter and no other held filter
    // covers, every wildcard-free held filter no coverage filter covers, and the coverage filters
    // in use that no held filter covers.
    std::set<std::string, std::less<>> wanted_;
    std::vector<std::string> coverage_;  // sorted; none covers another
    // Coverage filters with at least one held filter under them: how many.
    std::map<std::string, std::size_t, std::less<>> in_use_;
    std::map<std::string, upstream_entry, std::less<>> upstream_;
    // Held filters (and coverage filters in use) the broker refused while a wider upstream filter
    // served them: not subscribed again while held (SUBACK code kept for the answer when they end
    // up unserved).
    std::map<std::string, std::uint8_t, std::less<>> refused_;
    // Acknowledged upstream filters that may share a topic with another acknowledged one: the
    // only ones upstream_copies() has to look at (usually none).
    std::vector<std::string> overlapping_;
    std::uint64_t next_generation_ = 1;
};

}  // namespace thingmux::thing
