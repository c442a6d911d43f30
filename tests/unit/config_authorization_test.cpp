// Local authorization (docs/config.md, "Authorization"): rule matching, variables, allowed() for
// publish / subscribe / receive, default deny, root not special, and filter coverage checked
// against brute force.
#include "config/authorization.hpp"
#include "config/topic_filter.hpp"

#include <gtest/gtest.h>


namespace {

using namespace thingmux::config;

configuration load(const std::string& apps) {
    const auto r = parse("things:\n"
                         "  - {name: gw, endpoint: b.example.com, ca: /a, cert: /b, key: /c}\n"
                         "  - {name: gw2, endpoint: b.example.com, ca: /a, cert: /b, key: /c}\n"
                         "apps:\n" + apps,
                         "t.yaml");
    std::string text;
    for (const auto& d : r.diagnostics) text += to_string(d) + "\n";
    EXPECT_TRUE(r.ok()) << text;
    return r.config.value_or(configuration{});
}

peer sensor_peer() {
    return peer{.uid = 1001, .gid = 1001, .groups = {20, 3000}, .user = "sensor",
                .group_names = {"sensor", "dialout", "iot"}, .unit = "sensor-3.service"};
}

TEST(ConfigAuthorization, MqttUserMatchesOnlyACheckedUsername) {
    const auto rule = [](peer_match m) {
        return app_rule{.name = "r",
                        .match = std::move(m),
                        .things = {},
                        .publish = {},
                        .subscribe = {},
                        .receive = {},
                        .admin = false,
                        .where = {}};
    };
    const peer_match by_name{.unit = {}, .user = {}, .uid = {}, .group = {}, .gid = {}, .mqtt_user = "dashboard"};
    auto p = sensor_peer();
    EXPECT_FALSE(matches(rule(by_name), p)) << "no username checked";
    p.mqtt_user = "dashboard";
    EXPECT_TRUE(matches(rule(by_name), p));
    p.mqtt_user = "dashboard2";
    EXPECT_FALSE(matches(rule(by_name), p));
    // A TCP peer the kernel cannot place: only its username.
    peer container{.uid = static_cast<uid_t>(-1),
                   .gid = static_cast<gid_t>(-1),
                   .groups = {},
                   .user = {},
                   .group_names = {},
                   .unit = {},
                   .mqtt_user = "dashboard"};
    EXPECT_TRUE(matches(rule(by_name), container));
    EXPECT_FALSE(matches(rule({.unit = {}, .user = "sensor", .uid = {}, .group = {}, .gid = {}}), container));
    // Together with a kernel key, both must match.
    EXPECT_FALSE(matches(
        rule({.unit = {}, .user = "sensor", .uid = {}, .group = {}, .gid = {}, .mqtt_user = "dashboard"}), container));
    p.mqtt_user = "dashboard";
    EXPECT_TRUE(
        matches(rule({.unit = {}, .user = "sensor", .uid = {}, .group = {}, .gid = {}, .mqtt_user = "dashboard"}), p));
}

TEST(ConfigAuthorization, MatchByEachKey) {
    const auto p = sensor_peer();
    const auto rule = [](peer_match m) { return app_rule{.name = "r", .match = std::move(m), .things = {}, .publish = {}, .subscribe = {}, .receive = {}, .admin = false, .where = {}}; };
    EXPECT_TRUE(matches(rule({.unit = {}, .user = {}, .uid = 1001, .group = {}, .gid = {}}), p));
    EXPECT_FALSE(matches(rule({.unit = {}, .user = {}, .uid = 1000, .group = {}, .gid = {}}), p));
    EXPECT_TRUE(matches(rule({.unit = {}, .user = "sensor", .uid = {}, .group = {}, .gid = {}}), p));
    EXPECT_FALSE(matches(rule({.unit = {}, .user = "sensors", .uid = {}, .group = {}, .gid = {}}), p));
    EXPECT_TRUE(matches(rule({.unit = {}, .user = {}, .uid = {}, .group = "iot", .gid = {}}), p));      // supplementary
    EXPECT_TRUE(matches(rule({.unit = {}, .user = {}, .uid = {}, .group = "sensor", .gid = {}}), p));   // primary
    EXPECT_FALSE(matches(rule({.unit = {}, .user = {}, .uid = {}, .group = "wheel", .gid = {}}), p));
    EXPECT_TRUE(matches(rule({.unit = {}, .user = {}, .uid = {}, .group = {}, .gid = 1001}), p));
    EXPECT_TRUE(matches(rule({.unit = {}, .user = {}, .uid = {}, .group = {}, .gid = 3000}), p));
    EXPECT_FALSE(matches(rule({.unit = {}, .user = {}, .uid = {}, .group = {}, .gid = 4}), p));
    EXPECT_TRUE(matches(rule({.unit = "sensor-*.service", .user = {}, .uid = {}, .group = {}, .gid = {}}), p));
    EXPECT_TRUE(matches(rule({.unit = "sensor-?.service", .user = {}, .uid = {}, .group = {}, .gid = {}}), p));
    EXPECT_TRUE(matches(rule({.unit = "sensor-[0-9].service", .user = {}, .uid = {}, .group = {}, .gid = {}}), p));
    EXPECT_FALSE(matches(rule({.unit = "sensor.service", .user = {}, .uid = {}, .group = {}, .gid = {}}), p));
    // All keys must match.
    EXPECT_TRUE(matches(rule({.unit = "sensor-*", .user = "sensor", .uid = 1001, .group = "iot", .gid = 20}), p));
    EXPECT_FALSE(matches(rule({.unit = "sensor-*", .user = "sensor", .uid = 0, .group = {}, .gid = {}}), p));
    // An empty match matches nobody; a peer outside any unit never matches a unit rule.
    EXPECT_FALSE(matches(rule({}), p));
    auto no_unit = p;
    no_unit.unit.clear();
    EXPECT_FALSE(matches(rule({.unit = "*", .user = {}, .uid = {}, .group = {}, .gid = {}}), no_unit));
    auto no_name = p;
    no_name.user.clear();
    EXPECT_FALSE(matches(rule({.unit = {}, .user = "", .uid = {}, .group = {}, .gid = {}}), no_name));
}

TEST(ConfigAuthorization, RootIsNotSpecial) {
    const auto c = load("  - name: sensors\n    match: {uid: 1001}\n    publish: [\"#\"]\n");
    const peer root{.uid = 0, .gid = 0, .groups = {}, .user = "root", .group_names = {"root"}, .unit = ""};
    const auto rules = rules_for(c, root, "gw");
    EXPECT_TRUE(rules.empty());
    EXPECT_FALSE(allowed(rules, action::publish, "a", variables::of(root, "gw")));
    const auto c2 = load("  - name: admin\n    match: {user: root}\n    publish: [\"#\"]\n");
    const auto rules2 = rules_for(c2, root, "gw");
    ASSERT_EQ(rules2.size(), 1U);
    EXPECT_TRUE(allowed(rules2, action::publish, "a", variables::of(root, "gw")));
}

TEST(ConfigAuthorization, RulesForThing) {
    const auto c = load("  - name: only-gw2\n    match: {uid: 1001}\n    things: [gw2]\n    publish: [x]\n"
                        "  - name: all\n    match: {group: iot}\n    publish: [y]\n"
                        "  - name: other\n    match: {uid: 5}\n    publish: [z]\n");
    const auto p = sensor_peer();
    const auto gw = rules_for(c, p, "gw");
    ASSERT_EQ(gw.size(), 1U);
    EXPECT_EQ(gw[0]->name, "all");
    const auto gw2 = rules_for(c, p, "gw2");
    ASSERT_EQ(gw2.size(), 2U);
    EXPECT_EQ(gw2[0]->name, "only-gw2");
    EXPECT_EQ(gw2[1]->name, "all");
}

TEST(ConfigAuthorization, Expand) {
    const variables v{.thing = "gw", .unit = "a.service", .user = "bob", .uid = "1001"};
    EXPECT_EQ(expand("dt/${thing}/${unit}/${user}/${uid}/#", v), "dt/gw/a.service/bob/1001/#");
    EXPECT_EQ(expand("${thing}${thing}", v), "gwgw");
    EXPECT_EQ(expand("$aws/things/${thing}/shadow", v), "$aws/things/gw/shadow");
    EXPECT_EQ(expand("x/${other}/${thing", v), "x/${other}/${thing");
    EXPECT_EQ(expand("", v), "");
    EXPECT_FALSE(expansion_unsafe("dt/${thing}", v));
    EXPECT_TRUE(expansion_unsafe("dt/${unit}", variables{.thing = "gw", .unit = "", .user = "", .uid = "1"}));
    EXPECT_TRUE(expansion_unsafe("dt/${user}", variables{.thing = "gw", .unit = "", .user = "a/#", .uid = "1"}));
    const auto p = sensor_peer();
    const auto vp = variables::of(p, "gw");
    EXPECT_EQ(vp.uid, "1001");
    EXPECT_EQ(vp.unit, "sensor-3.service");
}

TEST(ConfigAuthorization, AllowedPublishSubscribeReceive) {
    const auto c = load("  - name: sensors\n"
                        "    match: {unit: \"sensor-*.service\"}\n"
                        "    publish: [\"dt/${thing}/#\", \"u/${unit}/+\"]\n"
                        "    subscribe: [\"cmd/${thing}/#\", \"$aws/things/${thing}/shadow/#\"]\n"
                        "  - name: lister\n"
                        "    match: {uid: 1001}\n"
                        "    receive: [\"cmd/${thing}/list\"]\n");
    const auto p = sensor_peer();
    const auto rules = rules_for(c, p, "gw");
    ASSERT_EQ(rules.size(), 2U);
    const auto v = variables::of(p, "gw");
    // publish: topic matched by a granted filter
    EXPECT_TRUE(allowed(rules, action::publish, "dt/gw/temp", v));
    EXPECT_TRUE(allowed(rules, action::publish, "dt/gw", v));  // '#' includes the parent
    EXPECT_TRUE(allowed(rules, action::publish, "u/sensor-3.service/x", v));
    EXPECT_FALSE(allowed(rules, action::publish, "dt/gw2/temp", v));
    EXPECT_FALSE(allowed(rules, action::publish, "cmd/gw/x", v));
    EXPECT_FALSE(allowed(rules, action::publish, "dt/gw/+", v));  // not a topic name
    EXPECT_FALSE(allowed(rules, action::publish, "", v));
    // subscribe: requested filter covered by a granted filter
    EXPECT_TRUE(allowed(rules, action::subscribe, "cmd/gw/#", v));
    EXPECT_TRUE(allowed(rules, action::subscribe, "cmd/gw/+/x", v));
    EXPECT_TRUE(allowed(rules, action::subscribe, "$aws/things/gw/shadow/update/delta", v));
    EXPECT_FALSE(allowed(rules, action::subscribe, "cmd/#", v));
    EXPECT_FALSE(allowed(rules, action::subscribe, "cmd/+/x", v));
    EXPECT_FALSE(allowed(rules, action::subscribe, "#", v));
    EXPECT_FALSE(allowed(rules, action::subscribe, "cmd/gw/#/x", v));  // invalid filter
    // receive: defaults to subscribe for the first rule; the second grants one topic
    EXPECT_TRUE(allowed(rules, action::receive, "cmd/gw/reboot", v));
    EXPECT_TRUE(allowed(rules, action::receive, "cmd/gw/list", v));
    EXPECT_FALSE(allowed(rules, action::receive, "cmd/gw2/list", v));
    // another Thing gets the other expansion
    EXPECT_TRUE(allowed(rules, action::publish, "dt/gw2/temp", variables::of(p, "gw2")));
}

TEST(ConfigAuthorization, AResponseTopicMustBeOneTheAppMaySubscribeToAndReceive) {
    const auto c = load("  - name: req\n    match: {user: sensor}\n    publish: ['dt/${thing}/#']\n"
                        "    subscribe: ['dt/${thing}/replies/#']\n    receive: ['dt/${thing}/replies/mine/#']\n");
    const auto g = grants_for(c, sensor_peer(), "gw");
    EXPECT_TRUE(allowed_response_topic(g, "dt/gw/replies/mine/1"));
    EXPECT_FALSE(allowed_response_topic(g, "dt/gw/replies/other")) << "subscribe allows it, receive does not";
    EXPECT_FALSE(allowed_response_topic(g, "dt/gw/x")) << "publish allows it, subscribe does not";
    EXPECT_FALSE(allowed_response_topic(g, "cmd/gw2/reboot")) << "another Thing's command topic";
    EXPECT_FALSE(allowed_response_topic(g, "dt/gw/replies/mine/+")) << "not a topic name";
}

TEST(ConfigAuthorization, DenialsNameTheGrantToAddAndWhere) {
    const auto one = grants_for(load("  - name: sensors\n    match: {user: sensor}\n    publish: ['dt/gw/sensor/#']\n"), sensor_peer(), "gw");
    const std::string peer = "pid 4242 uid 1001 (sensor) gid 1001 unit sensor-3.service";
    EXPECT_EQ(denial(one, refused::publish, "dt/gw/daemon/temp", "gw", peer),
              "not authorized to publish to 'dt/gw/daemon/temp' on Thing gw: none of the rules that apply (sensors) grants it; "
              "add 'dt/gw/daemon/temp', or a filter that matches it, to publish: of rule 'sensors' under apps: in the "
              "thingmuxd configuration, then reload thingmuxd");
    EXPECT_EQ(denial(one, refused::subscribe, "cmd/#", "gw", peer),
              "not authorized to subscribe to 'cmd/#' on Thing gw: none of the rules that apply (sensors) grants it; "
              "add 'cmd/#', or a filter that covers it, to subscribe: of rule 'sensors' under apps: in the thingmuxd "
              "configuration, then reload thingmuxd");
    EXPECT_EQ(denial(one, refused::response_topic, "cmd/gw2/reboot", "gw", peer),
              "not authorized to use 'cmd/gw2/reboot' as the response topic on Thing gw (a response topic must be a topic "
              "the app may subscribe to and receive): none of the rules that apply (sensors) grants it; add "
              "'cmd/gw2/reboot', or a filter that matches it, to subscribe: (and to receive:, where that rule lists "
              "receive:) of rule 'sensors' under apps: in the thingmuxd configuration, then reload thingmuxd");

    const auto two = grants_for(load("  - name: sensors\n    match: {user: sensor}\n    publish: ['dt/gw/sensor/#']\n"
                                     "  - name: iot\n    match: {group: iot}\n    subscribe: ['cmd/gw/#']\n"),
                                sensor_peer(), "gw");
    EXPECT_EQ(denial(two, refused::publish, "x", "gw", peer),
              "not authorized to publish to 'x' on Thing gw: none of the rules that apply (sensors, iot) grants it; add "
              "'x', or a filter that matches it, to publish: of one of these rules under apps: in the thingmuxd "
              "configuration, then reload thingmuxd");

    // No rule applies (any more: after a reload, the client stays connected): say so, and how to write one.
    const auto none = grants_for(load("  - name: others\n    match: {uid: 7}\n    publish: ['#']\n"), sensor_peer(), "gw");
    ASSERT_TRUE(none.rules.empty());
    EXPECT_EQ(denial(none, refused::publish, "dt/gw/temp", "gw", peer),
              "not authorized to publish to 'dt/gw/temp' on Thing gw: no rule under apps: in the thingmuxd configuration "
              "applies to pid 4242 uid 1001 (sensor) gid 1001 unit sensor-3.service on Thing gw; add one whose match: names "
              "its unit, user, group or uid and whose publish: lists 'dt/gw/temp', or a filter that matches it, then "
              "reload thingmuxd");
    EXPECT_EQ(denial(none, refused::subscribe, "cmd/gw/#", "gw", peer),
              "not authorized to subscribe to 'cmd/gw/#' on Thing gw: no rule under apps: in the thingmuxd configuration "
              "applies to pid 4242 uid 1001 (sensor) gid 1001 unit sensor-3.service on Thing gw; add one whose match: names "
              "its unit, user, group or uid and whose subscribe: lists 'cmd/gw/#', or a filter that covers it, then "
              "reload thingmuxd");
}

TEST(ConfigAuthorization, DefaultDeny) {
    const auto c = load("");
    const auto p = sensor_peer();
    const auto rules = rules_for(c, p, "gw");
    EXPECT_TRUE(rules.empty());
    for (const auto a : {action::publish, action::subscribe, action::receive}) {
        EXPECT_FALSE(allowed(rules, a, "x", variables::of(p, "gw")));
    }
}

TEST(ConfigAuthorization, UnsafeVariableValuesGrantNothing) {
    const auto c = load("  - name: by-user\n    match: {uid: 1001}\n    publish: [\"u/${user}/x\", \"unit/${unit}\"]\n");
    auto p = sensor_peer();
    p.user = "+";  // a user name that would widen the filter
    p.unit.clear();
    const auto rules = rules_for(c, p, "gw");
    ASSERT_EQ(rules.size(), 1U);
    EXPECT_FALSE(allowed(rules, action::publish, "u/+/x", variables::of(p, "gw")));
    EXPECT_FALSE(allowed(rules, action::publish, "u/anyone/x", variables::of(p, "gw")));
    EXPECT_FALSE(allowed(rules, action::publish, "unit/", variables::of(p, "gw")));
}

TEST(ConfigTopicFilter, Validation) {
    for (const auto* ok : {"#", "+", "a/b", "a/+/b", "a/#", "+/+", "/", "a//b", "$aws/things/x"}) {
        EXPECT_EQ(topic_filter_problem(ok), "") << ok;
    }
    for (const auto* bad : {"", "a/#/b", "a#", "a/b+", "#/a", "a/++"}) {
        EXPECT_NE(topic_filter_problem(bad), "") << bad;
    }
    EXPECT_NE(topic_filter_problem(std::string("a\0b", 3)), "");
    EXPECT_NE(topic_filter_problem("\xff"), "");
    EXPECT_NE(topic_name_problem("a/+"), "");
    EXPECT_EQ(topic_name_problem("a/b"), "");
}

TEST(ConfigTopicFilter, Matching) {
    struct row {
        const char* filter;
        const char* topic;
        bool match;
    };
    for (const auto& r : std::initializer_list<row>{
             {"a/b", "a/b", true},     {"a/+", "a/b", true},       {"a/+", "a", false},       {"a/+", "a/", true},
             {"a/#", "a", true},       {"a/#", "a/b/c", true},     {"#", "a", true},           {"#", "$SYS/x", false},
             {"+/x", "$aws/x", false}, {"$aws/#", "$aws/x", true}, {"a/b", "a/b/c", false},   {"+", "/", false},
             {"+/+", "/", true},       {"a/+/c", "a/b/c", true},   {"a/+/c", "a/b/d", false}}) {
        EXPECT_EQ(topic_matches(r.filter, r.topic), r.match) << r.filter << " vs " << r.topic;
    }
}

// docs/config.md "admin": root always; anyone else only through a matching `admin: true` rule,
// whatever Things the rule names; a rule granting topics is no admin grant.
TEST(ConfigAuthorization, AdminIsRootOrAnAdminRule) {
    const auto none = load("  - name: sensors\n    match: {user: sensor}\n    publish: [\"#\"]\n");
    peer root{.uid = 0, .gid = 0, .groups = {}, .user = "root", .group_names = {"root"}, .unit = {}};
    EXPECT_TRUE(is_admin(none, root)) << "root needs no rule";
    EXPECT_FALSE(is_admin(none, sensor_peer())) << "publish rights are no admin grant";

    const auto with = load("  - name: sensors\n    match: {user: sensor}\n    publish: [\"#\"]\n"
                           "  - name: ops\n    match: {group: iot}\n    things: [gw2]\n    admin: true\n"
                           "  - name: not-ops\n    match: {group: dialout}\n    admin: false\n");
    EXPECT_TRUE(is_admin(with, sensor_peer())) << "group iot, things: does not narrow admin";
    EXPECT_TRUE(is_admin(with, root)) << "root stays admin when admin rules exist";
    auto other = sensor_peer();
    other.group_names = {"sensor", "dialout"};
    EXPECT_FALSE(is_admin(with, other)) << "admin: false grants nothing";
    // The admin-only rule applies to the peer (it passes hello) but grants no topic.
    peer ops{.uid = 1500, .gid = 1500, .groups = {}, .user = "ops", .group_names = {"iot"}, .unit = {}};
    EXPECT_TRUE(is_admin(with, ops));
    const auto g = grants_for(with, ops, "gw2");
    EXPECT_EQ(g.rules, std::vector<std::string>{"ops"});
    EXPECT_TRUE(g.publish.empty() && g.subscribe.empty() && g.receive.empty());
}

}  // namespace
