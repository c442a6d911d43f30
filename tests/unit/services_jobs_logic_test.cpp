// The jobs service's decisions (daemon/services/jobs_logic.hpp, docs/services.md), driven
// with a hand-moved clock: every transition, the back-off, handler_wait, and hostile payloads on
// every topic the service reads. Each test counts the requests it expects, and no more.
#include "daemon/services/jobs_logic.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace thingmux::services {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using strings = std::vector<std::string>;

const std::string jobs = "$aws/things/gw/jobs/";

config::jobs_settings settings_of(std::chrono::milliseconds wait,
                                  config::unhandled_jobs unhandled = config::unhandled_jobs::reject) {
    config::jobs_settings s;
    s.handler_wait = wait;
    s.unhandled = unhandled;
    return s;
}

// The logic with a clock, and what its actions did: requests sent, offers made, lines logged.
struct rig {
    explicit rig(config::jobs_settings s = settings_of(0s)) : logic("gw", std::move(s), "tok-", start) {}
    static config::jobs_settings settings(std::chrono::milliseconds wait,
                                          config::unhandled_jobs unhandled = config::unhandled_jobs::reject) {
        return settings_of(wait, unhandled);
    }

    // Carries out actions as jobs_service does; offers are answered with handlers[operation].
    void apply(jobs_actions actions) {
        for (auto& a : actions) {
            if (auto* p = std::get_if<jobs_action::publish>(&a)) {
                published.push_back(*p);
            } else if (auto* o = std::get_if<jobs_action::offer>(&a)) {
                offers.push_back(*o);
                apply(logic.offered(o->job_id, handlers[o->operation], now));
            } else if (auto* l = std::get_if<jobs_action::log>(&a)) {
                logged.push_back(*l);
            } else if (auto* w = std::get_if<jobs_action::wake>(&a)) {
                wake = w->at;
            }
        }
    }
    void up() { apply(logic.link(true, now)); }
    void down() { apply(logic.link(false, now)); }
    void receive(const std::string& topic_tail, const std::string& payload) { apply(logic.message(jobs + topic_tail, payload, now)); }
    // Moves the clock by `d`, ticking at each wake that falls due on the way.
    void advance(std::chrono::milliseconds d) {
        const auto end = now + d;
        while (wake && *wake <= end) {
            now = std::max(now, *wake);
            wake.reset();
            apply(logic.tick(now));
        }
        now = end;
    }

    [[nodiscard]] std::size_t start_nexts() const {
        std::size_t n = 0;
        for (const auto& p : published) n += p.topic == jobs + "start-next" ? 1U : 0U;
        return n;
    }
    [[nodiscard]] const jobs_action::publish& last() const { return published.back(); }
    [[nodiscard]] std::string last_token() const { return published.back().token; }
    // AWS's answer to the last start-next: an execution of `job` with `document`, or none.
    void accept_start_next(const std::string& job, const std::string& document) {
        receive("start-next/accepted", R"({"clientToken":")" + last_token() + R"(","timestamp":1,"execution":{"jobId":")" +
                                           job + R"(","status":"IN_PROGRESS","jobDocument":)" + document +
                                           R"(,"versionNumber":2,"executionNumber":1}})");
    }
    void accept_no_job() { receive("start-next/accepted", R"({"clientToken":")" + last_token() + R"(","timestamp":1})"); }
    void notify_next(const std::string& job) {
        receive("notify-next", R"({"timestamp":1,"execution":{"jobId":")" + job + R"(","jobDocument":{"operation":"x"}}})");
    }
    void notify_none() { receive("notify-next", R"({"timestamp":2})"); }
    [[nodiscard]] bool logged_with(log_level level, const std::string& part) const {
        for (const auto& l : logged)
            if (l.level == level && l.text.find(part) != std::string::npos) return true;
        return false;
    }

    steady_time start{std::chrono::hours(100)};
    steady_time now = start;
    jobs_logic logic;
    std::map<std::string, std::size_t> handlers;
    std::vector<jobs_action::publish> published;
    std::vector<jobs_action::offer> offers;
    std::vector<jobs_action::log> logged;
    std::optional<steady_time> wake;
};

boost::json::object json_of(const std::string& s) { return boost::json::parse(s).as_object(); }

