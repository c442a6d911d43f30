// Device Shadows and Jobs through libthingmux and thingmuxctl, against the real thingmuxd, the real
// AWS-like broker and the shadow and jobs responder on its cloud side (tests/support/
// iot-services-responder). Each test states the scenario in its first comment.
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/iot_services_fixture.hpp"

#include <thingmux/client.hpp>

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <future>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

using namespace std::chrono_literals;

const std::string thing = "gateway-01";

options app_options(const daemon_fixture& d, const std::string& name) {
    options o;
    o.socket_path = d.socket_path().string();
    o.app_name = name;
    return o;
}

std::string ctl() {
    return std::string(THINGMUX_BIN_DIR) + "/thingmuxctl";
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// A started, connected client.
struct app {
    client c;
    explicit app(const daemon_fixture& d, const std::string& name = "services-app") : c(app_options(d, name)) {
        c.start();
        const auto r = c.connect().get();
        EXPECT_TRUE(r.ok()) << r.message;
    }
};

TEST(LibthingmuxServices, AShadowGoesThroughGetUpdateGetDeleteGet) {
    // An app reads a shadow that does not exist (404), creates it with an update, reads it back,
    // deletes it and reads 404 again; a named shadow beside it is separate. Each answer is the
    // one for the request made, with the version AWS gives.
    broker_fixture broker;
    iot_services_responder cloud(broker, {.things = {thing}});
    daemon_fixture daemon(broker);
    app a(daemon);

    auto r = a.c.shadow_get().get();
    ASSERT_TRUE(r.outcome.ok()) << r.outcome.message;
    EXPECT_FALSE(r.accepted);
    EXPECT_EQ(r.code, 404) << r.document;
    EXPECT_FALSE(r.error_message.empty());

    r = a.c.shadow_update("", R"({"state":{"reported":{"temp":21}}})").get();
    ASSERT_TRUE(r.ok()) << r.outcome.message << " " << r.code << " " << r.error_message;
    EXPECT_EQ(r.version, 1);

    r = a.c.shadow_get().get();
    ASSERT_TRUE(r.ok()) << r.code << " " << r.error_message;
    EXPECT_TRUE(contains(r.document, R"("temp":21)")) << r.document;
    EXPECT_EQ(r.version, 1);
    EXPECT_FALSE(r.cached);

    auto named = a.c.shadow_update("config", R"({"state":{"desired":{"rate":5}}})").get();
    ASSERT_TRUE(named.ok()) << named.code << " " << named.error_message;
    EXPECT_EQ(named.version, 1);
    EXPECT_TRUE(contains(cloud.shadow_document(thing, "config"), R"("rate":5)"));

    r = a.c.shadow_delete().get();
    ASSERT_TRUE(r.ok()) << r.code << " " << r.error_message;
    r = a.c.shadow_get().get();
    EXPECT_EQ(r.code, 404);
    EXPECT_TRUE(a.c.shadow_get("config").get().ok());

    // One request per call reached the cloud.
    EXPECT_EQ(cloud.wait_for([](const auto& q) { return q.thing == thing; }, 7).size(), 7U);
}

TEST(LibthingmuxServices, AVersionConflictIsReportedWithAwsCodeAndMessage) {
    // An update that names a version the shadow no longer has is rejected by AWS with 409; the
    // app sees accepted=false, code 409 and AWS's message; the shadow keeps its state.
    broker_fixture broker;
    iot_services_responder cloud(broker, {.things = {thing}});
    daemon_fixture daemon(broker);
    app a(daemon);
    ASSERT_TRUE(a.c.shadow_update("", R"({"state":{"reported":{"v":"first"}}})").get().ok());
    ASSERT_TRUE(a.c.shadow_update("", R"({"state":{"reported":{"v":"second"}}})").get().ok());
    const auto r = a.c.shadow_update("", R"({"state":{"reported":{"v":"stale"}},"version":1})").get();
    ASSERT_TRUE(r.outcome.ok()) << r.outcome.message;
    EXPECT_FALSE(r.accepted);
    EXPECT_EQ(r.code, 409);
    EXPECT_FALSE(r.error_message.empty());
    EXPECT_TRUE(contains(cloud.shadow_document(thing, ""), "second"));
}

TEST(LibthingmuxServices, ConcurrentAppsEachCompleteWithTheirOwnAnswers) {
    // Five apps update and read the same shadow at once, ten requests each: every request
    // completes accepted, with an answer made for it (each update's answer carries the value it
    // sent), and no app completes a request of another.
    broker_fixture broker;
    iot_services_responder cloud(broker, {.things = {thing}});
    daemon_fixture daemon(broker);
    std::vector<std::unique_ptr<app>> apps;
    for (int i = 0; i < 5; ++i) {
        apps.push_back(std::make_unique<app>(daemon, "app-" + std::to_string(i)));
    }
    std::vector<std::pair<std::string, std::future<shadow_reply>>> updates;
    std::vector<std::future<shadow_reply>> gets;
    for (int round = 0; round < 5; ++round) {
        for (std::size_t i = 0; i < apps.size(); ++i) {
            const std::string value = "a" + std::to_string(i) + "r" + std::to_string(round);
            updates.emplace_back(value,
                                 apps[i]->c.shadow_update("", R"({"state":{"reported":{"who":")" + value + R"("}}})"));
            gets.push_back(apps[i]->c.shadow_get());
        }
    }
    for (auto& [value, f] : updates) {
        ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
        const auto r = f.get();
        ASSERT_TRUE(r.ok()) << r.outcome.message << " " << r.code << " " << r.error_message;
        EXPECT_TRUE(contains(r.document, value)) << value << " got " << r.document;
    }
    for (auto& f : gets) {
        ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
        EXPECT_TRUE(f.get().ok());
    }
}

TEST(LibthingmuxServices, ARequestAwsDoesNotAnswerTimesOut) {
    // AWS stays silent on one get: the app's request ends with timed_out after the app's own
    // timeout; the next get is answered as usual.
    broker_fixture broker;
    iot_services_responder cloud(broker, {.things = {thing}, .silent = {"shadow-get:1"}});
    daemon_fixture daemon(broker);
    app a(daemon);
    a.c.set_service_timeout(1500ms);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = a.c.shadow_get().get();
    EXPECT_EQ(r.outcome.code, error_code::timed_out) << r.outcome.message;
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 1500ms);
    a.c.set_service_timeout(default_service_timeout);
    r = a.c.shadow_get().get();
    EXPECT_TRUE(r.outcome.ok()) << r.outcome.message;
    EXPECT_EQ(r.code, 404);
}

