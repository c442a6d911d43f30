#include "daemon/thing/subscription_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

using thingmux::thing::session_id;
using thingmux::thing::covers;
using thingmux::thing::delivery;
using thingmux::thing::overlap;
using thingmux::thing::subscription_table;
using thingmux::thing::upstream_plan;

constexpr session_id c1{1};
constexpr session_id c2{2};
constexpr session_id c3{3};

std::vector<delivery> match(const subscription_table& t, std::string_view topic) {
    std::vector<delivery> out;
    t.match(topic, out);
    std::sort(out.begin(), out.end(),
              [](const delivery& a, const delivery& b) { return a.client < b.client; });
    return out;
}

bool matches(const subscription_table& t, std::string_view topic) {
    return !match(t, topic).empty();
}

// --- independent reference matcher (MQTT 3.1.1 §4.7 / MQTT 5 §4.7) -------------------------

std::vector<std::string> split(std::string_view s) {
    std::vector<std::string> levels;
    std::string current;
    for (const char ch : s) {
        if (ch == '/') {
            levels.push_back(current);
            current.clear();
        } else {
            current.push_back(ch);
        }
    }
    levels.push_back(current);
    return levels;
}

bool reference_match(std::string_view filter, std::string_view topic) {
    if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
        (filter.front() == '+' || filter.front() == '#')) {
        return false;
    }
    const auto f = split(filter);
    const auto t = split(topic);
    std::size_t i = 0;
    for (; i < f.size(); ++i) {
        if (f[i] == "#") return true;  // matches the parent level too: "a/#" vs "a"
        if (i >= t.size()) return false;
        if (f[i] != "+" && f[i] != t[i]) return false;
    }
    return i == t.size();
}

using model = std::map<session_id, std::map<std::string, std::uint8_t>>;

std::vector<delivery> reference_deliveries(const model& m, std::string_view topic) {
    std::vector<delivery> out;
    for (const auto& [client, filters] : m) {
        bool any = false;
        std::uint8_t qos = 0;
        for (const auto& [filter, q] : filters) {
            if (reference_match(filter, topic)) {
                any = true;
                qos = std::max(qos, q);
            }
        }
        if (any) out.push_back({client, qos});
    }
    return out;
}

std::set<std::string> distinct_filters(const model& m) {
    std::set<std::string> s;
    for (const auto& [client, filters] : m) {
        for (const auto& [filter, q] : filters) s.insert(filter);
    }
    return s;
}

TEST(ReferenceMatcher, AgreesWithSpecExamples) {
    EXPECT_TRUE(reference_match("a/#", "a"));
    EXPECT_TRUE(reference_match("+/+", "/finance"));
    EXPECT_FALSE(reference_match("+", "/finance"));
    EXPECT_FALSE(reference_match("#", "$SYS/x"));
    EXPECT_TRUE(reference_match("$SYS/#", "$SYS"));
    EXPECT_TRUE(reference_match("a//b", "a//b"));
    EXPECT_FALSE(reference_match("a/b", "a/b/c"));
}

// --- reference counting ---------------------------------------------------------------------

TEST(SubscriptionTable, AddAndRemoveReportTheFirstAndLastHolder) {
    subscription_table t;
    EXPECT_TRUE(t.add(c1, "cmd/#", 1));
    EXPECT_FALSE(t.add(c2, "cmd/#", 0));
    EXPECT_FALSE(t.add(c3, "cmd/#", 1));
    EXPECT_EQ(t.holder_count("cmd/#"), 3u);
    EXPECT_EQ(t.filter_count(), 1u);

    EXPECT_FALSE(t.remove(c2, "cmd/#"));
    EXPECT_FALSE(t.remove(c1, "cmd/#"));
    EXPECT_EQ(t.holder_count("cmd/#"), 1u);
    EXPECT_TRUE(t.remove(c3, "cmd/#"));
    EXPECT_EQ(t.holder_count("cmd/#"), 0u);
    EXPECT_EQ(t.filter_count(), 0u);
    EXPECT_TRUE(t.filters().empty());
    EXPECT_TRUE(match(t, "cmd/x").empty());
}

TEST(SubscriptionTable, RemovingUnknownSubscriptionReturnsFalse) {
    subscription_table t;
    EXPECT_FALSE(t.remove(c1, "a"));  // empty table
    ASSERT_TRUE(t.add(c1, "a", 0));
    EXPECT_FALSE(t.remove(c2, "a"));  // filter held, but not by this client
    EXPECT_FALSE(t.remove(c1, "b"));  // client known, filter not held
    EXPECT_FALSE(t.remove(c1, "a/#"));
    EXPECT_EQ(t.holder_count("a"), 1u);
    EXPECT_TRUE(t.remove(c1, "a"));
    EXPECT_FALSE(t.remove(c1, "a"));  // already gone
    EXPECT_EQ(t.filters_held(c1), 0u);
}

TEST(SubscriptionTable, SecondAddOfSameFilterUpdatesQosOnly) {
    subscription_table t;
    EXPECT_TRUE(t.add(c1, "a/+", 0));
    EXPECT_FALSE(t.add(c1, "a/+", 1));
    EXPECT_EQ(t.holder_count("a/+"), 1u);
    EXPECT_EQ(t.filters_held(c1), 1u);
    EXPECT_EQ(match(t, "a/b"), (std::vector<delivery>{{c1, 1}}));
    EXPECT_FALSE(t.add(c1, "a/+", 0));
    EXPECT_EQ(match(t, "a/b"), (std::vector<delivery>{{c1, 0}}));
    // One remove undoes it: the count is per holder, not per add().
    EXPECT_TRUE(t.remove(c1, "a/+"));
    EXPECT_TRUE(match(t, "a/b").empty());
}

// MQTT 5 subscription options: a client whose filters overlap on a topic gets one delivery with
// No Local only when every matching filter has it and Retain As Published when any has; adding
// a held filter again replaces its options.
TEST(SubscriptionTable, OverlappingFiltersMergeTheirOptions) {
    using thingmux::thing::subscription_options;
    subscription_table t;
    const subscription_options no_local{.no_local = true, .retain_as_published = false, .retain_handling = 0};
    const subscription_options as_published{.no_local = false, .retain_as_published = true, .retain_handling = 2};
    t.add(c1, "a/#", 1, no_local);
    t.add(c1, "a/b", 0, no_local);
    t.add(c2, "a/+", 0, as_published);
    t.add(c2, "a/b", 1);
    EXPECT_EQ(match(t, "a/b"), (std::vector<delivery>{{c1, 1, true, false}, {c2, 1, false, true}}));
    EXPECT_EQ(match(t, "a/c"), (std::vector<delivery>{{c1, 1, true, false}, {c2, 0, false, true}}));
    t.add(c1, "a/b", 0);  // No Local off for this filter only
    EXPECT_EQ(match(t, "a/b"), (std::vector<delivery>{{c1, 1, false, false}, {c2, 1, false, true}}));
    EXPECT_EQ(match(t, "a"), (std::vector<delivery>{{c1, 1, true, false}}));
}

TEST(SubscriptionTable, RemoveClientReturnsExactlyTheOrphanedFiltersSorted) {
    subscription_table t;
    t.add(c1, "z/only-c1", 0);
    t.add(c1, "shared", 1);
    t.add(c1, "a/only-c1/#", 1);
    t.add(c1, "+", 0);
    t.add(c2, "shared", 0);
    t.add(c2, "c2/#", 0);

    EXPECT_EQ(t.remove_client(c1), (std::vector<std::string>{"+", "a/only-c1/#", "z/only-c1"}));
    EXPECT_EQ(t.filters_held(c1), 0u);
    EXPECT_TRUE(t.client_filters(c1).empty());
    EXPECT_EQ(t.filters(), (std::vector<std::string>{"c2/#", "shared"}));
    EXPECT_EQ(t.holder_count("shared"), 1u);
    EXPECT_EQ(match(t, "shared"), (std::vector<delivery>{{c2, 0}}));
    EXPECT_TRUE(t.remove_client(c1).empty());  // unknown now
    EXPECT_EQ(t.remove_client(c2), (std::vector<std::string>{"c2/#", "shared"}));
    EXPECT_EQ(t.filter_count(), 0u);
}

