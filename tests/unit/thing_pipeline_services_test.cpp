// Request/response routing of AWS IoT's Device Shadow and Jobs topics in a Thing's pipeline
// (docs/services.md, daemon/thing/service_path.cpp), with the fake upstream playing AWS: each
// session gets exactly its own answers with its own clientToken; timeouts, late answers, sessions
// that left, offline requests, the shadow cache and hostile payloads.
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/service_requests.hpp"
#include "pipeline_fakes.hpp"

#include <gmock/gmock.h>

namespace thingmux::thing::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const std::string thing_root = "$aws/things/gateway-01";
const std::string shadow = thing_root + "/shadow";

struct services_rig : pipeline_rig {
    explicit services_rig(config::service_settings s = {}, spool::store* spool = nullptr)
        : pipeline_rig(unlimited(), {}, spool) {
        auto t = pipe->settings();
        t.services = s;
        pipe->reconfigure(std::move(t), {});
    }
    std::shared_ptr<recording_session> app(std::uint64_t id) { return session(id, thing_root); }
    // An app holding `filter` upstream (its SUBSCRIBE answered), the n-th SUBSCRIBE sent.
    std::shared_ptr<recording_session> listener(std::uint64_t id, const std::string& filter, std::size_t n = 0) {
        auto s = app(id);
        subscribe(s, 1, {filter});
        up.answer_subscribe(n);
        return s;
    }
    // The daemon's token in the i-th publish sent upstream.
    std::string token_of(std::size_t i) {
        const auto t = services::find_daemon_token(up.publishes.at(i).msg.payload);
        if (!t) {
            ADD_FAILURE() << "no daemon token in " << up.publishes.at(i).msg.payload;
            return {};
        }
        return std::string(t->token);
    }
    // AWS answers the i-th publish on its topic + suffix, echoing its token.
    void answer(std::size_t i, const std::string& suffix, const std::string& body,
                std::optional<mqtt::inbound_ticket> ticket = std::nullopt) {
        inbound(up.publishes.at(i).msg.topic + suffix, ticket, "{" + body + R"(,"clientToken":")" + token_of(i) + "\"}");
    }
};

config::service_settings with(std::chrono::milliseconds timeout, std::size_t max_pending = 100, bool cache = false) {
    return {.request_timeout = timeout, .max_pending_per_session = max_pending, .shadow_cache = cache};
}

mqtt::inbound_ticket ticket(std::size_t i) { return {.connection = 1, .packet_id = static_cast<std::uint16_t>(i + 1)}; }

std::vector<std::string> payloads_of(const recording_session& s) {
    std::vector<std::string> out;
    for (const auto& d : s.delivered) out.push_back(d.payload);
    return out;
}

