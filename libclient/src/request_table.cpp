#include "request_table.hpp"

#include <algorithm>
#include <utility>

namespace thingmux::detail {

namespace {

void set_request_id(ipc::client_message& m, std::uint32_t id) {
    std::visit(
        [id](auto& msg) {
            if constexpr (requires { msg.request_id; }) {
                msg.request_id = id;
            }
        },
        m);
}

bool in(pending_in where, pending_in part) noexcept {
    return (static_cast<std::uint8_t>(where) & static_cast<std::uint8_t>(part)) != 0;
}

}  // namespace

failure_plan failure_plan::all(const result& r) {
    failure_plan p;
    for (auto& o : p.outcomes_) {
        o = r;
    }
    return p;
}

failure_plan& failure_plan::fail(request_kind kind, result r) {
    outcomes_[static_cast<std::size_t>(kind)] = std::move(r);
    return *this;
}

const result* failure_plan::outcome(request_kind kind) const noexcept {
    const auto& o = outcomes_[static_cast<std::size_t>(kind)];
    return o ? &*o : nullptr;
}

void request_table::push_back(request&& r) {
    backlog_bytes_ += r.size;
    backlog_.push_back(std::move(r));
}

void request_table::push_front(std::vector<request>&& rs) {
    for (auto it = rs.rbegin(); it != rs.rend(); ++it) {
        backlog_bytes_ += it->size;
        backlog_.push_front(std::move(*it));
    }
}

request request_table::pop_newest() {
    request r = std::move(backlog_.back());
    backlog_.pop_back();
    backlog_bytes_ -= r.size;
    return r;
}

const request* request_table::next_to_send(std::size_t publish_window) const noexcept {
    if (backlog_.empty()) {
        return nullptr;
    }
    const request& front = backlog_.front();
    if (front.kind == request_kind::publish && in_flight_publishes_ >= publish_window) {
        return nullptr;
    }
    return &front;
}

request request_table::pop_next() {
    request r = std::move(backlog_.front());
    backlog_.pop_front();
    backlog_bytes_ -= r.size;
    return r;
}

bool request_table::waiting_subscribe(std::string_view filter) const noexcept {
    return std::any_of(backlog_.begin(), backlog_.end(), [&](const request& r) {
        return r.kind == request_kind::subscribe && r.filters.front().filter == filter;
    });
}

std::optional<request> request_table::withdraw(const request_gate* gate) {
    const auto it = std::find_if(backlog_.begin(), backlog_.end(), [gate](const request& r) {
        return r.gate.get() == gate && (r.kind == request_kind::publish || r.kind == request_kind::subscribe);
    });
    if (gate == nullptr || it == backlog_.end()) {
        return std::nullopt;
    }
    request r = std::move(*it);
    backlog_.erase(it);
    backlog_bytes_ -= r.size;
    return r;
}

const request& request_table::send(request&& r) {
    std::uint32_t id = next_request_id_;
    while (id == 0 || in_flight_.contains(id)) {
        ++id;
    }
    next_request_id_ = id + 1;
    set_request_id(r.frame, id);
    if (r.kind == request_kind::publish) {
        ++in_flight_publishes_;
    }
    return in_flight_.emplace(id, std::move(r)).first->second;
}

std::optional<request> request_table::complete(std::uint32_t id, std::initializer_list<request_kind> kinds) {
    const auto it = in_flight_.find(id);
    if (it == in_flight_.end() || std::find(kinds.begin(), kinds.end(), it->second.kind) == kinds.end()) {
        return std::nullopt;
    }
    request r = std::move(it->second);
    in_flight_.erase(it);
    if (r.kind == request_kind::publish) {
        --in_flight_publishes_;
    }
    return r;
}

request* request_table::in_flight(std::uint32_t id) {
    const auto it = in_flight_.find(id);
    return it == in_flight_.end() ? nullptr : &it->second;
}

void request_table::fail(pending_in where, const failure_plan& plan, const failed_sink& sink) {
    // Take them out first, then hand them over: the sink may look at the table.
    std::vector<std::pair<request, const result*>> failed;
    if (in(where, pending_in::in_flight)) {
        for (auto it = in_flight_.begin(); it != in_flight_.end();) {
            if (const result* outcome = plan.outcome(it->second.kind)) {
                if (it->second.kind == request_kind::publish) {
                    --in_flight_publishes_;
                }
                failed.emplace_back(std::move(it->second), outcome);
                it = in_flight_.erase(it);
            } else {
                ++it;
            }
        }
    }
    if (in(where, pending_in::backlog)) {
        std::pmr::deque<request> kept(backlog_.get_allocator());  // swap needs the same pool
        for (auto& r : backlog_) {
            if (const result* outcome = plan.outcome(r.kind)) {
                backlog_bytes_ -= r.size;
                failed.emplace_back(std::move(r), outcome);
            } else {
                kept.push_back(std::move(r));
            }
        }
        backlog_.swap(kept);
    }
    for (auto& [r, outcome] : failed) {
        sink(std::move(r), *outcome);
    }
}

void request_table::requeue_in_flight(request_kind kind) {
    std::vector<request> again;
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
        if (it->second.kind == kind) {
            if (kind == request_kind::publish) {
                --in_flight_publishes_;
            }
            again.push_back(std::move(it->second));
            it = in_flight_.erase(it);
        } else {
            ++it;
        }
    }
    push_front(std::move(again));
}

}  // namespace thingmux::detail
