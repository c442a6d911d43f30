// libthingmux's shadow and jobs parts on their own: the request payloads with the library's
// clientToken, the answers and job executions it reads (hostile ones included), the bounded table
// of requests waiting for their answer, and the deadline of a request that gets none (a client
// with no daemon behind it: no socket needed).
#include "service_json.hpp"
#include "service_table.hpp"

#include <thingmux/client.hpp>

#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace thingmux;
using namespace thingmux::detail;
using namespace std::chrono_literals;
namespace json = boost::json;

json::object as_object(const std::string& text) {
    return json::parse(text).as_object();
}

std::string nested(int depth) {
    return std::string(static_cast<std::size_t>(depth), '[') + std::string(static_cast<std::size_t>(depth), ']');
}

// ---- request payloads -----------------------------------------------------------------------

TEST(LibclientServices, AnEmptyRequestCarriesOnlyTheToken) {
    auto p = request_payload({}, "tok-1");
    ASSERT_TRUE(is_payload(p));
    EXPECT_EQ(as_object(std::get<0>(p)), (json::object{{"clientToken", "tok-1"}}));
}

TEST(LibclientServices, TheAppsDocumentKeepsItsFieldsAndItsTokenIsReplaced) {
    auto p = request_payload(R"({"state":{"reported":{"t":21}},"version":3,"clientToken":"mine"})", "tok-2");
    ASSERT_TRUE(is_payload(p));
    const auto o = as_object(std::get<0>(p));
    EXPECT_EQ(o.at("clientToken"), "tok-2");
    EXPECT_EQ(o.at("version"), 3);
    EXPECT_EQ(o.at("state").at("reported").at("t"), 21);
    EXPECT_EQ(o.size(), 3U);
}

TEST(LibclientServices, HostileDocumentsAreRefusedWithAReason) {
    for (const std::string bad : {"[1,2]", "\"text\"", "42", "{", "{\"a\":}", "not json", "{\"a\":1} trailing"}) {
        auto p = request_payload(bad, "t");
        ASSERT_FALSE(is_payload(p)) << bad;
        EXPECT_FALSE(std::get<1>(p).empty());
    }
    // Boost.JSON reads it as infinity, and would write "Infinity", which is not JSON.
    EXPECT_FALSE(is_payload(request_payload(R"({"a":333e333})", "t")));
    EXPECT_FALSE(parse_answer(R"({"a":-1e999,"clientToken":"c"})"));
    const std::string deep = "{\"a\":" + nested(static_cast<int>(max_service_json_depth) + 1) + "}";
    EXPECT_FALSE(is_payload(request_payload(deep, "t")));
    const std::string big = "{\"a\":\"" + std::string(max_service_json, 'x') + "\"}";
    auto p = request_payload(big, "t");
    ASSERT_FALSE(is_payload(p));
    EXPECT_NE(std::get<1>(p).find("larger"), std::string::npos);
}

TEST(LibclientServices, AJobUpdateSaysStatusDetailsVersionAndToken) {
    const auto o = as_object(job_update_payload("FAILED", {{"exit_status", "3"}}, 7, "tok"));
    EXPECT_EQ(o.at("status"), "FAILED");
    EXPECT_EQ(o.at("statusDetails"), (json::object{{"exit_status", "3"}}));
    EXPECT_EQ(o.at("expectedVersion"), 7);
    EXPECT_EQ(o.at("clientToken"), "tok");
    const auto bare = as_object(job_update_payload("IN_PROGRESS", {}, std::nullopt, "tok"));
    EXPECT_FALSE(bare.contains("statusDetails"));
    EXPECT_FALSE(bare.contains("expectedVersion"));
}

// ---- answers --------------------------------------------------------------------------------

TEST(LibclientServices, AnAcceptedShadowAnswerGivesTokenAndVersion) {
    const auto a = parse_answer(R"({"state":{"desired":{"x":1}},"version":12,"timestamp":1,"clientToken":"c-1"})");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->client_token, "c-1");
    EXPECT_EQ(a->version, 12);
    EXPECT_FALSE(a->cached);
    EXPECT_EQ(a->code, 0);
}

TEST(LibclientServices, ARejectedAnswerGivesCodeAndMessage) {
    const auto a = parse_answer(R"({"code":409,"message":"Version conflict","clientToken":"c-2","timestamp":5})");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->code, 409);
    EXPECT_EQ(a->message, "Version conflict");
    EXPECT_EQ(a->client_token, "c-2");
    EXPECT_EQ(a->version, -1);
}