// The issue's case: ten apps, the same clientToken, gets and updates at once. Each app gets
// exactly its own two answers, with its own token back; the broker sees one SUBSCRIBE per topic.
TEST(PipelineServices, TenSessionsWithTheSameTokenGetOnlyTheirOwnAnswers) {
    services_rig rig;
    rig.connect();
    std::vector<std::shared_ptr<recording_session>> apps;
    for (std::uint64_t i = 1; i <= 10; ++i) {
        apps.push_back(rig.app(i));
        rig.subscribe(apps.back(), 1, {shadow + "/get/accepted", shadow + "/update/accepted", shadow + "/update/rejected"});
    }
    ASSERT_EQ(rig.up.subscribes.size(), 1U);
    rig.up.answer_subscribe(0);
    EXPECT_THAT(rig.up.subscribed_filters(),
                UnorderedElementsAre(shadow + "/get/accepted", shadow + "/update/accepted", shadow + "/update/rejected"));
    for (std::size_t i = 0; i < apps.size(); ++i) {
        rig.publish(apps[i], 10, shadow + "/get", 1, R"({"clientToken":"same"})");
        rig.publish(apps[i], 11, shadow + "/update", 0, R"({"state":{"reported":{"n":)" + std::to_string(i) + R"(}},"clientToken":"same"})");
    }
    ASSERT_EQ(rig.up.publishes.size(), 20U);
    std::set<std::string> tokens;
    for (std::size_t i = 0; i < 20; ++i) tokens.insert(rig.token_of(i));
    EXPECT_EQ(tokens.size(), 20U);
    EXPECT_THAT(rig.up.publishes[1].msg.payload, HasSubstr(R"("reported":{"n":0})"));
    rig.up.answer_all_publishes();
    // Answers in another order than the requests, as AWS may send them.
    for (std::size_t k = 20; k-- > 0;) {
        const bool update = k % 2 == 1;
        const auto app = std::to_string(k / 2);
        if (update && k / 2 == 3) {
            rig.answer(k, "/rejected", R"("code":409,"message":"Version conflict","app":)" + app, ticket(k));
        } else {
            rig.answer(k, "/accepted", R"("state":{},"version":1,"app":)" + app, ticket(k));
        }
    }
    for (std::size_t i = 0; i < apps.size(); ++i) {
        const auto& a = *apps[i];
        EXPECT_EQ(a.code_of(10), ipc::errc::ok);
        EXPECT_EQ(a.code_of(11), ipc::errc::ok);
        const auto app = std::to_string(i);
        const std::string update = i == 3 ? R"({"code":409,"message":"Version conflict","app":3,"clientToken":"same"})"
                                          : R"({"state":{},"version":1,"app":)" + app + R"(,"clientToken":"same"})";
        EXPECT_THAT(payloads_of(a), ElementsAre(update, R"({"state":{},"version":1,"app":)" + app + R"(,"clientToken":"same"})"))
            << "app " << i;
        for (const auto& d : a.delivered) EXPECT_EQ(d.qos, 1);  // the QoS of its subscription, of a QoS 1 answer
    }
    EXPECT_EQ(rig.pipe->status().service_requests, 0U);
    EXPECT_EQ(rig.counters.unrouted, 0U);
    EXPECT_EQ(rig.counters.deliveries, 20U);
    EXPECT_EQ(rig.up.acknowledged.size(), 20U);  // every QoS 1 answer, once its requester has it
}

// A request without a clientToken gets one from the daemon; its answer has none again. Jobs
// answers come without a subscription: at QoS 0, to the requester only.
TEST(PipelineServices, NoTokenAndJobsAnswersWithoutSubscription) {
    services_rig rig;
    rig.connect();
    auto a = rig.app(1);
    auto b = rig.app(2);
    rig.publish(a, 1, thing_root + "/jobs/start-next", 1, "");
    rig.publish(a, 2, thing_root + "/jobs/job-9/update", 1, R"({"status":"SUCCEEDED"})");
    ASSERT_EQ(rig.up.publishes.size(), 2U);
    EXPECT_EQ(rig.up.publishes[0].msg.payload, R"({"clientToken":")" + rig.token_of(0) + "\"}");
    EXPECT_EQ(rig.up.publishes[1].msg.payload, R"({"clientToken":")" + rig.token_of(1) + R"(","status":"SUCCEEDED"})");
    rig.answer(0, "/accepted", R"("execution":{"jobId":"job-9"})", mqtt::inbound_ticket{.connection = 1, .packet_id = 4});
    rig.answer(1, "/rejected", R"("code":"VersionMismatch")");
    ASSERT_EQ(a->delivered.size(), 2U);
    EXPECT_EQ(a->delivered[0].topic, thing_root + "/jobs/start-next/accepted");
    EXPECT_EQ(a->delivered[0].payload, R"({"execution":{"jobId":"job-9"}})");
    EXPECT_EQ(a->delivered[0].qos, 0);
    EXPECT_EQ(a->delivered[1].payload, R"({"code":"VersionMismatch"})");
    EXPECT_THAT(b->delivered, IsEmpty());
    // Its QoS 1 answer is acknowledged upstream once the requester has it.
    EXPECT_THAT(rig.up.acknowledged, ElementsAre(mqtt::inbound_ticket{.connection = 1, .packet_id = 4}));
}