// Each client's list views the table's one copy of a filter: it stays valid while any holder
// is left, whoever added the filter first, and the filter given to remove() may be a string the
// caller frees right after (or one of the table's own answers).
TEST(SubscriptionTable, ClientsShareOneCopyOfAFilterWhateverOrderTheyLeaveIn) {
    subscription_table t;
    const std::string longer_than_sso = "cmd/gateway-01/idle/with/a/long/filter/0";
    t.add(c1, std::string(longer_than_sso), 1);  // the caller's string is gone after the call
    t.add(c2, longer_than_sso, 0);
    t.add(c2, "short", 0);
    EXPECT_FALSE(t.remove(c1, std::string(longer_than_sso)));  // c2 still holds it
    EXPECT_EQ(t.client_filters(c2), (std::vector<std::string>{longer_than_sso, "short"}));
    EXPECT_EQ(match(t, longer_than_sso), (std::vector<delivery>{{c2, 0}}));
    EXPECT_FALSE(t.add(c1, "short", 1));
    EXPECT_FALSE(t.add(c3, longer_than_sso, 1));
    EXPECT_EQ(t.remove_client(c2), (std::vector<std::string>{}));  // both filters still held
    const auto own = t.client_filters(c3);
    EXPECT_TRUE(t.remove(c3, own.front()));
    EXPECT_EQ(t.filters(), (std::vector<std::string>{"short"}));
    EXPECT_EQ(t.remove_client(c1), (std::vector<std::string>{"short"}));
    EXPECT_EQ(t.filter_count(), 0u);
    EXPECT_FALSE(t.remove(c1, "short"));
}

// Subscribing again to a held filter changes its QoS and options only: one entry per client.
TEST(SubscriptionTable, SubscribingAgainUpdatesTheQosWithoutASecondEntry) {
    subscription_table t;
    EXPECT_TRUE(t.add(c1, "a/+", 0));
    EXPECT_FALSE(t.add(c1, "a/+", 1, {.no_local = true}));
    EXPECT_EQ(t.filters_held(c1), 1u);
    EXPECT_EQ(t.holder_count("a/+"), 1u);
    EXPECT_EQ(match(t, "a/b"), (std::vector<delivery>{{c1, 1, true}}));
    EXPECT_TRUE(t.remove(c1, "a/+"));
    EXPECT_EQ(t.filters_held(c1), 0u);
}

TEST(SubscriptionTable, QueriesReflectHoldings) {
    subscription_table t;
    t.add(c1, "b", 0);
    t.add(c1, "a/#", 1);
    t.add(c2, "b", 1);
    EXPECT_TRUE(t.holds(c1, "a/#"));
    EXPECT_FALSE(t.holds(c2, "a/#"));
    EXPECT_FALSE(t.holds(c3, "b"));
    EXPECT_EQ(t.client_filters(c1), (std::vector<std::string>{"a/#", "b"}));
    EXPECT_EQ(t.filters_held(c2), 1u);
    EXPECT_EQ(t.filters(), (std::vector<std::string>{"a/#", "b"}));
    EXPECT_EQ(t.filter_count(), 2u);
}

// --- matching: the examples of MQTT 5 §4.7 ---------------------------------------------------

TEST(SubscriptionTableMatch, MultiLevelWildcard) {
    subscription_table t;
    t.add(c1, "sport/tennis/player1/#", 0);
    EXPECT_TRUE(matches(t, "sport/tennis/player1"));
    EXPECT_TRUE(matches(t, "sport/tennis/player1/ranking"));
    EXPECT_TRUE(matches(t, "sport/tennis/player1/score/wimbledon"));
    EXPECT_FALSE(matches(t, "sport/tennis/player2"));
    EXPECT_FALSE(matches(t, "sport/tennis"));
    EXPECT_FALSE(matches(t, "sport/tennis/player10"));

    subscription_table all;
    all.add(c1, "#", 0);
    EXPECT_TRUE(matches(all, "sport"));
    EXPECT_TRUE(matches(all, "sport/tennis/player1"));
    EXPECT_TRUE(matches(all, "/"));

    subscription_table s;
    s.add(c1, "sport/#", 0);
    EXPECT_TRUE(matches(s, "sport"));  // '#' includes the parent level
    EXPECT_TRUE(matches(s, "sport/"));
    EXPECT_FALSE(matches(s, "sports"));
}

TEST(SubscriptionTableMatch, SingleLevelWildcard) {
    subscription_table t;
    t.add(c1, "sport/tennis/+", 0);
    EXPECT_TRUE(matches(t, "sport/tennis/player1"));
    EXPECT_TRUE(matches(t, "sport/tennis/player2"));
    EXPECT_FALSE(matches(t, "sport/tennis/player1/ranking"));
    EXPECT_FALSE(matches(t, "sport/tennis"));

    subscription_table s;
    s.add(c1, "sport/+", 0);
    EXPECT_FALSE(matches(s, "sport"));
    EXPECT_TRUE(matches(s, "sport/"));  // '+' matches the empty level

    subscription_table p;
    p.add(c1, "+/+", 0);
    EXPECT_TRUE(matches(p, "/finance"));
    EXPECT_FALSE(matches(p, "finance"));
    EXPECT_FALSE(matches(p, "a/b/c"));

    subscription_table q;
    q.add(c1, "/+", 0);
    EXPECT_TRUE(matches(q, "/finance"));
    q.add(c2, "+", 0);
    // "+" alone does not match "/finance" (two levels).
    EXPECT_EQ(match(q, "/finance"), (std::vector<delivery>{{c1, 0}}));
    EXPECT_EQ(match(q, "finance"), (std::vector<delivery>{{c2, 0}}));

    subscription_table m;
    m.add(c1, "+/tennis/#", 0);
    EXPECT_TRUE(matches(m, "sport/tennis"));
    EXPECT_TRUE(matches(m, "sport/tennis/x/y"));
    EXPECT_FALSE(matches(m, "sport/golf"));
}

TEST(SubscriptionTableMatch, DollarTopicsAreHiddenFromLeadingWildcards) {
    subscription_table t;
    t.add(c1, "#", 0);
    t.add(c2, "+/monitor/Clients", 0);
    EXPECT_TRUE(match(t, "$SYS/x").empty());
    EXPECT_TRUE(match(t, "$SYS/monitor/Clients").empty());
    EXPECT_TRUE(match(t, "$SYS").empty());
    EXPECT_TRUE(match(t, "$aws/things/t1/shadow/update/accepted").empty());
    EXPECT_EQ(match(t, "a/monitor/Clients"), (std::vector<delivery>{{c1, 0}, {c2, 0}}));

    t.add(c3, "$SYS/#", 1);
    EXPECT_EQ(match(t, "$SYS/x"), (std::vector<delivery>{{c3, 1}}));
    EXPECT_EQ(match(t, "$SYS"), (std::vector<delivery>{{c3, 1}}));

    subscription_table s;
    s.add(c1, "$SYS/monitor/+", 0);
    s.add(c2, "$aws/things/+/shadow/#", 1);
    EXPECT_TRUE(matches(s, "$SYS/monitor/Clients"));
    EXPECT_EQ(match(s, "$aws/things/t1/shadow/update/delta"), (std::vector<delivery>{{c2, 1}}));
    // Only the first character counts: a '$' further down is an ordinary level.
    subscription_table d;
    d.add(c1, "+/$x", 0);
    EXPECT_TRUE(matches(d, "a/$x"));
}

TEST(SubscriptionTableMatch, EmptyLevelsAreRealLevels) {
    subscription_table t;
    t.add(c1, "a//b", 0);
    t.add(c2, "/a", 0);
    t.add(c3, "a/", 0);
    EXPECT_EQ(match(t, "a//b"), (std::vector<delivery>{{c1, 0}}));
    EXPECT_TRUE(match(t, "a/b").empty());
    EXPECT_TRUE(match(t, "a///b").empty());
    EXPECT_EQ(match(t, "/a"), (std::vector<delivery>{{c2, 0}}));
    EXPECT_TRUE(match(t, "a").empty());
    EXPECT_EQ(match(t, "a/"), (std::vector<delivery>{{c3, 0}}));

    subscription_table w;
    w.add(c1, "a/+/b", 0);
    EXPECT_TRUE(matches(w, "a//b"));
    w.add(c2, "+/#", 0);
    EXPECT_TRUE(matches(w, "/"));
    EXPECT_TRUE(matches(w, "//"));
}

