// The slot table that holds the pipeline's publishes at the upstream under their tags.
#include "daemon/thing/slot_table.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace thingmux::thing {
namespace {

TEST(SlotTable, TakesBackWhatWasPutUnderItsKey) {
    slot_table<std::string> t;
    const auto a = t.put("a");
    const auto b = t.put("b");
    EXPECT_NE(a, 0U);
    EXPECT_NE(b, 0U);
    EXPECT_NE(a, b);
    EXPECT_EQ(t.size(), 2U);
    EXPECT_EQ(t.take(b), "b");
    EXPECT_EQ(t.take(a), "a");
    EXPECT_EQ(t.size(), 0U);
}

TEST(SlotTable, AKeyIsAnsweredOnce) {
    slot_table<int> t;
    const auto k = t.put(7);
    const auto other = t.put(8);
    EXPECT_EQ(t.take(k), 7);
    EXPECT_EQ(t.take(k), std::nullopt);
    EXPECT_EQ(t.take(0), std::nullopt);
    EXPECT_EQ(t.take(other + 100), std::nullopt);
    EXPECT_EQ(t.size(), 1U);
}

TEST(SlotTable, KeysOfTakenValuesAreReusedAndLiveKeysStayDistinct) {
    slot_table<int> t;
    std::set<std::uint64_t> live;
    for (int i = 0; i < 10; ++i) live.insert(t.put(i));
    EXPECT_EQ(live.size(), 10U);
    const auto freed = *live.begin();
    ASSERT_TRUE(t.take(freed).has_value());
    live.erase(freed);
    const auto again = t.put(42);
    EXPECT_EQ(again, freed);  // no growth while a slot is free
    EXPECT_FALSE(live.contains(again));
    EXPECT_EQ(t.take(again), 42);
}

TEST(SlotTable, EmptiedTableStartsOver) {
    slot_table<int> t;
    for (int i = 0; i < 300; ++i) static_cast<void>(t.put(i));
    for (std::uint64_t k = 1; k <= 300; ++k) ASSERT_TRUE(t.take(k).has_value());
    EXPECT_EQ(t.size(), 0U);
    EXPECT_EQ(t.put(1), 1U);
}

}  // namespace
}  // namespace thingmux::thing
