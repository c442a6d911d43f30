// libthingmux's request table on its own: no socket, no thread. Requests go from the backlog to
// in flight under a request id, complete by id, and fail through one function that selects them
// by kind (what the end of a connection and close() both use).
#include "request_table.hpp"

#include "ipc/codec.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {

using thingmux::error_code;
using thingmux::result;
using namespace thingmux::detail;
namespace ipc = thingmux::ipc;

// A request whose completion handler records the results it gets, under its label.
struct recorder {
    std::vector<std::pair<std::string, result>> calls;

    request make(request_kind kind, std::string label) {
        request r;
        r.kind = kind;
        switch (kind) {
            case request_kind::publish:
                r.frame = ipc::publish{.request_id = 0, .topic = "t/" + label, .payload = "p", .qos = 1};
                break;
            case request_kind::subscribe:
            case request_kind::resubscribe:
                r.frame = ipc::subscribe{0, {ipc::subscription{"f/" + label, 1}}};
                r.filters.push_back({"f/" + label, 7});
                break;
            case request_kind::unsubscribe:
                r.frame = ipc::unsubscribe{0, {"f/" + label}};
                r.filters.push_back({"f/" + label, 0});
                break;
        }
        r.size = ipc::encoded_size(r.frame);
        if (kind != request_kind::resubscribe) {
            r.done = [this, label](const result& res) { calls.emplace_back(label, res); };
        }
        return r;
    }
};

result error(error_code code, std::string text) {
    result r;
    r.code = code;
    r.message = std::move(text);
    return r;
}

std::uint32_t request_id_of(const ipc::client_message& m) {
    return std::visit(
        [](const auto& msg) -> std::uint32_t {
            if constexpr (requires { msg.request_id; }) {
                return msg.request_id;
            } else {
                return 0;
            }
        },
        m);
}

// Takes everything waiting, as the core does when it is connected and the window is open.
std::vector<std::uint32_t> send_all(request_table& t) {
    std::vector<std::uint32_t> ids;
    while (t.next_to_send(1000) != nullptr) {
        ids.push_back(request_id_of(t.send(t.pop_next()).frame));
    }
    return ids;
}

class LibClientRequestTable : public ::testing::Test {
protected:
    // Queues one request per (kind, label), in order.
    void queue(std::initializer_list<std::pair<request_kind, const char*>> rs) {
        for (const auto& [kind, label] : rs) {
            t.push_back(rec.make(kind, label));
        }
    }
    recorder rec;
    request_table t;
};

// What a failed request's sink saw: the label (from the frame) and the result.
struct failed_log {
    std::vector<std::pair<request_kind, result>> entries;
    request_table::failed_sink sink() {
        return [this](request&& r, const result& res) {
            entries.emplace_back(r.kind, res);
            if (r.done) {
                r.done(res);
            }
        };
    }
};

TEST_F(LibClientRequestTable, SendGivesEachRequestInFlightItsOwnIdAndWritesItIntoTheFrame) {
    queue({{request_kind::publish, "a"}, {request_kind::subscribe, "b"}, {request_kind::unsubscribe, "c"}});
    EXPECT_EQ(t.backlog_count(), 3U);
    const auto ids = send_all(t);
    ASSERT_EQ(ids.size(), 3U);
    EXPECT_EQ(std::set<std::uint32_t>(ids.begin(), ids.end()).size(), 3U);
    for (const auto id : ids) {
        EXPECT_NE(id, 0U);
    }
    EXPECT_EQ(t.backlog_count(), 0U);
    EXPECT_EQ(t.backlog_bytes(), 0U);
    EXPECT_EQ(t.in_flight_count(), 3U);
    EXPECT_EQ(t.in_flight_publishes(), 1U);
}

