#include "daemon/hub/subscription_table.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <functional>
#include <unordered_map>
#include <utility>

namespace thingmux::hub {

namespace {

// Lets the children map be probed with a string_view level, so match() never builds a string.
struct level_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

constexpr std::size_t topic_done = std::string_view::npos;  // every topic level was consumed

// The level starting at `pos`, and where the next one starts (topic_done after the last).
// Empty levels are real levels: "a/" is {"a", ""}, "/a" is {"", "a"}.
std::pair<std::string_view, std::size_t> next_level(std::string_view s, std::size_t pos) noexcept {
    const std::size_t slash = s.find('/', pos);
    if (slash == std::string_view::npos) return {s.substr(pos), topic_done};
    return {s.substr(pos, slash - pos), slash + 1};
}

bool by_client(const delivery& a, const delivery& b) noexcept { return a.client < b.client; }

}  // namespace

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

bool subscription_table::add(client_id client, std::string_view filter, std::uint8_t max_qos) {
    auto& filters = by_client_[client];
    node* n = root_.get();
    for (std::size_t pos = 0; pos != topic_done;) {
        const auto [level, next] = next_level(filter, pos);
        n = &n->child_or_create(level);
        pos = next;
    }
    const delivery h{client, max_qos};
    const auto at = std::lower_bound(n->holders.begin(), n->holders.end(), h, by_client);
    if (const auto it = filters.find(filter); it != filters.end()) {
        // Already held: only the QoS changes, nothing goes upstream.
        it->second = max_qos;
        if (at != n->holders.end() && at->client == client) at->max_qos = max_qos;
        return false;
    }
    filters.emplace(std::string(filter), max_qos);
    n->holders.insert(at, h);
    auto count = holders_.find(filter);
    if (count == holders_.end()) count = holders_.emplace(std::string(filter), 0).first;
    return ++count->second == 1;
}

bool subscription_table::remove(client_id client, std::string_view filter) {
    const auto c = by_client_.find(client);
    if (c == by_client_.end()) return false;
    const auto f = c->second.find(filter);
    if (f == c->second.end()) return false;
    c->second.erase(f);
    if (c->second.empty()) by_client_.erase(c);
    return detach(client, filter);
}

std::vector<std::string> subscription_table::remove_client(client_id client) {
    std::vector<std::string> orphaned;
    auto entry = by_client_.extract(client);
    if (entry.empty()) return orphaned;
    // The client's map is ordered, so the orphans come out in lexicographic order.
    for (const auto& [filter, qos] : entry.mapped()) {
        if (detach(client, filter)) orphaned.push_back(filter);
    }
    return orphaned;
}

bool subscription_table::detach(client_id client, std::string_view filter) {
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
    if (count == holders_.end()) return false;
    if (--count->second != 0) return false;
    holders_.erase(count);
    return true;
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

    // One delivery per client at its highest matching QoS: sort by client, best QoS first,
    // then keep the first of each run.
    const auto begin = out.begin() + static_cast<std::ptrdiff_t>(first);
    if (out.end() - begin < 2) return;
    std::sort(begin, out.end(), [](const delivery& a, const delivery& b) {
        return a.client != b.client ? a.client < b.client : a.max_qos > b.max_qos;
    });
    out.erase(
        std::unique(begin, out.end(),
                    [](const delivery& a, const delivery& b) { return a.client == b.client; }),
        out.end());
}

bool subscription_table::holds(client_id client, std::string_view filter) const {
    const auto c = by_client_.find(client);
    return c != by_client_.end() && c->second.find(filter) != c->second.end();
}

std::size_t subscription_table::holder_count(std::string_view filter) const {
    const auto it = holders_.find(filter);
    return it == holders_.end() ? 0 : it->second;
}

std::size_t subscription_table::upstream_count() const noexcept { return holders_.size(); }

std::vector<std::string> subscription_table::upstream_filters() const {
    std::vector<std::string> out;
    out.reserve(holders_.size());
    for (const auto& [filter, count] : holders_) out.push_back(filter);
    return out;
}

std::size_t subscription_table::client_count(client_id client) const {
    const auto c = by_client_.find(client);
    return c == by_client_.end() ? 0 : c->second.size();
}

std::vector<std::string> subscription_table::client_filters(client_id client) const {
    std::vector<std::string> out;
    const auto c = by_client_.find(client);
    if (c == by_client_.end()) return out;
    out.reserve(c->second.size());
    for (const auto& [filter, qos] : c->second) out.push_back(filter);
    return out;
}

}  // namespace thingmux::hub
