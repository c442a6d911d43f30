// things[].services (docs/config.md, docs/services.md): the defaults, every key, and refusals
// with file:line:col.
#include "config/config.hpp"
#include "tests/unit/config_test_support.hpp"

#include <gtest/gtest.h>

namespace {

using namespace thingmux::config;
using namespace thingmux::config::test;

TEST(ConfigServices, DefaultsWithoutTheBlock) {
    const auto defaults = parse(minimal, "t.yaml");
    EXPECT_EQ(error_count(defaults), 0U);
    const auto& s = defaults.config->things.at(0).services;
    EXPECT_EQ(s.request_timeout, std::chrono::seconds(10));
    EXPECT_EQ(s.max_pending_per_session, 100U);
    EXPECT_FALSE(s.shadow_cache);
}

TEST(ConfigServices, EveryKey) {
    const auto r = parse(minimal +
                             "    services:\n"
                             "      request_timeout: 2s\n"
                             "      max_pending_per_session: 7\n"
                             "      shadow_cache: true\n",
                         "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    const auto& s = r.config->things.at(0).services;
    EXPECT_EQ(s.request_timeout, std::chrono::seconds(2));
    EXPECT_EQ(s.max_pending_per_session, 7U);
    EXPECT_TRUE(s.shadow_cache);
    EXPECT_EQ(r.config->things.at(0).fields.at("services.shadow_cache").line, 10);
}

TEST(ConfigServices, RefusesValuesOutOfRange) {
    const auto r = parse(minimal +
                             "    services:\n"
                             "      request_timeout: 500ms\n"
                             "      max_pending_per_session: 10001\n"
                             "      shadow_cache: maybe\n",
                         "t.yaml");
    expect_error(r, "things[0].services.request_timeout", 8, 24, "");
    expect_error(r, "things[0].services.max_pending_per_session", 9, 32, "");
    expect_error(r, "things[0].services.shadow_cache", 10, 21, "");
    const auto longer = parse(minimal + "    services: {request_timeout: 11m}\n", "t.yaml");
    expect_error(longer, "things[0].services.request_timeout", 7, 33, "");
    const auto zero = parse(minimal + "    services: {max_pending_per_session: 0}\n", "t.yaml");
    expect_error(zero, "things[0].services.max_pending_per_session", 7, 41, "");
}

TEST(ConfigServices, RefusesUnknownKeysAndNonMappings) {
    const auto r = parse(minimal + "    services:\n      request_timout: 2s\n", "t.yaml");
    EXPECT_FALSE(r.ok());
    EXPECT_NE(all(r).find("request_timeout"), std::string::npos) << all(r);  // the suggestion
    const auto list = parse(minimal + "    services: [1]\n", "t.yaml");
    expect_error(list, "things[0].services", 7, 15, "");
}

}  // namespace
