// things[].coverage (docs/config.md): upstream coverage filters, ${thing} expanded; what cannot
// serve as one is refused where it is written (file:line:col), what is useless is a warning.
#include "config/config.hpp"
#include "tests/unit/config_test_support.hpp"

#include <gtest/gtest.h>

namespace thingmux::config::test {
namespace {

using strings = std::vector<std::string>;

// Line 7 "    coverage:", the items from line 8 on, their values at column 9.
std::string with_coverage(const strings& items, const std::string& more = {}) {
    std::string yaml = minimal + more + "    coverage:\n";
    for (const auto& i : items) yaml += "      - '" + i + "'\n";
    return yaml;
}

TEST(ConfigLoadCoverage, FiltersWithThingExpanded) {
    const auto r = parse(with_coverage({"cmd/${thing}/#", "$aws/things/${thing}/shadow/#", "dt/+/cfg"}), "t.yaml");
    ASSERT_TRUE(r.ok()) << all(r);
    EXPECT_TRUE(r.diagnostics.empty()) << all(r);
    EXPECT_EQ(r.config->things[0].coverage, (strings{"cmd/gw/#", "$aws/things/gw/shadow/#", "dt/+/cfg"}));
    EXPECT_TRUE(parse(minimal, "t.yaml").config->things[0].coverage.empty()) << "none unless written";
}

TEST(ConfigLoadCoverage, RefusesWhatCannotBeACoverageFilter) {
    expect_error(parse(with_coverage({"cmd/#/x"}), "t.yaml"), "things[0].coverage[0]", 8, 9, "not a valid MQTT topic filter");
    expect_error(parse(with_coverage({"cmd/${unit}/#"}), "t.yaml"), "things[0].coverage[0]", 8, 9,
                 "uses a variable other than ${thing}");
    expect_error(parse(with_coverage({"$share/g/cmd/#"}), "t.yaml"), "things[0].coverage[0]", 8, 9, "shared subscription");
    expect_error(parse(with_coverage({"cmd/${thing}/#", "cmd/gw/#"}), "t.yaml"), "things[0].coverage[1]", 9, 9,
                 "'cmd/gw/#' is written twice");
    expect_error(parse(minimal + "    coverage: cmd/#\n", "t.yaml"), "things[0].coverage", 7, 15, "");
}

TEST(ConfigLoadCoverage, RefusesAFilterWithinLocalTopics) {
    const auto r = parse(with_coverage({"cmd/gw/#", "lan/${thing}/#"}, "    local_topics: ['lan/#']\n"), "t.yaml");
    // local_topics is line 7: coverage starts on line 8, its items on lines 9 and 10.
    expect_error(r, "things[0].coverage[1]", 10, 9, "'lan/gw/#' is within local_topics ('lan/#')", "local topics never go upstream");
    EXPECT_EQ(error_count(r), 1u) << all(r);
    EXPECT_TRUE(parse(with_coverage({"+/gw/#"}, "    local_topics: ['lan/#']\n"), "t.yaml").ok())
        << "a coverage filter wider than a local topic is fine: local filters stay local";
}

TEST(ConfigLoadCoverage, WarnsAboutANestedFilterAndMoreFiltersThanTheQuota) {
    const auto nested = parse(with_coverage({"cmd/${thing}/x", "cmd/#"}), "t.yaml");
    ASSERT_TRUE(nested.ok()) << all(nested);
    const auto* d = find(nested, "things[0].coverage[1]");
    ASSERT_NE(d, nullptr) << all(nested);
    EXPECT_TRUE(d->warning);
    EXPECT_EQ(d->line, 9);
    EXPECT_NE(d->message.find("'cmd/gw/x' is within coverage filter 'cmd/#'"), std::string::npos) << d->message;

    const auto over = parse(with_coverage({"cmd/#", "dt/#"}, "    limits: { subscriptions: 1 }\n"), "t.yaml");
    ASSERT_TRUE(over.ok()) << all(over);
    d = find(over, "things[0].coverage");
    ASSERT_NE(d, nullptr) << all(over);
    EXPECT_TRUE(d->warning);
    EXPECT_NE(d->message.find("2 coverage filters, but limits.subscriptions is 1"), std::string::npos) << d->message;
}

}  // namespace
}  // namespace thingmux::config::test
