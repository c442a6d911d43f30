// The pool of grants (config/grants_pool.hpp): sessions with equal rights share one copy, unequal
// rights never do, and sets no session holds any more are forgotten as the pool grows.
#include "config/grants_pool.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace thingmux::config;

grants app(const std::string& unit) {
    return grants{
        .rules = {"sensors"}, .publish = {"dt/gw/" + unit + "/#"}, .subscribe = {"cmd/gw/#"}, .receive = {"cmd/gw/#"}};
}

TEST(GrantsPool, EqualGrantsShareOneCopy) {
    grants_pool pool;
    const auto a = pool.share(app("a.service"));
    const auto b = pool.share(app("a.service"));
    EXPECT_EQ(a.get(), b.get());
    EXPECT_EQ(*a, app("a.service"));
    EXPECT_EQ(pool.size(), 1u);
}

TEST(GrantsPool, UnequalGrantsAreNeverShared) {
    grants_pool pool;
    const auto a = pool.share(app("a.service"));
    const auto b = pool.share(app("b.service"));
    EXPECT_NE(a.get(), b.get());
    EXPECT_EQ(*b, app("b.service"));
    // The same strings in another list are other rights.
    auto moved = app("a.service");
    moved.receive.push_back(moved.subscribe.back());
    moved.subscribe.clear();
    const auto c = pool.share(moved);
    EXPECT_NE(a.get(), c.get());
    EXPECT_EQ(*c, moved);
    EXPECT_TRUE(pool.share(grants{})->rules.empty());
}

TEST(GrantsPool, ReleasedSetsAreForgottenAsThePoolGrows) {
    grants_pool pool;
    const auto kept = pool.share(app("kept.service"));
    for (int i = 0; i < 1000; ++i) static_cast<void>(pool.share(app("gone-" + std::to_string(i) + ".service")));
    EXPECT_LE(pool.size(), 64u);
    EXPECT_EQ(pool.share(app("kept.service")).get(), kept.get());
}

TEST(GrantsPool, NoGrantsGrantNothing) {
    EXPECT_EQ(*no_grants(), grants{});
}

}  // namespace
