// Retained messages and MQTT 5 subscription options in a Thing's pipeline (docs/local-mqtt.md,
// RETAINED MESSAGES): the cache, Retain Handling, Retain As Published and No Local. With a fake
// upstream: every test counts what each session received and what went upstream.
#include "pipeline_fakes.hpp"

#include <gmock/gmock.h>

namespace thingmux::thing::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

void subscribe(pipeline_rig& rig, const std::shared_ptr<recording_session>& s, std::uint32_t request,
               const std::string& filter, subscription_options o = {}) {
    rig.pipe->subscribe(s, request, {{.filter = filter, .max_qos = 1}}, {o});
}

// What the broker sends: a retained message answering a SUBSCRIBE, or a live one.
void from_broker(pipeline_rig& rig, std::string topic, std::string payload, bool retain) {
    rig.pipe->on_message(
        mqtt::publish{
            .topic = std::move(topic), .payload = std::move(payload), .qos = mqtt::qos::at_most_once, .retain = retain},
        std::nullopt);
}

void publish(pipeline_rig& rig, const std::shared_ptr<recording_session>& s, std::uint32_t request, std::string topic,
             std::string payload, bool retain) {
    rig.pipe->publish(s, request,
                      ipc::publish{.request_id = request,
                                   .topic = std::move(topic),
                                   .payload = std::move(payload),
                                   .qos = 1,
                                   .retain = retain,
                                   .props = {}});
}

// `s` subscribes `filter` (upstream), the broker grants it and answers with its retained messages.
void subscribe_upstream(pipeline_rig& rig, const std::shared_ptr<recording_session>& s, const std::string& filter,
                        const std::vector<std::pair<std::string, std::string>>& retained) {
    subscribe(rig, s, 1, filter);
    rig.up.answer_subscribe(rig.up.subscribes.size() - 1);
    for (const auto& [topic, payload] : retained) from_broker(rig, topic, payload, true);
}

std::vector<std::string> received(const recording_session& s) {
    std::vector<std::string> out;
    for (const auto& d : s.delivered) out.push_back(d.topic + "=" + d.payload + (d.retain ? " (retained)" : ""));
    return out;
}

constexpr subscription_options handling(std::uint8_t h) {
    return {.no_local = false, .retain_as_published = false, .retain_handling = h};
}

// The seed scenario: the cloud holds a retained message; A's SUBSCRIBE goes upstream and the
// broker's answer brings it to A; B joins the filter later (nothing goes upstream) and gets it
// once from the cache, after its SUBACK; C with Retain Handling 2 gets none; A no duplicate.
TEST(PipelineRetained, ALaterSubscriberIsServedFromTheCacheOnce) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    subscribe_upstream(rig, a, "dt/state", {{"dt/state", "on"}});
    ASSERT_EQ(rig.up.subscribes.size(), 1U);
    EXPECT_THAT(received(*a), ElementsAre("dt/state=on (retained)"));
    EXPECT_EQ(rig.pipe->retained().size(), 1U);

    auto b = rig.session(2);
    auto c = rig.session(3);
    subscribe(rig, b, 1, "dt/state");
    subscribe(rig, c, 1, "dt/state", handling(2));
    EXPECT_EQ(rig.up.subscribes.size(), 1U);  // nothing more upstream: the broker sends nothing
    EXPECT_THAT(received(*b), ElementsAre("dt/state=on (retained)"));
    EXPECT_EQ(b->delivered[0].answered, 1U);  // after its SUBACK
    EXPECT_THAT(received(*c), IsEmpty());
    EXPECT_EQ(a->delivered.size(), 1U);

    // Live messages reach all three, without the retain flag.
    from_broker(rig, "dt/state", "off", false);
    EXPECT_THAT(received(*c), ElementsAre("dt/state=off"));
    for (const auto* x : {a.get(), b.get()})
        EXPECT_THAT(received(*x), ElementsAre("dt/state=on (retained)", "dt/state=off"));
}

// Retain Handling 0 sends on every SUBSCRIBE, 1 only when the session did not hold the filter.
TEST(PipelineRetained, RetainHandlingDecidesPerSubscribe) {
    pipeline_rig rig;
    rig.connect();
    auto holder = rig.session(1);
    subscribe_upstream(rig, holder, "dt/#", {{"dt/a", "1"}, {"dt/b", "2"}});
    EXPECT_EQ(holder->delivered.size(), 2U);
    auto s = rig.session(2);

    subscribe(rig, s, 1, "dt/+", handling(1));
    EXPECT_EQ(s->delivered.size(), 2U);
    subscribe(rig, s, 2, "dt/+", handling(1));  // held already
    EXPECT_EQ(s->delivered.size(), 2U);
    subscribe(rig, s, 3, "dt/+", handling(0));
    EXPECT_EQ(s->delivered.size(), 4U);
    subscribe(rig, s, 4, "dt/+", handling(2));
    EXPECT_EQ(s->delivered.size(), 4U);
    // Two filters of one SUBSCRIBE that match one topic: it comes once.
    rig.pipe->subscribe(s, 5, {{.filter = "dt/a", .max_qos = 1}, {.filter = "dt/#", .max_qos = 1}});
    EXPECT_EQ(rig.up.subscribes.size(), 2U);  // "dt/a" goes upstream itself: the broker answers it
    EXPECT_EQ(s->delivered.size(), 6U);       // "dt/#" is held already: dt/a and dt/b from the cache
    EXPECT_EQ(rig.counters.deliveries, 2U + 6U);
}

