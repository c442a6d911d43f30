// Shared subscriptions in a Thing's pipeline ("$share/NAME/FILTER", MQTT 5 section 4.8.2, as
// docs/local-mqtt.md describes them), with a fake upstream and recording sessions: one upstream
// subscription to FILTER serves the group and every plain subscriber; each message goes to one
// member, in turn; members that cannot take it are skipped; nothing a member did not acknowledge
// is lost when it ends while another member is there. Tests count deliveries per session.
#include "pipeline_fakes.hpp"

#include <gmock/gmock.h>

#include <set>
#include <tuple>

namespace thingmux::thing::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::string workers = "$share/workers/dt/cmd/#";

std::size_t shared_count(const recording_session& s, const std::string& share = workers) {
    return static_cast<std::size_t>(
        std::count_if(s.delivered.begin(), s.delivered.end(), [&](const auto& d) { return d.share == share; }));
}

// Connects the rig and makes `n` sessions (ids 1..n) members of $share/workers/dt/cmd/#, the
// upstream SUBSCRIBE answered.
std::vector<std::shared_ptr<recording_session>> workers_in(pipeline_rig& rig, std::uint64_t n) {
    rig.connect();
    std::vector<std::shared_ptr<recording_session>> out;
    for (std::uint64_t id = 1; id <= n; ++id) {
        out.push_back(rig.session(id));
        rig.subscribe(out.back(), 1, {workers});
    }
    rig.up.answer_subscribe(0);
    return out;
}

// Sends `n` numbered QoS 1 messages on dt/cmd/go from the broker; each is acknowledged upstream.
void cloud_sends(pipeline_rig& rig, int n, int first = 0) {
    for (int i = first; i < first + n; ++i)
        rig.inbound("dt/cmd/go", mqtt::inbound_ticket{.connection = 1, .packet_id = static_cast<std::uint16_t>(i + 1)},
                    std::to_string(i));
}

// One upstream SUBSCRIBE of the plain filter serves three members and a plain subscriber; 300
// messages: the plain subscriber gets 300, the members 100 each, each message one member.
TEST(PipelineShare, MembersTakeTurnsBesidePlainSubscribersOnOneUpstreamSubscription) {
    pipeline_rig rig;
    const auto members = workers_in(rig, 3);
    auto plain = rig.session(4);
    rig.subscribe(plain, 1, {"dt/cmd/#"});
    EXPECT_THAT(rig.up.subscribed_filters(), ElementsAre("dt/cmd/#"));
    EXPECT_EQ(plain->subscribe_code(1), ipc::errc::ok);
    for (auto& m : members) EXPECT_EQ(m->subscribe_code(1), ipc::errc::ok);
    EXPECT_EQ(members[0]->subscribed[1][0].mqtt_reason_code, 1);
    EXPECT_THAT(rig.pipe->status().upstream_filters, ElementsAre("dt/cmd/#"));
    EXPECT_THAT(rig.pipe->filters_of(members[0]->flow()), ElementsAre(workers));

    cloud_sends(rig, 300);
    EXPECT_EQ(plain->delivered.size(), 300U);
    std::set<std::string> seen;
    for (auto& m : members) {
        EXPECT_EQ(shared_count(*m), 100U);
        EXPECT_EQ(m->delivered.size(), 100U);
        for (const auto& d : m->delivered) {
            EXPECT_EQ(d.qos, 1);
            seen.insert(d.payload);
        }
    }
    EXPECT_EQ(seen.size(), 300U) << "each message went to exactly one member";
    EXPECT_EQ(rig.up.acknowledged.size(), 300U);
    EXPECT_EQ(rig.counters.deliveries, 600U);
}

// The group is one holder of its filter: the filter goes upstream once, and leaves only when
// the last member and the last plain subscriber are gone (architecture.md, reference counting).
TEST(PipelineShare, TheGroupHoldsItsFilterLikeOneMoreSubscriber) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    auto b = rig.session(2);
    auto plain = rig.session(3);
    rig.subscribe(a, 1, {workers});
    rig.subscribe(b, 1, {workers, "$share/other/dt/cmd/#"});
    rig.subscribe(plain, 1, {"dt/cmd/#"});
    ASSERT_EQ(rig.up.subscribes.size(), 1U);
    rig.up.answer_subscribe(0);
    EXPECT_EQ(b->subscribe_code(1, 1), ipc::errc::ok);

    rig.pipe->unsubscribe(a, 2, {workers, workers});
    EXPECT_EQ(a->unsubscribed[2][0].mqtt_reason_code, mqtt::reason::success);
    EXPECT_EQ(a->unsubscribed[2][1].mqtt_reason_code, mqtt::reason::no_subscription_existed);
    rig.pipe->detach(plain->flow());
    rig.pipe->unsubscribe(b, 2, {workers});
    EXPECT_THAT(rig.up.unsubscribed, IsEmpty()) << "group 'other' still holds it";
    rig.pipe->unsubscribe(b, 3, {"$share/other/dt/cmd/#"});
    EXPECT_THAT(rig.up.unsubscribed, ElementsAre("dt/cmd/#"));
    EXPECT_THAT(rig.pipe->status().upstream_filters, IsEmpty());
    EXPECT_THAT(rig.pipe->filters_of(b->flow()), IsEmpty());
}