TEST(ServicesJobsLogic, NamesTheTopicsItNeeds) {
    rig r;
    EXPECT_THAT(r.logic.filters(), ::testing::ElementsAre(jobs + "notify-next", jobs + "start-next/accepted",
                                                          jobs + "start-next/rejected", jobs + "+/update/accepted",
                                                          jobs + "+/update/rejected"));
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::offline);
}

TEST(ServicesJobsLogic, OperationAndJobIdRules) {
    EXPECT_TRUE(valid_operation("firmware.update-2_b"));
    EXPECT_TRUE(valid_operation(std::string(64, 'o')));
    EXPECT_FALSE(valid_operation(std::string(65, 'o')));
    EXPECT_FALSE(valid_operation(""));
    for (const char* bad : {"a/b", "a+", "#", "a b", "é", "$x"}) EXPECT_FALSE(valid_operation(bad)) << bad;
    EXPECT_TRUE(valid_job_id("job-1_A"));
    EXPECT_FALSE(valid_job_id("job.1"));  // AWS job IDs have no '.'
    EXPECT_FALSE(valid_job_id("a/b"));
    EXPECT_FALSE(valid_job_id(std::string(65, 'j')));
}

// Offline: nothing is sent, whatever arrives. On connect: one start-next with a fresh token.
TEST(ServicesJobsLogic, StartNextOnConnect) {
    rig r;
    r.notify_next("j1");
    EXPECT_TRUE(r.published.empty());
    r.up();
    ASSERT_EQ(r.published.size(), 1U);
    EXPECT_EQ(r.last().topic, jobs + "start-next");
    EXPECT_EQ(r.last().qos, 0);
    EXPECT_EQ(json_of(r.last().payload).at("clientToken").as_string(), "tok-1");
    EXPECT_EQ(r.last().token, "tok-1");
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::requesting);
    ASSERT_TRUE(r.wake);
    EXPECT_EQ(*r.wake, r.now + 30s);
    r.up();  // a repeated "up" asks nothing more
    EXPECT_EQ(r.published.size(), 1U);
}

// No job pending: idle until notify-next names one, then exactly one start-next.
TEST(ServicesJobsLogic, IdleUntilNotifyNextNamesAJob) {
    rig r;
    r.up();
    r.accept_no_job();
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::idle);
    r.notify_none();
    EXPECT_EQ(r.start_nexts(), 1U);
    r.notify_next("j1");
    EXPECT_EQ(r.start_nexts(), 2U);
    EXPECT_EQ(r.last_token(), "tok-2");
}

// The execution goes to the operation's apps, as AWS gave it; the job stays theirs while
// notify-next names it, and the next one starts when notify-next names another.
TEST(ServicesJobsLogic, HandsTheJobToItsOperationThenStartsTheNext) {
    rig r;
    r.handlers["update"] = 2;
    r.up();
    r.accept_start_next("j1", R"({"operation":"update","url":"https://example.com/fw"})");
    ASSERT_EQ(r.offers.size(), 1U);
    EXPECT_EQ(r.offers[0].operation, "update");
    EXPECT_EQ(r.offers[0].job_id, "j1");
    const auto execution = json_of(r.offers[0].execution);
    EXPECT_EQ(execution.at("jobId").as_string(), "j1");
    EXPECT_EQ(execution.at("jobDocument").at("url").as_string(), "https://example.com/fw");
    EXPECT_EQ(execution.at("versionNumber").as_int64(), 2);
    auto s = r.logic.snapshot();
    EXPECT_EQ(s.state, jobs_state::handed);
    EXPECT_EQ(s.job_id, "j1");
    EXPECT_EQ(s.operation, "update");
    EXPECT_EQ(s.job_status, "IN_PROGRESS");
    EXPECT_EQ(s.counts.handed, 1U);
    EXPECT_TRUE(r.logged_with(log_level::info, "job j1 (operation update) handed to 2 app(s)"));

    r.notify_next("j1");  // its own status update: still the next job
    EXPECT_EQ(r.start_nexts(), 1U);
    r.notify_next("j2");  // j1 ended
    EXPECT_EQ(r.start_nexts(), 2U);
    EXPECT_TRUE(r.logged_with(log_level::info, "job j1 (operation update) is over; starting the next job"));
    r.accept_start_next("j2", R"({"operation":"update"})");
    EXPECT_EQ(r.offers.size(), 2U);
    EXPECT_EQ(r.logic.snapshot().job_id, "j2");
    r.notify_none();
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::idle);
    EXPECT_EQ(r.logic.snapshot().job_id, "");
    EXPECT_EQ(r.start_nexts(), 2U);
    EXPECT_EQ(r.logic.snapshot().counts.handed, 2U);
}