TEST_F(LibClientRequestTable, IPC19_ResultCompletesTheRequestOfItsIdAndKindOnly) {
    queue({{request_kind::publish, "a"}, {request_kind::subscribe, "b"}});
    const auto ids = send_all(t);

    // A publish_result for the subscribe's id is not the subscribe's result: nothing completes.
    EXPECT_FALSE(t.complete(ids[1], {request_kind::publish}));
    EXPECT_FALSE(t.complete(12345, {request_kind::publish}));
    EXPECT_EQ(t.in_flight_count(), 2U);

    auto pub = t.complete(ids[0], {request_kind::publish});
    ASSERT_TRUE(pub);
    EXPECT_EQ(pub->kind, request_kind::publish);
    EXPECT_EQ(t.in_flight_publishes(), 0U);
    EXPECT_FALSE(t.complete(ids[0], {request_kind::publish}));  // once

    auto sub = t.complete(ids[1], {request_kind::subscribe, request_kind::resubscribe});
    ASSERT_TRUE(sub);
    EXPECT_EQ(sub->filters.front().filter, "f/b");
    EXPECT_TRUE(t.empty());
}

TEST_F(LibClientRequestTable, IPC25_PublishesWaitForTheWindowButOtherRequestsDoNot) {
    queue({{request_kind::publish, "1"}, {request_kind::publish, "2"}});
    const request* first = t.next_to_send(1);
    ASSERT_NE(first, nullptr);
    const auto id1 = request_id_of(t.send(t.pop_next()).frame);
    EXPECT_EQ(t.next_to_send(1), nullptr);  // one publish out, window of one

    request_table u;
    u.push_back(rec.make(request_kind::publish, "x"));
    static_cast<void>(u.send(u.pop_next()));
    u.push_back(rec.make(request_kind::subscribe, "y"));
    EXPECT_NE(u.next_to_send(1), nullptr);  // a subscribe is not a publish: it may go

    ASSERT_TRUE(t.complete(id1, {request_kind::publish}));
    EXPECT_NE(t.next_to_send(1), nullptr);
}

TEST_F(LibClientRequestTable, FailByKindCompletesExactlyTheSelectedRequestsOnceWithTheirError) {
    queue({{request_kind::publish, "p1"},
           {request_kind::subscribe, "s1"},
           {request_kind::unsubscribe, "u1"},
           {request_kind::resubscribe, "r1"},
           {request_kind::publish, "p2"}});
    static_cast<void>(send_all(t));
    t.push_back(rec.make(request_kind::publish, "p3"));  // still in the backlog

    failure_plan plan;
    plan.fail(request_kind::publish, error(error_code::session_closed, "gone"))
        .fail(request_kind::unsubscribe, error(error_code::ok, "dropped"));
    failed_log log;
    t.fail(pending_in::in_flight, plan, log.sink());

    // In the order they were sent; the backlog's publish is not in flight, so it stays.
    ASSERT_EQ(rec.calls.size(), 3U);
    EXPECT_EQ(rec.calls[0].first, "p1");
    EXPECT_EQ(rec.calls[0].second.code, error_code::session_closed);
    EXPECT_EQ(rec.calls[0].second.message, "gone");
    EXPECT_EQ(rec.calls[1].first, "u1");
    EXPECT_EQ(rec.calls[1].second.code, error_code::ok);
    EXPECT_EQ(rec.calls[2].first, "p2");
    EXPECT_EQ(rec.calls[2].second.code, error_code::session_closed);
    EXPECT_EQ(log.entries.size(), 3U);
    EXPECT_EQ(t.in_flight_count(), 2U);  // the subscribe and the resubscribe
    EXPECT_EQ(t.in_flight_publishes(), 0U);
    EXPECT_EQ(t.backlog_count(), 1U);

    // Failing again with the same plan finds nothing more: each request completes once.
    t.fail(pending_in::anywhere, plan, log.sink());
    ASSERT_EQ(rec.calls.size(), 4U);
    EXPECT_EQ(rec.calls[3].first, "p3");
    EXPECT_EQ(t.backlog_count(), 0U);
    EXPECT_EQ(t.backlog_bytes(), 0U);
    t.fail(pending_in::anywhere, plan, log.sink());
    EXPECT_EQ(rec.calls.size(), 4U);
    EXPECT_EQ(t.in_flight_count(), 2U);
}

