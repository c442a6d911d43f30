#include "daemon/thing/subscription_table.hpp"

#include "common/topic.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <functional>
#include <unordered_map>
#include <utility>

namespace thingmux::thing {

namespace {

// Lets the children map be probed with a string_view level, so match() never builds a string.
struct level_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

// The topic rules (common/topic.hpp). Shared subscriptions are load-balanced by the broker
// between sessions: one never stands in for another, and whether one delivers a copy to us is
// the broker's choice.
constexpr std::size_t topic_done = topic::no_next_level;  // every topic level was consumed
using topic::dollar_level;
using topic::has_wildcard;
using topic::is_shared;
using topic::is_wildcard_level;
using topic::next_level;

bool by_client(const delivery& a, const delivery& b) noexcept { return a.client < b.client; }

// The part of a filter before its first wildcard level ("a/b/" of "a/b/+/c"): every filter it
// covers starts with it, so a sorted container narrows the search to that range.
std::string_view literal_prefix(std::string_view filter) noexcept {
    for (std::size_t pos = 0; pos != topic_done;) {
        const auto [level, next] = next_level(filter, pos);
        if (is_wildcard_level(level)) return filter.substr(0, pos);
        pos = next;
    }
    return filter;
}

}  // namespace

bool covers(std::string_view wider, std::string_view filter) noexcept {
    if (wider == filter) return true;
    if (is_shared(wider) || is_shared(filter)) return false;
    std::size_t w = 0;
    std::size_t f = 0;
    for (bool first = true;; first = false) {
        if (w == topic_done) return f == topic_done;
        const auto [wl, next_w] = next_level(wider, w);
        if (f == topic_done) return false;  // even a '#' here would need the parent level to match
        const auto [fl, next_f] = next_level(filter, f);
        if (first && is_wildcard_level(wl) && dollar_level(fl)) return false;
        if (wl == "#") return true;
        if (wl == "+" ? fl == "#" : fl != wl) return false;  // a literal covers only itself
        w = next_w;
        f = next_f;
    }
}

bool overlap(std::string_view a, std::string_view b) noexcept {
    if (is_shared(a) || is_shared(b)) return false;
    std::size_t pa = 0;
    std::size_t pb = 0;
    for (bool first = true;; first = false) {
        if (pa == topic_done || pb == topic_done) {
            // The shorter one ends: only its parent-matching '#' partner can still share a topic.
            const std::size_t rest = pa == topic_done ? pb : pa;
            const std::string_view other = pa == topic_done ? b : a;
            return rest == topic_done || next_level(other, rest).first == "#";
        }
        const auto [la, next_a] = next_level(a, pa);
        const auto [lb, next_b] = next_level(b, pb);
        if (first && ((is_wildcard_level(la) && dollar_level(lb)) || (is_wildcard_level(lb) && dollar_level(la)))) return false;
        if (la == "#" || lb == "#") return true;
        if (la != "+" && lb != "+" && la != lb) return false;
        pa = next_a;
        pb = next_b;
    }
}

void upstream_plan::append(upstream_plan&& more) {
    for (auto& s : more.subscribe) subscribe.push_back(std::move(s));
    for (auto& f : more.unsubscribe) unsubscribe.push_back(std::move(f));
}

// One topic level. Wildcards live in their own slots so a topic level that happens to read "+"
// or "#" can never reach them through the exact map.
struct subscription_table::node {
    std::unordered_map<std::string, std::unique_ptr<node>, level_hash, std::equal_to<>> children;
    std::unique_ptr<node> plus;
    std::unique_ptr<node> hash;
    std::vector<delivery> holders;  // clients holding exactly the filter ending here, by client