// One job at a time: a burst of notify-next while start-next is in flight sends no second
// start-next; one more goes only if the answer names no job.
TEST(ServicesJobsLogic, HundredNotifyNextInARowKeepOneStartNextInFlight) {
    rig r;
    r.handlers["update"] = 1;
    r.up();
    r.accept_no_job();
    for (int i = 0; i < 100; ++i) r.notify_next("j" + std::to_string(i));
    EXPECT_EQ(r.start_nexts(), 2U);  // the connect's, and the first notify-next's
    r.accept_no_job();               // raced: the answer names none, but notify-next did
    EXPECT_EQ(r.start_nexts(), 3U);
    for (int i = 0; i < 100; ++i) r.notify_next("j" + std::to_string(i));
    EXPECT_EQ(r.start_nexts(), 3U);
    r.accept_start_next("j0", R"({"operation":"update"})");
    EXPECT_EQ(r.start_nexts(), 3U);
    EXPECT_EQ(r.offers.size(), 1U);
}

// Answers carrying another token (an app's own start-next) or none change nothing.
TEST(ServicesJobsLogic, IgnoresAnswersToOtherRequests) {
    rig r;
    r.handlers["update"] = 1;
    r.up();
    r.receive("start-next/accepted",
              R"({"clientToken":"app-7","execution":{"jobId":"j9","jobDocument":{"operation":"update"}}})");
    r.receive("start-next/accepted", R"({"execution":{"jobId":"j9","jobDocument":{"operation":"update"}}})");
    r.receive("start-next/rejected", R"({"clientToken":"app-7","code":"InvalidRequest"})");
    EXPECT_TRUE(r.offers.empty());
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::requesting);
    EXPECT_EQ(r.logic.snapshot().counts.failures, 0U);
    r.receive("j9/update/accepted", R"({"clientToken":"tok-1"})");  // not rejecting: not ours
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::requesting);
    r.receive("unrelated/topic", "{}");
    EXPECT_EQ(r.published.size(), 1U);
}

// No app for the operation and handler_wait over: REJECTED with the configured reason, the
// variables expanded; once AWS accepts it, the next job.
TEST(ServicesJobsLogic, RejectsAJobNoAppHandles) {
    auto s = rig::settings(0s);
    s.reject_reason = "job ${job}: nobody runs ${operation} (${operation})";
    rig r(s);
    r.up();
    r.accept_start_next("j1", R"({"operation":"reboot"})");
    ASSERT_EQ(r.offers.size(), 1U);  // asked: nobody
    ASSERT_EQ(r.published.size(), 2U);
    EXPECT_EQ(r.last().topic, jobs + "j1/update");
    EXPECT_EQ(r.last().qos, 1);
    const auto body = json_of(r.last().payload);
    EXPECT_EQ(body.at("status").as_string(), "REJECTED");
    EXPECT_EQ(body.at("statusDetails").at("reason").as_string(), "job j1: nobody runs reboot (reboot)");
    EXPECT_EQ(body.at("clientToken").as_string(), r.last_token());
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::rejecting);
    EXPECT_TRUE(r.logged_with(log_level::warning, "job j1 (operation reboot): no app on this device is subscribed to "
                                                  "$thingmux/jobs/reboot; reporting it REJECTED"));
    r.receive("j1/update/accepted", R"({"clientToken":")" + r.last_token() + R"(","timestamp":3})");
    EXPECT_EQ(r.logic.snapshot().counts.rejected, 1U);
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::idle);
    // AWS names the next job with notify-next, as after any job that ended.
    EXPECT_EQ(r.start_nexts(), 1U);
    r.notify_next("j2");
    EXPECT_EQ(r.start_nexts(), 2U);
}

