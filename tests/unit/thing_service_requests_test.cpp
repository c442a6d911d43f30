// The pure parts of the service router (daemon/thing/service_requests.hpp, docs/services.md):
// which topics are requests and answers, the bounded check of a request's payload (hostile
// payloads included), the clientToken edits that keep the rest byte for byte, the tokens, and the
// table of requests awaiting their answer.
#include "daemon/thing/service_requests.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

namespace thingmux::thing::services {
namespace {

using namespace std::chrono_literals;

TEST(ServiceTopics, RequestTopicsOfTheThing) {
    const auto k = [](std::string_view topic) { return classify_request("gw-1", topic); };
    ASSERT_TRUE(k("$aws/things/gw-1/shadow/get"));
    EXPECT_EQ(k("$aws/things/gw-1/shadow/get")->kind, request_kind::shadow_get);
    EXPECT_FALSE(k("$aws/things/gw-1/shadow/get")->named);
    EXPECT_EQ(k("$aws/things/gw-1/shadow/update")->kind, request_kind::shadow_update);
    EXPECT_EQ(k("$aws/things/gw-1/shadow/delete")->kind, request_kind::shadow_delete);
    const auto named = k("$aws/things/gw-1/shadow/name/lamp:1/update");
    ASSERT_TRUE(named);
    EXPECT_EQ(named->kind, request_kind::shadow_update);
    EXPECT_EQ(named->shadow, "lamp:1");
    EXPECT_TRUE(named->named);
    EXPECT_EQ(k("$aws/things/gw-1/jobs/get")->kind, request_kind::jobs_get);
    EXPECT_EQ(k("$aws/things/gw-1/jobs/start-next")->kind, request_kind::jobs_start_next);
    EXPECT_EQ(k("$aws/things/gw-1/jobs/job-7/get")->kind, request_kind::job_get);
    EXPECT_EQ(k("$aws/things/gw-1/jobs/job_7/update")->kind, request_kind::job_update);

    for (const auto* not_a_request :
         {"$aws/things/gw-1/shadow/get/accepted", "$aws/things/gw-1/shadow/update/delta", "$aws/things/gw-1/shadow/update/documents",
          "$aws/things/gw-1/shadow/name//get", "$aws/things/gw-1/shadow/name/a/b/get", "$aws/things/gw-1/shadow/list",
          "$aws/things/gw-1/jobs/notify", "$aws/things/gw-1/jobs/notify-next", "$aws/things/gw-1/jobs/j/delete",
          "$aws/things/gw-1/jobs/j:1/get", "$aws/things/other/shadow/get", "$aws/things/gw-12/shadow/get",
          "$aws/things/gw-1", "$aws/things/gw-1/", "dt/gw-1/shadow/get", "$aws/things/gw-1/shadow"})
        EXPECT_FALSE(k(not_a_request)) << not_a_request;
    EXPECT_FALSE(classify_request("", "$aws/things//shadow/get"));
}

TEST(ServiceTopics, AnswersNameTheirRequest) {
    const auto a = classify_response("gw-1", "$aws/things/gw-1/shadow/name/n/update/accepted");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->request, "$aws/things/gw-1/shadow/name/n/update");
    EXPECT_TRUE(a->accepted);
    EXPECT_EQ(a->what.shadow, "n");
    const auto r = classify_response("gw-1", "$aws/things/gw-1/jobs/get/rejected");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->what.kind, request_kind::jobs_get);
    EXPECT_FALSE(r->accepted);
    EXPECT_FALSE(classify_response("gw-1", "$aws/things/gw-1/shadow/update/delta"));
    EXPECT_FALSE(classify_response("gw-1", "$aws/things/gw-1/shadow/get"));
    EXPECT_FALSE(classify_response("gw-1", "$aws/things/gw-1/jobs/notify-next/accepted"));
    EXPECT_FALSE(classify_response("gw-1", "$aws/things/other/shadow/get/accepted"));
    const auto d = classify_documents("gw-1", "$aws/things/gw-1/shadow/name/n/update/documents");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->shadow, "n");
    EXPECT_TRUE(classify_documents("gw-1", "$aws/things/gw-1/shadow/update/documents"));
    EXPECT_FALSE(classify_documents("gw-1", "$aws/things/gw-1/shadow/update/delta"));
}

