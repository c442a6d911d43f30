// The link state's one definition and its one spelling: the protocol's name (IPC-22,
// libthingmux, thingmuxctl) is also what D-Bus and the systemd status line show (docs/dbus.md).
#include "common/link_state.hpp"

#include <gtest/gtest.h>

#include <string>

namespace thingmux {
namespace {

TEST(LinkState, NumbersAreTheWireValues) {
    EXPECT_EQ(static_cast<int>(link_state::connecting), 0);
    EXPECT_EQ(static_cast<int>(link_state::connected), 1);
    EXPECT_EQ(static_cast<int>(link_state::backing_off), 2);
    EXPECT_EQ(static_cast<int>(link_state::failed), 3);
    EXPECT_EQ(static_cast<int>(link_state::stopped), 4);
    EXPECT_EQ(last_link_state, link_state::stopped);
}

TEST(LinkState, OneSpellingEverywhere) {
    EXPECT_STREQ(link_state_name(link_state::backing_off), "backing_off");
    EXPECT_STREQ(link_state_label(link_state::backing_off), "backing_off");
    for (int v = 0; v <= static_cast<int>(last_link_state); ++v) {
        const auto s = static_cast<link_state>(v);
        EXPECT_EQ(std::string(link_state_name(s)), link_state_label(s)) << v;
        EXPECT_STRNE(link_state_name(s), "unknown") << v;
    }
    EXPECT_STREQ(link_state_name(static_cast<link_state>(5)), "unknown");
    EXPECT_STREQ(link_state_label(static_cast<link_state>(255)), "unknown");
}

}  // namespace
}  // namespace thingmux