// The two messages that end a rejection, in either order, make the same requests.
TEST(ServicesJobsLogic, ARejectionEndsTheSameWhicheverMessageComesFirst) {
    for (const bool answer_first : {true, false}) {
        SCOPED_TRACE(answer_first);
        rig r;
        r.up();
        r.accept_start_next("j1", R"({"operation":"reboot"})");
        const auto token = r.last_token();
        const auto answer = [&] { r.receive("j1/update/accepted", R"({"clientToken":")" + token + R"("})"); };
        if (answer_first) answer();
        r.notify_none();
        if (!answer_first) answer();
        EXPECT_EQ(r.logic.snapshot().state, jobs_state::idle);
        EXPECT_EQ(r.logic.snapshot().counts.rejected, 1U);
        EXPECT_EQ(r.start_nexts(), 1U);
        EXPECT_EQ(r.published.size(), 2U);
    }
}

TEST(ServicesJobsLogic, DefaultReasonNamesTheOperation) {
    rig r(rig::settings(0s));
    r.up();
    r.accept_start_next("j1", R"({"operation":"reboot"})");
    EXPECT_EQ(json_of(r.last().payload).at("statusDetails").at("reason").as_string(),
              "no application on this device handles operation reboot");
}

// AWS moving on (notify-next names another job) ends the rejection even before its answer.
TEST(ServicesJobsLogic, NotifyNextEndsARejectionInFlight) {
    rig r;
    r.up();
    r.accept_start_next("j1", R"({"operation":"reboot"})");
    const auto reject_token = r.last_token();
    r.notify_next("j2");
    EXPECT_EQ(r.start_nexts(), 2U);
    EXPECT_EQ(r.logic.snapshot().counts.rejected, 1U);
    r.receive("j1/update/accepted", R"({"clientToken":")" + reject_token + R"("})");  // late: nothing more
    EXPECT_EQ(r.start_nexts(), 2U);
    EXPECT_EQ(r.logic.snapshot().counts.rejected, 1U);
}

// AWS refuses the rejection (or does not answer): back off, then start-next again.
TEST(ServicesJobsLogic, ARefusedRejectionBacksOff) {
    rig r;
    r.up();
    r.accept_start_next("j1", R"({"operation":"reboot"})");
    r.receive("j1/update/rejected", R"({"clientToken":")" + r.last_token() + R"(","code":"InvalidStateTransition","message":"done"})");
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::backing_off);
    EXPECT_TRUE(r.logged_with(log_level::warning, "AWS IoT refused the REJECTED update of job j1 (operation reboot) "
                                                  "(InvalidStateTransition: done); start-next again in 5 s"));
    r.advance(4999ms);
    EXPECT_EQ(r.start_nexts(), 1U);
    r.advance(1ms);
    EXPECT_EQ(r.start_nexts(), 2U);
    r.accept_start_next("j1", R"({"operation":"reboot"})");  // the same job again: rejected again
    EXPECT_EQ(r.published.size(), 4U);
    r.advance(30s);  // no answer
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::backing_off);
    EXPECT_TRUE(r.logged_with(log_level::warning, "AWS IoT did not answer the REJECTED update of job j1"));
    EXPECT_EQ(r.logic.snapshot().counts.failures, 2U);
    r.advance(9999ms);  // the second failure in a row: 10 s
    EXPECT_EQ(r.start_nexts(), 2U);
    r.advance(1ms);
    EXPECT_EQ(r.start_nexts(), 3U);
}

// unhandled: leave — the job stays IN_PROGRESS (nothing is published), logged once; the service
// waits for it to end before the next.
TEST(ServicesJobsLogic, LeavesAJobNoAppHandles) {
    rig r(rig::settings(0s, config::unhandled_jobs::leave));
    r.up();
    r.accept_start_next("j1", R"({"operation":"reboot"})");
    EXPECT_EQ(r.published.size(), 1U);
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::left);
    EXPECT_EQ(r.logic.snapshot().counts.left, 1U);
    EXPECT_TRUE(r.logged_with(log_level::warning, "job j1 (operation reboot): no app on this device is subscribed to "
                                                  "$thingmux/jobs/reboot; left IN_PROGRESS for another agent"));
    r.notify_next("j1");
    r.advance(10min);
    EXPECT_EQ(r.published.size(), 1U);
    r.notify_next("j2");
    EXPECT_EQ(r.start_nexts(), 2U);
}