// MQTT 5 section 4.8.2: several groups on one filter each get one copy; a session that is a
// member and also subscribed plainly gets both.
TEST(PipelineShare, EachGroupGetsOneCopyAndAPlainSubscriptionItsOwn) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    auto b = rig.session(2);
    rig.subscribe(a, 1, {workers, "$share/audit/dt/#", "dt/cmd/go"});
    rig.subscribe(b, 1, {workers, "$share/audit/dt/#"});
    for (std::size_t i = 0; i < rig.up.subscribes.size(); ++i) rig.up.answer_subscribe(i);
    cloud_sends(rig, 10);
    EXPECT_EQ(shared_count(*a) + shared_count(*b), 10U);
    EXPECT_EQ(shared_count(*a, "$share/audit/dt/#") + shared_count(*b, "$share/audit/dt/#"), 10U);
    EXPECT_EQ(shared_count(*a, ""), 10U) << "a's plain subscription gets every message";
    EXPECT_EQ(a->delivered.size() + b->delivered.size(), 30U);
}

// A member that cannot take a message (cut off) is skipped: the next one gets it. Only when no
// member can take it is it dropped, and counted.
TEST(PipelineShare, AMemberThatCannotTakeAMessageIsSkipped) {
    pipeline_rig rig;
    const auto members = workers_in(rig, 3);
    const auto& [a, b, c] = std::tie(members[0], members[1], members[2]);
    b->accepting = false;
    cloud_sends(rig, 30);
    EXPECT_EQ(a->delivered.size() + c->delivered.size(), 30U);
    EXPECT_EQ(a->delivered.size(), 15U);
    EXPECT_TRUE(b->delivered.empty());
    EXPECT_EQ(rig.pipe->status().shared_dropped, 0U);

    a->accepting = false;
    c->accepting = false;
    cloud_sends(rig, 5, 30);
    EXPECT_EQ(rig.pipe->status().shared_dropped, 5U);
    EXPECT_EQ(rig.up.acknowledged.size(), 35U) << "the broker never waits for a group";
}

// Turns survive members coming and going: the member whose turn is next keeps it when another
// leaves, and one that joins takes its place at the end of the round.
TEST(PipelineShare, TheTurnStaysFairWhenMembersComeAndGo) {
    pipeline_rig rig;
    const auto members = workers_in(rig, 3);
    const auto& [a, b, c] = std::tie(members[0], members[1], members[2]);
    cloud_sends(rig, 1);  // a; b is next
    rig.pipe->unsubscribe(a, 2, {workers});
    cloud_sends(rig, 1, 1);
    EXPECT_EQ(b->delivered.size(), 1U);
    auto d = rig.session(4);
    rig.subscribe(d, 1, {workers});
    cloud_sends(rig, 3, 2);  // c, d, b
    EXPECT_EQ(a->delivered.size(), 1U);
    EXPECT_EQ(b->delivered.size(), 2U);
    EXPECT_EQ(c->delivered.size(), 1U);
    EXPECT_EQ(d->delivered.size(), 1U);
    rig.pipe->detach(c->flow());  // d is next
    cloud_sends(rig, 2, 5);
    EXPECT_EQ(d->delivered.size(), 2U);
    EXPECT_EQ(b->delivered.size(), 3U);
}

// A member whose connection is cut off while a message is handed to it: its session ends inside
// deliver() (as an MQTT client's does when its queue is full), before deliver() answers false.
class member_cut_off_on_delivery final : public local_session {
public:
    member_cut_off_on_delivery(pipeline& p, std::uint64_t id) : pipe_(p), id_{id} {}
    std::vector<shared_leftover> leftovers;