TEST(SubscriptionTableMatch, WildcardCharactersInTopicAreNotWildcards) {
    subscription_table t;
    t.add(c1, "a/b", 0);
    EXPECT_TRUE(match(t, "a/+").empty());
    EXPECT_TRUE(match(t, "a/#").empty());
    EXPECT_TRUE(match(t, "+/b").empty());
}

TEST(SubscriptionTableMatch, OverlappingFiltersDeliverOnceAtHighestQos) {
    subscription_table t;
    t.add(c1, "a/+", 0);
    t.add(c1, "a/#", 1);
    t.add(c1, "a/b", 0);
    t.add(c1, "#", 0);
    t.add(c2, "a/b", 0);
    t.add(c2, "+/b", 0);
    t.add(c3, "x/#", 1);
    EXPECT_EQ(match(t, "a/b"), (std::vector<delivery>{{c1, 1}, {c2, 0}}));
    EXPECT_EQ(match(t, "a"), (std::vector<delivery>{{c1, 1}}));
    EXPECT_EQ(match(t, "q"), (std::vector<delivery>{{c1, 0}}));
    EXPECT_EQ(match(t, "x/y"), (std::vector<delivery>{{c1, 0}, {c3, 1}}));
    t.remove(c1, "a/#");
    EXPECT_EQ(match(t, "a/b"), (std::vector<delivery>{{c1, 0}, {c2, 0}}));
}

TEST(SubscriptionTableMatch, AppendsWithoutDisturbingExistingEntries) {
    subscription_table t;
    t.add(c1, "a/#", 1);
    t.add(c1, "a/+", 0);
    std::vector<delivery> out{{c1, 0}, {c3, 1}};
    t.match("a/b", out);
    EXPECT_EQ(out, (std::vector<delivery>{{c1, 0}, {c3, 1}, {c1, 1}}));
    t.match("nothing", out);
    EXPECT_EQ(out.size(), 3u);
}

TEST(SubscriptionTableMatch, DeepTopicDoesNotOverflowTheStack) {
    // Deeper than the DFS stack's inline capacity.
    std::string filter;
    std::string topic;
    for (int i = 0; i < 100; ++i) {
        filter += i == 0 ? "+" : "/+";
        topic += i == 0 ? "x" : "/x";
    }
    subscription_table t;
    t.add(c1, filter, 1);
    t.add(c2, topic, 0);
    t.add(c3, topic + "/#", 0);
    EXPECT_EQ(match(t, topic), (std::vector<delivery>{{c1, 1}, {c2, 0}, {c3, 0}}));
    EXPECT_TRUE(match(t, topic + "/x/x").size() == 1u);
}

TEST(SubscriptionTable, PruningKeepsSiblingsAndPrefixes) {
    subscription_table t;
    t.add(c1, "a/b/c", 0);
    t.add(c1, "a/b", 0);
    t.add(c1, "a/+/c", 0);
    t.add(c1, "a/#", 0);
    EXPECT_TRUE(t.remove(c1, "a/b/c"));
    EXPECT_TRUE(matches(t, "a/b"));
    EXPECT_TRUE(t.remove(c1, "a/#"));
    EXPECT_TRUE(matches(t, "a/x/c"));
    EXPECT_FALSE(matches(t, "a/x"));
    EXPECT_TRUE(t.remove(c1, "a/+/c"));
    EXPECT_TRUE(matches(t, "a/b"));
    EXPECT_FALSE(matches(t, "a/b/c"));
    EXPECT_TRUE(t.remove(c1, "a/b"));
    EXPECT_TRUE(match(t, "a/b").empty());
    // Re-adding after a full prune works.
    EXPECT_TRUE(t.add(c2, "a/b/c", 0));
    EXPECT_TRUE(matches(t, "a/b/c"));
}

// --- property test against the reference matcher ---------------------------------------------

class random_world {
public:
    explicit random_world(std::uint32_t seed) : rng_(seed) {}

    std::string filter() {
        static const std::vector<std::string> levels{"a", "b", "c", "", "+", "$SYS"};
        const int n = pick(1, 4);
        std::string f;
        for (int i = 0; i < n; ++i) {
            if (i != 0) f += '/';
            std::string level = levels[index(levels.size())];
            if (level == "$SYS" && i != 0) level = "a";
            f += level;
        }
        if (f.empty()) f = "+";  // a zero-length filter is not valid MQTT
        if (pick(0, 3) == 0) f += "/#";
        if (pick(0, 15) == 0) f = "#";
        return f;
    }

    std::string topic() {
        static const std::vector<std::string> levels{"a", "b", "c", "", "d", "$SYS"};
        const int n = pick(1, 5);
        std::string s;
        for (int i = 0; i < n; ++i) {
            if (i != 0) s += '/';
            s += levels[index(levels.size())];
        }
        if (s.empty()) s = "d";  // a zero-length topic is not valid MQTT
        return s;
    }

    int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
    std::size_t index(std::size_t n) {
        return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
    }
    std::uint8_t qos() { return static_cast<std::uint8_t>(pick(0, 1)); }

private:
    std::mt19937 rng_;
};

void expect_consistent(const subscription_table& t, const model& m) {
    const auto distinct = distinct_filters(m);
    ASSERT_EQ(t.filter_count(), distinct.size());
    ASSERT_EQ(t.filters(), std::vector<std::string>(distinct.begin(), distinct.end()));
    for (const auto& [client, filters] : m) {
        ASSERT_EQ(t.filters_held(client), filters.size());
    }
}

void expect_matches_reference(const subscription_table& t, const model& m, random_world& w,
                              int topics) {
    std::vector<delivery> out;
    for (int i = 0; i < topics; ++i) {
        const std::string topic = w.topic();
        out.clear();
        t.match(topic, out);
        std::set<session_id> seen;
        for (const auto& d : out)
            ASSERT_TRUE(seen.insert(d.client).second) << "duplicate for " << topic;
        std::sort(out.begin(), out.end(),
                  [](const delivery& a, const delivery& b) { return a.client < b.client; });
        ASSERT_EQ(out, reference_deliveries(m, topic)) << "topic \"" << topic << '"';
    }
}

class SubscriptionTableProperty : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(SubscriptionTableProperty, MatchesReferenceThroughAddsAndRemovals) {
    random_world w(GetParam());
    subscription_table t;
    model m;

    for (std::uint64_t c = 0; c < 100; ++c) {
        const int n = w.pick(0, 6);
        for (int i = 0; i < n; ++i) {
            const session_id id{c};
            const std::string f = w.filter();
            const std::uint8_t q = w.qos();
            const bool first = distinct_filters(m).count(f) == 0;
            ASSERT_EQ(t.add(id, f, q), first) << f;
            m[id][f] = q;
        }
    }
    expect_consistent(t, m);
    expect_matches_reference(t, m, w, 2000);

