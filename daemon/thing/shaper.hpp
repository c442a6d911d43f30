// Shapes outgoing publishes to the broker's per-connection limits and shares them fairly among
// local apps.
//
// AWS IoT Core throttles a connection above 100 publishes/s or 512 KiB/s, and every app behind
// the daemon shares that one connection: a flooding app must neither get the connection throttled
// nor starve a quiet one. Two token buckets (publishes, bytes) enforce the limits; deficit round
// robin over the apps with queued publishes picks who sends next. A visit sends at most one
// message, so apps with small messages get equal shares of the publish rate, and a visit earns a
// byte quantum, so an app with large messages waits until it has earned their size instead of
// taking the byte budget from the others. One app's messages are never reordered.
//
// Pure: time is passed in and nothing reads a clock, so the daemon drives it from a timer and the
// tests from a simulated time_point.
#pragma once

#include "daemon/thing/subscription_table.hpp"  // session_id

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace thingmux::thing {

// A token bucket that may go into debt: an item costlier than the whole capacity still passes once
// the bucket is full, and the debt then holds back what follows for as long as its cost requires.
class token_bucket {
public:
    using clock = std::chrono::steady_clock;

    // `rate_per_second`: tokens earned per second, nullopt for unlimited, else > 0. `capacity`
    // (> 0) is the largest burst. The bucket starts full at `now`.
    token_bucket(std::optional<double> rate_per_second, double capacity, clock::time_point now);

    // New rate and capacity (configuration reload). The level, or debt, is kept up to the new
    // capacity; a bucket that was unlimited starts full.
    void reconfigure(std::optional<double> rate_per_second, double capacity, clock::time_point now);

    // Adds the tokens earned since the last refill; a `now` at or before it adds nothing.
    void refill(clock::time_point now);
    // True when unlimited or when the level (as of the last refill) covers min(cost, capacity).
    [[nodiscard]] bool allows(double cost) const;
    // Spends `cost` tokens; the level may go negative. Nothing happens when unlimited.
    void take(double cost);
    // How long after `now` allows(cost) becomes true (once refilled then); zero when it already
    // is at `now`. Capped at about 30 years so that now + result cannot overflow.
    [[nodiscard]] clock::duration until_allows(double cost, clock::time_point now) const;

    [[nodiscard]] bool unlimited() const noexcept { return !rate_; }
    [[nodiscard]] double tokens() const noexcept { return tokens_; }  // as of the last refill

private:
    [[nodiscard]] double level_at(clock::time_point now) const;
    [[nodiscard]] bool covers(double level, double cost) const;

    std::optional<double> rate_;
    double capacity_;
    double tokens_;
    clock::time_point last_;
};

// A rate of 0 is not a limit (the configuration accepts 1 and up); nullopt lifts it.
struct shaper_limits {
    std::optional<std::uint32_t> messages_per_second = 100;      // nullopt: unlimited
    std::optional<std::uint64_t> bytes_per_second = 512 * 1024;  // nullopt: unlimited
};

// The connection's two budgets: one token per publish, one per byte.
class connection_budget {
public:
    using clock = std::chrono::steady_clock;

    connection_budget(const shaper_limits& limits, clock::time_point now);
    // New limits; tokens already earned (or owed) carry over, up to the new capacities.
    void set_limits(const shaper_limits& limits, clock::time_point now);

    void refill(clock::time_point now);
    [[nodiscard]] bool allows(std::size_t bytes) const;  // a publish of `bytes`, as of the last refill
    void take(std::size_t bytes);
    [[nodiscard]] clock::duration until_allows(std::size_t bytes, clock::time_point now) const;

private:
    token_bucket messages_;
    token_bucket bytes_;
};

// Per-client FIFO queues of pending publishes (T: any movable type, e.g. the daemon's pending
// publish), released within the limits in deficit round robin order.
template <class T>
class publish_shaper {
public:
    using clock = std::chrono::steady_clock;
    using limits = shaper_limits;

    // Bytes a client earns per visit. Small enough that a 1 KiB app is not far behind a 100 KiB
    // one, big enough that typical telemetry (a few hundred bytes) is sent on every visit.
    static constexpr std::size_t default_quantum = 4 * 1024;

    struct released {
        session_id client;
        T item;
        std::size_t bytes = 0;
    };

    // A `quantum` of 0 is taken as 1.
    publish_shaper(limits l, clock::time_point now, std::size_t quantum = default_quantum)
        : budget_(l, now), quantum_(std::max<std::size_t>(quantum, 1)) {}

    // round_ holds iterators into flows_: a copy would point into the original, a move keeps them.
    publish_shaper(const publish_shaper&) = delete;
    publish_shaper& operator=(const publish_shaper&) = delete;
    publish_shaper(publish_shaper&&) = default;
    publish_shaper& operator=(publish_shaper&&) = default;

    // Configuration reload: queued items and the round robin order are kept.
    void set_limits(limits l, clock::time_point now) { budget_.set_limits(l, now); }

    // Appends a publish of `bytes` (what it costs against the byte limit) to `client`'s queue. A
    // client whose queue was empty joins the end of the round.
    void push(session_id client, T item, std::size_t bytes) {
        auto [it, inserted] = flows_.try_emplace(client);
        it->second.items.push_back(entry{std::move(item), bytes});
        it->second.bytes += bytes;
        ++queued_total_;
        if (inserted) {
            round_.push_back(it);
            if (round_.size() == 1) advance();
        }
    }

    // A publish of `bytes` that push() then pop() would release at once, because nothing is
    // queued and the limits allow it at `now`: spends its budget and returns true, so the caller
    // sends it without queuing it. Returns false, queuing nothing, otherwise.
    [[nodiscard]] bool pass(std::size_t bytes, clock::time_point now) {
        if (!round_.empty()) return false;
        budget_.refill(now);
        if (!budget_.allows(bytes)) return false;
        budget_.take(bytes);
        return true;
    }

    // Drops a client's queue (it disconnected) and returns its items in FIFO order, for the caller
    // to fail.
    [[nodiscard]] std::vector<T> remove_client(session_id client) {
        std::vector<T> out;
        const auto it = flows_.find(client);
        if (it == flows_.end()) return out;
        out.reserve(it->second.items.size());
        for (entry& e : it->second.items) out.push_back(std::move(e.item));
        queued_total_ -= it->second.items.size();
        erase_flow(it);
        return out;
    }

    // Drops the items of `client`'s queue for which `pred(const T&)` is true (withdrawn requests);
    // the others keep their order. Returns how many were dropped.
    template <class Pred>
    std::size_t remove_if(session_id client, Pred pred) {
        const auto it = flows_.find(client);
        if (it == flows_.end()) return 0;
        flow& f = it->second;
        const bool was_head = round_.front() == it;
        std::size_t removed = 0;
        for (auto e = f.items.begin(); e != f.items.end();) {
            if (pred(std::as_const(e->item))) {
                f.bytes -= e->bytes;
                e = f.items.erase(e);
                ++removed;
            } else {
                ++e;
            }
        }
        queued_total_ -= removed;
        if (f.items.empty()) {
            erase_flow(it);
        } else if (was_head && removed > 0) {
            advance();  // the head's first item may have changed: it must still be able to send it
        }
        return removed;
    }

    // The next publish the limits allow at `now`, from the client whose turn it is; nullopt when
    // nothing is queued or the limits need time first (see next_ready()).
    [[nodiscard]] std::optional<released> pop(clock::time_point now) {
        if (round_.empty()) return std::nullopt;
        const auto it = round_.front();
        flow& f = it->second;
        const std::size_t bytes = f.items.front().bytes;
        budget_.refill(now);
        if (!budget_.allows(bytes)) return std::nullopt;
        budget_.take(bytes);

        std::optional<released> out{released{it->first, std::move(f.items.front().item), bytes}};
        f.items.pop_front();
        f.bytes -= bytes;
        --queued_total_;
        // Unspent credit beyond one quantum comes from visits where a small message did not use
        // it; banking it would let the client later send a run of large messages out of turn.
        f.deficit = std::min(f.deficit - bytes, quantum_);
        f.granted = false;
        round_.pop_front();
        if (f.items.empty()) {
            flows_.erase(it);  // an idle client's credit is forgotten (classic DRR)
        } else {
            round_.push_back(it);
        }
        advance();
        return out;
    }

    // nullopt when nothing is queued; otherwise how long after `now` pop() will succeed (zero:
    // now). Arm a timer for it; pushes and remove_client() can change it.
    [[nodiscard]] std::optional<clock::duration> next_ready(clock::time_point now) const {
        if (round_.empty()) return std::nullopt;
        return budget_.until_allows(round_.front()->second.items.front().bytes, now);
    }

    [[nodiscard]] std::size_t queued(session_id client) const {
        const auto it = flows_.find(client);
        return it == flows_.end() ? 0 : it->second.items.size();
    }
    [[nodiscard]] std::size_t queued_bytes(session_id client) const {
        const auto it = flows_.find(client);
        return it == flows_.end() ? 0 : it->second.bytes;
    }
    [[nodiscard]] std::size_t queued_total() const noexcept { return queued_total_; }

private:
    struct entry {
        T item;
        std::size_t bytes;
    };
    struct flow {
        std::deque<entry> items;
        std::size_t bytes = 0;    // sum of items' bytes
        std::size_t deficit = 0;  // bytes earned and not yet spent
        bool granted = false;     // earned this visit's quantum (only the round's head can be)
    };
    using flow_map = std::map<session_id, flow>;

    void erase_flow(typename flow_map::iterator it) {
        const bool was_current = round_.front() == it;
        round_.erase(std::find(round_.begin(), round_.end(), it));
        flows_.erase(it);
        if (was_current) advance();
    }

    // Moves the round forward until its head may send its first item (deficit >= size): the head
    // is then the client whose turn it is, and it stays so until that item is popped.
    void advance() {
        std::size_t misses = 0;
        while (!round_.empty()) {
            flow& f = round_.front()->second;
            if (!f.granted) {
                f.deficit += quantum_;
                f.granted = true;
            }
            if (f.deficit >= f.items.front().bytes) return;
            f.granted = false;
            round_.push_back(round_.front());
            round_.pop_front();
            if (++misses == round_.size()) {
                skip_idle_rounds();
                misses = 0;
            }
        }
    }

    // After a whole round where nobody could send (every head item larger than its client's credit),
    // grants at once the rounds in which still nobody could, so large items cost O(clients) and
    // not O(clients * size / quantum).
    void skip_idle_rounds() {
        std::size_t rounds = 0;
        bool first = true;
        for (const auto& it : round_) {
            const flow& f = it->second;
            const std::size_t missing = f.items.front().bytes - f.deficit;                      // > 0 after a miss
            const std::size_t needed = missing / quantum_ + (missing % quantum_ != 0 ? 1 : 0);  // visits
            rounds = first ? needed - 1 : std::min(rounds, needed - 1);
            first = false;
        }
        for (const auto& it : round_) it->second.deficit += rounds * quantum_;
    }

    connection_budget budget_;
    std::size_t quantum_;
    flow_map flows_;                                 // clients with at least one queued item
    std::deque<typename flow_map::iterator> round_;  // the same clients, in turn order
    std::size_t queued_total_ = 0;
};

}  // namespace thingmux::thing
