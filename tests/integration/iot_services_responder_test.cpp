// The Device Shadow and Jobs responder (tests/support/iot-services-responder) on the test broker,
// driven with Debian's mosquitto_pub / mosquitto_sub as the Thing itself: the shadow's get,
// update (accepted, documents, delta), version conflicts, named shadows and delete; the jobs
// queue's get, start-next, updates with their transitions and version checks, notify and
// notify-next; what a hostile or broken device sends is refused with AWS's error shapes and the
// responder keeps serving; scripted silences. Messages are counted after a later answer came
// (answers and notifications of one Thing arrive in the order they were published), never
// waited for with sleeps.
#include "tests/support/broker_fixture.hpp"
#include "tests/support/iot_services_fixture.hpp"
#include "tests/support/measure.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

namespace json = boost::json;
using strings = std::vector<std::string>;

constexpr int answer_timeout_ms = 15'000;
const std::string thing_name = "gateway-01";
const std::string other_thing = "gateway-02";  // has a certificate, is not served
const std::string shadow_topic = "$aws/things/" + thing_name + "/shadow";
const std::string jobs_topic = "$aws/things/" + thing_name + "/jobs";

// One message the Thing received.
struct message {
    std::string topic;
    json::object payload;
};

// The Thing's side of the APIs: one mosquitto_sub on every answer and notification topic (not the
// request topics, which the Thing may read too) and one mosquitto_pub per request.
class thing_client {
public:
    thing_client(const broker_fixture& broker, const std::string& name) {
        static std::atomic<int> counter{0};
        const std::string tag = name + "-" + std::to_string(counter++);
        dir_ = broker.dir() / ("thing-" + tag);
        std::filesystem::create_directory(dir_);
        const std::string base = "$aws/things/" + name;
        strings sub{"mosquitto_sub"};
        const auto who = broker.thing(name);
        const auto args = broker.client_args(who, "answers-" + tag);
        sub.insert(sub.end(), args.begin(), args.end());
        sub.insert(sub.end(), {"-q", "1", "-F", "%J"});
        for (const auto& filter : {"/shadow/+/+", "/shadow/name/+/+/+", "/jobs/notify", "/jobs/notify-next",
                                   "/jobs/+/accepted", "/jobs/+/rejected", "/jobs/+/+/accepted", "/jobs/+/+/rejected"})
            sub.insert(sub.end(), {"-t", base + filter});
        sub_.emplace(sub, dir_ / "messages", dir_ / "messages.err");
        const auto subacks = [&] { return count_of(read_file(broker.log_file()), "Sending SUBACK to answers-" + tag); };
        if (!eventually([&] { return subacks() == 1; }, answer_timeout_ms))
            throw std::runtime_error("mosquitto_sub did not subscribe: " + read_file(dir_ / "messages.err"));
        pub_ = broker.client_args(who, "requests-" + tag);
    }

    // Publishes `payload` to `topic` with QoS 1 (an empty payload as a zero-length message).
    void publish(const std::string& topic, const std::string& payload) {
        strings pub{"mosquitto_pub"};
        pub.insert(pub.end(), pub_.begin(), pub_.end());
        pub.insert(pub.end(), {"-q", "1", "-t", topic});
        if (payload.empty())
            pub.emplace_back("-n");
        else
            pub.insert(pub.end(), {"-m", payload});
        std::string output;
        if (run_command(pub, &output, answer_timeout_ms) != 0)
            throw std::runtime_error("mosquitto_pub to " + topic + " failed: " + output);
    }

    [[nodiscard]] std::vector<message> messages() const {
        std::vector<message> out;
        for (const auto& line : complete_lines(read_file(dir_ / "messages"))) {
            const auto value = json::parse(line);
            const auto& o = value.as_object();
            const auto& payload = o.at("payload");
            out.push_back({std::string(o.at("topic").as_string()), payload.is_object() ? payload.as_object() : json::object{}});
        }
        return out;
    }