TEST(LibclientServices, AJobsRejectionNamesItsErrorAndGetsItsHttpStatus) {
    const auto a = parse_answer(R"({"code":"VersionMismatch","message":"stale","clientToken":"c",)"
                                R"("executionState":{"status":"QUEUED","versionNumber":1}})");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->error_code, "VersionMismatch");
    EXPECT_EQ(a->code, 409);
    EXPECT_EQ(a->version, 1);
    EXPECT_EQ(parse_answer(R"({"code":"ResourceNotFound"})")->code, 404);
    EXPECT_EQ(parse_answer(R"({"code":"SomethingNew"})")->code, 400);
    EXPECT_EQ(parse_answer(R"({"code":")" + std::string(1000, 'X') + R"("})")->error_code.size(), 64U);
}

TEST(LibclientServices, ACachedAnswerIsMarkedAndAJobUpdateGivesItsExecutionVersion) {
    EXPECT_TRUE(parse_answer(R"({"state":{},"version":4,"cached":true,"clientToken":"c"})")->cached);
    EXPECT_EQ(
        parse_answer(R"({"executionState":{"status":"IN_PROGRESS","versionNumber":2},"clientToken":"c"})")->version, 2);
}

TEST(LibclientServices, AnswersThatAreNotOursOrNotObjectsAreNotMatched) {
    EXPECT_FALSE(parse_answer(R"({"clientToken":7})")->client_token);
    EXPECT_FALSE(parse_answer(R"({"state":{}})")->client_token);
    EXPECT_FALSE(parse_answer("[1]"));
    EXPECT_FALSE(parse_answer("{\"clientToken\":\"x\""));
    EXPECT_FALSE(parse_answer("{\"a\":" + nested(1000) + "}"));
    EXPECT_FALSE(parse_answer("{\"a\":\"" + std::string(max_service_json, 'x') + "\"}"));
    // Numbers out of range are ignored, not wrapped.
    const auto a = parse_answer(R"({"code":1e300,"version":18446744073709551615,"clientToken":"c"})");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->code, 0);
    EXPECT_EQ(a->version, -1);
}

TEST(LibclientServices, AnswerTopicsSplitIntoRequestAndOutcome) {
    auto t = split_answer_topic("$aws/things/t1/shadow/get/accepted");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->request_topic, "$aws/things/t1/shadow/get");
    EXPECT_TRUE(t->accepted);
    t = split_answer_topic("$aws/things/t1/jobs/j-1/update/rejected");
    ASSERT_TRUE(t);
    EXPECT_EQ(t->request_topic, "$aws/things/t1/jobs/j-1/update");
    EXPECT_FALSE(t->accepted);
    EXPECT_FALSE(split_answer_topic("$aws/things/t1/shadow/update/delta"));
    EXPECT_FALSE(split_answer_topic("/accepted"));
}

// ---- jobs -----------------------------------------------------------------------------------

TEST(LibclientServices, AJobExecutionGivesIdOperationDocumentAndVersions) {
    const std::string exec =
        R"({"jobId":"j-1","status":"IN_PROGRESS","versionNumber":2,"executionNumber":1,"queuedAt":10,)"
        R"("jobDocument":{"operation":"reboot","delay":5}})";
    for (const auto& payload : {exec, R"({"execution":)" + exec + R"(,"timestamp":3})"}) {
        const auto j = parse_job(payload);
        ASSERT_TRUE(j) << payload;
        EXPECT_EQ(j->id, "j-1");
        EXPECT_EQ(j->operation, "reboot");
        EXPECT_EQ(j->status, "IN_PROGRESS");
        EXPECT_EQ(j->version, 2);
        EXPECT_EQ(j->execution_number, 1);
        EXPECT_EQ(as_object(j->document), (json::object{{"operation", "reboot"}, {"delay", 5}}));
        EXPECT_EQ(as_object(j->execution).at("jobId"), "j-1");
    }
}

TEST(LibclientServices, AJobWithoutAnIdIsNoJob) {
    EXPECT_FALSE(parse_job(R"({"jobDocument":{"operation":"x"}})"));
    EXPECT_FALSE(parse_job(R"({"jobId":5})"));
    EXPECT_FALSE(parse_job("nope"));
    const auto j = parse_job(R"({"jobId":"j","jobDocument":"text"})");
    ASSERT_TRUE(j);
    EXPECT_TRUE(j->operation.empty());
}

