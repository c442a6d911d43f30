// Local authorization: which app rules apply to a peer, and whether they grant an action on a
// topic. Pure functions over the configuration, for the hub. Default deny: no rule, no right.
// Root is not special: a rule must name uid 0 / user root to grant root anything, except
// management (is_admin()), which root could do anyway by editing the file and signalling.
#pragma once

#include "config/config.hpp"

#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace thingmux::config {

// The process on the other end of the socket, as the kernel and NSS describe it, and the MQTT
// username it proved with a password (mqtt.passwords). A TCP peer the kernel cannot place (in
// another network namespace) has only the latter: uid and gid (uid_t)-1, no names.
struct peer {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::vector<gid_t> groups;             // supplementary groups
    std::string user;                      // name of uid; empty if unknown
    std::vector<std::string> group_names;  // names of gid and of every supplementary group
    std::string unit;                      // systemd unit, e.g. "sensor.service"; empty if none
    std::string mqtt_user;                 // the MQTT username its password was checked for; empty if none
};

// Values of ${thing} ${unit} ${user} ${uid} in filters.
struct variables {
    std::string thing;
    std::string unit;
    std::string user;
    std::string uid;
    [[nodiscard]] static variables of(const peer& p, std::string_view thing);
};

enum class action : std::uint8_t { publish, subscribe, receive };

// True when every key set in rule.match matches the peer (a rule with an empty match matches
// nobody; load rejects it anyway).
[[nodiscard]] bool matches(const app_rule& rule, const peer& p);

// The rules that match the peer and apply to `thing`, in file order.
[[nodiscard]] std::vector<const app_rule*> rules_for(const configuration& config, const peer& p, std::string_view thing);

// Replaces ${thing} ${unit} ${user} ${uid} by their values (unknown ${...} are left as written).
[[nodiscard]] std::string expand(std::string_view filter, const variables& vars);

// True when a filter uses a variable whose value is unusable in a topic (empty, or holding '/',
// '+', '#' or NUL, which would widen the grant): such a filter grants nothing.
[[nodiscard]] bool expansion_unsafe(std::string_view filter, const variables& vars);

// What one app may do on one Thing: the filters of the rules that apply, with the variables
// expanded. Computed once when the app connects (and again on reload), not per message.
struct grants {
    std::vector<std::string> rules;  // names of the rules that applied, in file order
    std::vector<std::string> publish;
    std::vector<std::string> subscribe;
    std::vector<std::string> receive;
    friend bool operator==(const grants&, const grants&) = default;
};

// The rules' filters expanded for `vars`; filters whose expansion is unsafe or invalid are left out.
[[nodiscard]] grants grants_of(const std::vector<const app_rule*>& rules, const variables& vars);
// grants_of(rules_for(config, p, thing), variables::of(p, thing)).
[[nodiscard]] grants grants_for(const configuration& config, const peer& p, std::string_view thing);

// publish/receive: `topic` must be a valid topic name matched by one granted filter.
// subscribe: `topic_or_filter` must be a valid filter covered by one granted filter.
[[nodiscard]] bool allowed(const grants& g, action what, std::string_view topic_or_filter);
[[nodiscard]] bool allowed(const std::vector<const app_rule*>& rules, action what, std::string_view topic_or_filter,
                           const variables& vars);

// A publish's MQTT 5 response topic is where a responder publishes its answer on the app's
// behalf: it must be a topic the app may subscribe to and receive (never, say, another Thing's
// command topic).
[[nodiscard]] bool allowed_response_topic(const grants& g, std::string_view topic);

// Whether the peer may manage the daemon (list every client, reload; docs/config.md "admin"):
// root always, anyone else when a rule with `admin: true` matches it (whatever its `things`).
[[nodiscard]] bool is_admin(const configuration& config, const peer& p);

// What the rules refused: a publish's topic, a subscribe's filter, or a publish's response topic.
enum class refused : std::uint8_t { publish, subscribe, response_topic };

// The message for a request the rules refused: what was refused on which Thing, why, and the
// grant to add (to which rule, or the rule to write when none applies to `peer`, described as
// peer_credentials::describe() does), then to reload. One line.
[[nodiscard]] std::string denial(const grants& g, refused what, std::string_view topic, std::string_view thing,
                                 std::string_view peer);

}  // namespace thingmux::config