TEST(LibthingmuxServices, JobsAreListedAndAStaleExpectedVersionIsRejected) {
    // Two jobs queued for the Thing: jobs_get lists both; an update with a stale expected version
    // is rejected 409; one without it is accepted and the cloud has the job IN_PROGRESS.
    broker_fixture broker;
    iot_services_responder cloud(broker, {.things = {thing}});
    daemon_fixture daemon(broker);
    app a(daemon);
    cloud.add_job(thing, "job-1", R"({"operation":"reboot"})");
    cloud.add_job(thing, "job-2", R"({"operation":"reboot"})");
    const auto list = a.c.jobs_get().get();
    ASSERT_TRUE(list.reply.ok()) << list.reply.outcome.message << " " << list.reply.code;
    std::vector<std::string> ids;
    for (const auto& j : list.in_progress) ids.push_back(j.id);
    for (const auto& j : list.queued) ids.push_back(j.id);
    std::sort(ids.begin(), ids.end());
    EXPECT_EQ(ids, (std::vector<std::string>{"job-1", "job-2"}));

    auto r = a.c.update_job("job-1", "IN_PROGRESS", {{"step", "download"}}, 99).get();
    ASSERT_TRUE(r.outcome.ok()) << r.outcome.message;
    EXPECT_FALSE(r.accepted);
    EXPECT_EQ(r.code, 409) << r.document;
    EXPECT_EQ(r.error_code, "VersionMismatch");
    r = a.c.update_job("job-1", "IN_PROGRESS", {{"step", "download"}}).get();
    EXPECT_TRUE(r.ok()) << r.code << " " << r.error_message;
    EXPECT_EQ(cloud.job_status(thing, "job-1"), "IN_PROGRESS");
}

// Needs thingmuxd's request routing (branch "router": the services: block, its 504 answer).
TEST(LibthingmuxServices, AnUnansweredRequestGetsTheDaemons504AndThingmuxctlExits4) {
    // AWS stays silent on two gets. With services.request_timeout 2 s, thingmuxd answers each on
    // get/rejected with code 504 before the library's own timeout: the app sees an answer,
    // rejected, code 504 and thingmuxd's message; thingmuxctl exits 4 and says 504.
    broker_fixture broker;
    iot_services_responder cloud(broker, {.things = {thing}, .silent = {"shadow-get:2"}});
    daemon_setup setup;
    setup.thing = "services:\n  request_timeout: 2s\n";
    daemon_fixture daemon(broker, setup);
    app a(daemon);
    const auto r = a.c.shadow_get().get();
    ASSERT_TRUE(r.outcome.ok()) << r.outcome.message << read_file(daemon.log_file());
    EXPECT_FALSE(r.accepted);
    EXPECT_EQ(r.code, 504) << r.document;
    EXPECT_EQ(r.error_message, "thingmuxd: AWS IoT did not answer within 2 s");
    std::string out;
    EXPECT_EQ(run_command({ctl(), "--socket", daemon.socket_path().string(), "shadow", "get"}, &out), 4) << out;
    EXPECT_TRUE(contains(out, "rejected by AWS IoT: 504")) << out;
}