    // Random single removals, some of them of subscriptions that do not exist.
    for (int i = 0; i < 300; ++i) {
        const session_id id{static_cast<std::uint64_t>(w.pick(0, 99))};
        const std::string f = w.filter();
        const bool held = m.count(id) != 0 && m[id].count(f) != 0;
        bool last = false;
        if (held) {
            m[id].erase(f);
            if (m[id].empty()) m.erase(id);
            last = distinct_filters(m).count(f) == 0;
        }
        ASSERT_EQ(t.remove(id, f), held && last) << f;
    }
    // And removals of subscriptions that do exist.
    for (int i = 0; i < 100 && !m.empty(); ++i) {
        auto it = m.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(w.index(m.size())));
        const session_id id = it->first;
        auto fit = it->second.begin();
        std::advance(fit, static_cast<std::ptrdiff_t>(w.index(it->second.size())));
        const std::string f = fit->first;
        it->second.erase(fit);
        if (it->second.empty()) m.erase(it);
        ASSERT_EQ(t.remove(id, f), distinct_filters(m).count(f) == 0) << f;
    }
    expect_consistent(t, m);
    expect_matches_reference(t, m, w, 2000);

    // Whole clients leaving.
    for (int i = 0; i < 30; ++i) {
        const session_id id{static_cast<std::uint64_t>(w.pick(0, 99))};
        std::vector<std::string> expected;
        if (const auto it = m.find(id); it != m.end()) {
            const auto filters = it->second;
            m.erase(it);
            const auto still = distinct_filters(m);
            for (const auto& [f, q] : filters) {
                if (still.count(f) == 0) expected.push_back(f);
            }
        }
        ASSERT_EQ(t.remove_client(id), expected);
    }
    expect_consistent(t, m);
    expect_matches_reference(t, m, w, 2000);

    // Everything gone: the table is empty again.
    for (std::uint64_t c = 0; c < 100; ++c) t.remove_client(session_id{c});
    EXPECT_EQ(t.filter_count(), 0u);
    expect_matches_reference(t, {}, w, 200);
}

INSTANTIATE_TEST_SUITE_P(Seeds, SubscriptionTableProperty,
                         ::testing::Values(1u, 2u, 3u, 42u, 20240601u));

// --- scale -----------------------------------------------------------------------------------

TEST(SubscriptionTableScale, HundredClientsThousandSubscriptions) {
    subscription_table t;
    std::set<std::string> distinct;
    std::size_t firsts = 0;
    for (std::uint64_t c = 0; c < 100; ++c) {
        for (std::uint64_t i = 0; i < 10; ++i) {
            // Half of each client's filters are private, half shared with other clients.
            const std::string f =
                i < 5 ? "things/t1/app" + std::to_string(c) + "/in/" + std::to_string(i)
                      : "things/t1/cmd/" + std::to_string((c + i) % 20) + "/#";
            if (t.add(session_id{c}, f, static_cast<std::uint8_t>(i % 2))) ++firsts;
            distinct.insert(f);
        }
    }
    EXPECT_EQ(firsts, distinct.size());
    EXPECT_EQ(t.filter_count(), distinct.size());
    EXPECT_EQ(t.filter_count(), 500u + 20u);
    for (std::uint64_t c = 0; c < 100; ++c) EXPECT_EQ(t.filters_held(session_id{c}), 10u);

    std::vector<delivery> out;
    t.match("things/t1/cmd/7/reboot", out);
    // Filter cmd/7/# is held by every client c with (c + i) % 20 == 7 for some i in 5..9.
    std::size_t expected = 0;
    for (std::uint64_t c = 0; c < 100; ++c) {
        for (std::uint64_t i = 5; i < 10; ++i) {
            if ((c + i) % 20 == 7) {
                ++expected;
                break;
            }
        }
    }
    EXPECT_EQ(out.size(), expected);
    out.clear();
    t.match("things/t1/app42/in/3", out);
    EXPECT_EQ(out, (std::vector<delivery>{{session_id{42}, 1}}));

    std::size_t orphaned = 0;
    for (std::uint64_t c = 0; c < 50; ++c) orphaned += t.remove_client(session_id{c}).size();
    EXPECT_EQ(orphaned, 250u);  // the private filters; every shared one still has holders
    EXPECT_EQ(t.filter_count(), 250u + 20u);
    for (std::uint64_t c = 50; c < 100; ++c) t.remove_client(session_id{c});
    EXPECT_EQ(t.filter_count(), 0u);
    EXPECT_TRUE(t.filters().empty());
}

// --- covering and overlap ----------------------------------------------------------------------

// AWS IoT Core's matching: like the specification's, but '#' needs at least one level.
bool strict_reference_match(std::string_view filter, std::string_view topic) {
    const auto f = split(filter);
    return reference_match(filter, topic) && !(f.back() == "#" && split(topic).size() < f.size());
}

TEST(Covers, WiderFiltersServeNarrowerOnesUnderBothMatchingRules) {
    EXPECT_TRUE(covers("a/#", "a/#"));  // reflexive
    EXPECT_TRUE(covers("a/#", "a/b"));
    EXPECT_TRUE(covers("a/#", "a/+/c"));
    EXPECT_TRUE(covers("a/#", "a/b/#"));
    EXPECT_TRUE(covers("a/+", "a/b"));
    EXPECT_TRUE(covers("a/+/#", "a/b/c/#"));
    EXPECT_TRUE(covers("#", "+/x"));
    EXPECT_TRUE(covers("+/+", "a/+"));
    // "a/#" matches "a" under the specification only: AWS IoT Core would not deliver it.
    EXPECT_FALSE(covers("a/#", "a"));
    EXPECT_FALSE(covers("a/b/#", "a/+/#"));
    EXPECT_FALSE(covers("a/+", "a/#"));
    EXPECT_FALSE(covers("a/+", "a/b/c"));
    EXPECT_FALSE(covers("a/b", "a/+"));
    EXPECT_FALSE(covers("a/+/c", "a/b/#"));
    EXPECT_FALSE(covers("a/b/#", "a/+/c"));
    EXPECT_FALSE(covers("+/#", "#"));  // same topics under the spec, not under AWS IoT Core
    EXPECT_FALSE(covers("#", "$aws/things/t/shadow/get"));
    EXPECT_FALSE(covers("+/#", "$SYS/#"));
    EXPECT_TRUE(covers("$aws/things/+/shadow/#", "$aws/things/t/shadow/get"));
    EXPECT_FALSE(covers("$share/g/#", "a/b"));
    EXPECT_FALSE(covers("#", "$share/g/a"));
    EXPECT_TRUE(covers("$share/g/#", "$share/g/#"));
}

TEST(Overlap, FiltersThatMayShareATopic) {
    EXPECT_TRUE(overlap("a/+/c", "a/b/#"));
    EXPECT_TRUE(overlap("a/b", "a/+"));
    EXPECT_TRUE(overlap("a/#", "a"));  // the specification's parent rule
    EXPECT_TRUE(overlap("+/b", "a/+"));
    EXPECT_TRUE(overlap("#", "x"));
    EXPECT_FALSE(overlap("a/b", "a/c"));
    EXPECT_FALSE(overlap("a/+", "a/b/c"));
    EXPECT_FALSE(overlap("a/+/c", "a/b/d"));
    EXPECT_FALSE(overlap("#", "$SYS/x"));
    EXPECT_FALSE(overlap("$SYS/+", "+/x"));
    EXPECT_FALSE(overlap("$share/g/a", "a"));
}

// covers() against both reference matchers, and overlap() against the specification's, on
// random filters and topics.
TEST(Covers, AgreesWithBothReferenceMatchersOnRandomFilters) {
    random_world w(7);
    std::size_t covering_pairs = 0;
    for (int i = 0; i < 3000; ++i) {
        const auto a = w.filter();
        const auto b = w.filter();
        const bool c = covers(a, b);
        covering_pairs += c ? 1 : 0;
        bool shared_topic = false;
        for (int k = 0; k < 40; ++k) {
            const auto t = w.topic();
            if (c) {
                ASSERT_TRUE(!reference_match(b, t) || reference_match(a, t)) << a << " covers " << b << ", topic " << t;
                ASSERT_TRUE(!strict_reference_match(b, t) || strict_reference_match(a, t))
                    << a << " / " << b << " / " << t;
            }
            shared_topic = shared_topic || (reference_match(a, t) && reference_match(b, t));
        }
        if (shared_topic) {
            ASSERT_TRUE(overlap(a, b)) << a << " and " << b;
        }
    }
    EXPECT_GT(covering_pairs, 100u) << "the generator should produce covering pairs";
}

// --- what goes upstream --------------------------------------------------------------------------

constexpr std::optional<std::size_t> unlimited;

std::vector<std::string> subscribes(const upstream_plan& p) {
    std::vector<std::string> out;
    for (const auto& s : p.subscribe) out.push_back(s.filter);
    return out;
}