    [[nodiscard]] bool empty() const noexcept {
        return holders.empty() && children.empty() && !plus && !hash;
    }
    [[nodiscard]] node* child(std::string_view level) const {
        if (level == "+") return plus.get();
        if (level == "#") return hash.get();
        const auto it = children.find(level);
        return it == children.end() ? nullptr : it->second.get();
    }
    node& child_or_create(std::string_view level) {
        if (level == "+") return slot(plus);
        if (level == "#") return slot(hash);
        auto it = children.find(level);
        if (it == children.end())
            it = children.emplace(std::string(level), std::make_unique<node>()).first;
        return *it->second;
    }
    void erase_child(std::string_view level) {
        if (level == "+") {
            plus.reset();
        } else if (level == "#") {
            hash.reset();
        } else if (const auto it = children.find(level); it != children.end()) {
            children.erase(it);
        }
    }

private:
    static node& slot(std::unique_ptr<node>& p) {
        if (!p) p = std::make_unique<node>();
        return *p;
    }
};

namespace {

// DFS stack for match(): one pending sibling per level at most, so a topic of up to 32 levels
// (AWS IoT allows 8) never touches the heap; deeper ones spill into a vector.
template <typename Frame>
class frame_stack {
public:
    void push(const Frame& f) {
        if (size_ < inline_.size()) {
            inline_[size_] = f;
        } else {
            spill_.push_back(f);
        }
        ++size_;
    }
    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    Frame pop() {
        --size_;
        if (size_ < inline_.size()) return inline_[size_];
        Frame f = spill_.back();
        spill_.pop_back();
        return f;
    }

private:
    std::array<Frame, 32> inline_{};
    std::vector<Frame> spill_;
    std::size_t size_ = 0;
};

}  // namespace

subscription_table::subscription_table() : root_(std::make_unique<node>()) {}
subscription_table::~subscription_table() = default;

bool subscription_table::add(session_id client, std::string_view filter, std::uint8_t max_qos,
                             subscription_options options) {
    auto& filters = by_client_[client];
    node* n = root_.get();
    for (std::size_t pos = 0; pos != topic_done;) {
        const auto [level, next] = next_level(filter, pos);
        n = &n->child_or_create(level);
        pos = next;
    }
    const delivery h{client, max_qos, options.no_local, options.retain_as_published};
    const auto at = std::lower_bound(n->holders.begin(), n->holders.end(), h, by_client);
    const auto held = std::lower_bound(filters.begin(), filters.end(), filter);
    if (held != filters.end() && *held == filter) {
        // Already held: only the QoS and options change, nothing goes upstream.
        if (at != n->holders.end() && at->client == client) *at = h;
        return false;
    }
    n->holders.insert(at, h);
    auto count = holders_.find(filter);
    if (count == holders_.end()) count = holders_.emplace(std::string(filter), 0).first;
    filters.insert(held, count->first);
    if (++count->second != 1) return false;
    gained(filter);
    return true;
}

bool subscription_table::remove(session_id client, std::string_view filter) {
    const auto c = by_client_.find(client);
    if (c == by_client_.end()) return false;
    auto& filters = c->second;
    const auto f = std::lower_bound(filters.begin(), filters.end(), filter);
    if (f == filters.end() || *f != filter) return false;
    const std::string_view held = *f;  // `filter` may view a string the caller frees meanwhile; this one stays
    filters.erase(f);
    if (filters.empty()) by_client_.erase(c);
    const auto orphan = detach(client, held);
    if (!orphan) return false;
    dropped(*orphan);
    return true;
}

std::vector<std::string> subscription_table::remove_client(session_id client) {
    std::vector<std::string> orphaned;
    auto entry = by_client_.extract(client);
    if (entry.empty()) return orphaned;
    // The client's filters are sorted, so the orphans come out in lexicographic order.
    for (const auto filter : entry.mapped()) {
        if (auto orphan = detach(client, filter)) orphaned.push_back(std::move(*orphan));
    }
    for (const auto& filter : orphaned) dropped(filter);
    return orphaned;
}

std::vector<session_id> subscription_table::holders(std::string_view filter) const {
    std::vector<session_id> out;
    const node* n = root_.get();
    for (std::size_t pos = 0; pos != topic_done && n != nullptr;) {
        const auto [level, next] = next_level(filter, pos);
        n = n->child(level);
        pos = next;
    }
    if (n != nullptr) {
        for (const auto& h : n->holders) out.push_back(h.client);
    }
    return out;
}

std::optional<std::string> subscription_table::detach(session_id client, std::string_view filter) {
    // Remember the path so emptied nodes can be pruned bottom-up without parent pointers.
    struct step {
        node* parent;
        std::string_view level;
    };
    std::vector<step> path;
    node* n = root_.get();
    for (std::size_t pos = 0; pos != topic_done && n != nullptr;) {
        const auto [level, next] = next_level(filter, pos);
        path.push_back({n, level});
        n = n->child(level);
        pos = next;
    }
    if (n != nullptr) {
        const auto at =
            std::lower_bound(n->holders.begin(), n->holders.end(), delivery{client, 0}, by_client);
        if (at != n->holders.end() && at->client == client) n->holders.erase(at);
        for (auto s = path.rbegin(); s != path.rend(); ++s) {
            const node* child = s->parent->child(s->level);
            if (child == nullptr || !child->empty()) break;
            s->parent->erase_child(s->level);
        }
    }
    const auto count = holders_.find(filter);
    if (count == holders_.end() || --count->second != 0) return std::nullopt;
    return std::move(holders_.extract(count).key());
}

void subscription_table::match(std::string_view topic, std::vector<delivery>& out) const {
    struct frame {
        const node* n = nullptr;
        std::size_t pos = 0;  // start of the next topic level, or topic_done
    };
    const std::size_t first = out.size();
    // "$SYS/x" and friends are invisible to filters that start with a wildcard.
    const bool dollar = !topic.empty() && topic.front() == '$';

    frame_stack<frame> stack;
    stack.push({root_.get(), 0});
    while (!stack.empty()) {
        const auto [n, pos] = stack.pop();
        const bool wildcards = !(dollar && n == root_.get());
        // '#' covers this level and everything below, including the parent: "a/#" matches "a".
        if (wildcards && n->hash)
            out.insert(out.end(), n->hash->holders.begin(), n->hash->holders.end());
        if (pos == topic_done) {
            out.insert(out.end(), n->holders.begin(), n->holders.end());
            continue;
        }
        const auto [level, next] = next_level(topic, pos);
        if (wildcards && n->plus) stack.push({n->plus.get(), next});
        if (const auto it = n->children.find(level); it != n->children.end()) {
            stack.push({it->second.get(), next});
        }
    }

    merge_by_client(out, first);
}

void merge_by_client(std::vector<delivery>& deliveries, std::size_t first) {
    // Sorted by client, best QoS first: the first of each run is kept, with the options merged in.
    const auto begin = deliveries.begin() + static_cast<std::ptrdiff_t>(first);
    if (deliveries.end() - begin < 2) return;
    std::sort(begin, deliveries.end(), [](const delivery& a, const delivery& b) {
        return a.client != b.client ? a.client < b.client : a.max_qos > b.max_qos;
    });
    auto kept = begin;
    for (auto it = std::next(begin); it != deliveries.end(); ++it) {
        if (it->client != kept->client) {
            *++kept = *it;
            continue;
        }
        kept->no_local = kept->no_local && it->no_local;
        kept->retain_as_published = kept->retain_as_published || it->retain_as_published;
    }
    deliveries.erase(std::next(kept), deliveries.end());
}

bool subscription_table::holds(session_id client, std::string_view filter) const {
    const auto c = by_client_.find(client);
    return c != by_client_.end() && std::binary_search(c->second.begin(), c->second.end(), filter);
}

std::size_t subscription_table::holder_count(std::string_view filter) const {
    const auto it = holders_.find(filter);
    return it == holders_.end() ? 0 : it->second;
}

std::size_t subscription_table::filter_count() const noexcept {
    return holders_.size();
}

std::vector<std::string> subscription_table::filters() const {
    std::vector<std::string> out;
    out.reserve(holders_.size());
    for (const auto& [filter, count] : holders_) out.push_back(filter);
    return out;
}

std::size_t subscription_table::upstream_count() const noexcept {
    return upstream_.size();
}

std::vector<std::string> subscription_table::upstream_filters() const {
    std::vector<std::string> out;
    out.reserve(upstream_.size());
    for (const auto& [filter, entry] : upstream_) out.push_back(filter);
    return out;
}

// --- upstream ---------------------------------------------------------------------------------

void subscription_table::gained(std::string_view filter) {
    // Under coverage: the coverage filter serves it, unless a held filter covers that one.
    bool covered = false;
    for_each_coverage(filter, [&](const std::string& c) {
        covered = true;
        if (++in_use_[c] == 1 && !held_filter_covers(c)) wanted_.insert(c);
    });
    if (covered) return;
    // A wildcard-free filter always goes upstream itself: only its own SUBSCRIBE brings its
    // retained message (AWS IoT Core sends retained messages to exact subscriptions only).
    if (!has_wildcard(filter) || is_shared(filter)) {
        wanted_.emplace(filter);
        return;
    }
    if (covered_locally(filter)) return;
    // The filters it covers are served by it from now on (coverage filters included).
    const auto prefix = literal_prefix(filter);
    for (auto it = wanted_.lower_bound(prefix); it != wanted_.end() && it->starts_with(prefix);) {
        if ((has_wildcard(*it) || in_use_.contains(*it)) && covers(filter, *it)) {
            it = wanted_.erase(it);
        } else {
            ++it;
        }
    }
    wanted_.emplace(filter);
}

void subscription_table::dropped(std::string_view filter) {
    bool covered = false;
    for_each_coverage(filter, [&](const std::string& c) {
        covered = true;
        const auto u = in_use_.find(c);
        if (u == in_use_.end() || --u->second != 0) return;
        in_use_.erase(u);
        wanted_.erase(c);
        refused_.erase(c);  // a later filter under it asks the broker again
    });
    // (A coverage filter's refusal stays while filters under it are held, even when one was
    // held under the coverage filter's own name.)
    if (const auto r = refused_.find(filter); r != refused_.end() && !in_use_.contains(filter)) refused_.erase(r);
    if (covered) return;
    const auto w = wanted_.find(filter);
    // Not wanted: another held filter covers it, and so everything it covers.
    if (w == wanted_.end()) return;
    wanted_.erase(w);
    if (!has_wildcard(filter) || is_shared(filter)) return;  // covers nothing but itself
    for_each_covered(filter, [&](const std::string& f) {
        if (has_wildcard(f) && !wanted_.contains(f) && !under_coverage(f) && !covered_locally(f)) wanted_.insert(f);
    });
    // The coverage filters it covered serve their filters again.
    for (const auto& [c, n] : in_use_) {
        if (covers(filter, c) && !wanted_.contains(c) && !held_filter_covers(c)) wanted_.insert(c);
    }
}

template <typename F>
void subscription_table::for_each_coverage(std::string_view filter, F&& f) const {
    if (coverage_.empty()) return;
    for (const auto& c : coverage_) {
        if (covers(c, filter)) f(c);
    }
}

bool subscription_table::under_coverage(std::string_view filter) const {
    bool covered = false;
    for_each_coverage(filter, [&](const std::string&) { covered = true; });
    return covered;
}

bool subscription_table::set_coverage(std::vector<std::string> filters) {
    std::sort(filters.begin(), filters.end());
    filters.erase(std::unique(filters.begin(), filters.end()), filters.end());
    // A coverage filter another one covers would only cost a second upstream subscription.
    std::vector<std::string> kept;
    for (auto& f : filters) {
        if (is_shared(f)) continue;
        const bool nested = std::any_of(filters.begin(), filters.end(), [&](const std::string& g) {
            return g != f && covers(g, f);
        });
        if (!nested) kept.push_back(f);
    }
    if (kept == coverage_) return false;
    coverage_ = std::move(kept);
    rebuild_wanted();
    return true;
}

void subscription_table::rebuild_wanted() {
    wanted_.clear();
    in_use_.clear();
    for (const auto& [f, count] : holders_) {
        bool covered = false;
        for_each_coverage(f, [&](const std::string& c) {
            covered = true;
            ++in_use_[c];
        });
        if (covered) continue;
        if (!has_wildcard(f) || is_shared(f) || !covered_locally(f)) wanted_.insert(f);
    }
    for (const auto& [c, n] : in_use_) {
        if (!held_filter_covers(c)) wanted_.insert(c);
    }
    // Refusals of what is neither held nor a coverage filter in use any more are stale.
    std::erase_if(refused_, [&](const auto& r) { return !holders_.contains(r.first) && !in_use_.contains(r.first); });
}

bool subscription_table::served_by_coverage(std::string_view filter) const {
    bool served_here = false;
    for_each_coverage(filter, [&](const std::string& c) {
        served_here = served_here || in_use_.contains(c) || upstream_.contains(c);
    });
    return served_here;
}

bool subscription_table::covered_locally(std::string_view filter) const {
    if (!has_wildcard(filter) || is_shared(filter)) return false;
    return held_filter_covers(filter);
}

bool subscription_table::held_filter_covers(std::string_view filter) const {
    if (is_shared(filter)) return false;
    struct frame {
        const node* n = nullptr;
        std::size_t pos = 0;  // start of the next level of `filter`, or topic_done
        bool same = true;     // the path so far spells `filter` itself
    };
    frame_stack<frame> stack;
    stack.push({root_.get(), 0, true});
    while (!stack.empty()) {
        const auto [n, pos, same] = stack.pop();
        if (pos == topic_done) {
            if (!same && !n->holders.empty()) return true;  // a held filter that ends here
            continue;
        }
        const auto [level, next] = next_level(filter, pos);
        const bool hidden = n == root_.get() && dollar_level(level);  // from leading wildcards
        // A held "prefix/#" covers whatever `filter` has from this level on (itself when `filter`
        // is that very "prefix/#").
        if (!hidden && n->hash && !n->hash->holders.empty() && !(same && level == "#")) return true;
        if (level == "#") continue;  // only a '#' covers a '#'
        if (!hidden && n->plus) stack.push({n->plus.get(), next, same && level == "+"});
        if (level != "+") {
            if (const auto it = n->children.find(level); it != n->children.end())
                stack.push({it->second.get(), next, same});
        }
    }
    return false;
}

template <typename F>
void subscription_table::for_each_covered(std::string_view wider, F&& f) const {
    const auto prefix = literal_prefix(wider);
    for (auto it = holders_.lower_bound(prefix); it != holders_.end() && it->first.starts_with(prefix); ++it) {
        if (covers(wider, it->first)) f(it->first);
    }
}

bool subscription_table::served(std::string_view filter, std::string_view except, bool granted_only) const {
    for (const auto& [u, e] : upstream_) {
        if (u == except || (granted_only && !e.granted)) continue;
        if (covers(u, filter)) return true;
    }
    return false;
}

upstream_plan subscription_table::plan(std::optional<std::size_t> quota) {
    upstream_plan p;
    // Wanted filters not upstream yet: first those nothing serves, then those a wider filter
    // still serves (it lost its holders and waits for them to take over), while there is room.
    std::vector<const std::string*> unserved_first;
    std::vector<const std::string*> replacements;
    for (const auto& w : wanted_) {
        if (upstream_.contains(w) || refused_.contains(w)) continue;
        (served(w, {}, false) ? replacements : unserved_first).push_back(&w);
    }
    for (const auto* list : {&unserved_first, &replacements}) {
        for (const auto* w : *list) {
            if (quota && upstream_.size() >= *quota) break;
            const auto generation = next_generation_++;
            upstream_.emplace(*w, upstream_entry{.generation = generation, .granted = false, .qos = 0});
            p.subscribe.push_back({.filter = *w, .generation = generation});
        }
    }
    // Upstream filters nobody wants any more go once every held filter they serve is served by
    // another one the broker acknowledged: the broker applies a SUBACKed subscription first.
    for (auto it = upstream_.begin(); it != upstream_.end();) {
        if (wanted_.contains(it->first)) {
            ++it;
            continue;
        }
        bool needed = false;
        for_each_covered(it->first, [&](const std::string& f) { needed = needed || !served(f, it->first, true); });
        if (needed) {
            ++it;
            continue;
        }
        p.unsubscribe.push_back(it->first);
        const bool was_granted = it->second.granted;
        it = upstream_.erase(it);
        if (was_granted) refresh_overlaps();
    }
    return p;
}

bool subscription_table::fits(std::string_view filter, std::optional<std::size_t> quota) const {
    if (!quota || upstream_.size() < *quota || holders_.contains(filter)) return true;
    // Answered by what serves it, or by what serves the held filter (or the coverage filter in
    // use) that covers it.
    if (served(filter, {}, false)) return true;
    return under_coverage(filter) ? served_by_coverage(filter) : covered_locally(filter);
}

subscription_table::suback subscription_table::subscribed(std::string_view filter, std::uint64_t generation,
                                                          std::uint8_t code) {
    const auto it = upstream_.find(filter);
    if (it == upstream_.end() || it->second.generation != generation) return suback::stale;
    if (code < 0x80) {
        it->second.granted = true;
        it->second.qos = code;
        refresh_overlaps();
        return suback::granted;
    }
    upstream_.erase(it);
    if (holders_.contains(filter) || in_use_.contains(filter)) refused_.insert_or_assign(std::string(filter), code);
    return suback::refused;
}

void subscription_table::lost(std::string_view filter, std::uint8_t code) {
    if (const auto it = upstream_.find(filter); it != upstream_.end()) {
        const bool was_granted = it->second.granted;
        upstream_.erase(it);
        if (was_granted) refresh_overlaps();
    }
    if (holders_.contains(filter) || in_use_.contains(filter)) refused_.insert_or_assign(std::string(filter), code);
}

std::vector<unserved_filter> subscription_table::unserved() const {
    std::vector<unserved_filter> out;
    std::set<std::string_view> listed;  // a held filter under two unserved coverage filters: once
    for (const auto& w : wanted_) {
        if (upstream_.contains(w) || served(w, {}, false)) continue;
        const auto r = refused_.find(w);
        const auto code = r == refused_.end() ? std::nullopt : std::optional<std::uint8_t>{r->second};
        if (!in_use_.contains(w)) {
            if (listed.insert(w).second) out.push_back({.filter = w, .refused = code});
            continue;
        }
        // A coverage filter: the held filters it was to serve, where nothing else serves them.
        for_each_covered(w, [&](const std::string& f) {
            if (!served(f, {}, false) && listed.insert(f).second) out.push_back({.filter = f, .refused = code});
        });
    }
    return out;
}

std::vector<std::string> subscription_table::awaiting_suback(std::string_view filter) const {
    std::vector<std::string> out;
    for (const auto& [u, e] : upstream_) {
        if (!e.granted && covers(u, filter)) out.push_back(u);
    }
    return out;
}

std::optional<std::uint8_t> subscription_table::granted_qos(std::string_view filter) const {
    std::optional<std::uint8_t> best;
    for (const auto& [u, e] : upstream_) {
        if (e.granted && covers(u, filter)) best = std::max(best.value_or(0), e.qos);
    }
    return best;
}

std::size_t subscription_table::upstream_copies(std::string_view topic) const {
    std::size_t n = 0;
    for (const auto& f : overlapping_) {
        if (topic::matches_as_aws_iot(f, topic)) ++n;
    }
    return n;
}

void subscription_table::refresh_overlaps() {
    overlapping_.clear();
    std::vector<const std::string*> granted;
    for (const auto& [u, e] : upstream_) {
        if (e.granted) granted.push_back(&u);
    }
    std::vector<bool> shares(granted.size(), false);
    for (std::size_t i = 0; i < granted.size(); ++i) {
        for (std::size_t j = i + 1; j < granted.size(); ++j) {
            // Two distinct wildcard-free filters never share a topic: skip the common case cheaply.
            if (!has_wildcard(*granted[i]) && !has_wildcard(*granted[j])) continue;
            if (overlap(*granted[i], *granted[j])) shares[i] = shares[j] = true;
        }
    }
    for (std::size_t i = 0; i < granted.size(); ++i) {
        if (shares[i]) overlapping_.push_back(*granted[i]);
    }
}

std::size_t subscription_table::filters_held(session_id client) const {
    const auto c = by_client_.find(client);
    return c == by_client_.end() ? 0 : c->second.size();
}

std::vector<std::string> subscription_table::client_filters(session_id client) const {
    std::vector<std::string> out;
    const auto c = by_client_.find(client);
    if (c == by_client_.end()) return out;
    out.reserve(c->second.size());
    for (const auto filter : c->second) out.emplace_back(filter);
    return out;
}

}  // namespace thingmux::thing