// Apps start in any order: within handler_wait of the service's start a job waits, checked
// every second, and goes to the app that subscribes; logged once while it waits.
TEST(ServicesJobsLogic, AJobWaitsForItsAppWithinHandlerWait) {
    rig r(rig::settings(60s));
    r.up();
    r.accept_start_next("j1", R"({"operation":"update"})");
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::waiting);
    EXPECT_TRUE(r.logged_with(log_level::info, "job j1 (operation update) waits for an app subscribed to "
                                               "$thingmux/jobs/update (at most 60 s more"));
    r.advance(10s);
    EXPECT_EQ(r.offers.size(), 11U);  // the first, then one a second
    EXPECT_EQ(r.logged.size(), 1U);
    r.handlers["update"] = 1;
    r.advance(1s);
    EXPECT_EQ(r.offers.size(), 12U);
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::handed);
    r.advance(5min);
    EXPECT_EQ(r.offers.size(), 12U);
    EXPECT_EQ(r.published.size(), 1U);
}

// Past handler_wait (counted from the service's start, not the job's arrival) it is unhandled.
TEST(ServicesJobsLogic, HandlerWaitCountsFromTheServiceStart) {
    rig r(rig::settings(60s));
    r.now += 50s;
    r.up();
    r.accept_start_next("j1", R"({"operation":"update"})");
    r.advance(9s);
    EXPECT_EQ(r.published.size(), 1U);
    r.advance(1s);
    ASSERT_EQ(r.published.size(), 2U);
    EXPECT_EQ(r.last().topic, jobs + "j1/update");
    EXPECT_EQ(r.offers.size(), 11U);

    rig late(rig::settings(60s));
    late.now += 61s;
    late.up();
    late.accept_start_next("j1", R"({"operation":"update"})");
    EXPECT_EQ(late.published.size(), 2U);  // rejected at once
}

// A job cancelled while it waits for its app: notify-next names another; the wait ends.
TEST(ServicesJobsLogic, NotifyNextEndsAWait) {
    rig r(rig::settings(60s));
    r.up();
    r.accept_start_next("j1", R"({"operation":"update"})");
    r.notify_none();
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::idle);
    r.advance(2min);
    EXPECT_EQ(r.offers.size(), 1U);
    EXPECT_EQ(r.published.size(), 1U);
}