// A SUBSCRIBE the broker will answer brings the broker's retained messages to the sessions whose
// subscriptions waited for it only: not again from the cache, and not to the sessions that held
// a matching subscription before (they had them).
TEST(PipelineRetained, TheBrokersRetainedMessagesGoOnlyToNewSubscriptions) {
    pipeline_rig rig;
    rig.connect();
    auto wide = rig.session(1);
    subscribe_upstream(rig, wide, "dt/#", {{"dt/x", "v"}});
    ASSERT_EQ(wide->delivered.size(), 1U);
    auto exact = rig.session(2);
    auto early = rig.session(3);

    // "dt/x" goes upstream itself (only its own SUBSCRIBE brings its retained message from AWS IoT Core).
    subscribe(rig, exact, 1, "dt/x");
    subscribe(rig, early, 1, "dt/x");  // before the SUBACK: waits for the same answer
    ASSERT_EQ(rig.up.subscribes.size(), 2U);
    EXPECT_THAT(rig.up.subscribes[1].filters, ElementsAre("dt/x"));
    EXPECT_THAT(received(*exact), IsEmpty());  // not from the cache: the broker answers
    rig.up.answer_subscribe(1);
    from_broker(rig, "dt/x", "v", true);
    EXPECT_THAT(received(*exact), ElementsAre("dt/x=v (retained)"));
    EXPECT_THAT(received(*early), ElementsAre("dt/x=v (retained)"));
    EXPECT_EQ(wide->delivered.size(), 1U);

    // A reconnect: the broker sends its retained messages again, for nobody; the cache learns.
    rig.pipe->on_link(link_of(ipc::link_state::backing_off));
    rig.connect();
    from_broker(rig, "dt/x", "v2", true);
    EXPECT_EQ(wide->delivered.size(), 1U);
    EXPECT_EQ(exact->delivered.size(), 1U);
    EXPECT_EQ(early->delivered.size(), 1U);
    auto late = rig.session(4);
    subscribe(rig, late, 1, "dt/x");
    EXPECT_THAT(received(*late), ElementsAre("dt/x=v2 (retained)"));
    EXPECT_EQ(rig.counters.unrouted, 0U);
}

// A live message that differs from the cached one deletes the entry: it may be a retained message
// whose flag the broker cleared, and a later subscriber must not get an older value.
TEST(PipelineRetained, ADifferentLiveMessageDeletesTheCachedOne) {
    pipeline_rig rig;
    rig.connect();
    auto a = rig.session(1);
    subscribe_upstream(rig, a, "dt/x", {{"dt/x", "v1"}});
    from_broker(rig, "dt/x", "v1", false);  // the same content: kept
    EXPECT_EQ(rig.pipe->retained().size(), 1U);
    from_broker(rig, "dt/x", "v2", false);
    EXPECT_EQ(rig.pipe->retained().size(), 0U);
    auto b = rig.session(2);
    subscribe(rig, b, 1, "dt/x");
    EXPECT_THAT(b->delivered, IsEmpty());
    EXPECT_EQ(a->delivered.size(), 3U);
}

// A local retained publish is cached once the broker acknowledged it or the spool took it; a
// refused one, one on AWS IoT Core's reserved topics and one with an empty payload are not.
TEST(PipelineRetained, LocalRetainedPublishesAreCachedOnceAccepted) {
    temporary_spool spool;
    pipeline_rig rig(pipeline_rig::unlimited(), {}, spool.get());
    rig.connect();
    auto holder = rig.session(1);
    auto app = std::make_shared<recording_session>(2, config::grants{.rules = {"test"},
                                                                     .publish = {"dt/#", "$aws/things/gateway-01/#"},
                                                                     .subscribe = {"dt/#"},
                                                                     .receive = {"dt/#"}});
    rig.pipe->attach(app);
    subscribe(rig, holder, 1, "dt/#");
    rig.up.answer_subscribe(0);

    publish(rig, app, 1, "dt/a", "1", true);
    publish(rig, app, 2, "dt/b", "2", true);
    publish(rig, app, 3, "$aws/things/gateway-01/shadow/update", "{}", true);
    EXPECT_EQ(rig.pipe->retained().size(), 0U);  // not before the broker's answer
    rig.up.answer_publish(0);
    rig.up.answer_publish(1, mqtt::reason::not_authorized);
    rig.up.answer_publish(2);
    EXPECT_EQ(app->code_of(2), ipc::errc::broker_refused);
    EXPECT_EQ(rig.pipe->retained().size(), 1U);

    // Offline: the spool takes it, and it counts.
    rig.pipe->on_link(link_of(ipc::link_state::backing_off));
    publish(rig, app, 4, "dt/c", "3", true);
    EXPECT_EQ(app->code_of(4), ipc::errc::spooled);
    EXPECT_EQ(rig.pipe->retained().size(), 2U);
    publish(rig, app, 5, "dt/a", "", true);  // deletes
    EXPECT_EQ(rig.pipe->retained().size(), 1U);

    auto late = rig.session(3);
    subscribe(rig, late, 1, "dt/+");
    EXPECT_THAT(received(*late), ElementsAre("dt/c=3 (retained)"));
}