    [[nodiscard]] session_id flow() const override { return id_; }
    [[nodiscard]] std::string describe() const override { return "cut-off member"; }
    [[nodiscard]] std::string peer_description() const override { return "uid 1000"; }
    [[nodiscard]] const config::grants& rights() const override { return rights_; }
    [[nodiscard]] denial_log& denials() override { return denials_; }
    void publish_done(std::uint32_t, ipc::result) override {}
    void subscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
    void unsubscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
    bool deliver(inbound_message&, std::uint8_t) override {
        pipe_.detach(id_);
        return false;
    }
    void link_changed(const ipc::state&) override {}
    [[nodiscard]] bool takes_shared_subscriptions() const override { return true; }
    [[nodiscard]] std::vector<shared_leftover> take_shared_leftovers() override { return std::exchange(leftovers, {}); }

private:
    pipeline& pipe_;
    session_id id_;
    config::grants rights_ = grants_under("dt");
    denial_log denials_;
};

// The groups change while a message is being offered (a member ends inside deliver()): the
// message goes on to the next member, and what the ended member held goes to the others too;
// when it was the last member, the message is dropped and the group's filter released.
TEST(PipelineShare, AMemberEndingWhileAMessageIsOfferedLosesNothing) {
    pipeline_rig rig;
    rig.connect();
    auto ending = std::make_shared<member_cut_off_on_delivery>(*rig.pipe, 1);
    ending->leftovers.push_back(
        {workers, mqtt::publish{.topic = "dt/cmd/go", .payload = "held", .qos = mqtt::qos::at_least_once}});
    rig.pipe->attach(ending);
    auto b = rig.session(2);
    rig.pipe->subscribe(ending, 1, {ipc::subscription{.filter = workers, .max_qos = 1}});
    rig.subscribe(b, 1, {workers});
    rig.up.answer_subscribe(0);
    cloud_sends(rig, 1);
    ASSERT_EQ(b->delivered.size(), 2U);
    EXPECT_EQ(b->delivered[0].payload, "held");
    EXPECT_EQ(b->delivered[1].payload, "0");
    EXPECT_THAT(rig.pipe->filters_of(ending->flow()), IsEmpty());
    EXPECT_EQ(rig.pipe->status().shared_dropped, 0U);

    auto last = std::make_shared<member_cut_off_on_delivery>(*rig.pipe, 3);
    rig.pipe->attach(last);
    rig.pipe->subscribe(last, 1, {ipc::subscription{.filter = "$share/alone/dt/cmd/#", .max_qos = 1}});
    rig.pipe->detach(b->flow());
    cloud_sends(rig, 1, 1);
    EXPECT_EQ(rig.pipe->status().shared_dropped, 1U);
    EXPECT_THAT(rig.up.unsubscribed, ElementsAre("dt/cmd/#"));
}

// A member whose app is away (a kept session without a connection) gets a message only when no
// member that is there takes it; with none there, the away ones take turns.
TEST(PipelineShare, MembersThatAreThereComeFirst) {
    pipeline_rig rig;
    const auto members = workers_in(rig, 2);
    const auto& [away, there] = std::tie(members[0], members[1]);
    away->present = false;
    cloud_sends(rig, 10);
    EXPECT_EQ(there->delivered.size(), 10U);
    EXPECT_TRUE(away->delivered.empty());
    there->accepting = false;
    cloud_sends(rig, 4, 10);
    EXPECT_EQ(away->delivered.size(), 4U);
}

// The app rules: subscribing to a shared subscription needs the subscribe grant of its filter;
// each member needs the receive grant of the topic, or the next member gets it.
TEST(PipelineShare, AppRulesLookAtTheFilterAndAtEachMember) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    auto narrow = std::make_shared<recording_session>(
        2, config::grants{.rules = {"narrow"}, .publish = {}, .subscribe = {"dt/#"}, .receive = {"dt/public/#"}});
    rig.pipe->attach(narrow);
    rig.subscribe(a, 1, {"$share/g/dt/#", "$share/g/other/#"});
    rig.subscribe(narrow, 1, {"$share/g/dt/#"});
    EXPECT_THAT(rig.up.subscribed_filters(), ElementsAre("dt/#"));
    rig.up.answer_subscribe(0);
    EXPECT_EQ(a->subscribe_code(1, 1), ipc::errc::not_authorized);
    for (int i = 0; i < 4; ++i) rig.inbound("dt/secret");
    EXPECT_EQ(a->delivered.size(), 4U);
    EXPECT_TRUE(narrow->delivered.empty());
    rig.inbound("dt/public/x");
    rig.inbound("dt/public/x");
    EXPECT_EQ(narrow->delivered.size(), 1U);
}

