// The shadow cache (daemon/thing/shadow_cache.hpp, services.shadow_cache): fed by get/accepted and
// update/documents, emptied by delete/accepted, bounded in shadows and bytes; its answer is the
// document with "cached": true and the app's clientToken.
#include "daemon/thing/shadow_cache.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace thingmux::thing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ShadowCache, GetAcceptedIsKeptWithoutItsToken) {
    shadow_cache c;
    EXPECT_FALSE(c.answer("", std::nullopt));
    c.from_get_accepted("", R"({"state":{"reported":{"on":true}},"version":7,"timestamp":1,"clientToken":"app-1"})");
    EXPECT_EQ(c.answer("", std::nullopt), R"({"cached":true,"state":{"reported":{"on":true}},"version":7,"timestamp":1})");
    EXPECT_EQ(c.answer("", std::string(R"("mine")")),
              R"({"clientToken":"mine","cached":true,"state":{"reported":{"on":true}},"version":7,"timestamp":1})");
    EXPECT_FALSE(c.answer("lamp", std::nullopt));  // a named shadow is another shadow
    EXPECT_EQ(c.size(), 1U);
}

TEST(ShadowCache, DocumentsGiveTheCurrentStateAndDeleteEmpties) {
    shadow_cache c;
    c.from_documents("lamp", R"({"previous":{"state":{"desired":{"on":false}},"version":1},)"
                             R"("current":{"state":{"desired":{"on":true}},"metadata":{},"version":2},"timestamp":99,"clientToken":"x"})");
    const auto a = c.answer("lamp", std::nullopt);
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, R"({"cached":true,"timestamp":99,"state":{"desired":{"on":true}},"metadata":{},"version":2})");
    c.erase("lamp");
    EXPECT_FALSE(c.answer("lamp", std::nullopt));
    // Not an object, no current document: what was kept is stale and goes.
    c.from_get_accepted("lamp", R"({"version":3})");
    c.from_documents("lamp", R"({"previous":{}})");
    EXPECT_FALSE(c.answer("lamp", std::nullopt));
    c.from_get_accepted("lamp", R"({"version":3})");
    c.from_get_accepted("lamp", "[1]");
    EXPECT_FALSE(c.answer("lamp", std::nullopt));
}

TEST(ShadowCache, BoundedInShadowsAndBytes) {
    shadow_cache c;
    for (std::size_t i = 0; i <= shadow_cache::max_shadows; ++i)
        c.from_get_accepted("s" + std::to_string(i), R"({"version":)" + std::to_string(i) + "}");
    EXPECT_EQ(c.size(), shadow_cache::max_shadows);
    EXPECT_FALSE(c.answer("s0", std::nullopt));  // the least lately written went
    EXPECT_TRUE(c.answer("s64", std::nullopt));
    const std::string big = R"({"state":{"reported":{"blob":")" + std::string(shadow_cache::max_document, 'x') + "\"}}}";
    c.from_get_accepted("s64", big);
    EXPECT_FALSE(c.answer("s64", std::nullopt));  // too large: the older document would be stale
    EXPECT_LE(c.bytes(), shadow_cache::max_shadows * 32U);
    std::string deep;
    for (int i = 0; i < 100; ++i) deep += "{\"a\":";
    deep += "1" + std::string(100, '}');
    c.from_get_accepted("deep", deep);
    EXPECT_FALSE(c.answer("deep", std::nullopt));
    EXPECT_THAT(*c.answer("s1", std::nullopt), Not(HasSubstr("clientToken")));
    // A token the text edit cannot take out (an escaped key, twice) would be answered twice: not kept.
    c.from_get_accepted("s1", R"({"client\u0054oken":"a","version":1})");
    EXPECT_FALSE(c.answer("s1", std::nullopt));
    c.from_get_accepted("s1", R"({"clientToken":"a","clientToken":"b"})");
    EXPECT_FALSE(c.answer("s1", std::nullopt));
    c.from_get_accepted("s1", R"({"cached":"x","clientToken":"a","version":1})");
    EXPECT_EQ(c.answer("s1", std::nullopt), R"({"cached":true,"version":1})");
    c.from_get_accepted("s1", R"({"clientToken":"a","clientToken":"b"})");
    EXPECT_FALSE(c.answer("s1", std::nullopt));
}

}  // namespace
}  // namespace thingmux::thing
