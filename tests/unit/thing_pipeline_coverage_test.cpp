// Coverage filters in a Thing's pipeline (docs/config.md things[].coverage,
// docs/services.md), with a fake upstream: tests count the SUBSCRIBEs and UNSUBSCRIBEs
// that go upstream, the answers each app gets and the deliveries.
#include "pipeline_fakes.hpp"

#include <gmock/gmock.h>

namespace thingmux::thing::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A rig whose Thing has `coverage` (set as a configuration reload does).
void cover(pipeline_rig& rig, std::vector<std::string> coverage) {
    auto settings = rig.pipe->settings();
    settings.coverage = std::move(coverage);
    rig.pipe->reconfigure(std::move(settings), {});
}

// Grants every SUBSCRIBE not answered yet.
void answer_all(pipeline_rig& rig) {
    for (std::size_t i = 0; i < rig.up.subscribes.size(); ++i) {
        if (rig.up.subscribes[i].done) rig.up.answer_subscribe(i);
    }
}

std::size_t delivered(const recording_session& s, const std::string& topic) {
    return static_cast<std::size_t>(
        std::count_if(s.delivered.begin(), s.delivered.end(), [&](const auto& d) { return d.topic == topic; }));
}

// Three apps hold 30 filters under two coverage filters, with the connection's quota at 2 and the
// default subscription rate: two SUBSCRIBEs go upstream, every filter is granted once they are
// acknowledged, later ones at once, and each message reaches exactly the apps whose filters
// match it, once.
TEST(PipelineCoverage, FiltersUnderCoverageFiltersShareTheirUpstreamSubscriptions) {
    auto limits = pipeline_rig::unlimited();
    limits.subscriptions = 2;
    limits.subscriptions_per_second = 50;
    pipeline_rig rig(limits);
    cover(rig, {"dt/cmd/#", "dt/cfg/#"});
    rig.connect();
    std::vector<std::shared_ptr<recording_session>> apps{rig.session(1), rig.session(2), rig.session(3)};
    for (std::uint32_t a = 0; a < apps.size(); ++a) {
        std::vector<std::string> filters;
        for (int i = 0; i < 5; ++i) filters.push_back("dt/cmd/" + std::to_string(a) + "/" + std::to_string(i));
        for (std::uint32_t i = 0; i < 4; ++i) filters.push_back("dt/cfg/+/" + std::to_string(a + i));
        filters.emplace_back("dt/cmd/all/#");
        rig.subscribe(apps[a], 1, filters);
    }
    ASSERT_THAT(rig.up.subscribed_filters(), ElementsAre("dt/cmd/#", "dt/cfg/#"));
    for (const auto& app : apps) EXPECT_FALSE(app->subscribed.contains(1)) << "answered before the SUBACK";
    answer_all(rig);
    for (const auto& app : apps) {
        ASSERT_EQ(app->subscribed[1].size(), 10U);
        for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(app->subscribe_code(1, i), ipc::errc::ok) << app->subscribed[1][i].message;
    }
    // At the quota, the subscription rate's check does not count filters that need no SUBSCRIBE.
    rig.subscribe(apps[0], 2, {"dt/cmd/late/+", "dt/other"});
    EXPECT_EQ(apps[0]->subscribe_code(2, 0), ipc::errc::ok);
    EXPECT_EQ(apps[0]->subscribe_code(2, 1), ipc::errc::quota_exceeded);
    EXPECT_EQ(rig.up.subscribed_filters().size(), 2U);
    EXPECT_THAT(rig.pipe->status().upstream_filters, ElementsAre("dt/cfg/#", "dt/cmd/#"));

    rig.inbound("dt/cmd/1/3");    // app 1's
    rig.inbound("dt/cfg/x/3");    // apps 0 (0+3), 1 (1+2), 2 (2+1)
    rig.inbound("dt/cmd/all/x");  // everyone's
    rig.inbound("dt/cmd/none");   // under a coverage filter, nobody's
    EXPECT_EQ(delivered(*apps[0], "dt/cmd/1/3"), 0U);
    EXPECT_EQ(delivered(*apps[1], "dt/cmd/1/3"), 1U);
    EXPECT_EQ(delivered(*apps[2], "dt/cmd/1/3"), 0U);
    for (const auto& app : apps) {
        EXPECT_EQ(delivered(*app, "dt/cfg/x/3"), 1U);
        EXPECT_EQ(delivered(*app, "dt/cmd/all/x"), 1U);
        EXPECT_EQ(delivered(*app, "dt/cmd/none"), 0U);
    }
    EXPECT_EQ(rig.counters.unrouted, 1U);

    // The last filter under dt/cfg/# goes: so does dt/cfg/#.
    for (std::uint32_t a = 0; a < apps.size(); ++a) {
        std::vector<std::string> cfg;
        for (std::uint32_t i = 0; i < 4; ++i) cfg.push_back("dt/cfg/+/" + std::to_string(a + i));
        rig.pipe->unsubscribe(apps[a], 3, cfg);
    }
    EXPECT_THAT(rig.up.unsubscribed, ElementsAre("dt/cfg/#"));
}