    // Publishes a request and returns its answer: the first message on `topic`/accepted or
    // `topic`/rejected after those already received.
    message call(const std::string& topic, const std::string& payload) {
        const auto seen = messages().size();
        publish(topic, payload);
        std::optional<message> answer;
        eventually(
            [&] {
                const auto all = messages();
                for (auto i = seen; i < all.size(); ++i)
                    if (all[i].topic == topic + "/accepted" || all[i].topic == topic + "/rejected") {
                        answer = all[i];
                        return true;
                    }
                return false;
            },
            answer_timeout_ms);
        if (!answer) throw std::runtime_error("no answer on " + topic + " to " + payload);
        return *answer;
    }

    // Waits until at least `n` messages arrived on `topic`; returns how many did.
    std::size_t wait_on(const std::string& topic, std::size_t n) const {
        eventually([&] { return on(topic).size() >= n; }, answer_timeout_ms);
        return on(topic).size();
    }

    [[nodiscard]] std::vector<message> on(const std::string& topic) const {
        auto all = messages();
        std::erase_if(all, [&](const message& m) { return m.topic != topic; });
        return all;
    }

private:
    std::filesystem::path dir_;
    std::optional<child_process> sub_;
    strings pub_;
};

// A field as text: a string's contents, any other value as JSON, "" when absent (shadow error
// codes are numbers, jobs error codes strings).
std::string field(const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr) return {};
    return v->is_string() ? std::string(v->get_string()) : json::serialize(*v);
}

std::int64_t number(const json::object& o, const char* key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_int64() ? v->as_int64() : -1;
}

std::string compact(const json::value& v) { return json::serialize(v); }

// A shadow rejection as "CODE message".
std::string shadow_rejection(const message& m) {
    return field(m.payload, "code") + " " + field(m.payload, "message");
}

class IotServicesResponderTest : public ::testing::Test {
protected:
    broker_fixture broker{broker_fixture::options{.things = {thing_name, other_thing}}};
    iot_services_responder responder{broker, {.things = {thing_name}, .silent = {}}};
    thing_client device{broker, thing_name};
};

TEST_F(IotServicesResponderTest, ShadowGetOfNoShadowIs404AndAnUpdateAnswersAcceptedDocumentsAndDelta) {
    const auto missing = device.call(shadow_topic + "/get", R"({"clientToken":"t-1"})");
    EXPECT_EQ(missing.topic, shadow_topic + "/get/rejected");
    EXPECT_EQ(shadow_rejection(missing), "404 No shadow exists with name: 'gateway-01'");
    EXPECT_EQ(field(missing.payload, "clientToken"), "t-1");
    EXPECT_GT(number(missing.payload, "timestamp"), 0);

    const auto accepted = device.call(shadow_topic + "/update", R"({"state":{"desired":{"led":"on"}},"clientToken":"t-2"})");
    ASSERT_EQ(accepted.topic, shadow_topic + "/update/accepted");
    EXPECT_EQ(compact(accepted.payload.at("state")), R"({"desired":{"led":"on"}})");
    EXPECT_EQ(number(accepted.payload, "version"), 1);
    EXPECT_EQ(field(accepted.payload, "clientToken"), "t-2");
    EXPECT_TRUE(accepted.payload.at("metadata").at("desired").at("led").as_object().contains("timestamp"));
    ASSERT_EQ(device.wait_on(shadow_topic + "/update/delta", 1), 1U);
    const auto delta = device.on(shadow_topic + "/update/delta")[0].payload;
    EXPECT_EQ(compact(delta.at("state")), R"({"led":"on"})");
    EXPECT_EQ(number(delta, "version"), 1);
    EXPECT_EQ(field(delta, "clientToken"), "t-2");

    // The device reports what was desired: no delta; no clientToken where the request had none.
    const auto reported = device.call(shadow_topic + "/update", R"({"state":{"reported":{"led":"on","fw":"1.2"}}})");
    ASSERT_EQ(reported.topic, shadow_topic + "/update/accepted");
    EXPECT_EQ(number(reported.payload, "version"), 2);
    EXPECT_FALSE(reported.payload.contains("clientToken"));
    const auto got = device.call(shadow_topic + "/get", "");
    ASSERT_EQ(got.topic, shadow_topic + "/get/accepted");
    EXPECT_EQ(compact(got.payload.at("state")), R"({"desired":{"led":"on"},"reported":{"led":"on","fw":"1.2"}})");
    EXPECT_EQ(number(got.payload, "version"), 2);
    EXPECT_FALSE(got.payload.contains("clientToken"));

    // Everything the responder sent came before the get's answer.
    const auto documents = device.on(shadow_topic + "/update/documents");
    ASSERT_EQ(documents.size(), 2U);
    EXPECT_FALSE(documents[0].payload.contains("previous"));
    EXPECT_EQ(number(documents[0].payload.at("current").as_object(), "version"), 1);
    EXPECT_EQ(number(documents[1].payload.at("previous").as_object(), "version"), 1);
    EXPECT_EQ(compact(documents[1].payload.at("current").at("state")),
              R"({"desired":{"led":"on"},"reported":{"led":"on","fw":"1.2"}})");
    EXPECT_EQ(field(documents[0].payload, "clientToken"), "t-2");
    EXPECT_FALSE(documents[1].payload.contains("clientToken"));
    EXPECT_EQ(device.on(shadow_topic + "/update/delta").size(), 1U);
    EXPECT_EQ(device.messages().size(), 7U);  // rejected; accepted, documents, delta; accepted, documents; accepted

    const auto requests = responder.requests();
    ASSERT_EQ(requests.size(), 4U);
    EXPECT_EQ(requests[0].kind, "shadow-get");
    EXPECT_EQ(requests[0].outcome, "rejected");
    EXPECT_EQ(requests[0].code, 404);
    EXPECT_EQ(requests[0].client_token, "t-1");
    EXPECT_EQ(requests[1].kind, "shadow-update");
    EXPECT_EQ(requests[1].version, 1);
    EXPECT_EQ(requests[3].outcome, "accepted");
    EXPECT_EQ(requests[3].shadow, "");
    const auto document = json::parse(responder.shadow_document(thing_name, ""));
    EXPECT_EQ(compact(document.at("state")), R"({"desired":{"led":"on"},"reported":{"led":"on","fw":"1.2"}})");
    EXPECT_EQ(document.at("version").as_int64(), 2);
}