// Acknowledges every SUBSCRIBE of `p` with `code`.
void ack(subscription_table& t, const upstream_plan& p, std::uint8_t code = 1) {
    for (const auto& s : p.subscribe)
        ASSERT_NE(t.subscribed(s.filter, s.generation, code), subscription_table::suback::stale);
}

using strings = std::vector<std::string>;

TEST(SubscriptionTableUpstream, AFilterAnotherHeldFilterCoversNeedsNoUpstreamSubscription) {
    subscription_table t;
    t.add(c1, "cmd/gw/app2/#", 1);
    auto p = t.plan(unlimited);
    EXPECT_EQ(subscribes(p), strings{"cmd/gw/app2/#"});
    EXPECT_FALSE(t.granted_qos("cmd/gw/app2/#")) << "not served before the broker's SUBACK";
    ack(t, p);
    for (const char* f : {"cmd/gw/app2/+", "cmd/gw/app2/+/#", "cmd/gw/app2/reboot/#", "cmd/gw/app2/+/+"}) {
        t.add(c2, f, 1);
        EXPECT_TRUE(t.plan(unlimited).empty()) << f;
        EXPECT_EQ(t.granted_qos(f), std::optional<std::uint8_t>{1}) << f << " is answered from the covering filter";
    }
    EXPECT_EQ(t.upstream_filters(), strings{"cmd/gw/app2/#"});
    EXPECT_EQ(t.upstream_copies("cmd/gw/app2/reboot"), 0u) << "one upstream filter: one copy";
}

TEST(SubscriptionTableUpstream, ANewWiderFilterReplacesTheNarrowerOnesOnlyAfterItsSuback) {
    subscription_table t;
    t.add(c1, "a/b/+", 1);
    t.add(c1, "a/c/#", 1);
    ack(t, t.plan(unlimited));
    t.add(c2, "a/#", 1);
    auto p = t.plan(unlimited);
    EXPECT_EQ(subscribes(p), strings{"a/#"});
    EXPECT_TRUE(p.unsubscribe.empty()) << "the narrower filters stay until the wider one is acknowledged";
    EXPECT_TRUE(t.plan(unlimited).empty());
    ack(t, p);
    p = t.plan(unlimited);
    EXPECT_TRUE(p.subscribe.empty());
    EXPECT_EQ(p.unsubscribe, (strings{"a/b/+", "a/c/#"}));
    EXPECT_EQ(t.upstream_filters(), strings{"a/#"});
}

TEST(SubscriptionTableUpstream, CoveredFiltersAreSubscribedAgainBeforeTheCoveringOneGoes) {
    subscription_table t;
    t.add(c1, "a/#", 1);
    ack(t, t.plan(unlimited));
    t.add(c2, "a/b/+", 1);
    t.add(c2, "a/+/c", 1);
    t.add(c2, "a/b/c/#", 1);  // "a/b/c/d" matches neither of the other two: only a/# covers it
    EXPECT_TRUE(t.plan(unlimited).empty());

    t.remove(c1, "a/#");
    auto p = t.plan(unlimited);
    EXPECT_EQ(subscribes(p), (strings{"a/+/c", "a/b/+", "a/b/c/#"}));
    EXPECT_TRUE(p.unsubscribe.empty()) << "a/# still serves them until they are acknowledged";
    EXPECT_EQ(t.granted_qos("a/b/+"), std::optional<std::uint8_t>{1});
    // Two acknowledged, one not: a/# still has a filter to serve.
    ASSERT_EQ(t.subscribed(p.subscribe[0].filter, p.subscribe[0].generation, 1), subscription_table::suback::granted);
    ASSERT_EQ(t.subscribed(p.subscribe[1].filter, p.subscribe[1].generation, 1), subscription_table::suback::granted);
    EXPECT_TRUE(t.plan(unlimited).empty());
    ASSERT_EQ(t.subscribed(p.subscribe[2].filter, p.subscribe[2].generation, 1), subscription_table::suback::granted);
    EXPECT_EQ(t.plan(unlimited).unsubscribe, strings{"a/#"});
    EXPECT_EQ(t.upstream_filters(), (strings{"a/+/c", "a/b/+", "a/b/c/#"}));
}

TEST(SubscriptionTableUpstream, WildcardFreeFiltersGoUpstreamThemselvesForTheirRetainedMessage) {
    subscription_table t;
    t.add(c1, "cfg/#", 1);
    ack(t, t.plan(unlimited));
    t.add(c2, "cfg/gw", 1);
    auto p = t.plan(unlimited);
    EXPECT_EQ(subscribes(p), strings{"cfg/gw"});
    EXPECT_EQ(t.granted_qos("cfg/gw"), std::optional<std::uint8_t>{1}) << "served by cfg/# meanwhile";
    ack(t, p);
    EXPECT_TRUE(t.plan(unlimited).unsubscribe.empty());
    // Both match "cfg/gw": a broker that sends a copy per subscription sends two.
    EXPECT_EQ(t.upstream_copies("cfg/gw"), 2u);
    EXPECT_LE(t.upstream_copies("cfg/other"), 1u);
}

TEST(SubscriptionTableUpstream, PartialOverlapsAreCountedAsAwsIoTCoreMatches) {
    subscription_table t;
    t.add(c1, "a/+/c", 1);
    t.add(c2, "a/b/#", 1);
    t.add(c3, "x/#", 1);
    t.add(c3, "x/+/y", 1);  // covered by x/#
    auto p = t.plan(unlimited);
    EXPECT_EQ(subscribes(p), (strings{"a/+/c", "a/b/#", "x/#"}));
    EXPECT_EQ(t.upstream_copies("a/b/c"), 0u) << "only acknowledged filters count";
    ack(t, p);
    EXPECT_EQ(t.upstream_copies("a/b/c"), 2u);
    EXPECT_LE(t.upstream_copies("a/z/c"), 1u);
    EXPECT_LE(t.upstream_copies("a/b/z"), 1u);
    EXPECT_LE(t.upstream_copies("x/1/y"), 1u);
    // "a/b/#" matches "a/b" only under the specification: a copy that may not come is not expected.
    t.add(c1, "a/b", 1);
    ack(t, t.plan(unlimited));
    EXPECT_LE(t.upstream_copies("a/b"), 1u);
}

TEST(SubscriptionTableUpstream, AWiderFilterStaysWhileItsReplacementsDoNotFitTheQuota) {
    subscription_table t;
    const std::optional<std::size_t> quota = 2;
    t.add(c1, "a/#", 1);
    ack(t, t.plan(quota));
    ASSERT_TRUE(t.add(c2, "x", 1));
    ack(t, t.plan(quota));
    ASSERT_EQ(t.upstream_count(), 2u);
    // At the quota: a covered filter still fits, a new uncovered one does not.
    EXPECT_TRUE(t.fits("a/b/+", quota));
    EXPECT_TRUE(t.fits("x", quota));
    EXPECT_FALSE(t.fits("y/+", quota));
    t.add(c2, "a/b/+", 1);
    t.add(c2, "a/c/+", 1);
    EXPECT_TRUE(t.plan(quota).empty());

    t.remove(c1, "a/#");
    t.remove(c2, "x");
    auto p = t.plan(quota);  // x goes at once: it served nothing else
    EXPECT_EQ(p.unsubscribe, strings{"x"});
    p.append(t.plan(quota));
    EXPECT_EQ(subscribes(p), strings{"a/b/+"}) << "one slot free: a/# keeps serving a/c/+";
    ack(t, p);
    EXPECT_TRUE(t.plan(quota).empty());
    EXPECT_TRUE(t.unserved().empty());
    EXPECT_EQ(t.upstream_filters(), (strings{"a/#", "a/b/+"}));
    t.remove(c2, "a/c/+");
    EXPECT_EQ(t.plan(quota).unsubscribe, strings{"a/#"});
}

