#include "daemon/hub/subscription_table.hpp"

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

using thingmux::hub::client_id;
using thingmux::hub::delivery;
using thingmux::hub::subscription_table;

constexpr client_id c1{1};
constexpr client_id c2{2};
constexpr client_id c3{3};

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

using model = std::map<client_id, std::map<std::string, std::uint8_t>>;

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

TEST(SubscriptionTable, FirstHolderSubscribesUpstreamLastUnsubscribes) {
    subscription_table t;
    EXPECT_TRUE(t.add(c1, "cmd/#", 1));
    EXPECT_FALSE(t.add(c2, "cmd/#", 0));
    EXPECT_FALSE(t.add(c3, "cmd/#", 1));
    EXPECT_EQ(t.holder_count("cmd/#"), 3u);
    EXPECT_EQ(t.upstream_count(), 1u);

    EXPECT_FALSE(t.remove(c2, "cmd/#"));
    EXPECT_FALSE(t.remove(c1, "cmd/#"));
    EXPECT_EQ(t.holder_count("cmd/#"), 1u);
    EXPECT_TRUE(t.remove(c3, "cmd/#"));
    EXPECT_EQ(t.holder_count("cmd/#"), 0u);
    EXPECT_EQ(t.upstream_count(), 0u);
    EXPECT_TRUE(t.upstream_filters().empty());
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
    EXPECT_EQ(t.client_count(c1), 0u);
}

TEST(SubscriptionTable, SecondAddOfSameFilterUpdatesQosOnly) {
    subscription_table t;
    EXPECT_TRUE(t.add(c1, "a/+", 0));
    EXPECT_FALSE(t.add(c1, "a/+", 1));
    EXPECT_EQ(t.holder_count("a/+"), 1u);
    EXPECT_EQ(t.client_count(c1), 1u);
    EXPECT_EQ(match(t, "a/b"), (std::vector<delivery>{{c1, 1}}));
    EXPECT_FALSE(t.add(c1, "a/+", 0));
    EXPECT_EQ(match(t, "a/b"), (std::vector<delivery>{{c1, 0}}));
    // One remove undoes it: the count is per holder, not per add().
    EXPECT_TRUE(t.remove(c1, "a/+"));
    EXPECT_TRUE(match(t, "a/b").empty());
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
    EXPECT_EQ(t.client_count(c1), 0u);
    EXPECT_TRUE(t.client_filters(c1).empty());
    EXPECT_EQ(t.upstream_filters(), (std::vector<std::string>{"c2/#", "shared"}));
    EXPECT_EQ(t.holder_count("shared"), 1u);
    EXPECT_EQ(match(t, "shared"), (std::vector<delivery>{{c2, 0}}));
    EXPECT_TRUE(t.remove_client(c1).empty());  // unknown now
    EXPECT_EQ(t.remove_client(c2), (std::vector<std::string>{"c2/#", "shared"}));
    EXPECT_EQ(t.upstream_count(), 0u);
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
    EXPECT_EQ(t.client_count(c2), 1u);
    EXPECT_EQ(t.upstream_filters(), (std::vector<std::string>{"a/#", "b"}));
    EXPECT_EQ(t.upstream_count(), 2u);
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
    ASSERT_EQ(t.upstream_count(), distinct.size());
    ASSERT_EQ(t.upstream_filters(), std::vector<std::string>(distinct.begin(), distinct.end()));
    for (const auto& [client, filters] : m) {
        ASSERT_EQ(t.client_count(client), filters.size());
    }
}

void expect_matches_reference(const subscription_table& t, const model& m, random_world& w,
                              int topics) {
    std::vector<delivery> out;
    for (int i = 0; i < topics; ++i) {
        const std::string topic = w.topic();
        out.clear();
        t.match(topic, out);
        std::set<client_id> seen;
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
            const client_id id{c};
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
        const client_id id{static_cast<std::uint64_t>(w.pick(0, 99))};
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
        const client_id id = it->first;
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
        const client_id id{static_cast<std::uint64_t>(w.pick(0, 99))};
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
    for (std::uint64_t c = 0; c < 100; ++c) t.remove_client(client_id{c});
    EXPECT_EQ(t.upstream_count(), 0u);
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
            if (t.add(client_id{c}, f, static_cast<std::uint8_t>(i % 2))) ++firsts;
            distinct.insert(f);
        }
    }
    EXPECT_EQ(firsts, distinct.size());
    EXPECT_EQ(t.upstream_count(), distinct.size());
    EXPECT_EQ(t.upstream_count(), 500u + 20u);
    for (std::uint64_t c = 0; c < 100; ++c) EXPECT_EQ(t.client_count(client_id{c}), 10u);

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
    EXPECT_EQ(out, (std::vector<delivery>{{client_id{42}, 1}}));

    std::size_t orphaned = 0;
    for (std::uint64_t c = 0; c < 50; ++c) orphaned += t.remove_client(client_id{c}).size();
    EXPECT_EQ(orphaned, 250u);  // the private filters; every shared one still has holders
    EXPECT_EQ(t.upstream_count(), 250u + 20u);
    for (std::uint64_t c = 50; c < 100; ++c) t.remove_client(client_id{c});
    EXPECT_EQ(t.upstream_count(), 0u);
    EXPECT_TRUE(t.upstream_filters().empty());
}

}  // namespace