TEST_F(IotServicesResponderTest, NullDeletesKeysAndADeltaShowsOnlyWhatDiffers) {
    ASSERT_EQ(device.call(shadow_topic + "/update", R"({"state":{"reported":{"led":"off","mode":"eco","x":{"a":1,"b":2}}}})")
                  .topic,
              shadow_topic + "/update/accepted");
    const auto desired =
        device.call(shadow_topic + "/update", R"({"state":{"desired":{"led":"on","mode":"eco","x":{"a":1,"b":3}}}})");
    ASSERT_EQ(desired.topic, shadow_topic + "/update/accepted");
    ASSERT_EQ(device.wait_on(shadow_topic + "/update/delta", 1), 1U);
    EXPECT_EQ(compact(device.on(shadow_topic + "/update/delta")[0].payload.at("state")), R"({"led":"on","x":{"b":3}})");

    const auto cleared = device.call(shadow_topic + "/update", R"({"state":{"desired":{"led":null,"x":null},"reported":{"mode":null}}})");
    ASSERT_EQ(cleared.topic, shadow_topic + "/update/accepted");
    EXPECT_EQ(compact(cleared.payload.at("state")), R"({"desired":{"led":null,"x":null},"reported":{"mode":null}})");
    const auto got = device.call(shadow_topic + "/get", "{}");
    EXPECT_EQ(compact(got.payload.at("state")),
              R"({"desired":{"mode":"eco"},"reported":{"led":"off","x":{"a":1,"b":2}},"delta":{"mode":"eco"}})");
    EXPECT_EQ(number(got.payload, "version"), 3);
    // The second update's delta, and the third's (mode is desired and no longer reported).
    EXPECT_EQ(device.on(shadow_topic + "/update/delta").size(), 2U);
}