TEST(SubscriptionTableUpstream, ARefusedReplacementKeepsTheWiderFilterAndIsNotAskedForAgain) {
    subscription_table t;
    t.add(c1, "a/#", 1);
    ack(t, t.plan(unlimited));
    t.add(c2, "a/b/+", 1);
    t.remove(c1, "a/#");
    auto p = t.plan(unlimited);
    ASSERT_EQ(subscribes(p), strings{"a/b/+"});
    EXPECT_EQ(t.subscribed("a/b/+", p.subscribe[0].generation, 0x87), subscription_table::suback::refused);
    EXPECT_TRUE(t.plan(unlimited).empty()) << "not asked for again, and a/# stays to serve it";
    EXPECT_TRUE(t.unserved().empty());
    EXPECT_EQ(t.granted_qos("a/b/+"), std::optional<std::uint8_t>{1});
    EXPECT_EQ(t.upstream_filters(), strings{"a/#"});
    t.remove(c2, "a/b/+");
    EXPECT_EQ(t.plan(unlimited).unsubscribe, strings{"a/#"});
}

TEST(SubscriptionTableUpstream, AFilterTheBrokerRefusesAndNothingServesIsUnserved) {
    subscription_table t;
    t.add(c1, "x/+", 1);
    t.add(c1, "x/+/y", 1);  // one level deeper than x/+: not covered by it
    t.add(c2, "x/a", 1);
    auto p = t.plan(unlimited);
    ASSERT_EQ(subscribes(p), (strings{"x/+", "x/+/y", "x/a"}));
    EXPECT_EQ(t.subscribed("x/+", p.subscribe[0].generation, 0x87), subscription_table::suback::refused);
    EXPECT_TRUE(t.plan(unlimited).empty());
    const auto lost = t.unserved();
    ASSERT_EQ(lost.size(), 1u);
    EXPECT_EQ(lost[0].filter, "x/+");
    EXPECT_EQ(lost[0].refused, std::optional<std::uint8_t>{0x87});
    EXPECT_EQ(t.holders("x/+"), std::vector<session_id>{c1});
    t.remove(c1, "x/+");
    EXPECT_TRUE(t.unserved().empty());
    EXPECT_EQ(t.upstream_filters(), (strings{"x/+/y", "x/a"}));
}

TEST(SubscriptionTableUpstream, ASubackForAFilterDroppedMeanwhileIsStale) {
    subscription_table t;
    t.add(c1, "a/+", 1);
    const auto first = t.plan(unlimited);
    t.remove(c1, "a/+");
    EXPECT_EQ(t.plan(unlimited).unsubscribe, strings{"a/+"});
    t.add(c1, "a/+", 1);
    const auto second = t.plan(unlimited);
    ASSERT_EQ(subscribes(second), strings{"a/+"});
    EXPECT_EQ(t.subscribed("a/+", first.subscribe[0].generation, 1), subscription_table::suback::stale);
    EXPECT_FALSE(t.granted_qos("a/+"));
    EXPECT_EQ(t.subscribed("a/+", second.subscribe[0].generation, 1), subscription_table::suback::granted);
    EXPECT_EQ(t.granted_qos("a/+"), std::optional<std::uint8_t>{1});
}

TEST(SubscriptionTableUpstream, AFilterLostOnResubscribeIsReplacedByTheOnesItCovered) {
    subscription_table t;
    t.add(c1, "a/#", 1);
    ack(t, t.plan(unlimited));
    t.add(c2, "a/b/+", 1);
    t.lost("a/#", 0x87);
    EXPECT_TRUE(t.plan(unlimited).empty()) << "a/# is held: its holders are dropped first";
    const auto lost = t.unserved();
    ASSERT_EQ(lost.size(), 1u);
    EXPECT_EQ(lost[0].filter, "a/#");
    t.remove(c1, "a/#");
    EXPECT_EQ(subscribes(t.plan(unlimited)), strings{"a/b/+"});
}

// --- coverage filters (docs/config.md things[].coverage) ------------------------------------------

const strings coverage_filters{"$aws/things/gw/shadow/#", "cmd/gw/#"};

// 50 apps x 10 filters: half under each coverage filter, wildcard-free ones among them.
void hold_five_hundred(subscription_table& t) {
    for (std::uint64_t app = 0; app < 50; ++app) {
        for (std::uint64_t i = 0; i < 10; ++i) {
            const auto n = std::to_string(app * 10 + i);
            const std::string f = i % 2 == 0 ? (i % 4 == 0 ? "cmd/gw/app/" + n : "cmd/gw/+/" + n + "/#")
                                             : "$aws/things/gw/shadow/name/s" + n + (i % 3 == 0 ? "/+" : "/update/delta");
            ASSERT_TRUE(t.add(session_id{app + 1}, f, 1)) << f;
        }
    }
    ASSERT_EQ(t.filter_count(), 500u);
}

// The issue's case: 500 local filters under two coverage filters cost two upstream subscriptions,
// and each message still reaches exactly the apps whose filters match it.
TEST(SubscriptionTableCoverage, FiveHundredFiltersUnderTwoCoverageFiltersTakeTwoUpstreamSubscriptions) {
    subscription_table t;
    const std::optional<std::size_t> quota = 2;
    EXPECT_TRUE(t.set_coverage(coverage_filters));
    hold_five_hundred(t);
    auto p = t.plan(quota);
    EXPECT_EQ(subscribes(p), coverage_filters);
    EXPECT_TRUE(t.unserved().empty()) << "nothing waits for room in the quota";
    EXPECT_EQ(t.awaiting_suback("cmd/gw/app/0"), strings{"cmd/gw/#"});
    ack(t, p);
    EXPECT_TRUE(t.plan(quota).empty());
    EXPECT_EQ(t.upstream_filters(), coverage_filters);
    EXPECT_EQ(t.granted_qos("cmd/gw/app/0"), std::optional<std::uint8_t>{1});
    EXPECT_EQ(t.granted_qos("$aws/things/gw/shadow/name/s1/update/delta"), std::optional<std::uint8_t>{1});
    // At the quota: any filter under a coverage filter fits, nothing else does.
    EXPECT_TRUE(t.fits("cmd/gw/new/+", quota));
    EXPECT_FALSE(t.fits("cmd/gw", quota)) << "not under cmd/gw/#, which AWS IoT Core does not match with cmd/gw";
    EXPECT_FALSE(t.fits("dt/gw/x", quota));
    EXPECT_TRUE(t.served_by_coverage("cmd/gw/new/+"));
    EXPECT_FALSE(t.served_by_coverage("dt/gw/x"));
    // Routing stays local and exact: app 1 holds cmd/gw/app/0, cmd/gw/+/2/# ...; app 2 cmd/gw/app/12.
    EXPECT_EQ(match(t, "cmd/gw/app/0"), (std::vector<delivery>{{session_id{1}, 1}}));
    EXPECT_EQ(match(t, "cmd/gw/x/2/y"), (std::vector<delivery>{{session_id{1}, 1}}));
    EXPECT_TRUE(match(t, "cmd/gw/app/1").empty()) << "the coverage filter is not a local subscription";
    EXPECT_EQ(t.upstream_copies("cmd/gw/app/0"), 0u) << "no two upstream filters share a topic";

    // Every filter under one coverage filter goes: it is unsubscribed, the other stays.
    for (std::uint64_t app = 1; app <= 50; ++app) {
        for (const auto& f : t.client_filters(session_id{app})) {
            if (f.starts_with("cmd/")) t.remove(session_id{app}, f);
        }
    }
    p = t.plan(quota);
    EXPECT_TRUE(p.subscribe.empty());
    EXPECT_EQ(p.unsubscribe, strings{"cmd/gw/#"});
    EXPECT_EQ(t.upstream_filters(), strings{"$aws/things/gw/shadow/#"});
    EXPECT_EQ(t.filter_count(), 250u);
}

// things[].coverage takes wildcard-free filters too: they cost no subscription of their own (the
// price: AWS IoT Core sends their retained messages to no one; the cache has to serve them).
TEST(SubscriptionTableCoverage, WildcardFreeFiltersUnderACoverageFilterDoNotGoUpstreamThemselves) {
    subscription_table t;
    t.set_coverage({"cfg/gw/#"});
    t.add(c1, "cfg/gw/settings", 1);
    t.add(c2, "cfg/gw/settings", 0);
    t.add(c2, "cfg/gw/+", 1);
    auto p = t.plan(unlimited);
    EXPECT_EQ(subscribes(p), strings{"cfg/gw/#"});
    ack(t, p);
    EXPECT_EQ(t.upstream_filters(), strings{"cfg/gw/#"});
    // A filter held under the coverage filter's own name is one of its filters like any other.
    t.add(c3, "cfg/gw/#", 1);
    t.remove(c1, "cfg/gw/settings");
    t.remove(c2, "cfg/gw/settings");
    t.remove(c2, "cfg/gw/+");
    EXPECT_TRUE(t.plan(unlimited).empty());
    t.remove(c3, "cfg/gw/#");
    EXPECT_EQ(t.plan(unlimited).unsubscribe, strings{"cfg/gw/#"});
}