// A job whose document names no usable operation is unhandled at once (no wait), with a reason
// saying why; the configured reason does not apply.
TEST(ServicesJobsLogic, AJobWithoutAValidOperationIsRejectedWithWhy) {
    struct hostile {
        std::string document;
        std::string why;
    };
    const std::vector<hostile> cases{
        {"null", "the job has no job document"},  // replaced below by no jobDocument at all
        {"[1,2]", "the job document is not a JSON object"},
        {R"({"op":"update"})", "the job document has no \"operation\""},
        {R"({"operation":7})", "the job document's \"operation\" is not a string"},
        {R"({"operation":""})", "the job document's \"operation\" is 0 bytes long (1 to 64 allowed)"},
        {R"({"operation":")" + std::string(65, 'o') + R"("})", "is 65 bytes long (1 to 64 allowed)"},
        {R"({"operation":"a/b"})", "\"a/b\" holds characters other than A-Z a-z 0-9 _ . -"},
        {R"({"operation":"a+#"})", "holds characters other than"},
        {R"({"operation":"x\u0000y"})", "\"x\\x00y\" holds characters other than"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.document);
        rig r(rig::settings(60s));
        r.handlers["update"] = 1;
        r.up();
        if (c.document == "null")
            r.receive("start-next/accepted", R"({"clientToken":"tok-1","execution":{"jobId":"j1","status":"IN_PROGRESS"}})");
        else
            r.accept_start_next("j1", c.document);
        EXPECT_TRUE(r.offers.empty());
        ASSERT_EQ(r.published.size(), 2U);
        const auto reason = std::string(json_of(r.last().payload).at("statusDetails").at("reason").as_string());
        EXPECT_THAT(reason, HasSubstr(c.why));
        EXPECT_THAT(reason, HasSubstr("thingmuxd: "));
        EXPECT_LE(reason.size(), max_status_detail_bytes);
        EXPECT_TRUE(r.logged_with(log_level::warning, "job j1 (no valid operation): "));
        EXPECT_EQ(r.logic.snapshot().operation, "");
    }
}

// A job ID that could not be a topic level is never published to: the answer counts as failed.
TEST(ServicesJobsLogic, AnExecutionWithoutAValidJobIdIsNeverActedOn) {
    for (const std::string& id : strings{R"("a/b")", R"("+")", R"("")", "7", "null", "\"" + std::string(65, 'j') + "\""}) {
        SCOPED_TRACE(id);
        rig r;
        r.handlers["update"] = 1;
        r.up();
        r.receive("start-next/accepted",
                  R"({"clientToken":"tok-1","execution":{"jobId":)" + id + R"(,"jobDocument":{"operation":"update"}}})");
        EXPECT_TRUE(r.offers.empty());
        EXPECT_EQ(r.published.size(), 1U);
        EXPECT_EQ(r.logic.snapshot().state, jobs_state::backing_off);
        EXPECT_EQ(r.logic.snapshot().counts.malformed, 1U);
        EXPECT_TRUE(r.logged_with(log_level::warning, "names no valid job ID"));
    }
}

// Unreadable messages on every topic: counted, logged as peer noise (rate-limited by the
// caller), and nothing is sent.
TEST(ServicesJobsLogic, HostilePayloadsChangeNothing) {
    std::string deep;
    for (int i = 0; i < 40; ++i) deep += R"({"a":)";
    deep += "1";
    for (int i = 0; i < 40; ++i) deep += "}";
    const std::vector<std::string> payloads{
        "not json", "[1,2,3]", "\"text\"", "{\"clientToken\":", std::string("\xff\xfe{}"), deep,
        R"({"clientToken":"tok-1","execution":{)" + std::string(max_jobs_payload, ' ') + "}}",
    };
    for (const auto& topic : {"notify-next", "start-next/accepted", "start-next/rejected"}) {
        rig r;
        r.handlers["update"] = 1;
        r.up();
        for (const auto& p : payloads) r.receive(topic, p);
        SCOPED_TRACE(topic);
        EXPECT_EQ(r.published.size(), 1U);
        EXPECT_TRUE(r.offers.empty());
        EXPECT_EQ(r.logic.snapshot().state, jobs_state::requesting);
        EXPECT_EQ(r.logic.snapshot().counts.malformed, payloads.size());
        ASSERT_EQ(r.logged.size(), payloads.size());
        for (const auto& l : r.logged) EXPECT_TRUE(l.peer_noise) << l.text;
        EXPECT_TRUE(r.logged_with(log_level::warning, "more than the 64 KiB read"));
        EXPECT_TRUE(r.logged_with(log_level::warning, "it is not JSON"));
        EXPECT_TRUE(r.logged_with(log_level::warning, "it is not a JSON object"));
    }
}

TEST(ServicesJobsLogic, NotifyNextWithABadExecutionIsIgnored) {
    rig r;
    r.up();
    r.accept_no_job();
    r.receive("notify-next", R"({"execution":"j1"})");
    r.receive("notify-next", R"({"execution":[1]})");
    EXPECT_EQ(r.start_nexts(), 1U);
    EXPECT_EQ(r.logic.snapshot().counts.malformed, 2U);
    r.receive("notify-next", R"({"execution":{}})");  // a job, unnamed: start-next learns which
    EXPECT_EQ(r.start_nexts(), 2U);
}

// A large statusDetails (within 64 KiB) is passed on to the app whole: the service reads only
// what it needs.
TEST(ServicesJobsLogic, HugeStatusDetailsReachTheAppWhole) {
    rig r;
    r.handlers["update"] = 1;
    r.up();
    const std::string details(60000, 'd');
    r.receive("start-next/accepted", R"({"clientToken":"tok-1","execution":{"jobId":"j1","statusDetails":{"note":")" + details +
                                         R"("},"jobDocument":{"operation":"update"}}})");
    ASSERT_EQ(r.offers.size(), 1U);
    EXPECT_EQ(json_of(r.offers[0].execution).at("statusDetails").at("note").as_string().size(), details.size());
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::handed);
}