TEST_F(IotServicesResponderTest, AnUpdateWithAnotherVersionIsA409ConflictAndChangesNothing) {
    ASSERT_EQ(device.call(shadow_topic + "/update", R"({"state":{"reported":{"n":1}}})").topic, shadow_topic + "/update/accepted");
    const auto conflict = device.call(shadow_topic + "/update", R"({"state":{"reported":{"n":2}},"version":7,"clientToken":"c"})");
    EXPECT_EQ(conflict.topic, shadow_topic + "/update/rejected");
    EXPECT_EQ(shadow_rejection(conflict), "409 Version conflict");
    EXPECT_EQ(field(conflict.payload, "clientToken"), "c");
    const auto matching = device.call(shadow_topic + "/update", R"({"state":{"reported":{"n":3}},"version":1})");
    ASSERT_EQ(matching.topic, shadow_topic + "/update/accepted");
    EXPECT_EQ(number(matching.payload, "version"), 2);
    EXPECT_EQ(compact(json::parse(responder.shadow_document(thing_name, "")).at("state")), R"({"reported":{"n":3}})");
    // The documents message follows the accepted answer.
    EXPECT_EQ(device.wait_on(shadow_topic + "/update/documents", 2), 2U);
    const auto requests = responder.requests();
    ASSERT_EQ(requests.size(), 3U);
    EXPECT_EQ(requests[1].outcome, "rejected");
    EXPECT_EQ(requests[1].code, 409);
}

TEST_F(IotServicesResponderTest, NamedShadowsAreSeparateAndDeleteRemovesThem) {
    const std::string named = shadow_topic + "/name/config";
    const auto created = device.call(named + "/update", R"({"state":{"reported":{"rate":5}},"clientToken":"n1"})");
    ASSERT_EQ(created.topic, named + "/update/accepted");
    EXPECT_EQ(device.wait_on(named + "/update/documents", 1), 1U);
    EXPECT_EQ(shadow_rejection(device.call(shadow_topic + "/get", "")), "404 No shadow exists with name: 'gateway-01'");
    EXPECT_EQ(compact(device.call(named + "/get", "").payload.at("state")), R"({"reported":{"rate":5}})");

    const auto deleted = device.call(named + "/delete", R"({"clientToken":"n2"})");
    ASSERT_EQ(deleted.topic, named + "/delete/accepted");
    EXPECT_EQ(number(deleted.payload, "version"), 1);
    EXPECT_EQ(field(deleted.payload, "clientToken"), "n2");
    EXPECT_EQ(responder.shadow_document(thing_name, "config"), "");
    EXPECT_EQ(shadow_rejection(device.call(named + "/get", "")), "404 No shadow exists with name: 'gateway-01~config'");
    EXPECT_EQ(shadow_rejection(device.call(named + "/delete", "")), "404 No shadow exists with name: 'gateway-01~config'");
    // Made again, it goes on from the deleted one's version (AWS, within 48 hours).
    EXPECT_EQ(number(device.call(named + "/update", R"({"state":{"reported":{"rate":6}}})").payload, "version"), 2);

    const auto requests = responder.wait_for([](const auto& r) { return r.shadow == "config"; }, 6);
    EXPECT_EQ(requests.size(), 6U);
    EXPECT_EQ(std::count_if(requests.begin(), requests.end(), [](const auto& r) { return r.outcome == "rejected"; }), 2);
}