TEST(ServicePayload, AcceptsObjectsAndLocatesTheToken) {
    EXPECT_EQ(check_request("").problem, "");
    EXPECT_EQ(check_request("  ").problem, "");
    EXPECT_EQ(check_request("{}").problem, "");
    const std::string p = R"({"state":{"desired":{"on":true}}, "clientToken" : "abc" })";
    const auto c = check_request(p);
    ASSERT_EQ(c.problem, "");
    ASSERT_TRUE(c.token);
    EXPECT_EQ(p.substr(c.token->value_begin, c.token->value_end - c.token->value_begin), "\"abc\"");
    EXPECT_FALSE(check_request(R"({"state":{"clientToken":1}})").token);  // not at the top: not the request's
    EXPECT_EQ(check_request(std::string(R"({"clientToken":")") + std::string(64, 'x') + "\"}").problem, "");
}

TEST(ServicePayload, RefusesHostilePayloads) {
    std::string deep;
    for (int i = 0; i < 1000; ++i) deep += "{\"a\":";
    deep += "1";
    for (int i = 0; i < 1000; ++i) deep += "}";
    std::string depth33 = "{\"a\":";
    for (int i = 0; i < 32; ++i) depth33 += "[";
    for (int i = 0; i < 32; ++i) depth33 += "]";
    depth33 += "}";
    const std::string megabyte = "{\"a\":\"" + std::string(1024 * 1024, 'x') + "\"}";
    for (const std::string& p :
         {std::string("not json"), std::string("[1,2]"), std::string("\"s\""), std::string("12"), std::string("null"), deep,
          depth33, megabyte, std::string(R"({"clientToken":")") + std::string(70, 't') + "\"}",
          std::string(R"({"clientToken":5})"), std::string(R"({"clientToken":null})"), std::string(R"({"clientToken":{}})"),
          std::string(R"({"clientToken":"a","clientToken":"b"})"), std::string(R"({"client\u0054oken":"a"})"),
          std::string("{\"a\":1,}"), std::string("{\"a\":\"\xff\"}"), std::string("{} {}"), std::string("{\"a\":1} x")}) {
        const auto c = check_request(p);
        EXPECT_NE(c.problem, "") << p.substr(0, 80);
        EXPECT_FALSE(c.token);
    }
    EXPECT_THAT(check_request(megabyte).problem, ::testing::HasSubstr("65536"));
}

TEST(ServicePayload, TokenRewriteKeepsTheRestByteForByte) {
    const std::string p = R"({ "state" : {"desired":{"v":1.50e1}}, "clientToken":"mine", "version": 3 })";
    const auto c = check_request(p);
    ASSERT_TRUE(c.token);
    const auto out = with_token(p, c, "tmx-0123456789abcdef");
    EXPECT_EQ(out, R"({ "state" : {"desired":{"v":1.50e1}}, "clientToken":"tmx-0123456789abcdef", "version": 3 })");
    EXPECT_EQ(with_token("", check_request(""), "tmx-0123456789abcdef"), R"({"clientToken":"tmx-0123456789abcdef"})");
    EXPECT_EQ(with_token(" { } ", check_request(" { } "), "tmx-0123456789abcdef"), R"( {"clientToken":"tmx-0123456789abcdef" } )");
    EXPECT_EQ(with_token(R"({"a":1})", check_request(R"({"a":1})"), "tmx-0123456789abcdef"),
              R"({"clientToken":"tmx-0123456789abcdef","a":1})");
}

