// What a libthingmux handler received, kept for the test thread: handlers run on the library's
// thread, the assertions on the test's.
#pragma once

#include <thingmux/message.hpp>

#include <cstddef>
#include <mutex>
#include <vector>

namespace thingmux::test {

class message_inbox {
public:
    void add(const message& msg) {
        std::lock_guard l(m_);
        got_.push_back(msg);
    }
    [[nodiscard]] std::vector<message> all() {
        std::lock_guard l(m_);
        return got_;
    }
    [[nodiscard]] std::size_t size() {
        std::lock_guard l(m_);
        return got_.size();
    }

private:
    std::mutex m_;
    std::vector<message> got_;
};

}  // namespace thingmux::test