// No answer in services.request_timeout: the requester gets the daemon's 504 rejected, nobody
// else; the answer that comes later goes to nobody and is counted unrouted.
TEST(PipelineServices, TimeoutGives504ToTheRequesterOnlyAndALateAnswerIsUnrouted) {
    services_rig rig(with(std::chrono::seconds(2)));
    rig.connect();
    auto a = rig.app(1);
    auto other = rig.listener(2, shadow + "/#");
    rig.publish(a, 1, shadow + "/name/lamp/get", 1, R"({"clientToken":"t-1"})");
    rig.up.answer_all_publishes();
    ASSERT_TRUE(rig.clk.wake);
    rig.clk.advance(*rig.pipe, std::chrono::milliseconds(1999));
    EXPECT_THAT(a->delivered, IsEmpty());
    rig.clk.advance(*rig.pipe, std::chrono::milliseconds(1));
    ASSERT_EQ(a->delivered.size(), 1U);
    EXPECT_EQ(a->delivered[0].topic, shadow + "/name/lamp/get/rejected");
    EXPECT_EQ(a->delivered[0].qos, 0);
    EXPECT_THAT(a->delivered[0].payload,
                ::testing::MatchesRegex(R"(\{"code":504,"message":"thingmuxd: AWS IoT did not answer within 2 s","timestamp":[0-9]+,"clientToken":"t-1"\})"));
    EXPECT_THAT(other->delivered, IsEmpty());
    EXPECT_EQ(rig.pipe->status().service_timeouts, 1U);
    rig.answer(0, "/accepted", R"("state":{})");
    EXPECT_EQ(a->delivered.size(), 1U);
    EXPECT_THAT(other->delivered, IsEmpty());
    EXPECT_EQ(rig.counters.unrouted, 1U);
}

// Deadlines pass while the Thing is offline too: each request gets its 504 in time.
TEST(PipelineServices, TimeoutsWhileOffline) {
    services_rig rig(with(std::chrono::seconds(2)));
    rig.connect();
    auto a = rig.app(1);
    rig.publish(a, 1, thing_root + "/jobs/get", 1, "{}");
    rig.clk.advance(*rig.pipe, std::chrono::seconds(1));
    rig.publish(a, 2, shadow + "/get", 1, "{}");
    rig.up.answer_all_publishes();
    rig.pipe->on_link(link_of(ipc::link_state::connecting));
    rig.clk.advance(*rig.pipe, std::chrono::seconds(1));
    ASSERT_EQ(a->delivered.size(), 1U);
    EXPECT_EQ(a->delivered[0].topic, thing_root + "/jobs/get/rejected");
    rig.clk.advance(*rig.pipe, std::chrono::seconds(1));
    ASSERT_EQ(a->delivered.size(), 2U);
    EXPECT_EQ(a->delivered[1].topic, shadow + "/get/rejected");
    EXPECT_EQ(a->delivered[1].payload.find(R"("clientToken")"), std::string::npos);  // it gave none
}

// A session that leaves loses its requests: their answers are unrouted, and no 504 follows.
TEST(PipelineServices, DetachedSessionsAnswersAreUnrouted) {
    services_rig rig(with(std::chrono::seconds(2)));
    rig.connect();
    auto a = rig.app(1);
    auto b = rig.listener(2, shadow + "/get/accepted");
    rig.publish(a, 1, shadow + "/get", 1, "{}");
    rig.up.answer_all_publishes();
    (void)rig.pipe->detach(a->flow());
    EXPECT_EQ(rig.pipe->status().service_requests, 0U);
    rig.answer(0, "/accepted", R"("state":{})");
    EXPECT_EQ(rig.counters.unrouted, 1U);
    EXPECT_THAT(b->delivered, IsEmpty());
    rig.clk.advance(*rig.pipe, std::chrono::seconds(5));
    EXPECT_THAT(a->delivered, IsEmpty());
    EXPECT_EQ(rig.pipe->status().service_timeouts, 0U);
}

// Offline, requests are refused with not_connected whatever their QoS, and never spooled.
TEST(PipelineServices, OfflineRequestsAreRefusedNotSpooled) {
    temporary_spool spool;
    services_rig rig({}, spool.get());
    auto a = rig.app(1);
    rig.publish(a, 1, shadow + "/update", 1, R"({"state":{}})");
    rig.publish(a, 2, thing_root + "/jobs/get", 0, "{}");
    rig.publish(a, 3, shadow + "/get", 1, "{}");
    EXPECT_EQ(a->code_of(1), ipc::errc::not_connected);
    EXPECT_EQ(a->code_of(2), ipc::errc::not_connected);
    EXPECT_EQ(a->code_of(3), ipc::errc::not_connected);
    EXPECT_THAT(a->published[1].message, HasSubstr("not queued"));
    EXPECT_EQ(spool->count("gateway-01"), 0U);
    rig.connect();
    EXPECT_THAT(rig.up.publishes, IsEmpty());
    EXPECT_EQ(rig.pipe->status().service_requests, 0U);
}