TEST_F(IotServicesResponderTest, ACloudUpdateOfDesiredSendsAcceptedDocumentsAndDeltaWithoutClientToken) {
    ASSERT_EQ(device.call(shadow_topic + "/update", R"({"state":{"reported":{"led":"off"}}})").topic,
              shadow_topic + "/update/accepted");
    responder.cloud_update(thing_name, "", R"({"led":"on"})");
    ASSERT_EQ(device.wait_on(shadow_topic + "/update/delta", 1), 1U);
    const auto delta = device.on(shadow_topic + "/update/delta")[0].payload;
    EXPECT_EQ(compact(delta.at("state")), R"({"led":"on"})");
    EXPECT_EQ(number(delta, "version"), 2);
    EXPECT_FALSE(delta.contains("clientToken"));
    const auto accepted = device.on(shadow_topic + "/update/accepted");
    ASSERT_EQ(accepted.size(), 2U);
    EXPECT_EQ(compact(accepted[1].payload.at("state")), R"({"desired":{"led":"on"}})");
    EXPECT_EQ(device.on(shadow_topic + "/update/documents").size(), 2U);

    // A whole state node, on a named shadow; the responder refuses what is not a Thing it serves.
    responder.cloud_update(thing_name, "ota", R"({"desired":{"url":"https://example.com/fw"}})");
    EXPECT_EQ(device.wait_on(shadow_topic + "/name/ota/update/delta", 1), 1U);
    EXPECT_THROW(responder.cloud_update(other_thing, "", R"({"led":"on"})"), std::runtime_error);
    EXPECT_THROW(responder.cloud_update(thing_name, "", "not json"), std::invalid_argument);
    // Cloud updates are not device requests.
    EXPECT_EQ(responder.requests().size(), 1U);
}

TEST_F(IotServicesResponderTest, JobsStartNextUpdateToSucceededAndNotifyNextForTheFollowingJob) {
    responder.add_job(thing_name, "job-1", R"({"operation":"reboot"})");
    responder.add_job(thing_name, "job-2", R"({"operation":"update","version":"2.0"})");
    ASSERT_EQ(device.wait_on(jobs_topic + "/notify", 2), 2U);
    const auto listed = device.call(jobs_topic + "/get", R"({"clientToken":"g"})");
    ASSERT_EQ(listed.topic, jobs_topic + "/get/accepted");
    EXPECT_TRUE(listed.payload.at("inProgressJobs").as_array().empty());
    ASSERT_EQ(listed.payload.at("queuedJobs").as_array().size(), 2U);
    EXPECT_EQ(field(listed.payload.at("queuedJobs").as_array()[0].as_object(), "jobId"), "job-1");
    EXPECT_EQ(field(listed.payload, "clientToken"), "g");

    const auto started = device.call(jobs_topic + "/start-next", R"({"clientToken":"s"})");
    ASSERT_EQ(started.topic, jobs_topic + "/start-next/accepted");
    const auto& execution = started.payload.at("execution").as_object();
    EXPECT_EQ(field(execution, "jobId"), "job-1");
    EXPECT_EQ(field(execution, "thingName"), thing_name);
    EXPECT_EQ(field(execution, "status"), "IN_PROGRESS");
    EXPECT_EQ(number(execution, "versionNumber"), 2);
    EXPECT_EQ(number(execution, "executionNumber"), 1);
    EXPECT_EQ(compact(execution.at("jobDocument")), R"({"operation":"reboot"})");
    EXPECT_GT(number(execution, "startedAt"), 0);
    EXPECT_EQ(field(started.payload, "clientToken"), "s");
    // Started again: the same execution, still IN_PROGRESS.
    EXPECT_EQ(field(device.call(jobs_topic + "/start-next", "").payload.at("execution").as_object(), "jobId"), "job-1");

    const auto mismatch = device.call(jobs_topic + "/job-1/update", R"({"status":"SUCCEEDED","expectedVersion":1})");
    ASSERT_EQ(mismatch.topic, jobs_topic + "/job-1/update/rejected");
    EXPECT_EQ(field(mismatch.payload, "code"), "VersionMismatch");
    EXPECT_EQ(number(mismatch.payload.at("executionState").as_object(), "versionNumber"), 2);
    const auto progress = device.call(jobs_topic + "/job-1/update",
                                      R"({"status":"IN_PROGRESS","expectedVersion":2,"statusDetails":{"step":"1/2"},"includeJobExecutionState":true,"clientToken":"u"})");
    ASSERT_EQ(progress.topic, jobs_topic + "/job-1/update/accepted");
    EXPECT_EQ(compact(progress.payload.at("executionState")),
              R"({"status":"IN_PROGRESS","versionNumber":3,"statusDetails":{"step":"1/2"}})");
    EXPECT_EQ(field(progress.payload, "clientToken"), "u");
    const auto done = device.call(jobs_topic + "/job-1/update", R"({"status":"SUCCEEDED"})");
    ASSERT_EQ(done.topic, jobs_topic + "/job-1/update/accepted");
    EXPECT_FALSE(done.payload.contains("executionState"));
    EXPECT_FALSE(done.payload.contains("clientToken"));

    const auto again = device.call(jobs_topic + "/job-1/update", R"({"status":"FAILED"})");
    EXPECT_EQ(field(again.payload, "code"), "InvalidStateTransition");
    const auto described = device.call(jobs_topic + "/job-1/get", "");
    ASSERT_EQ(described.topic, jobs_topic + "/job-1/get/accepted");
    EXPECT_EQ(field(described.payload.at("execution").as_object(), "status"), "SUCCEEDED");
    EXPECT_EQ(field(device.call(jobs_topic + "/job-9/get", "").payload, "code"), "ResourceNotFound");
    EXPECT_EQ(field(device.call(jobs_topic + "/job-9/update", R"({"status":"SUCCEEDED"})").payload, "code"),
              "ResourceNotFound");

    // notify-next: job-1 when it was queued, job-2 when job-1 ended; notify when a job was added to
    // or removed from the pending ones (two queued, one ended), not when one started.
    const auto next = device.on(jobs_topic + "/notify-next");
    ASSERT_EQ(next.size(), 2U);
    EXPECT_EQ(field(next[0].payload.at("execution").as_object(), "jobId"), "job-1");
    EXPECT_EQ(field(next[1].payload.at("execution").as_object(), "jobId"), "job-2");
    EXPECT_EQ(field(next[1].payload.at("execution").as_object(), "status"), "QUEUED");
    const auto notify = device.on(jobs_topic + "/notify");
    ASSERT_EQ(notify.size(), 3U);
    EXPECT_EQ(compact(notify[1].payload.at("jobs").at("QUEUED")), R"([)" + compact(listed.payload.at("queuedJobs").at(0)) +
                                                                      "," + compact(listed.payload.at("queuedJobs").at(1)) + "]");
    EXPECT_EQ(compact(notify[2].payload.at("jobs").at("QUEUED").at(0).at("jobId")), R"("job-2")");
    EXPECT_FALSE(notify[2].payload.at("jobs").as_object().contains("IN_PROGRESS"));

    EXPECT_EQ(responder.job_status(thing_name, "job-1"), "SUCCEEDED");
    EXPECT_EQ(responder.job_status_history(thing_name, "job-1"), (strings{"IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"}));
    EXPECT_EQ(responder.job_status(thing_name, "job-2"), "QUEUED");
    EXPECT_TRUE(responder.job_status_history(thing_name, "job-2").empty());
    EXPECT_EQ(responder.job_status(thing_name, "job-3"), "");
    const auto rejected = responder.wait_for([](const auto& r) { return r.outcome == "rejected"; }, 4);
    ASSERT_EQ(rejected.size(), 4U);
    EXPECT_EQ(rejected[0].error_code, "VersionMismatch");
    EXPECT_EQ(rejected[0].code, 409);
    EXPECT_EQ(rejected[1].error_code, "InvalidStateTransition");
    EXPECT_EQ(rejected[2].code, 404);
}

TEST_F(IotServicesResponderTest, StartNextWithNothingPendingHasNoExecutionAndQueuingTheFirstJobNotifies) {
    const auto empty = device.call(jobs_topic + "/start-next", "");
    ASSERT_EQ(empty.topic, jobs_topic + "/start-next/accepted");
    EXPECT_FALSE(empty.payload.contains("execution"));
    responder.add_job(thing_name, "only", R"({"operation":"reboot"})");
    ASSERT_EQ(device.wait_on(jobs_topic + "/notify-next", 1), 1U);
    ASSERT_EQ(device.call(jobs_topic + "/only/update", R"({"status":"REJECTED","statusDetails":{"reason":"no"}})").topic,
              jobs_topic + "/only/update/accepted");
    // The last pending job ended: notify-next without an execution.
    ASSERT_EQ(device.wait_on(jobs_topic + "/notify-next", 2), 2U);
    EXPECT_FALSE(device.on(jobs_topic + "/notify-next")[1].payload.contains("execution"));
    EXPECT_EQ(responder.job_status_history(thing_name, "only"), strings{"REJECTED"});
    // The test's own mistakes throw.
    EXPECT_THROW(responder.add_job(thing_name, "only", R"({"operation":"reboot"})"), std::runtime_error);
    EXPECT_THROW(responder.add_job(other_thing, "x", R"({"operation":"reboot"})"), std::runtime_error);
    EXPECT_THROW(responder.add_job(thing_name, "bad id!", R"({"operation":"reboot"})"), std::runtime_error);
}

// What a broken or hostile device sends is refused as AWS refuses it, and the responder goes on.
TEST_F(IotServicesResponderTest, HostileRequestsAreRefusedAndTheResponderKeepsServing) {
    responder.add_job(thing_name, "job-1", R"({"operation":"reboot"})");
    EXPECT_EQ(shadow_rejection(device.call(shadow_topic + "/update", "not json")), "400 Invalid JSON");
    EXPECT_EQ(shadow_rejection(device.call(shadow_topic + "/update", R"({"desired":{"led":"on"}})")),
              "400 Missing required node: state");
    EXPECT_EQ(shadow_rejection(device.call(shadow_topic + "/update", R"({"state":{"desired":[1]}})")),
              "400 Desired node must be an object");
    EXPECT_EQ(number(device.call(shadow_topic + "/update", R"({"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}})")
                         .payload,
                     "code"),
              400);  // deeper than 6
    EXPECT_EQ(number(device.call(shadow_topic + "/update",
                                 R"({"state":{"reported":{"blob":")" + std::string(9000, 'x') + R"("}}})")
                         .payload,
                     "code"),
              413);  // a state document over 8 KiB
    EXPECT_EQ(number(device.call(shadow_topic + "/get", R"({"clientToken":7})").payload, "code"), 400);
    EXPECT_EQ(number(device.call(shadow_topic + "/name/\xc3\xa9t\xc3\xa9/get", "").payload, "code"), 400);
    EXPECT_EQ(field(device.call(jobs_topic + "/start-next", "\x01\x02garbage").payload, "code"), "InvalidRequest");
    // Nested deeper than any parser should follow.
    const auto deep = std::string(50'000, '[') + std::string(50'000, ']');
    EXPECT_EQ(shadow_rejection(device.call(shadow_topic + "/update", deep)), "400 Invalid JSON");
    EXPECT_EQ(field(device.call(jobs_topic + "/job-1/update", deep).payload, "code"), "InvalidRequest");
    EXPECT_EQ(field(device.call(jobs_topic + "/job-1/update", R"({"status":"DONE"})").payload, "code"), "InvalidRequest");
    EXPECT_EQ(field(device.call(jobs_topic + "/job-1/update",
                               R"({"status":"IN_PROGRESS","statusDetails":{"log":")" + std::string(1025, 'x') + R"("}})")
                       .payload,
                   "code"),
              "InvalidRequest");
    EXPECT_EQ(field(device.call(jobs_topic + "/job-1/update", R"({"status":"IN_PROGRESS","statusDetails":{"n":3}})").payload,
                   "code"),
              "InvalidRequest");
    // The refusals changed nothing, and requests are still served.
    EXPECT_EQ(responder.shadow_document(thing_name, ""), "");
    EXPECT_EQ(responder.job_status(thing_name, "job-1"), "QUEUED");
    EXPECT_EQ(device.call(shadow_topic + "/update", R"({"state":{"reported":{"ok":true}}})").topic,
              shadow_topic + "/update/accepted");
    EXPECT_EQ(device.call(jobs_topic + "/start-next", "").topic, jobs_topic + "/start-next/accepted");

    const auto requests = responder.requests();
    ASSERT_EQ(requests.size(), 15U);
    EXPECT_EQ(std::count_if(requests.begin(), requests.end(), [](const auto& r) { return r.outcome == "rejected"; }), 13);
    EXPECT_EQ(requests[6].shadow, "\xc3\xa9t\xc3\xa9");
    // What devices send reaches the log escaped.
    const auto log = read_file(responder.log_file());
    EXPECT_TRUE(std::all_of(log.begin(), log.end(), [](char c) { return c == '\n' || (c >= 0x20 && c < 0x7f); })) << log;
}

