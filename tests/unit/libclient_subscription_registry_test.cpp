// libthingmux's subscription registry on its own: no socket, no thread. Which handlers a message
// goes to, what the daemon's answers do to an entry, and what is subscribed again after a
// reconnect.
#include "subscription_registry.hpp"

#include "ipc/codec.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace {

using thingmux::message;
using namespace thingmux::detail;
namespace ipc = thingmux::ipc;

// Handlers that count the messages they get, by name.
struct counters {
    std::map<std::string, int> calls;
    std::vector<std::string> order;
    thingmux::message_handler handler(const std::string& name) {
        return [this, name](const message&) {
            ++calls[name];
            order.push_back(name);
        };
    }
};

// Calls every handler the registry picks for `topic`, as the core's loop does.
std::size_t dispatch(const subscription_registry& reg, const std::string& topic) {
    const auto hs = reg.handlers_for(topic);
    message m;
    m.topic = topic;
    for (const auto& h : hs) {
        (*h)(m);
    }
    return hs.size();
}

class LibClientSubscriptionRegistry : public ::testing::Test {
protected:
    counters c;
    subscription_registry reg;
};

std::vector<std::string> filters_of(const request& r) {
    std::vector<std::string> out;
    for (const auto& s : std::get<ipc::subscribe>(r.frame).subscriptions) {
        out.push_back(s.filter);
    }
    return out;
}

TEST_F(LibClientSubscriptionRegistry, IPC31_AMessageGoesToEveryMatchingHandlerOnceInFilterOrder) {
    static_cast<void>(reg.add("cmd/#", 1, c.handler("all")));
    static_cast<void>(reg.add("cmd/+/reboot", 0, c.handler("reboot")));
    static_cast<void>(reg.add("dt/x", 0, c.handler("dt")));

    EXPECT_EQ(dispatch(reg, "cmd/gw/reboot"), 2U);
    EXPECT_EQ(dispatch(reg, "cmd/gw/other"), 1U);
    EXPECT_EQ(dispatch(reg, "elsewhere"), 0U);
    EXPECT_EQ(c.calls["all"], 2);
    EXPECT_EQ(c.calls["reboot"], 1);
    EXPECT_EQ(c.calls["dt"], 0);
    EXPECT_EQ(c.order, (std::vector<std::string>{"all", "reboot", "all"}));
}

TEST_F(LibClientSubscriptionRegistry, IPC30_RemoveStopsDispatchAtOnce) {
    static_cast<void>(reg.add("a/#", 1, c.handler("a")));
    const auto before = reg.handlers_for("a/b");  // a dispatch already on its way keeps its handler
    reg.remove("a/#");
    EXPECT_EQ(dispatch(reg, "a/b"), 0U);
    EXPECT_FALSE(reg.holds("a/#"));
    EXPECT_EQ(before.size(), 1U);
}

TEST_F(LibClientSubscriptionRegistry, SubscribingAgainReplacesTheHandlerAndALateAnswerForTheOldOneChangesNothing) {
    const auto old_ref = reg.add("a", 1, c.handler("old"));
    const auto new_ref = reg.add("a", 0, c.handler("new"));
    EXPECT_NE(old_ref.generation, new_ref.generation);
    EXPECT_EQ(reg.size(), 1U);

    EXPECT_FALSE(reg.settle(old_ref, false));  // the old request's refusal does not remove the new entry
    EXPECT_FALSE(reg.forget(old_ref));
    ASSERT_TRUE(reg.holds("a"));
    EXPECT_EQ(dispatch(reg, "a"), 1U);
    EXPECT_EQ(c.calls["new"], 1);
    EXPECT_EQ(c.calls["old"], 0);
    EXPECT_FALSE(reg.active("a"));
    EXPECT_TRUE(reg.settle(new_ref, true));
    EXPECT_TRUE(reg.active("a"));
}