// A held filter wider than a coverage filter goes upstream as itself and serves what the
// coverage filter served, which goes once it is acknowledged; and back when it is dropped.
TEST(SubscriptionTableCoverage, AWiderHeldFilterTakesOverFromTheCoverageFilterAndGivesItBack) {
    subscription_table t;
    t.set_coverage({"cmd/gw/#"});
    t.add(c1, "cmd/gw/a", 1);
    ack(t, t.plan(unlimited));
    t.add(c2, "cmd/#", 1);
    auto p = t.plan(unlimited);
    EXPECT_EQ(subscribes(p), strings{"cmd/#"});
    EXPECT_TRUE(p.unsubscribe.empty()) << "cmd/gw/# serves cmd/gw/a until cmd/# is acknowledged";
    ack(t, p);
    EXPECT_EQ(t.plan(unlimited).unsubscribe, strings{"cmd/gw/#"});
    t.add(c1, "cmd/gw/b/+", 1);
    EXPECT_TRUE(t.plan(unlimited).empty()) << "cmd/# serves it";

    t.remove(c2, "cmd/#");
    p = t.plan(unlimited);
    EXPECT_EQ(subscribes(p), strings{"cmd/gw/#"});
    EXPECT_TRUE(p.unsubscribe.empty());
    ack(t, p);
    EXPECT_EQ(t.plan(unlimited).unsubscribe, strings{"cmd/#"});
    EXPECT_EQ(t.upstream_filters(), strings{"cmd/gw/#"});
}

// A filter that overlaps a coverage filter without being under it goes upstream itself: a message
// both match comes twice, and upstream_copies() says so (copy_counter then drops one).
TEST(SubscriptionTableCoverage, OverlappingUpstreamFiltersAreCountedWithTheCoverageFilter) {
    subscription_table t;
    t.set_coverage({"cmd/gw/#"});
    t.add(c1, "cmd/+/reboot", 1);
    t.add(c2, "cmd/gw/x", 1);
    auto p = t.plan(unlimited);
    EXPECT_EQ(subscribes(p), (strings{"cmd/+/reboot", "cmd/gw/#"}));
    ack(t, p);
    EXPECT_EQ(t.upstream_copies("cmd/gw/reboot"), 2u);
    EXPECT_LE(t.upstream_copies("cmd/gw/x"), 1u);
    EXPECT_LE(t.upstream_copies("cmd/other/reboot"), 1u);
    EXPECT_EQ(match(t, "cmd/gw/reboot"), (std::vector<delivery>{{c1, 1}}));
}

// Each coverage filter in use takes one upstream subscription: past the quota, one not in use yet
// does not fit (and its filters are refused), one in use takes any number.
TEST(SubscriptionTableCoverage, ACoverageFilterTakesASlotOfTheQuota) {
    subscription_table t;
    const std::optional<std::size_t> quota = 1;
    t.set_coverage(coverage_filters);
    t.add(c1, "cmd/gw/a", 1);
    ack(t, t.plan(quota));
    EXPECT_TRUE(t.fits("cmd/gw/b/#", quota));
    EXPECT_FALSE(t.fits("$aws/things/gw/shadow/get/accepted", quota));
    // Held anyway (a race, or a reload that lowered the quota): it waits, then is unserved.
    t.add(c2, "$aws/things/gw/shadow/get/accepted", 1);
    t.add(c2, "$aws/things/gw/shadow/update/+", 1);
    EXPECT_TRUE(t.plan(quota).empty());
    const auto lost = t.unserved();
    ASSERT_EQ(lost.size(), 2u);
    EXPECT_EQ(lost[0].filter, "$aws/things/gw/shadow/get/accepted");
    EXPECT_EQ(lost[1].filter, "$aws/things/gw/shadow/update/+");
    EXPECT_FALSE(lost[0].refused) << "no room in the quota";
}

// A SUBACK failure for a coverage filter reaches every filter under it (with its code); the
// filter is not asked for again while they are held; once they are dropped, a later filter
// under it asks the broker again (which answers it with the refusal).
TEST(SubscriptionTableCoverage, ARefusedCoverageFilterLeavesEveryFilterUnderItUnserved) {
    subscription_table t;
    t.set_coverage({"cmd/gw/#"});
    t.add(c1, "cmd/gw/a", 1);
    t.add(c2, "cmd/gw/a", 1);
    t.add(c2, "cmd/gw/b/+", 1);
    t.add(c3, "dt/gw/x", 1);
    auto p = t.plan(unlimited);
    ASSERT_EQ(subscribes(p), (strings{"cmd/gw/#", "dt/gw/x"}));
    EXPECT_EQ(t.subscribed("cmd/gw/#", p.subscribe[0].generation, 0x87), subscription_table::suback::refused);
    ASSERT_EQ(t.subscribed("dt/gw/x", p.subscribe[1].generation, 1), subscription_table::suback::granted);
    EXPECT_TRUE(t.plan(unlimited).empty()) << "not asked for again";
    auto lost = t.unserved();
    ASSERT_EQ(lost.size(), 2u);
    EXPECT_EQ(lost[0].filter, "cmd/gw/a");
    EXPECT_EQ(lost[0].refused, std::optional<std::uint8_t>{0x87});
    EXPECT_EQ(lost[1].filter, "cmd/gw/b/+");
    EXPECT_EQ(lost[1].refused, std::optional<std::uint8_t>{0x87});
    // A filter added before the holders are dropped is refused with them.
    t.add(c3, "cmd/gw/c", 1);
    EXPECT_TRUE(t.plan(unlimited).empty());
    EXPECT_EQ(t.unserved().size(), 3u);
    // What the pipeline does: drop every holder.
    for (const auto& u : t.unserved()) {
        for (const auto id : t.holders(u.filter)) t.remove(id, u.filter);
    }
    EXPECT_TRUE(t.unserved().empty());
    EXPECT_EQ(t.upstream_filters(), strings{"dt/gw/x"});
    t.add(c1, "cmd/gw/d", 1);
    EXPECT_EQ(subscribes(t.plan(unlimited)), strings{"cmd/gw/#"}) << "asked for again";
}

// The broker refuses a coverage filter when it is subscribed again after the session was lost.
TEST(SubscriptionTableCoverage, ACoverageFilterLostOnResubscribeLeavesItsFiltersUnserved) {
    subscription_table t;
    t.set_coverage({"cmd/gw/#"});
    t.add(c1, "cmd/gw/a", 1);
    t.add(c2, "cmd/gw/+", 1);
    ack(t, t.plan(unlimited));
    t.lost("cmd/gw/#", 0x80);
    EXPECT_TRUE(t.plan(unlimited).empty());
    const auto lost = t.unserved();
    ASSERT_EQ(lost.size(), 2u);
    EXPECT_EQ(lost[0].refused, std::optional<std::uint8_t>{0x80});
    EXPECT_EQ(lost[1].refused, std::optional<std::uint8_t>{0x80});
}