// Quotas count a shared subscription as its filter: a session's memberships count toward
// ipc.client_subscriptions; groups on a filter already held cost no upstream subscription;
// a new filter needs room in limits.subscriptions. A share name is bounded like a topic.
TEST(PipelineShare, QuotasCountTheFilter) {
    auto limits = pipeline_rig::unlimited();
    limits.subscriptions = 2;
    limits.max_topic_length = 16;
    pipeline_rig rig(limits, session_rules{.max_subscriptions = 3, .max_pending_publishes = 10});
    rig.connect();
    auto a = rig.session(1);
    rig.subscribe(a, 1, {"dt/a", "$share/g/dt/a", "$share/g/dt/b", "$share/h/dt/c"});
    EXPECT_THAT(a->subscribed, IsEmpty());  // waits for the SUBACK
    rig.up.answer_subscribe(0);
    EXPECT_EQ(a->subscribe_code(1, 3), ipc::errc::quota_exceeded);
    EXPECT_EQ(a->subscribe_code(1, 1), ipc::errc::ok);
    EXPECT_EQ(a->subscribe_code(1, 2), ipc::errc::ok);
    EXPECT_THAT(a->subscribed[1][3].message, HasSubstr("ipc.client_subscriptions"));
    auto b = rig.session(2);
    rig.subscribe(b, 1, {"$share/h/dt/a", "$share/h/dt/c", "$share/a-name-longer-than-16/dt/a"});
    EXPECT_EQ(b->subscribe_code(1, 0), ipc::errc::ok) << "dt/a is held upstream already";
    EXPECT_EQ(b->subscribe_code(1, 1), ipc::errc::quota_exceeded);
    EXPECT_THAT(b->subscribed[1][1].message, HasSubstr("limits.subscriptions"));
    EXPECT_EQ(b->subscribe_code(1, 2), ipc::errc::invalid_filter);
    EXPECT_THAT(b->subscribed[1][2].message, HasSubstr("share name is 21 bytes"));
    EXPECT_EQ(rig.pipe->status().upstream_filters.size(), 2U);
}

// A front end that cannot tell a group's messages from its others (libthingmux over IPC
// dispatches by topic) does not get shared subscriptions: refused clearly, nothing upstream.
TEST(PipelineShare, FrontEndsWithoutSharedSubscriptionsAreRefused) {
    pipeline_rig rig;
    rig.connect();
    auto ipc_app = rig.session(1);
    ipc_app->shares = false;
    rig.subscribe(ipc_app, 1, {workers});
    EXPECT_EQ(ipc_app->subscribe_code(1), ipc::errc::invalid_filter);
    EXPECT_EQ(ipc_app->subscribed[1][0].mqtt_reason_code, mqtt::reason::shared_subscriptions_not_supported);
    EXPECT_THAT(ipc_app->subscribed[1][0].message, HasSubstr("local MQTT face only"));
    EXPECT_THAT(rig.up.subscribes, IsEmpty());
}

// MQTT 5 section 4.8.2: a member's session ends with messages it took and never acknowledged:
// they go to the other members. With no other member they are dropped and counted.
TEST(PipelineShare, WhatAnEndedMemberNeverAcknowledgedGoesToTheOthers) {
    pipeline_rig rig;
    const auto members = workers_in(rig, 2);
    const auto& [a, b] = std::tie(members[0], members[1]);
    for (int i = 0; i < 3; ++i)
        a->leftovers.push_back({workers, mqtt::publish{.topic = "dt/cmd/go",
                                                       .payload = "left-" + std::to_string(i),
                                                       .qos = mqtt::qos::at_least_once}});
    a->leftovers.push_back(
        {"$share/gone/dt/#", mqtt::publish{.topic = "dt/x", .payload = "x", .qos = mqtt::qos::at_least_once}});
    rig.pipe->detach(a->flow());
    ASSERT_EQ(b->delivered.size(), 3U);
    EXPECT_EQ(b->delivered[0].payload, "left-0");
    EXPECT_EQ(b->delivered[2].share, workers);
    EXPECT_EQ(rig.pipe->status().shared_dropped, 1U) << "group 'gone' has no member left";

    b->leftovers.push_back(
        {workers, mqtt::publish{.topic = "dt/cmd/go", .payload = "last", .qos = mqtt::qos::at_least_once}});
    rig.pipe->detach(b->flow());
    EXPECT_EQ(rig.pipe->status().shared_dropped, 2U);
    EXPECT_THAT(rig.up.unsubscribed, ElementsAre("dt/cmd/#"));
}