// With the shadow cache, a get while offline is answered at once from the last document seen
// (marked cached, with its version); a shadow it never saw: not_connected.
TEST(PipelineServices, OfflineGetIsAnsweredFromTheShadowCache) {
    services_rig rig(with(std::chrono::seconds(10), 100, true));
    rig.connect();
    auto a = rig.listener(1, shadow + "/get/accepted");
    auto b = rig.app(2);
    rig.publish(a, 1, shadow + "/get", 1, R"({"clientToken":"first"})");
    rig.up.answer_all_publishes();
    rig.answer(0, "/accepted", R"("state":{"reported":{"on":true}},"version":5,"timestamp":100)");
    EXPECT_EQ(rig.pipe->status().cached_shadows, 1U);
    rig.pipe->on_link(link_of(ipc::link_state::connecting));
    rig.publish(b, 2, shadow + "/get", 1, R"({"clientToken":"again"})");
    EXPECT_EQ(b->code_of(2), ipc::errc::ok);
    ASSERT_EQ(b->delivered.size(), 1U);
    EXPECT_EQ(b->delivered[0].topic, shadow + "/get/accepted");
    EXPECT_EQ(b->delivered[0].payload,
              R"({"clientToken":"again","cached":true,"state":{"reported":{"on":true}},"version":5,"timestamp":100})");
    EXPECT_EQ(a->delivered.size(), 1U);  // only its own, online answer
    rig.publish(b, 3, shadow + "/name/other/get", 1, "");
    EXPECT_EQ(b->code_of(3), ipc::errc::not_connected);
    EXPECT_THAT(b->published[3].message, HasSubstr("shadow cache"));
    EXPECT_EQ(rig.up.publishes.size(), 1U);
}

// Without the cache (the default) nothing is kept.
TEST(PipelineServices, NoCacheByDefault) {
    services_rig rig;
    rig.connect();
    auto a = rig.app(1);
    rig.publish(a, 1, shadow + "/get", 1, "{}");
    rig.answer(0, "/accepted", R"("state":{},"version":5)");
    EXPECT_EQ(rig.pipe->status().cached_shadows, 0U);
    rig.pipe->on_link(link_of(ipc::link_state::connecting));
    rig.publish(a, 2, shadow + "/get", 1, "{}");
    EXPECT_EQ(a->code_of(2), ipc::errc::not_connected);
}

// Hostile payloads are refused with invalid_payload and nothing goes upstream.
TEST(PipelineServices, HostilePayloadsAreRefused) {
    services_rig rig;
    rig.connect();
    auto a = rig.app(1);
    std::string deep;
    for (int i = 0; i < 1000; ++i) deep += "{\"a\":";
    deep += "1" + std::string(1000, '}');
    const std::vector<std::string> hostile{"not json", "[1,2,3]", deep, R"({"clientToken":")" + std::string(70, 'x') + "\"}",
                                           "{\"a\":\"" + std::string(1024 * 1024, 'x') + "\"}"};
    std::uint32_t id = 1;
    for (const auto& p : hostile) {
        rig.publish(a, id, shadow + "/update", 1, p);
        EXPECT_EQ(a->code_of(id), ipc::errc::invalid_payload) << p.substr(0, 40);
        ++id;
    }
    EXPECT_THAT(rig.up.publishes, IsEmpty());
    EXPECT_EQ(rig.counters.refused, hostile.size());
    EXPECT_EQ(rig.pipe->status().service_requests, 0U);
    // The local MQTT face answers 0x99 Payload format invalid.
    EXPECT_EQ(mqtt_reason_for(a->published[1], mqtt::packet_type::puback), mqtt::reason::payload_format_invalid);
}