TEST_F(IotServicesResponderTest, RequestsForAThingNotServedAreRecordedAndNotAnswered) {
    thing_client other(broker, other_thing);
    other.publish("$aws/things/" + other_thing + "/shadow/get", "");
    ASSERT_EQ(responder.wait_for([](const auto& r) { return r.outcome == "ignored"; }, 1).size(), 1U);
    // Served after it, and answered: the ignored request had no answer in between.
    ASSERT_EQ(other.messages().size(), 0U);
    EXPECT_EQ(device.call(shadow_topic + "/get", "").topic, shadow_topic + "/get/rejected");
    EXPECT_EQ(responder.requests()[0].thing, other_thing);
    EXPECT_EQ(other.messages().size(), 0U);
}

// Like the cloud, it outlives a broker restart: its persistent session brings it back subscribed.
TEST_F(IotServicesResponderTest, AnswersAfterTheBrokerRestarts) {
    responder.add_job(thing_name, "job-1", R"({"operation":"reboot"})");
    broker.restart();
    thing_client after(broker, thing_name);
    EXPECT_EQ(after.call(jobs_topic + "/start-next", "").topic, jobs_topic + "/start-next/accepted");
    EXPECT_EQ(responder.job_status(thing_name, "job-1"), "IN_PROGRESS");
    EXPECT_EQ(responder.requests().size(), 1U);
}