// A member subscribed at QoS 0 gets its messages at QoS 0; the group's other members at theirs.
TEST(PipelineShare, EachMemberGetsItsOwnQos) {
    pipeline_rig rig;
    rig.connect();
    auto q0 = rig.session(1);
    auto q1 = rig.session(2);
    rig.pipe->subscribe(q0, 1, {ipc::subscription{.filter = workers, .max_qos = 0}});
    rig.subscribe(q1, 1, {workers});
    rig.up.answer_subscribe(0);
    EXPECT_EQ(q0->subscribed[1][0].mqtt_reason_code, 0);
    cloud_sends(rig, 2);
    ASSERT_EQ(q0->delivered.size(), 1U);
    ASSERT_EQ(q1->delivered.size(), 1U);
    EXPECT_EQ(q0->delivered[0].qos, 0);
    EXPECT_EQ(q1->delivered[0].qos, 1);
}

// The broker refuses the filter: the group ends, every member is answered with the refusal.
TEST(PipelineShare, AFilterTheBrokerRefusesEndsTheGroup) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    auto b = rig.session(2);
    rig.subscribe(a, 1, {workers});
    rig.subscribe(b, 1, {workers});
    rig.up.answer_subscribe(0, {mqtt::reason::not_authorized});
    EXPECT_EQ(a->subscribe_code(1), ipc::errc::broker_refused);
    EXPECT_EQ(b->subscribe_code(1), ipc::errc::broker_refused);
    EXPECT_THAT(rig.pipe->filters_of(a->flow()), IsEmpty());
    cloud_sends(rig, 1);
    EXPECT_TRUE(a->delivered.empty());
    EXPECT_EQ(rig.counters.unrouted, 1U);
}

// things[].local_topics: a group on a local filter is held locally; a local publish goes to
// one member and completes as delivered.
TEST(PipelineShare, GroupsOnLocalTopicsStayLocal) {
    pipeline_rig rig(pipeline_rig::unlimited(), {}, nullptr, {"dt/local/#"});
    rig.connect();
    auto a = rig.session(1);
    auto b = rig.session(2);
    auto sender = rig.session(3);
    rig.subscribe(a, 1, {"$share/g/dt/local/#"});
    rig.subscribe(b, 1, {"$share/g/dt/local/#"});
    EXPECT_EQ(a->subscribe_code(1), ipc::errc::ok);
    EXPECT_THAT(rig.up.subscribes, IsEmpty());
    for (std::uint32_t i = 1; i <= 4; ++i) rig.publish(sender, i, "dt/local/x");
    EXPECT_EQ(a->delivered.size(), 2U);
    EXPECT_EQ(b->delivered.size(), 2U);
    EXPECT_EQ(sender->published[1].mqtt_reason_code, mqtt::reason::success);
}

// Hostile: many groups and members within the quotas. 200 sessions each in 10 groups on one
// filter: one upstream subscription, 10 copies per message (one per group), none lost; then
// every session goes and nothing is left.
TEST(PipelineShare, ManyGroupsAndMembersCostOneUpstreamSubscription) {
    pipeline_rig rig(pipeline_rig::unlimited(), session_rules{.max_subscriptions = 10, .max_pending_publishes = 10});
    rig.connect();
    std::vector<std::shared_ptr<recording_session>> sessions;
    for (std::uint64_t id = 1; id <= 200; ++id) {
        sessions.push_back(rig.session(id));
        std::vector<std::string> groups;
        for (int g = 0; g < 11; ++g) groups.push_back("$share/g" + std::to_string(g) + "/dt/cmd/#");
        rig.subscribe(sessions.back(), 1, groups);
    }
    ASSERT_EQ(rig.up.subscribes.size(), 1U);
    rig.up.answer_subscribe(0);
    for (const auto& s : sessions) {
        EXPECT_EQ(s->subscribe_code(1, 9), ipc::errc::ok);
        EXPECT_EQ(s->subscribe_code(1, 10), ipc::errc::quota_exceeded);
    }
    cloud_sends(rig, 100);
    std::size_t total = 0;
    for (const auto& s : sessions) total += s->delivered.size();
    EXPECT_EQ(total, 1000U);
    EXPECT_EQ(rig.pipe->status().shared_dropped, 0U);
    for (const auto& s : sessions) rig.pipe->detach(s->flow());
    EXPECT_THAT(rig.up.unsubscribed, ElementsAre("dt/cmd/#"));
    EXPECT_THAT(rig.pipe->status().upstream_filters, IsEmpty());
}

}  // namespace
}  // namespace thingmux::thing::testing