TEST(LibclientServices, AJobsListGivesBothLists) {
    jobs_list_reply out;
    parse_jobs_list(R"({"inProgressJobs":[{"jobId":"a","versionNumber":3,"executionNumber":1,"queuedAt":100}],)"
                    R"("queuedJobs":[{"jobId":"b"},{"nojob":1},7],"clientToken":"c"})",
                    out);
    ASSERT_EQ(out.in_progress.size(), 1U);
    EXPECT_EQ(out.in_progress[0].id, "a");
    EXPECT_EQ(out.in_progress[0].version, 3);
    EXPECT_EQ(out.in_progress[0].queued_at, 100);
    ASSERT_EQ(out.queued.size(), 1U);
    EXPECT_EQ(out.queued[0].id, "b");
}

TEST(LibclientServices, NamesAndTopics) {
    EXPECT_TRUE(valid_shadow_name("config:v2_a-b"));
    EXPECT_FALSE(valid_shadow_name(""));
    EXPECT_FALSE(valid_shadow_name("a/b"));
    EXPECT_FALSE(valid_shadow_name("+"));
    EXPECT_FALSE(valid_shadow_name(std::string(65, 'a')));
    EXPECT_TRUE(valid_job_id("job-1_x"));
    EXPECT_FALSE(valid_job_id("job.1"));
    EXPECT_TRUE(valid_job_operation("firmware.update"));
    EXPECT_FALSE(valid_job_operation("a b"));
    EXPECT_EQ(shadow_topic("t1", "", "update/delta"), "$aws/things/t1/shadow/update/delta");
    EXPECT_EQ(shadow_topic("t1", "cfg", "get"), "$aws/things/t1/shadow/name/cfg/get");
}

// ---- the pending table ----------------------------------------------------------------------

service_request pending(std::string token, std::string topic, service_clock::time_point deadline) {
    service_request r;
    r.token = std::move(token);
    r.request_topic = std::move(topic);
    r.answer_filter = r.request_topic + "/+";
    r.deadline = deadline;
    return r;
}

TEST(LibclientServices, TheTableIsBoundedAndRefusesATokenInUse) {
    service_table table(3);
    const auto t0 = service_clock::now();
    EXPECT_TRUE(table.add(pending("a", "x/get", t0)));
    EXPECT_FALSE(table.add(pending("a", "x/get", t0)));
    EXPECT_TRUE(table.add(pending("b", "x/get", t0)));
    EXPECT_TRUE(table.add(pending("c", "x/get", t0)));
    EXPECT_FALSE(table.add(pending("d", "x/get", t0)));
    EXPECT_EQ(table.size(), 3U);
}

TEST(LibclientServices, AnAnswerCompletesOnlyTheRequestOfItsTokenOnItsTopic) {
    service_table table;
    const auto t0 = service_clock::now();
    ASSERT_TRUE(table.add(pending("a", "$aws/things/t/shadow/get", t0)));
    // Our token on another request's topic (e.g. an update answer echoing a get's token) is not
    // this request's answer.
    EXPECT_FALSE(table.take_answered("a", "$aws/things/t/shadow/update"));
    EXPECT_FALSE(table.take_answered("b", "$aws/things/t/shadow/get"));
    auto r = table.take_answered("a", "$aws/things/t/shadow/get");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->token, "a");
    EXPECT_FALSE(table.take_answered("a", "$aws/things/t/shadow/get"));  // once
    EXPECT_EQ(table.size(), 0U);
}

TEST(LibclientServices, DeadlinesExpireInOrderAndTheEarliestIsKnown) {
    service_table table;
    const auto t0 = service_clock::now();
    ASSERT_TRUE(table.add(pending("late", "x", t0 + 3s)));
    ASSERT_TRUE(table.add(pending("early", "x", t0 + 1s)));
    ASSERT_TRUE(table.add(pending("mid", "x", t0 + 2s)));
    EXPECT_EQ(table.earliest_deadline(), t0 + 1s);
    const auto gone = table.take_expired(t0 + 2s);
    ASSERT_EQ(gone.size(), 2U);
    EXPECT_EQ(gone[0].token, "early");
    EXPECT_EQ(gone[1].token, "mid");
    EXPECT_EQ(table.earliest_deadline(), t0 + 3s);
    EXPECT_EQ(table.take_all().size(), 1U);
    EXPECT_FALSE(table.earliest_deadline());
}

