// ipc::errc as std::error_code (ipc/error.hpp).
#include "ipc/error.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace thingmux::ipc {
namespace {

TEST(IpcError, ErrcIsAnErrorCodeWithItsOwnCategory) {
    const std::error_code e = errc::queue_full;
    EXPECT_EQ(e, errc::queue_full);
    EXPECT_NE(e, errc::rate_limited);
    EXPECT_STREQ(e.category().name(), "thingmux.ipc");
    EXPECT_EQ(e.value(), 9);  // the wire value
    // Same number, other category: not equal.
    EXPECT_NE(std::error_code(9, std::generic_category()), errc::queue_full);
    EXPECT_EQ(e.message(), "queue_full: the client read too slowly and was cut off");
    EXPECT_FALSE(std::error_code{});
}

TEST(IpcError, EveryKnownValueHasAMessageAndUnknownOnesSayUnknown) {
    for (int v = 0; v <= static_cast<int>(errc::invalid_payload); ++v) {
        const std::error_code e(v, error_category());
        EXPECT_THAT(e.message(), ::testing::Not(::testing::StartsWith("unknown:"))) << v;
    }
    EXPECT_THAT(std::error_code(999, error_category()).message(), ::testing::StartsWith("unknown:"));
}

}  // namespace
}  // namespace thingmux::ipc
