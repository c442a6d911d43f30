#include "service_table.hpp"

#include <algorithm>
#include <cstdio>

namespace thingmux::detail {

namespace {

std::string hex(std::uint64_t v, int digits) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%0*llx", digits, static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace

token_maker::token_maker() : token_maker(std::random_device{}() ^ (std::uint64_t{std::random_device{}()} << 32U)) {}

token_maker::token_maker(std::uint64_t seed) : prefix_("tmxl-" + hex(seed, 16) + "-") {}

std::string token_maker::next() {
    return prefix_ + hex(++counter_, 1);
}

bool service_table::add(service_request&& r) {
    if (pending_.size() >= max_pending_ || pending_.contains(r.token)) {
        return false;
    }
    std::string token = r.token;
    pending_.emplace(std::move(token), std::move(r));
    return true;
}

std::optional<service_request> service_table::take_answered(std::string_view token, std::string_view request_topic) {
    auto it = pending_.find(token);
    if (it == pending_.end() || it->second.request_topic != request_topic) {
        return std::nullopt;
    }
    auto r = std::move(it->second);
    pending_.erase(it);
    return r;
}

std::optional<service_request> service_table::take(std::string_view token) {
    auto it = pending_.find(token);
    if (it == pending_.end()) {
        return std::nullopt;
    }
    auto r = std::move(it->second);
    pending_.erase(it);
    return r;
}

std::vector<service_request> service_table::take_expired(service_clock::time_point now) {
    std::vector<service_request> out;
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.deadline <= now) {
            out.push_back(std::move(it->second));
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const service_request& a, const service_request& b) { return a.deadline < b.deadline; });
    return out;
}

std::vector<service_request> service_table::take_all() {
    std::vector<service_request> out;
    out.reserve(pending_.size());
    for (auto& [token, r] : pending_) {
        out.push_back(std::move(r));
    }
    pending_.clear();
    return out;
}

std::optional<service_clock::time_point> service_table::earliest_deadline() const {
    std::optional<service_clock::time_point> t;
    for (const auto& [token, r] : pending_) {
        if (!t || r.deadline < *t) {
            t = r.deadline;
        }
    }
    return t;
}

std::optional<service_table::filter_action> service_table::need(const std::string& filter) {
    if (auto it = filters_.find(filter); it != filters_.end()) {
        return it->second == filter_state::held ? filter_action::publish : filter_action::wait;
    }
    if (filters_.size() >= max_filters_) {
        return std::nullopt;
    }
    filters_.emplace(filter, filter_state::subscribing);
    return filter_action::subscribe;
}

std::vector<std::string> service_table::settle(const std::string& filter, bool held) {
    std::vector<std::string> tokens;
    if (held) {
        filters_[filter] = filter_state::held;
    } else {
        filters_.erase(filter);
    }
    for (auto& [token, r] : pending_) {
        if (r.answer_filter == filter && !r.published) {
            r.published = held;
            tokens.push_back(token);
        }
    }
    return tokens;
}

const service_request* service_table::find(std::string_view token) const {
    auto it = pending_.find(token);
    return it == pending_.end() ? nullptr : &it->second;
}

}  // namespace thingmux::detail