// A refused coverage filter: every app whose filter waited for it gets broker_refused with the
// broker's code and holds nothing; a later filter under it asks the broker again and gets its
// refusal too. Filters elsewhere are not touched.
TEST(PipelineCoverage, ARefusedCoverageFilterReachesEveryAppThatAskedUnderIt) {
    pipeline_rig rig;
    cover(rig, {"dt/secret/#"});
    rig.connect();
    auto a = rig.session(1);
    auto b = rig.session(2);
    rig.subscribe(a, 1, {"dt/secret/x", "dt/open"});
    rig.subscribe(b, 1, {"dt/secret/+/y"});
    ASSERT_THAT(rig.up.subscribed_filters(), ElementsAre("dt/secret/#", "dt/open"));
    rig.up.answer_subscribe(0, {0x87, 1});
    EXPECT_EQ(a->subscribe_code(1, 0), ipc::errc::broker_refused);
    EXPECT_EQ(a->subscribed[1][0].mqtt_reason_code, 0x87);
    EXPECT_EQ(a->subscribe_code(1, 1), ipc::errc::ok);
    EXPECT_EQ(b->subscribe_code(1, 0), ipc::errc::broker_refused);
    EXPECT_EQ(b->subscribed[1][0].mqtt_reason_code, 0x87);
    EXPECT_THAT(rig.pipe->filters_of(a->flow()), ElementsAre("dt/open"));
    EXPECT_THAT(rig.pipe->filters_of(b->flow()), IsEmpty());

    rig.subscribe(b, 2, {"dt/secret/z"});
    ASSERT_EQ(rig.up.subscribes.size(), 2U);
    EXPECT_THAT(rig.up.subscribes[1].filters, ElementsAre("dt/secret/#"));
    rig.up.answer_subscribe(1, {0x80});
    EXPECT_EQ(b->subscribe_code(2, 0), ipc::errc::broker_refused);
    EXPECT_EQ(b->subscribed[2][0].mqtt_reason_code, 0x80);
    EXPECT_THAT(rig.pipe->status().upstream_filters, ElementsAre("dt/open"));
}

// A reload adds a coverage filter: it is subscribed, and what it replaces is unsubscribed once it
// is acknowledged (a message meanwhile still arrives through the old filters). Removing it again
// brings the filters back before it goes.
TEST(PipelineCoverage, ReloadSwitchesBetweenOwnFiltersAndTheCoverageFilterWithoutAGap) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    rig.subscribe(a, 1, {"dt/cmd/a", "dt/cmd/b/+"});
    rig.up.answer_subscribe(0);
    ASSERT_EQ(a->subscribe_code(1, 1), ipc::errc::ok);

    cover(rig, {"dt/cmd/#"});
    ASSERT_EQ(rig.up.subscribes.size(), 2U);
    EXPECT_THAT(rig.up.subscribes[1].filters, ElementsAre("dt/cmd/#"));
    EXPECT_THAT(rig.up.unsubscribed, IsEmpty());
    rig.inbound("dt/cmd/a");
    rig.up.answer_subscribe(1);
    EXPECT_THAT(rig.up.unsubscribed, ElementsAre("dt/cmd/a", "dt/cmd/b/+"));
    rig.inbound("dt/cmd/b/1");
    EXPECT_EQ(delivered(*a, "dt/cmd/a"), 1U);
    EXPECT_EQ(delivered(*a, "dt/cmd/b/1"), 1U);

    cover(rig, {});
    ASSERT_EQ(rig.up.subscribes.size(), 3U);
    EXPECT_THAT(rig.up.subscribes[2].filters, ElementsAre("dt/cmd/a", "dt/cmd/b/+"));
    EXPECT_EQ(rig.up.unsubscribed.size(), 2U) << "dt/cmd/# serves them until they are acknowledged";
    rig.up.answer_subscribe(2);
    EXPECT_EQ(rig.up.unsubscribed.back(), "dt/cmd/#");
    EXPECT_THAT(rig.pipe->status().upstream_filters, ElementsAre("dt/cmd/a", "dt/cmd/b/+"));
}

}  // namespace
}  // namespace thingmux::thing::testing