// services.max_pending_per_session bounds what one session has awaiting an answer.
TEST(PipelineServices, PendingRequestsPerSessionAreLimited) {
    services_rig rig(with(std::chrono::seconds(10), 2));
    rig.connect();
    auto a = rig.app(1);
    auto b = rig.app(2);
    rig.publish(a, 1, shadow + "/get", 0, "{}");
    rig.publish(a, 2, shadow + "/get", 0, "{}");
    rig.publish(a, 3, shadow + "/get", 0, "{}");
    rig.publish(b, 1, shadow + "/get", 0, "{}");
    EXPECT_EQ(a->code_of(3), ipc::errc::quota_exceeded);
    EXPECT_THAT(a->published[3].message, HasSubstr("services.max_pending_per_session"));
    rig.up.answer_all_publishes();
    EXPECT_EQ(b->code_of(1), ipc::errc::ok);
    rig.answer(0, "/accepted", R"("state":{})");
    rig.publish(a, 4, shadow + "/get", 0, "{}");
    rig.up.answer_all_publishes();
    EXPECT_EQ(a->code_of(4), ipc::errc::ok);
}

// A request the broker refused gets no answer and no 504: the app had its publish result.
TEST(PipelineServices, ARefusedRequestEnds) {
    services_rig rig(with(std::chrono::seconds(2)));
    rig.connect();
    auto a = rig.app(1);
    rig.publish(a, 1, shadow + "/update", 1, "{}");
    rig.up.answer_publish(0, mqtt::reason::not_authorized);
    EXPECT_EQ(a->code_of(1), ipc::errc::broker_refused);
    EXPECT_EQ(rig.pipe->status().service_requests, 0U);
    rig.clk.advance(*rig.pipe, std::chrono::seconds(3));
    EXPECT_THAT(a->delivered, IsEmpty());
}

// Messages that carry a token without being the request's answer (update/documents, delta) go to
// every subscriber as usual, with the app's token back; answers to other devices or the cloud too.
TEST(PipelineServices, OtherMessagesWithOurTokenGoToEverySubscriberRestored) {
    services_rig rig;
    rig.connect();
    auto a = rig.app(1);
    auto b = rig.app(2);
    rig.subscribe(b, 1, {shadow + "/update/documents", shadow + "/update/accepted"});
    rig.up.answer_subscribe(0);
    rig.publish(a, 1, shadow + "/update", 1, R"({"state":{},"clientToken":"a-1"})");
    const auto token = rig.token_of(0);
    rig.inbound(shadow + "/update/documents", std::nullopt, R"({"current":{},"clientToken":")" + token + "\"}");
    rig.answer(0, "/accepted", R"("state":{})");
    // Another device's answer, with a token of its own.
    rig.inbound(shadow + "/update/accepted", std::nullopt, R"({"state":{},"clientToken":"cloud-7"})");
    // Documents after the answer still get the token back.
    rig.inbound(shadow + "/update/documents", std::nullopt, R"({"current":{},"clientToken":")" + token + "\"}");
    EXPECT_THAT(payloads_of(*b), ElementsAre(R"({"current":{},"clientToken":"a-1"})", R"({"state":{},"clientToken":"cloud-7"})",
                                             R"({"current":{},"clientToken":"a-1"})"));
    EXPECT_THAT(payloads_of(*a), ElementsAre(R"({"state":{},"clientToken":"a-1"})"));
}

// The requester's rights still apply: an answer it may not receive is not delivered.
TEST(PipelineServices, AnswersRespectReceiveRights) {
    services_rig rig;
    rig.connect();
    auto a = std::make_shared<recording_session>(
        1, config::grants{.rules = {"test"}, .publish = {thing_root + "/#"}, .subscribe = {}, .receive = {}});
    rig.pipe->attach(a);
    rig.publish(a, 1, shadow + "/get", 1, "{}");
    rig.answer(0, "/accepted", R"("state":{})");
    EXPECT_THAT(a->delivered, IsEmpty());
    EXPECT_EQ(rig.counters.denied, 1U);
}

// Unsolicited traffic: a message no subscription matches is counted unrouted.
TEST(PipelineServices, UnsolicitedMessagesAreCounted) {
    services_rig rig;
    rig.connect();
    auto a = rig.app(1);
    rig.inbound(thing_root + "/jobs/notify-next", std::nullopt, "{}");
    rig.inbound("cmd/direct", std::nullopt, "x");
    EXPECT_EQ(rig.counters.unrouted, 2U);
    EXPECT_THAT(a->delivered, IsEmpty());
}

}  // namespace
}  // namespace thingmux::thing::testing