TEST(ServicePayload, RestoreTokenPutsBackOrRemoves) {
    const std::string in = R"({"state":{},"clientToken":"tmx-0123456789abcdef","version":4})";
    const auto t = find_daemon_token(in);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->token, "tmx-0123456789abcdef");
    EXPECT_EQ(restore_token(in, t->where, std::string(R"("mine \"x\"")")), R"({"state":{},"clientToken":"mine \"x\"","version":4})");
    EXPECT_EQ(restore_token(in, t->where, std::nullopt), R"({"state":{},"version":4})");
    const std::string last = R"({"a":1 , "clientToken":"tmx-0123456789abcdef" })";
    EXPECT_EQ(restore_token(last, find_daemon_token(last)->where, std::nullopt), R"({"a":1  })");
    const std::string only = R"({"clientToken":"tmx-0123456789abcdef"})";
    EXPECT_EQ(restore_token(only, find_daemon_token(only)->where, std::nullopt), "{}");
    // Not the daemon's form, or not at the top: left alone.
    EXPECT_FALSE(find_daemon_token(R"({"clientToken":"tmx-0123"})"));
    EXPECT_FALSE(find_daemon_token(R"({"clientToken":"tmx-0123456789ABCDEF"})"));
    EXPECT_FALSE(find_daemon_token(R"({"x":{"clientToken":"tmx-0123456789abcdef"}})"));
    EXPECT_FALSE(find_daemon_token(R"({"clientToken":"tmx-0123456789abcdef")"));  // cut short
    EXPECT_FALSE(find_daemon_token(R"({"clientToken":"tmx-0123456789abcdef","clientToken":"tmx-0123456789abcdee"})"));
    EXPECT_FALSE(find_daemon_token("tmx-0123456789abcdef"));
}

TEST(ServiceTokens, UniqueWellFormedAndKeyed) {
    token_source a({1, 2});
    token_source b({1, 2});
    token_source c({1, 3});
    std::set<std::string> seen;
    for (int i = 0; i < 10000; ++i) {
        const auto t = a.next();
        EXPECT_EQ(t.size(), token_size);
        EXPECT_TRUE(t.starts_with(token_prefix));
        EXPECT_TRUE(find_daemon_token(R"({"clientToken":")" + t + "\"}")) << t;
        seen.insert(t);
        EXPECT_EQ(b.next(), t);  // the same key, the same sequence
    }
    EXPECT_EQ(seen.size(), 10000U);
    EXPECT_NE(c.next(), token_source({1, 2}).next());
    EXPECT_NE(token_source::random_key(), token_source::random_key());
}

TEST(ServiceTable, AddTakeExpireForget) {
    request_table t({7, 8});
    const auto t0 = time_point{} + 1000s;
    const session_id one{1};
    const session_id two{2};
    const auto a = t.add({.session = one, .original = std::string("\"x\""), .request_topic = "$aws/things/g/shadow/get", .deadline = t0 + 10s});
    const auto b = t.add({.session = one, .original = std::nullopt, .request_topic = "$aws/things/g/shadow/update", .deadline = t0 + 5s});
    const auto c = t.add({.session = two, .original = std::nullopt, .request_topic = "$aws/things/g/jobs/get", .deadline = t0 + 20s});
    EXPECT_NE(a, b);
    EXPECT_EQ(t.pending(one), 2U);
    EXPECT_EQ(t.pending(two), 1U);
    EXPECT_EQ(t.next_deadline(), t0 + 5s);
    EXPECT_TRUE(t.expire(t0 + 4s).empty());
    const auto gone = t.expire(t0 + 10s);
    ASSERT_EQ(gone.size(), 2U);
    EXPECT_EQ(gone[0].token, b);
    EXPECT_EQ(gone[1].token, a);
    EXPECT_EQ(gone[1].request.original, "\"x\"");
    EXPECT_EQ(t.pending(one), 0U);
    ASSERT_NE(t.ended(a), nullptr);
    EXPECT_EQ(*t.ended(a), "\"x\"");
    EXPECT_FALSE(t.take(a));  // ended: a late answer takes nothing
    EXPECT_EQ(t.forget(two), 1U);
    EXPECT_EQ(t.size(), 0U);
    EXPECT_NE(t.ended(c), nullptr);
    EXPECT_FALSE(t.next_deadline());
}

TEST(ServiceTable, EndedTokensAreBounded) {
    request_table t({7, 8});
    const auto first = t.add({.session = session_id{1}, .original = std::nullopt, .request_topic = "x", .deadline = {}});
    (void)t.take(first);
    for (std::size_t i = 0; i < request_table::remembered_ended; ++i)
        (void)t.take(t.add({.session = session_id{1}, .original = std::nullopt, .request_topic = "x", .deadline = {}}));
    EXPECT_EQ(t.ended(first), nullptr);
}

TEST(ServiceTimeout, PayloadNamesTheWaitAndTheAppsToken) {
    EXPECT_EQ(timeout_payload(10s, 1700000000, std::nullopt),
              R"({"code":504,"message":"thingmuxd: AWS IoT did not answer within 10 s","timestamp":1700000000})");
    EXPECT_EQ(timeout_payload(1500ms, 5, std::string(R"("t-1")")),
              R"({"code":504,"message":"thingmuxd: AWS IoT did not answer within 1500 ms","timestamp":5,"clientToken":"t-1"})");
}

}  // namespace
}  // namespace thingmux::thing::services
