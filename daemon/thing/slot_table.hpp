// A table of values named by small integer keys that are reused once their value is taken: for
// state that waits for an answer carrying the key back (a publish at the upstream, tagged with its
// key). A put() and a take() cost a vector access each; once the table has grown to the most
// values held at once, neither allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace thingmux::thing {

template <class T>
class slot_table {
public:
    // Keeps `value`; returns its key (never 0, so that 0 can mean "none" to whoever carries it).
    [[nodiscard]] std::uint64_t put(T value) {
        std::size_t i = 0;
        if (free_.empty()) {
            i = slots_.size();
            slots_.emplace_back(std::move(value));
        } else {
            i = free_.back();
            free_.pop_back();
            slots_[i].emplace(std::move(value));
        }
        ++size_;
        return i + 1;
    }
    // The value under `key`, which leaves the table; none when there is none (already taken, or
    // never put).
    [[nodiscard]] std::optional<T> take(std::uint64_t key) {
        if (key == 0 || key > slots_.size()) return std::nullopt;
        const auto i = static_cast<std::size_t>(key - 1);  // below slots_.size(): fits on 32 bits
        if (!slots_[i]) return std::nullopt;
        std::optional<T> out = std::move(slots_[i]);
        slots_[i].reset();
        --size_;
        if (size_ == 0) {  // all answered: keys start again from 1; a table grown large gives its memory back
            if (slots_.capacity() > keep_idle) {
                std::vector<std::optional<T>>().swap(slots_);
                std::vector<std::size_t>().swap(free_);
            }
            slots_.clear();
            free_.clear();
        } else {
            free_.push_back(i);
        }
        return out;
    }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }

private:
    static constexpr std::size_t keep_idle = 256;  // slots kept while the table is empty
    std::vector<std::optional<T>> slots_;
    std::vector<std::size_t> free_;  // indices of empty slots
    std::size_t size_ = 0;
};

}  // namespace thingmux::thing