TEST(IotServicesResponder, SilentFaultsLeaveRequestsUnansweredAndCountDown) {
    broker_fixture broker;
    iot_services_responder responder(broker, {.things = {thing_name}, .silent = {"shadow-get:1"}});
    thing_client device(broker, thing_name);
    device.publish(shadow_topic + "/get", R"({"clientToken":"lost"})");
    ASSERT_EQ(responder.wait_for([](const auto& r) { return r.outcome == "silent"; }, 1).size(), 1U);
    // The next one is answered, and it is the only answer.
    const auto answered = device.call(shadow_topic + "/get", R"({"clientToken":"found"})");
    EXPECT_EQ(field(answered.payload, "clientToken"), "found");
    EXPECT_EQ(device.messages().size(), 1U);

    responder.silence("jobs-start-next", 2);
    device.publish(jobs_topic + "/start-next", "");
    device.publish(jobs_topic + "/start-next", "");
    ASSERT_EQ(responder.wait_for([](const auto& r) { return r.kind == "jobs-start-next"; }, 2).size(), 2U);
    EXPECT_EQ(device.call(jobs_topic + "/start-next", "").topic, jobs_topic + "/start-next/accepted");
    EXPECT_EQ(device.messages().size(), 2U);
    const auto requests = responder.requests();
    ASSERT_EQ(requests.size(), 5U);
    EXPECT_EQ(requests[0].client_token, "lost");
    EXPECT_EQ(requests[2].outcome, "silent");
    EXPECT_EQ(requests[3].outcome, "silent");
    EXPECT_EQ(requests[4].outcome, "accepted");
    EXPECT_THROW(responder.silence("shadow-teleport", 1), std::runtime_error);
}