// Local topics: a retained publish is kept when routed and served to later subscribers; a live
// delivery keeps the retain flag only for Retain As Published; No Local keeps a publish from its
// publisher's own No Local subscriptions.
TEST(PipelineRetained, LocalTopicsRetainAndTheirSubscriptionOptions) {
    pipeline_rig rig(pipeline_rig::unlimited(), {}, nullptr, {"local/#"});
    auto plain = rig.session(1, "local");
    auto as_published = rig.session(2, "local");
    auto publisher = rig.session(3, "local");
    subscribe(rig, plain, 1, "local/#");
    subscribe(rig, as_published, 1, "local/#", {.no_local = false, .retain_as_published = true, .retain_handling = 0});
    subscribe(rig, publisher, 1, "local/#", {.no_local = true, .retain_as_published = false, .retain_handling = 0});
    publish(rig, publisher, 1, "local/lamp", "on", true);
    EXPECT_THAT(received(*plain), ElementsAre("local/lamp=on"));
    EXPECT_THAT(received(*as_published), ElementsAre("local/lamp=on (retained)"));
    EXPECT_THAT(publisher->delivered, IsEmpty());
    EXPECT_EQ(rig.pipe->retained().size(), 1U);
    EXPECT_THAT(rig.up.subscribed_filters(), IsEmpty());

    // Alone with its No Local subscription, the publisher hears "no matching subscribers".
    rig.pipe->unsubscribe(plain, 2, {"local/#"});
    rig.pipe->unsubscribe(as_published, 2, {"local/#"});
    publish(rig, publisher, 2, "local/fan", "1", false);
    EXPECT_EQ(publisher->published[2].mqtt_reason_code, mqtt::reason::no_matching_subscribers);

    // A later subscriber gets the retained one; a subscription without No Local gets its own.
    subscribe(rig, publisher, 2, "local/lamp");
    EXPECT_THAT(received(*publisher), ElementsAre("local/lamp=on (retained)"));
    publish(rig, publisher, 3, "local/lamp", "off", false);
    EXPECT_THAT(received(*publisher), ElementsAre("local/lamp=on (retained)", "local/lamp=off"));
}

// No Local across the broker: the echo of a session's own publish is not delivered to it (its
// other subscribers get it); the next identical message from the cloud is delivered again.
TEST(PipelineRetained, NoLocalRecognizesTheBrokersEcho) {
    pipeline_rig rig;
    rig.connect();
    auto me = rig.session(1);
    auto other = rig.session(2);
    subscribe(rig, me, 1, "dt/x", {.no_local = true, .retain_as_published = false, .retain_handling = 0});
    subscribe(rig, other, 1, "dt/x");
    rig.up.answer_subscribe(0);
    publish(rig, me, 1, "dt/x", "hello", false);
    rig.up.answer_publish(0);
    from_broker(rig, "dt/x", "hello", false);  // the echo
    EXPECT_THAT(me->delivered, IsEmpty());
    EXPECT_THAT(received(*other), ElementsAre("dt/x=hello"));
    from_broker(rig, "dt/x", "hello", false);  // someone in the cloud says the same
    EXPECT_THAT(received(*me), ElementsAre("dt/x=hello"));

    // A refused publish expects no echo: an identical cloud message is delivered.
    publish(rig, me, 2, "dt/x", "bye", false);
    rig.up.answer_publish(1, mqtt::reason::not_authorized);
    from_broker(rig, "dt/x", "bye", false);
    EXPECT_EQ(me->delivered.size(), 2U);

    // Without No Local, the echo comes back as before.
    publish(rig, other, 1, "dt/x", "mine", false);
    rig.up.answer_publish(2);
    from_broker(rig, "dt/x", "mine", false);
    EXPECT_EQ(other->delivered.size(), 4U);
}

// The receive rights apply to what the cache serves.
TEST(PipelineRetained, TheCacheServesOnlyWhatTheSessionMayReceive) {
    pipeline_rig rig;
    rig.connect();
    subscribe_upstream(rig, rig.session(1), "dt/#", {{"dt/open/x", "1"}, {"dt/secret/x", "2"}});
    auto narrow = std::make_shared<recording_session>(
        2, config::grants{.rules = {"test"}, .publish = {}, .subscribe = {"dt/#"}, .receive = {"dt/open/#"}});
    rig.pipe->attach(narrow);
    const auto denied = rig.counters.denied;
    subscribe(rig, narrow, 1, "dt/+/x");
    EXPECT_THAT(received(*narrow), ElementsAre("dt/open/x=1 (retained)"));
    EXPECT_EQ(rig.counters.denied, denied + 1);
}

}  // namespace
}  // namespace thingmux::thing::testing