// Needs thingmuxd's shadow cache (branch "router": services.shadow_cache).
TEST(LibthingmuxServices, OfflineAGetIsAnsweredFromTheCacheAndAnUpdateIsRefused) {
    // With services.shadow_cache, a shadow read while online is kept by thingmuxd. Once the broker
    // is gone, a get is answered at once from that copy, marked cached, with its version (and
    // thingmuxctl says so on stderr); an update fails with not_connected (never spooled).
    broker_fixture broker;
    iot_services_responder cloud(broker, {.things = {thing}});
    daemon_setup setup;
    setup.thing = "services:\n  shadow_cache: true\n";
    daemon_fixture daemon(broker, setup);
    app a(daemon);
    ASSERT_TRUE(a.c.shadow_update("", R"({"state":{"reported":{"fw":"1.4"}}})").get().ok());
    auto online = a.c.shadow_get().get();
    ASSERT_TRUE(online.ok());
    EXPECT_FALSE(online.cached);

    broker.stop();
    ASSERT_TRUE(eventually([&] { return a.c.current_state().uplink != uplink_state::connected; }, 20'000));
    const auto cached = a.c.shadow_get().get();
    ASSERT_TRUE(cached.ok()) << cached.outcome.message << " " << cached.code << read_file(daemon.log_file());
    EXPECT_TRUE(cached.cached);
    EXPECT_EQ(cached.version, online.version);
    EXPECT_TRUE(contains(cached.document, R"("fw":"1.4")")) << cached.document;
    const auto update = a.c.shadow_update("", R"({"state":{"reported":{"fw":"1.5"}}})").get();
    EXPECT_EQ(update.outcome.code, error_code::not_connected) << update.outcome.message;
    std::string out;
    EXPECT_EQ(run_command({ctl(), "--socket", daemon.socket_path().string(), "shadow", "get"}, &out), 0) << out;
    EXPECT_TRUE(contains(out, "thingmuxd's cached copy (version " + std::to_string(online.version) + ")")) << out;
}

// ---- thingmuxctl ------------------------------------------------------------------------------

TEST(ThingmuxctlServices, ShadowUpdateGetDeleteAndTheirExitCodes) {
    // thingmuxctl shadow update --reported builds the document, get prints it without the
    // clientToken, a get of a shadow that does not exist exits 5 with AWS's code and message on one
    // line, delete removes it.
    broker_fixture broker;
    iot_services_responder cloud(broker, {.things = {thing}});
    daemon_fixture daemon(broker);
    const std::string sock = daemon.socket_path().string();
    std::string out;
    ASSERT_EQ(run_command({ctl(), "--socket", sock, "shadow", "update", "--name", "cfg", "--reported", "temp=21",
                           "--reported", "mode=eco"},
                          &out),
              0)
        << out;
    EXPECT_TRUE(contains(out, R"("temp":21)")) << out;
    ASSERT_EQ(run_command({ctl(), "--socket", sock, "shadow", "get", "--name", "cfg"}, &out), 0) << out;
    EXPECT_TRUE(contains(out, R"("mode":"eco")")) << out;
    EXPECT_FALSE(contains(out, "clientToken")) << out;
    ASSERT_EQ(run_command({ctl(), "--socket", sock, "shadow", "get", "--name", "other"}, &out), 5) << out;
    EXPECT_TRUE(out.starts_with("thingmuxctl shadow get: rejected by AWS IoT: 404")) << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    ASSERT_EQ(run_command({ctl(), "--socket", sock, "shadow", "update", "--name", "cfg", "--version", "7",
                           R"({"state":{"reported":{"temp":22}}})"},
                          &out),
              5)
        << out;
    EXPECT_TRUE(contains(out, "409")) << out;
    ASSERT_EQ(run_command({ctl(), "--socket", sock, "shadow", "delete", "--name", "cfg"}, &out), 0) << out;
    EXPECT_EQ(cloud.shadow_document(thing, "cfg"), "");
    ASSERT_EQ(run_command({ctl(), "--socket", sock, "shadow", "update", "not json"}, &out), 2) << out;
}

TEST(ThingmuxctlServices, ShadowWatchPrintsTheDeltaOfACloudUpdate) {
    // thingmuxctl shadow watch --count 1 prints the delta the cloud's desired-state change makes,
    // then exits 0.
    broker_fixture broker;
    iot_services_responder cloud(broker, {.things = {thing}});
    daemon_fixture daemon(broker);
    const auto watch_out = broker.dir() / "shadow-watch.out";
    child_process watch({ctl(), "--socket", daemon.socket_path().string(), "shadow", "watch", "--count", "1"},
                        watch_out);
    const std::string delta = "$aws/things/" + thing + "/shadow/update/delta";
    ASSERT_TRUE(eventually([&] {
        const auto f = broker_filters(broker, thing);
        return std::find(f.begin(), f.end(), delta) != f.end();
    }));
    cloud.cloud_update(thing, "", R"({"led":"on"})");
    const auto status = watch.wait(15'000);
    ASSERT_TRUE(status.has_value()) << "thingmuxctl shadow watch --count 1 did not exit";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
    const auto printed = read_file(watch_out);
    EXPECT_TRUE(contains(printed, R"("led":"on")")) << printed;
    EXPECT_EQ(std::count(printed.begin(), printed.end(), '\n'), 1) << printed;
}

TEST(ThingmuxctlServices, JobsListPrintsThePendingJobs) {
    // thingmuxctl jobs list prints each pending job execution with its state.
    broker_fixture broker;
    iot_services_responder cloud(broker, {.things = {thing}});
    daemon_fixture daemon(broker);
    cloud.add_job(thing, "job-a", R"({"operation":"noop"})");
    std::string out;
    ASSERT_EQ(run_command({ctl(), "--socket", daemon.socket_path().string(), "jobs", "list"}, &out), 0) << out;
    EXPECT_TRUE(contains(out, "job-a")) << out;
}

// Needs thingmuxd's jobs service (the Thing's jobs: block; branch "jobs") to hand jobs over on
// $thingmux/jobs/OPERATION, and its request routing (branch "router") for the jobs answers.
TEST(ThingmuxctlServices, JobsRunReportsSucceededOrFailedByTheCommandsExitStatus) {
    // Two jobs for operation "selftest": thingmuxctl jobs run with `true` reports the first
    // SUCCEEDED; with `false`, the second FAILED; each after IN_PROGRESS. The job document comes
    // on the command's stdin and JOB_ID in its environment.
    broker_fixture broker;
    iot_services_responder cloud(broker, {.things = {thing}});
    daemon_setup setup;
    setup.thing = "jobs:\n  unhandled: leave\n  handler_wait: 60s\n";
    // A leading '#' does not cover $-topics: the local jobs topics are granted by name.
    setup.apps =
        "  - name: tests\n"
        "    match: { uid: 0 }\n"
        "    publish: ['#', '$aws/#']\n"
        "    subscribe: ['#', '$aws/#', '$thingmux/jobs/#']\n";
    daemon_fixture daemon(broker, setup);
    const std::string sock = daemon.socket_path().string();
    cloud.add_job(thing, "job-ok", R"({"operation":"selftest","check":"disk"})");
    cloud.add_job(thing, "job-bad", R"({"operation":"selftest","check":"fan"})");

    std::string out;
    ASSERT_EQ(
        run_command({ctl(), "--socket", sock, "jobs", "run", "selftest", "--count", "1", "--", "sh", "-c",
                     R"(grep -q '"check":"disk"' && test "$JOB_ID" = job-ok && test "$JOB_OPERATION" = selftest)"},
                    &out, 60'000),
        0)
        << out << read_file(daemon.log_file());
    EXPECT_EQ(cloud.job_status(thing, "job-ok"), "SUCCEEDED") << out;
    ASSERT_EQ(
        run_command({ctl(), "--socket", sock, "jobs", "run", "selftest", "--count", "1", "--", "false"}, &out, 60'000),
        0)
        << out;
    EXPECT_EQ(cloud.job_status(thing, "job-bad"), "FAILED") << out;
    EXPECT_TRUE(contains(out, "exit_status=1")) << out;
    const auto history = cloud.job_status_history(thing, "job-bad");
    ASSERT_FALSE(history.empty());
    EXPECT_EQ(history.front(), "IN_PROGRESS");
    EXPECT_EQ(history.back(), "FAILED");
}

}  // namespace
}  // namespace thingmux::test