// A late answer: the delayed request is answered after one sent later (a generous delay, so the
// second request surely arrives within it on a loaded machine).
TEST(IotServicesResponder, ADelayedRequestIsAnsweredAfterALaterOne) {
    broker_fixture broker;
    iot_services_responder responder(broker, {.things = {thing_name}, .silent = {}, .delayed = {}});
    thing_client device(broker, thing_name);
    responder.delay("shadow-get", 1, std::chrono::seconds(3));
    device.publish(shadow_topic + "/get", R"({"clientToken":"late"})");
    EXPECT_EQ(field(device.call(shadow_topic + "/get", R"({"clientToken":"prompt"})").payload, "clientToken"), "prompt");
    ASSERT_EQ(device.wait_on(shadow_topic + "/get/rejected", 2), 2U);
    EXPECT_EQ(field(device.messages()[1].payload, "clientToken"), "late");
    const auto requests = responder.requests();
    ASSERT_EQ(requests.size(), 2U);
    EXPECT_EQ(requests[0].client_token, "prompt");
    EXPECT_EQ(requests[0].delay_ms, 0);
    EXPECT_EQ(requests[1].client_token, "late");
    EXPECT_EQ(requests[1].delay_ms, 3000);
}

}  // namespace
}  // namespace thingmux::test
