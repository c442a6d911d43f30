// thingmuxd's jobs service (docs/services.md) with the real daemon, the real broker and the
// Jobs responder (tests/support/iot-services-responder): apps registered for an operation by
// subscribing to "$thingmux/jobs/OPERATION" each get only their operation's jobs and report
// their progress themselves; a job no app handles is rejected with the configured reason; the
// next job starts when the one before ended. Every step waits for what it counts.
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/iot_services_fixture.hpp"
#include "tests/support/message_inbox.hpp"

#include <thingmux/client.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

using namespace std::chrono_literals;
using strings = std::vector<std::string>;

const std::string thing_name = "gateway-01";
const std::string jobs_topic = "$aws/things/" + thing_name + "/jobs";

std::string field(const boost::json::object& o, std::string_view name) {
    const auto* v = o.if_contains(name);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string{};
}

// An app registered for one job operation through libthingmux.
class job_app {
public:
    job_app(const daemon_fixture& d, const std::string& name) : client_(options_for(d, name)) { client_.start(); }
    job_app(const job_app&) = delete;
    job_app& operator=(const job_app&) = delete;

    [[nodiscard]] result connect() { return client_.connect().get(); }
    [[nodiscard]] result register_for(const std::string& operation) {
        return client_.subscribe("$thingmux/jobs/" + operation, 1, [this](const message& m) { inbox.add(m); }).get();
    }
    // Reports a status of job `id` as a jobs agent does, on the job's update topic.
    [[nodiscard]] result report(const std::string& id, const std::string& status) {
        return client_.publish({.topic = jobs_topic + "/" + id + "/update",
                                .payload = R"({"status":")" + status + R"(","statusDetails":{"step":")" + status + R"("}})",
                                .qos = 1})
            .get();
    }
    [[nodiscard]] result publish(const std::string& topic, const std::string& payload) {
        return client_.publish({.topic = topic, .payload = payload, .qos = 1}).get();
    }

    message_inbox inbox;

private:
    static options options_for(const daemon_fixture& d, const std::string& name) {
        options o;
        o.socket_path = d.socket_path().string();
        o.app_name = name;
        return o;
    }
    client client_;
};

daemon_setup jobs_setup(const std::string& jobs_block) {
    daemon_setup s;
    s.thing = jobs_block;
    // The test process (root) may use the Thing's topics and register for any job operation.
    s.apps = "  - name: tests\n"
             "    match: { uid: 0 }\n"
             "    publish: ['#', '$aws/#']\n"
             "    subscribe: ['#', '$aws/#', '$thingmux/jobs/#']\n";
    return s;
}

class JobsTest : public ::testing::Test {
protected:
    broker_fixture broker;
    iot_services_responder responder{broker, {.things = {thing_name}, .silent = {}, .delayed = {}}};

    [[nodiscard]] std::size_t start_nexts() const {
        std::size_t n = 0;
        for (const auto& r : responder.requests()) n += r.kind == "jobs-start-next" ? 1U : 0U;
        return n;
    }
    // Index in the responder's record of the first request matching `pred`; -1: none.
    [[nodiscard]] long index_of(const std::function<bool(const iot_services_responder::request&)>& pred) const {
        const auto all = responder.requests();
        const auto it = std::find_if(all.begin(), all.end(), pred);
        return it == all.end() ? -1 : static_cast<long>(it - all.begin());
    }
};