// A refused start-next or none answered: back off 5 s doubling to 5 min; a success resets it.
TEST(ServicesJobsLogic, StartNextBacksOffFiveSecondsDoublingToFiveMinutes) {
    rig r;
    r.up();
    r.receive("start-next/rejected", R"({"clientToken":"tok-1","code":"ThrottlingException","message":"slow down"})");
    EXPECT_TRUE(r.logged_with(log_level::warning,
                              "AWS IoT refused start-next (ThrottlingException: slow down); start-next again in 5 s"));
    const std::vector<int> delays{5, 10, 20, 40, 80, 160, 300, 300};
    for (std::size_t i = 0; i < delays.size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(r.logic.snapshot().state, jobs_state::backing_off);
        ASSERT_TRUE(r.logic.snapshot().retry_at);
        EXPECT_EQ(*r.logic.snapshot().retry_at, r.now + std::chrono::seconds(delays[i]));
        r.advance(std::chrono::seconds(delays[i]));
        EXPECT_EQ(r.start_nexts(), i + 2);
        r.advance(30s);  // unanswered
    }
    EXPECT_TRUE(r.logged_with(log_level::warning, "AWS IoT did not answer start-next within 30 s; start-next again in 300 s"));
    r.advance(300s);
    r.accept_no_job();
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::idle);
    r.notify_next("j1");
    r.receive("start-next/rejected", R"({"clientToken":")" + r.last_token() + R"(","code":504,"message":"timeout"})");
    EXPECT_EQ(*r.logic.snapshot().retry_at, r.now + 5s);
    EXPECT_TRUE(r.logged_with(log_level::warning, "(504: timeout)"));
}

// A request the pipeline refuses (offline, a guardrail) fails like an unanswered one.
TEST(ServicesJobsLogic, ARefusedPublishBacksOff) {
    rig r;
    r.up();
    r.apply(r.logic.publish_failed("other-token", "nope", r.now));
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::requesting);
    r.apply(r.logic.publish_failed("tok-1", "Thing gw is offline", r.now));
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::backing_off);
    EXPECT_TRUE(r.logged_with(log_level::warning, "thingmuxd could not send start-next: Thing gw is offline"));
}

// The link going down forgets what was in flight; a back-off survives a reconnect.
TEST(ServicesJobsLogic, LinkDownForgetsRequestsAndKeepsTheBackOff) {
    rig r;
    r.up();
    r.down();
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::offline);
    r.accept_no_job();  // the old request's answer, late: ignored (offline)
    r.up();
    EXPECT_EQ(r.start_nexts(), 2U);
    r.accept_start_next("j1", R"({"operation":"x"})");  // token tok-2
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::rejecting);
    r.receive("j1/update/rejected", R"({"clientToken":")" + r.last_token() + R"(","code":"Conflict"})");
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::backing_off);
    r.advance(2s);
    r.down();
    r.up();
    EXPECT_EQ(r.start_nexts(), 2U);
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::backing_off);
    r.advance(3s);
    EXPECT_EQ(r.start_nexts(), 3U);
}

// After a reconnect, start-next gives back the job the apps already have: not offered twice.
TEST(ServicesJobsLogic, TheSameExecutionAfterAReconnectIsNotOfferedAgain) {
    rig r;
    r.handlers["update"] = 1;
    r.up();
    r.accept_start_next("j1", R"({"operation":"update"})");
    r.down();
    r.up();
    r.accept_start_next("j1", R"({"operation":"update"})");
    EXPECT_EQ(r.offers.size(), 1U);
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::handed);
    EXPECT_EQ(r.logic.snapshot().counts.handed, 1U);
}

// statusDetails values are at most 1024 bytes: a long reason with long expansions is cut, at a
// character boundary.
TEST(ServicesJobsLogic, TheReasonIsCutToAStatusDetailsValue) {
    auto s = rig::settings(0s);
    s.reject_reason = std::string(1000, 'r') + "é${operation}";
    rig r(s);
    r.up();
    r.accept_start_next("j1", R"({"operation":")" + std::string(64, 'o') + R"("})");
    const auto reason = std::string(json_of(r.last().payload).at("statusDetails").at("reason").as_string());
    EXPECT_EQ(reason.size(), 1024U);
    EXPECT_EQ(reason.substr(1000, 2), "é");
}

// Reload: new settings from the next decision on.
TEST(ServicesJobsLogic, ReconfigureAppliesToTheNextDecision) {
    rig r(rig::settings(60s));
    r.up();
    r.accept_start_next("j1", R"({"operation":"update"})");
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::waiting);
    r.logic.reconfigure(rig::settings(0s, config::unhandled_jobs::leave));
    r.advance(1s);
    EXPECT_EQ(r.logic.snapshot().state, jobs_state::left);
    EXPECT_EQ(r.published.size(), 1U);
}

}  // namespace
}  // namespace thingmux::services
