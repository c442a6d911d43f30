// Per-app counters (daemon/metrics/app_counters.hpp) and the link failure classes
// (daemon/metrics/link_reasons.hpp): an app is its Thing, rule, unit and uid; past the cap, new
// ones count together as "other"; reasons come from a fixed set, never from a peer's words.
#include "daemon/metrics/app_counters.hpp"
#include "daemon/metrics/link_reasons.hpp"
#include "daemon/uplink/error.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <system_error>

namespace {

using namespace thingmux;
using namespace thingmux::metrics;

class fake_session final : public thing::local_session {
public:
    fake_session(std::vector<std::string> rules, std::optional<uid_t> uid, std::string unit)
        : owner_{.uid = uid, .unit = std::move(unit)} {
        rights_.rules = std::move(rules);
    }
    [[nodiscard]] thing::session_id flow() const override { return thing::session_id{1}; }
    [[nodiscard]] std::string describe() const override { return "fake"; }
    [[nodiscard]] std::string peer_description() const override { return "fake"; }
    [[nodiscard]] const config::grants& rights() const override { return rights_; }
    [[nodiscard]] thing::denial_log& denials() override { return denials_; }
    [[nodiscard]] thing::session_owner owner() const override { return owner_; }
    void publish_done(std::uint32_t, ipc::result) override {}
    void subscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
    void unsubscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
    bool deliver(thing::inbound_message&, std::uint8_t) override { return false; }
    void link_changed(const ipc::state&) override {}
    void set_rules(std::vector<std::string> rules) { rights_.rules = std::move(rules); }

private:
    config::grants rights_;
    thing::denial_log denials_;
    thing::session_owner owner_;
};

ipc::result result_of(ipc::errc code) { return {.code = code, .mqtt_reason_code = 0, .message = {}}; }

TEST(MetricsAppCounters, CountsByAppAndResult) {
    app_counters c;
    fake_session sensor({"sensors", "all"}, 1000, "sensor.service");
    fake_session nobody({}, std::nullopt, "");
    c.publish_result("gw", sensor, result_of(ipc::errc::ok), 10);
    c.publish_result("gw", sensor, result_of(ipc::errc::ok), 5);
    c.publish_result("gw", sensor, result_of(ipc::errc::not_authorized), 7);
    c.throttled("gw", sensor);
    c.publish_result("gw", nobody, result_of(ipc::errc::spooled), 3);
    ASSERT_EQ(c.all().size(), 2U);
    const auto& s = c.all().at({.thing = "gw", .app = "sensors", .unit = "sensor.service", .uid = "1000"});
    EXPECT_EQ(s.results.at("ok").publishes, 2U);
    EXPECT_EQ(s.results.at("ok").bytes, 15U);
    EXPECT_EQ(s.results.at("not_authorized").publishes, 1U);
    EXPECT_EQ(s.throttle_waits, 1U);
    const auto& n = c.all().at({.thing = "gw", .app = "-", .unit = "", .uid = ""});
    EXPECT_EQ(n.results.at("spooled").publishes, 1U);
}

TEST(MetricsAppCounters, CardinalityIsCapped) {
    app_counters c(3);
    std::vector<std::unique_ptr<fake_session>> sessions;
    for (int i = 0; i < 100; ++i) {
        sessions.push_back(std::make_unique<fake_session>(std::vector<std::string>{"jobs"}, 1000,
                                                          "run-u" + std::to_string(i) + ".service"));
        c.publish_result("gw", *sessions.back(), result_of(ipc::errc::ok), 1);
    }
    // Three of their own, and one "other" for the rest, which keeps counting them all.
    ASSERT_EQ(c.all().size(), 4U);
    const auto& other = c.all().at({.thing = "gw", .app = "jobs", .unit = "other", .uid = "other"});
    EXPECT_EQ(other.results.at("ok").publishes, 97U);
    // One counted before the cap keeps its own series.
    c.publish_result("gw", *sessions.front(), result_of(ipc::errc::ok), 1);
    EXPECT_EQ(c.all().at({.thing = "gw", .app = "jobs", .unit = "run-u0.service", .uid = "1000"}).results.at("ok").publishes, 2U);
}

// A reload may give a session another rule: its next results count under that one.
TEST(MetricsAppCounters, ASessionWhoseRuleChangedCountsUnderTheNewOne) {
    app_counters c;
    fake_session s({"sensors"}, 1000, "sensor.service");
    c.publish_result("gw", s, result_of(ipc::errc::ok), 1);
    s.set_rules({"fleet"});
    c.publish_result("gw", s, result_of(ipc::errc::ok), 1);
    c.publish_result("gw2", s, result_of(ipc::errc::ok), 1);
    ASSERT_EQ(c.all().size(), 3U);
    EXPECT_EQ(c.all().at({.thing = "gw", .app = "sensors", .unit = "sensor.service", .uid = "1000"}).results.at("ok").publishes, 1U);
    EXPECT_EQ(c.all().at({.thing = "gw", .app = "fleet", .unit = "sensor.service", .uid = "1000"}).results.at("ok").publishes, 1U);
    EXPECT_EQ(c.all().at({.thing = "gw2", .app = "fleet", .unit = "sensor.service", .uid = "1000"}).results.at("ok").publishes, 1U);
}

TEST(MetricsLinkReasons, FixedSet) {
    const auto known = [](std::string_view r) {
        return std::find(link_failure_reasons.begin(), link_failure_reasons.end(), r) != link_failure_reasons.end();
    };
    EXPECT_EQ(classify_link_failure({}, true), "takeover");
    EXPECT_EQ(classify_link_failure(uplink::make_error_code(uplink::errc::server_certificate_untrusted), false), "tls");
    EXPECT_EQ(classify_link_failure(uplink::make_error_code(uplink::errc::broker_refused_permanently), false), "not_authorized");
    EXPECT_EQ(classify_link_failure(uplink::make_error_code(uplink::errc::closed_by_broker), false), "closed_by_broker");
    EXPECT_EQ(classify_link_failure(uplink::make_error_code(uplink::errc::timed_out), false), "timeout");
    EXPECT_EQ(classify_link_failure(std::make_error_code(std::errc::connection_refused), false), "network");
    EXPECT_EQ(classify_link_failure(std::make_error_code(std::errc::timed_out), false), "timeout");
    EXPECT_EQ(classify_link_failure({}, false), "other");
    // Every value of the uplink's enum, and values it may gain, land in the set.
    for (int v = 0; v < 200; ++v)
        EXPECT_TRUE(known(classify_link_failure({v, uplink::uplink_category()}, false))) << v;
}

}  // namespace