TEST(LibclientServices, AnAnswerFilterIsSubscribedOnceAndItsWaitersGoOutWhenHeld) {
    service_table table(10, 2);
    const auto t0 = service_clock::now();
    EXPECT_EQ(table.need("f/+"), service_table::filter_action::subscribe);
    ASSERT_TRUE(table.add(pending("a", "f", t0)));
    EXPECT_EQ(table.need("f/+"), service_table::filter_action::wait);
    ASSERT_TRUE(table.add(pending("b", "f", t0)));
    const auto go = table.settle("f/+", true);
    EXPECT_EQ(std::set<std::string>(go.begin(), go.end()), (std::set<std::string>{"a", "b"}));
    EXPECT_TRUE(table.find("a")->published);
    EXPECT_EQ(table.need("f/+"), service_table::filter_action::publish);
    // A refused filter is forgotten (the next request subscribes again) and its waiters fail.
    EXPECT_EQ(table.need("g/+"), service_table::filter_action::subscribe);
    ASSERT_TRUE(table.add(pending("c", "g", t0)));
    EXPECT_EQ(table.need("h/+"), std::nullopt);  // two filters in use: the bound
    EXPECT_EQ(table.settle("g/+", false), (std::vector<std::string>{"c"}));
    EXPECT_EQ(table.need("g/+"), service_table::filter_action::subscribe);
}

TEST(LibclientServices, TokensAreUniqueShortAndDifferPerClient) {
    token_maker a(1);
    token_maker b(2);
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        const auto t = a.next();
        EXPECT_LE(t.size(), max_client_token);
        EXPECT_TRUE(seen.insert(t).second);
    }
    EXPECT_NE(a.next(), b.next());
}

// ---- the client, without a daemon -------------------------------------------------------------

options no_daemon() {
    options o;
    o.socket_path = "/nonexistent/thingmux-services-test.sock";
    o.thing = "t1";
    o.wait_for_daemon = true;  // requests wait in the backlog: only the deadline can end them
    o.reconnect_min = 10s;
    o.reconnect_max = 10s;
    return o;
}

TEST(LibclientServices, ARequestWithoutAnAnswerTimesOutOnTheClientsLoop) {
    client c(no_daemon());
    c.set_service_timeout(100ms);
    c.start();
    auto connecting = c.connect();
    const auto t0 = std::chrono::steady_clock::now();
    auto f = c.shadow_get("cfg");
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    const auto r = f.get();
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
    EXPECT_EQ(r.outcome.code, error_code::timed_out) << r.outcome.message;
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(r.document.empty());
    auto j = c.jobs_get().get();
    EXPECT_EQ(j.reply.outcome.code, error_code::timed_out);
}

TEST(LibclientServices, BadArgumentsAreRefusedAtOnce) {
    client c(no_daemon());
    EXPECT_EQ(c.shadow_get("no/slash").get().outcome.code, error_code::invalid_argument);
    EXPECT_EQ(c.shadow_update("", "[1]").get().outcome.code, error_code::invalid_argument);
    EXPECT_EQ(c.update_job("j.1", "SUCCEEDED").get().outcome.code, error_code::invalid_argument);
    EXPECT_EQ(c.update_job("j1", "done").get().outcome.code, error_code::invalid_argument);
    EXPECT_EQ(c.update_job("j1", "FAILED", {{"k", std::string(1025, 'v')}}).get().outcome.code,
              error_code::invalid_argument);
    EXPECT_EQ(c.on_job("a b", [](const job&) {}).get().code, error_code::invalid_argument);
}

TEST(LibclientServices, NoThingKnownMeansNotConnected) {
    auto o = no_daemon();
    o.thing.clear();
    client c(o);
    EXPECT_EQ(c.shadow_get().get().outcome.code, error_code::not_connected);
    EXPECT_EQ(c.jobs_get().get().reply.outcome.code, error_code::not_connected);
}

TEST(LibclientServices, PendingRequestsAreBoundedAndCloseCompletesThem) {
    client c(no_daemon());
    c.start();
    auto connecting = c.connect();
    std::vector<std::future<shadow_reply>> waiting;
    for (std::size_t i = 0; i < max_pending_service_requests; ++i) {
        waiting.push_back(c.shadow_get());
    }
    const auto over = c.shadow_get().get();
    EXPECT_EQ(over.outcome.code, error_code::quota_exceeded) << over.outcome.message;
    c.close();
    for (auto& f : waiting) {
        ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
        EXPECT_EQ(f.get().outcome.code, error_code::closed);
    }
    EXPECT_EQ(c.shadow_get().get().outcome.code, error_code::closed);
}

}  // namespace