TEST_F(LibClientSubscriptionRegistry, IPC29_ARefusedFilterIsRemovedWithItsHandler) {
    const auto ref = reg.add("a/+", 1, c.handler("a"));
    EXPECT_TRUE(reg.settle(ref, false));
    EXPECT_FALSE(reg.holds("a/+"));
    EXPECT_EQ(dispatch(reg, "a/b"), 0U);
    EXPECT_FALSE(reg.settle(ref, true));  // gone: a second answer finds nothing
}

TEST_F(LibClientSubscriptionRegistry, ForgetRemovesOnlyTheEntryTheRequestMade) {
    const auto ref = reg.add("x", 1, c.handler("x"));
    EXPECT_TRUE(reg.forget(ref));
    EXPECT_FALSE(reg.forget(ref));
    EXPECT_EQ(reg.size(), 0U);
}

TEST_F(LibClientSubscriptionRegistry, IPC36_AfterAReconnectOnlyAcceptedFiltersAreSubscribedAgainWithTheirQos) {
    const auto a = reg.add("cmd/#", 1, c.handler("a"));
    const auto b = reg.add("dt/+/x", 0, c.handler("b"));
    static_cast<void>(reg.add("pending", 1, c.handler("p")));  // no answer yet: the daemon never held it
    const auto refused = reg.add("refused", 1, c.handler("r"));
    ASSERT_TRUE(reg.settle(a, true));
    ASSERT_TRUE(reg.settle(b, true));
    ASSERT_TRUE(reg.settle(refused, false));

    const auto again = reg.resubscribe_requests(ipc::default_max_frame);
    ASSERT_EQ(again.size(), 1U);
    const auto& r = again.front();
    EXPECT_EQ(r.kind, request_kind::resubscribe);
    EXPECT_FALSE(r.done);
    const auto& subs = std::get<ipc::subscribe>(r.frame).subscriptions;
    ASSERT_EQ(subs.size(), 2U);
    EXPECT_EQ(subs[0], (ipc::subscription{"cmd/#", 1}));
    EXPECT_EQ(subs[1], (ipc::subscription{"dt/+/x", 0}));
    EXPECT_EQ(r.filters, (std::vector<subscription_ref>{a, b}));
    EXPECT_EQ(r.size, ipc::encoded_size(r.frame));

    // The daemon refuses one of them now: that filter goes, the other stays active.
    EXPECT_TRUE(reg.settle(r.filters[1], false));
    EXPECT_TRUE(reg.settle(r.filters[0], true));
    EXPECT_TRUE(reg.active("cmd/#"));
    EXPECT_FALSE(reg.holds("dt/+/x"));
    EXPECT_EQ(filters_of(reg.resubscribe_requests(ipc::default_max_frame).at(0)), (std::vector<std::string>{"cmd/#"}));
}

TEST_F(LibClientSubscriptionRegistry, ResubscribeFramesFitTheDaemonsFrameLimit) {
    std::vector<std::string> all;
    for (int i = 0; i < 40; ++i) {
        std::string f = "filter/" + std::to_string(100 + i) + "/#";
        ASSERT_TRUE(reg.settle(reg.add(f, 1, c.handler("h")), true));
        all.push_back(f);
    }
    const std::size_t max_frame = 120;
    const auto frames = reg.resubscribe_requests(max_frame);
    ASSERT_GT(frames.size(), 1U);
    std::vector<std::string> seen;
    for (const auto& r : frames) {
        EXPECT_EQ(r.size, ipc::encoded_size(r.frame));
        EXPECT_LE(r.size, max_frame);
        EXPECT_EQ(r.filters.size(), std::get<ipc::subscribe>(r.frame).subscriptions.size());
        for (const auto& f : filters_of(r)) {
            seen.push_back(f);
        }
    }
    EXPECT_EQ(seen, all);  // each filter once, in filter order
}

TEST_F(LibClientSubscriptionRegistry, NothingHeldNothingToSubscribeAgain) {
    EXPECT_TRUE(reg.resubscribe_requests(ipc::default_max_frame).empty());
    static_cast<void>(reg.add("a", 1, c.handler("a")));
    EXPECT_TRUE(reg.resubscribe_requests(ipc::default_max_frame).empty());
    reg.clear();
    EXPECT_EQ(reg.size(), 0U);
}

}  // namespace