TEST_F(LibClientRequestTable, FailAllAnywhereEmptiesTheTableInFlightFirst) {
    queue({{request_kind::subscribe, "s1"}, {request_kind::publish, "p1"}});
    static_cast<void>(send_all(t));
    queue({{request_kind::unsubscribe, "u1"}, {request_kind::resubscribe, "r1"}, {request_kind::publish, "p2"}});

    failed_log log;
    t.fail(pending_in::anywhere, failure_plan::all(error(error_code::closed, "closed")), log.sink());
    EXPECT_TRUE(t.empty());
    EXPECT_EQ(t.backlog_bytes(), 0U);
    EXPECT_EQ(t.in_flight_publishes(), 0U);
    ASSERT_EQ(log.entries.size(), 5U);  // the resubscribe too, though it has no handler to call
    std::vector<std::string> order;
    for (const auto& [label, res] : rec.calls) {
        EXPECT_EQ(res.code, error_code::closed);
        order.push_back(label);
    }
    EXPECT_EQ(order, (std::vector<std::string>{"s1", "p1", "u1", "p2"}));
}

TEST_F(LibClientRequestTable, FailOnlyTheBacklogLeavesRequestsInFlight) {
    t.push_back(rec.make(request_kind::publish, "sent"));
    static_cast<void>(send_all(t));
    t.push_back(rec.make(request_kind::publish, "waiting"));
    failed_log log;
    t.fail(pending_in::backlog, failure_plan::all(error(error_code::not_connected, "away")), log.sink());
    ASSERT_EQ(rec.calls.size(), 1U);
    EXPECT_EQ(rec.calls[0].first, "waiting");
    EXPECT_EQ(rec.calls[0].second.code, error_code::not_connected);
    EXPECT_EQ(t.in_flight_publishes(), 1U);
}

TEST_F(LibClientRequestTable, IPC36_RequeuedSubscribesGoFirstInTheOrderTheyWereSent) {
    queue({{request_kind::subscribe, "s1"}, {request_kind::publish, "p1"}, {request_kind::subscribe, "s2"}});
    static_cast<void>(send_all(t));
    t.push_back(rec.make(request_kind::publish, "later"));
    const std::size_t later_bytes = t.backlog_bytes();

    t.requeue_in_flight(request_kind::subscribe);
    EXPECT_EQ(t.in_flight_count(), 1U);  // the publish
    EXPECT_EQ(t.backlog_count(), 3U);
    EXPECT_GT(t.backlog_bytes(), later_bytes);
    std::vector<std::string> order;
    while (t.next_to_send(1000) != nullptr) {
        const request r = t.pop_next();
        order.push_back(r.kind == request_kind::publish ? std::get<ipc::publish>(r.frame).topic
                                                        : r.filters.front().filter);
    }
    EXPECT_EQ(order, (std::vector<std::string>{"f/s1", "f/s2", "t/later"}));
    EXPECT_EQ(t.backlog_bytes(), 0U);
    EXPECT_TRUE(rec.calls.empty());  // requeued, not completed
}

TEST_F(LibClientRequestTable, PushFrontKeepsTheOrderOfTheBatchAheadOfTheBacklog) {
    t.push_back(rec.make(request_kind::publish, "queued"));
    std::vector<request> batch;
    batch.push_back(rec.make(request_kind::resubscribe, "r1"));
    batch.push_back(rec.make(request_kind::resubscribe, "r2"));
    t.push_front(std::move(batch));
    ASSERT_EQ(t.backlog_count(), 3U);
    EXPECT_EQ(t.pop_next().filters.front().filter, "f/r1");
    EXPECT_EQ(t.pop_next().filters.front().filter, "f/r2");
    EXPECT_EQ(t.pop_next().kind, request_kind::publish);
}

TEST_F(LibClientRequestTable, PopNewestRefusesTheLastQueuedAndKeepsTheByteCount) {
    t.push_back(rec.make(request_kind::publish, "1"));
    const std::size_t one = t.backlog_bytes();
    t.push_back(rec.make(request_kind::subscribe, "2"));
    EXPECT_TRUE(t.waiting_subscribe("f/2"));
    EXPECT_FALSE(t.waiting_subscribe("f/1"));
    const request newest = t.pop_newest();
    EXPECT_EQ(newest.kind, request_kind::subscribe);
    EXPECT_EQ(t.backlog_bytes(), one);
    EXPECT_FALSE(t.waiting_subscribe("f/2"));
}

}  // namespace