// The issue's scenario: two apps registered for different operations each get only their jobs
// (the execution AWS gave, on their operation's topic); their IN_PROGRESS and SUCCEEDED updates
// reach the responder in order; the next job starts only after the one before ended; a job no
// app handles is rejected with the configured reason, which the responder saw.
TEST_F(JobsTest, TwoAppsGetOnlyTheirOperationsJobsAndAnUnhandledJobIsRejected) {
    daemon_fixture daemon(broker, jobs_setup("jobs:\n"
                                             "  handler_wait: 0s\n"
                                             "  reject_reason: \"nothing here runs ${operation} (job ${job})\"\n"));
    observer_subscription updates(broker, jobs_topic + "/+/update", "jobs-observer");
    ASSERT_TRUE(updates.wait_ready());
    job_app updater(daemon, "updater");
    job_app rebooter(daemon, "rebooter");
    ASSERT_TRUE(updater.connect().ok());
    ASSERT_TRUE(rebooter.connect().ok());
    ASSERT_TRUE(updater.register_for("update").ok());
    ASSERT_TRUE(rebooter.register_for("reboot").ok());
    // The service asked for a job on connect and was told there is none.
    ASSERT_EQ(responder.wait_for([](const auto& r) { return r.kind == "jobs-start-next" && r.outcome == "accepted"; }, 1).size(),
              1U)
        << read_file(daemon.log_file());

    responder.add_job(thing_name, "job-u1", R"({"operation":"update","url":"https://example.com/fw-2.bin"})");
    responder.add_job(thing_name, "job-r1", R"({"operation":"reboot"})");
    responder.add_job(thing_name, "job-x1", R"({"operation":"format"})");

    // job-u1 reaches the update app only.
    ASSERT_TRUE(eventually([&] { return updater.inbox.size() == 1; }, 20'000)) << read_file(daemon.log_file());
    const auto first = updater.inbox.all().at(0);
    EXPECT_EQ(first.topic, "$thingmux/jobs/update");
    const auto execution = boost::json::parse(first.payload).as_object();
    EXPECT_EQ(field(execution, "jobId"), "job-u1");
    EXPECT_EQ(field(execution, "status"), "IN_PROGRESS");
    EXPECT_EQ(field(execution.at("jobDocument").as_object(), "url"), "https://example.com/fw-2.bin");
    EXPECT_EQ(rebooter.inbox.size(), 0U);
    EXPECT_EQ(responder.job_status(thing_name, "job-r1"), "QUEUED");  // one job at a time

    ASSERT_TRUE(updater.report("job-u1", "IN_PROGRESS").ok());
    EXPECT_EQ(responder.job_status(thing_name, "job-r1"), "QUEUED");
    ASSERT_TRUE(updater.report("job-u1", "SUCCEEDED").ok());

    // Then job-r1, to the reboot app only.
    ASSERT_TRUE(eventually([&] { return rebooter.inbox.size() == 1; }, 20'000)) << read_file(daemon.log_file());
    const auto second = rebooter.inbox.all().at(0);
    EXPECT_EQ(second.topic, "$thingmux/jobs/reboot");
    EXPECT_EQ(field(boost::json::parse(second.payload).as_object(), "jobId"), "job-r1");
    ASSERT_TRUE(rebooter.report("job-r1", "SUCCEEDED").ok());

    // job-x1: nobody runs "format"; rejected with the reason, variables expanded.
    ASSERT_TRUE(eventually([&] { return responder.job_status(thing_name, "job-x1") == "REJECTED"; }, 20'000))
        << read_file(daemon.log_file());
    EXPECT_EQ(responder.job_status_history(thing_name, "job-x1"), (strings{"IN_PROGRESS", "REJECTED"}));
    // What reached the broker for it: the service's one REJECTED update, with the reason.
    std::string rejection;
    ASSERT_TRUE(eventually([&] {
        for (const auto& l : updates.lines())
            if (l.starts_with(jobs_topic + "/job-x1/update ")) rejection = l.substr(l.find(' ') + 1);
        return !rejection.empty();
    }, 20'000));
    const auto body = boost::json::parse(rejection).as_object();
    EXPECT_EQ(field(body, "status"), "REJECTED");
    EXPECT_EQ(field(body.at("statusDetails").as_object(), "reason"), "nothing here runs format (job job-x1)");

    // Each app got exactly its job, once; the statuses reached the responder in order.
    EXPECT_EQ(updater.inbox.size(), 1U);
    EXPECT_EQ(rebooter.inbox.size(), 1U);
    EXPECT_EQ(responder.job_status_history(thing_name, "job-u1"), (strings{"IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED"}));
    EXPECT_EQ(responder.job_status_history(thing_name, "job-r1"), (strings{"IN_PROGRESS", "SUCCEEDED"}));
    // job-r1 started only after job-u1 succeeded, job-x1 only after job-r1.
    const auto u1_done = index_of([](const auto& r) { return r.job_id == "job-u1" && r.status == "SUCCEEDED"; });
    const auto r1_start = index_of([](const auto& r) { return r.kind == "jobs-start-next" && r.job_id == "job-r1"; });
    const auto r1_done = index_of([](const auto& r) { return r.job_id == "job-r1" && r.status == "SUCCEEDED"; });
    const auto x1_start = index_of([](const auto& r) { return r.kind == "jobs-start-next" && r.job_id == "job-x1"; });
    ASSERT_GE(u1_done, 0);
    EXPECT_LT(u1_done, r1_start);
    EXPECT_LT(r1_start, r1_done);
    EXPECT_LT(r1_done, x1_start);
    // One start-next on connect and one per job: none doubled by notify-next.
    EXPECT_EQ(start_nexts(), 4U);
    EXPECT_TRUE(log_has(daemon, "job job-u1 (operation update) handed to 1 app(s)"));
    EXPECT_TRUE(log_has(daemon, "job job-x1 (operation format): no app on this device is subscribed to "
                                "$thingmux/jobs/format; reporting it REJECTED"));
}

// Apps start in any order: within handler_wait a job waits for its app, and goes to it as soon
// as it registers.
TEST_F(JobsTest, AJobWaitsForAnAppThatRegistersWithinHandlerWait) {
    daemon_fixture daemon(broker, jobs_setup("jobs:\n  handler_wait: 5m\n"));
    ASSERT_EQ(responder.wait_for([](const auto& r) { return r.kind == "jobs-start-next"; }, 1).size(), 1U);
    responder.add_job(thing_name, "job-late", R"({"operation":"update"})");
    ASSERT_TRUE(eventually([&] { return log_has(daemon, "job job-late (operation update) waits for an app"); }, 20'000))
        << read_file(daemon.log_file());
    EXPECT_EQ(responder.job_status(thing_name, "job-late"), "IN_PROGRESS");

    job_app late(daemon, "late");
    ASSERT_TRUE(late.connect().ok());
    ASSERT_TRUE(late.register_for("update").ok());
    ASSERT_TRUE(eventually([&] { return late.inbox.size() == 1; }, 20'000)) << read_file(daemon.log_file());
    EXPECT_EQ(field(boost::json::parse(late.inbox.all().at(0).payload).as_object(), "jobId"), "job-late");
    ASSERT_TRUE(late.report("job-late", "SUCCEEDED").ok());
    // The broker acknowledged the update; the responder handles it next.
    ASSERT_TRUE(eventually([&] { return responder.job_status(thing_name, "job-late") == "SUCCEEDED"; }, 20'000));
    EXPECT_EQ(responder.job_status_history(thing_name, "job-late"), (strings{"IN_PROGRESS", "SUCCEEDED"}));
    EXPECT_EQ(late.inbox.size(), 1U);
}

// unhandled: leave — a job nobody handles stays IN_PROGRESS for another agent: nothing is
// published for it, and the next job waits until it ends.
TEST_F(JobsTest, LeaveKeepsAnUnhandledJobInProgress) {
    daemon_fixture daemon(broker, jobs_setup("jobs: {unhandled: leave, handler_wait: 0s}\n"));
    ASSERT_EQ(responder.wait_for([](const auto& r) { return r.kind == "jobs-start-next"; }, 1).size(), 1U);
    responder.add_job(thing_name, "job-other", R"({"operation":"agent-only"})");
    ASSERT_TRUE(eventually([&] { return log_has(daemon, "left IN_PROGRESS for another agent"); }, 20'000))
        << read_file(daemon.log_file());
    EXPECT_EQ(responder.job_status(thing_name, "job-other"), "IN_PROGRESS");
    EXPECT_EQ(responder.job_status_history(thing_name, "job-other"), strings{"IN_PROGRESS"});
    for (const auto& r : responder.requests()) EXPECT_NE(r.kind, "jobs-update") << r.topic;
}

// Apps may subscribe to "$thingmux/jobs/..." with rights, never publish there: a forged job is
// refused and reaches no handler.
TEST_F(JobsTest, AppsCannotForgeAJobOnTheLocalTopic) {
    daemon_fixture daemon(broker, jobs_setup("jobs: {handler_wait: 0s}\n"));
    job_app handler(daemon, "handler");
    job_app forger(daemon, "forger");
    ASSERT_TRUE(handler.connect().ok());
    ASSERT_TRUE(forger.connect().ok());
    ASSERT_TRUE(handler.register_for("update").ok());
    const auto r = forger.publish("$thingmux/jobs/update", R"({"jobId":"forged"})");
    EXPECT_EQ(r.code, error_code::not_authorized) << r.message;
    EXPECT_NE(r.message.find("only thingmuxd's services publish there"), std::string::npos) << r.message;
    // A job that does come through the service still arrives, and nothing else did.
    responder.add_job(thing_name, "job-real", R"({"operation":"update"})");
    ASSERT_TRUE(eventually([&] { return handler.inbox.size() == 1; }, 20'000)) << read_file(daemon.log_file());
    EXPECT_EQ(field(boost::json::parse(handler.inbox.all().at(0).payload).as_object(), "jobId"), "job-real");
}

}  // namespace
}  // namespace thingmux::test