// A reload that adds a coverage filter: it is subscribed, and the filters it replaces are
// unsubscribed only once it is acknowledged; removing it again subscribes them again first.
TEST(SubscriptionTableCoverage, ReloadMovesTheUpstreamSetWithoutAGap) {
    subscription_table t;
    t.add(c1, "cmd/gw/a", 1);
    t.add(c1, "cmd/gw/b/+", 1);
    t.add(c2, "dt/gw/x", 1);
    ack(t, t.plan(unlimited));
    ASSERT_EQ(t.upstream_count(), 3u);

    EXPECT_TRUE(t.set_coverage({"cmd/gw/#"}));
    EXPECT_FALSE(t.set_coverage({"cmd/gw/#"})) << "unchanged";
    auto p = t.plan(unlimited);
    EXPECT_EQ(subscribes(p), strings{"cmd/gw/#"});
    EXPECT_TRUE(p.unsubscribe.empty()) << "the old filters serve until the coverage filter is acknowledged";
    ack(t, p);
    p = t.plan(unlimited);
    EXPECT_EQ(p.unsubscribe, (strings{"cmd/gw/a", "cmd/gw/b/+"}));
    EXPECT_EQ(t.upstream_filters(), (strings{"cmd/gw/#", "dt/gw/x"}));

    EXPECT_TRUE(t.set_coverage({}));
    p = t.plan(unlimited);
    EXPECT_EQ(subscribes(p), (strings{"cmd/gw/a", "cmd/gw/b/+"}));
    EXPECT_TRUE(p.unsubscribe.empty());
    ack(t, p);
    EXPECT_EQ(t.plan(unlimited).unsubscribe, strings{"cmd/gw/#"});
    EXPECT_EQ(t.upstream_filters(), (strings{"cmd/gw/a", "cmd/gw/b/+", "dt/gw/x"}));
}

// Removing a coverage filter whose filters do not all fit the quota: the coverage filter stays
// and keeps serving those that did not fit (as a wider filter does), nothing is unserved.
TEST(SubscriptionTableCoverage, ARemovedCoverageFilterStaysWhileItsFiltersDoNotFitTheQuota) {
    subscription_table t;
    const std::optional<std::size_t> quota = 3;
    t.set_coverage({"cmd/gw/#"});
    for (int i = 0; i < 5; ++i) t.add(c1, "cmd/gw/" + std::to_string(i), 1);
    ack(t, t.plan(quota));
    t.set_coverage({});
    auto p = t.plan(quota);
    EXPECT_EQ(subscribes(p), (strings{"cmd/gw/0", "cmd/gw/1"}));
    EXPECT_TRUE(p.unsubscribe.empty());
    ack(t, p);
    EXPECT_TRUE(t.plan(quota).empty());
    EXPECT_TRUE(t.unserved().empty());
    EXPECT_EQ(t.upstream_filters(), (strings{"cmd/gw/#", "cmd/gw/0", "cmd/gw/1"}));
    t.set_coverage({"cmd/gw/#"});
    EXPECT_EQ(t.plan(quota).unsubscribe, (strings{"cmd/gw/0", "cmd/gw/1"}));
}

TEST(SubscriptionTableCoverage, DuplicateAndNestedCoverageFiltersAreDropped) {
    subscription_table t;
    EXPECT_TRUE(t.set_coverage({"a/b/#", "a/#", "x/+", "a/#", "x/y", "$share/g/z/#"}));
    EXPECT_EQ(t.coverage(), (strings{"a/#", "x/+"}));
    EXPECT_FALSE(t.set_coverage({"x/+", "a/#"}));
}

// Random subscribes, unsubscribes, disconnects and SUBACKs (granted, some late), with a mirror of
// what the broker holds: an upstream filter is never unsubscribed while a held filter it serves
// has no other acknowledged filter; every held filter is always served by a filter the broker
// holds or was asked for; and once every SUBACK is in, the upstream set is exactly the held
// filters no other held filter covers (wildcard-free ones always), so no upstream filter covers
// another. With `coverage`, the coverage filters change now and then (a reload): then a held
// filter a coverage filter covers is served by that coverage filter, never upstream itself.
void upstream_property(std::uint32_t seed, bool coverage) {
    random_world w(seed);
    subscription_table t;
    model m;
    std::map<std::string, bool> broker;  // filter -> acknowledged
    std::vector<upstream_plan::subscription> pending;
    std::uint64_t removals_checked = 0;

    auto held = [&] {
        std::set<std::string> s;
        for (const auto& [c, fs] : m)
            for (const auto& [f, q] : fs) s.insert(f);
        return s;
    };
    auto apply = [&](upstream_plan p) {
        for (auto& s : p.subscribe) {
            broker[s.filter] = false;
            pending.push_back(s);
        }
        for (const auto& u : p.unsubscribe) {
            for (const auto& f : held()) {
                if (!covers(u, f)) continue;
                bool other = false;
                for (const auto& [b, acked] : broker) other = other || (b != u && acked && covers(b, f));
                ASSERT_TRUE(other) << "unsubscribed " << u << " while " << f << " had no other acknowledged filter";
                ++removals_checked;
            }
            broker.erase(u);
        }
    };
    auto settle = [&] { apply(t.plan(std::nullopt)); };
    auto answer = [&](std::size_t i) {
        const auto s = pending[i];
        pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
        if (t.subscribed(s.filter, s.generation, 1) == subscription_table::suback::granted) broker[s.filter] = true;
        settle();
    };

    static const std::vector<std::string> coverage_pool{"a/#", "b/+", "a/b/#", "c", "+/c/#", "$SYS/#", "b/+/#", "+"};
    for (int step = 0; step < 1500; ++step) {
        if (coverage && step % 150 == 0) {
            std::vector<std::string> chosen;
            for (const auto& f : coverage_pool) {
                if (w.pick(0, 2) == 0) chosen.push_back(f);
            }
            t.set_coverage(chosen);
            settle();
        }
        const session_id c{static_cast<std::uint64_t>(w.pick(0, 7))};
        const int op = w.pick(0, 9);
        if (op < 6) {
            const auto f = w.filter();
            t.add(c, f, 1);
            m[c][f] = 1;
        } else if (op < 8 && !m[c].empty()) {
            auto it = m[c].begin();
            std::advance(it, static_cast<std::ptrdiff_t>(w.index(m[c].size())));
            t.remove(c, it->first);
            m[c].erase(it);
        } else if (op == 8) {
            t.remove_client(c);
            m.erase(c);
        }
        settle();
        // SUBACKs arrive late and out of order.
        while (!pending.empty() && w.pick(0, 2) != 0) answer(w.index(pending.size()));
        ASSERT_TRUE(t.unserved().empty());
        for (const auto& f : held()) {
            bool served = false;
            for (const auto& [b, acked] : broker) served = served || covers(b, f);
            ASSERT_TRUE(served) << f << " is served by nothing the broker holds or was asked for";
        }
    }
    while (!pending.empty()) answer(0);
    const auto h = held();
    std::set<std::string> expected;
    std::set<std::string> in_use;  // coverage filters with a held filter under them
    for (const auto& f : h) {
        bool under = false;
        for (const auto& c : t.coverage()) {
            if (covers(c, f)) {
                under = true;
                in_use.insert(c);
            }
        }
        if (under) continue;
        const bool exact = f.find_first_of("+#") == std::string::npos;
        bool covered = false;
        for (const auto& g : h) covered = covered || (g != f && covers(g, f));
        if (exact || !covered) expected.insert(f);
    }
    for (const auto& c : in_use) {
        bool covered = false;
        for (const auto& g : h) covered = covered || (g != c && covers(g, c));
        if (!covered) expected.insert(c);
    }
    std::set<std::string> upstream;
    for (const auto& [b, acked] : broker) {
        EXPECT_TRUE(acked);
        upstream.insert(b);
    }
    EXPECT_EQ(upstream, expected);
    const auto listed = t.upstream_filters();
    EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()), expected);
    EXPECT_GT(removals_checked, 0u) << "the run should replace some filters";
    if (coverage) {
        EXPECT_FALSE(in_use.empty()) << "the run should end with a coverage filter in use";
    }
}

class SubscriptionTableUpstreamProperty : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(SubscriptionTableUpstreamProperty, NoGapAndNoNestedUpstreamFilters) { upstream_property(GetParam(), false); }

TEST_P(SubscriptionTableUpstreamProperty, NoGapAndNoNestedUpstreamFiltersWhileCoverageChanges) {
    upstream_property(GetParam(), true);
}

INSTANTIATE_TEST_SUITE_P(Seeds, SubscriptionTableUpstreamProperty, ::testing::Values(1u, 2u, 3u, 42u));

}  // namespace
