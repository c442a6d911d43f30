#include "daemon/hub/session_state.hpp"

#include "daemon/logging.hpp"
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/spool_message.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace thingmux::hub {

namespace {
std::size_t bytes_of(const mqtt::publish& m) { return m.topic.size() + m.payload.size(); }
}  // namespace

mqtt::publish for_client(const mqtt::publish& in) {
    mqtt::publish out;
    out.topic = in.topic;
    out.payload = in.payload;
    out.retain = in.retain;
    out.props = thing::to_mqtt(thing::to_ipc(in.props));
    return out;
}

void session_state::sent(std::uint64_t tag, held h) {
    if (h.qos == 0) return forget(h);
    unacknowledged_bytes_ += bytes_of(h.msg);
    auto [it, added] = unacknowledged_.insert_or_assign(tag, std::move(h));
    if (!added) unacknowledged_bytes_ -= bytes_of(it->second.msg);  // a tag is never reused while it awaits
    store(it->second);
}

bool session_state::acknowledged(std::uint64_t tag) {
    const auto it = unacknowledged_.find(tag);
    if (it == unacknowledged_.end()) return false;
    forget(it->second);
    unacknowledged_bytes_ -= bytes_of(it->second.msg);
    unacknowledged_.erase(it);
    return true;
}

void session_state::connection_ended() {
    // Sent and never acknowledged: they go again, ahead of what arrives from now on (and of
    // anything that waited already, which is younger).
    auto younger = std::exchange(waiting_, {});
    waiting_bytes_ = 0;
    auto sent = std::exchange(unacknowledged_, {});
    unacknowledged_bytes_ = 0;
    for (auto& [tag, h] : sent) hold(std::move(h));
    for (auto& h : younger) hold(std::move(h));
}

bool session_state::hold(held h) {
    const auto bytes = bytes_of(h.msg);
    if (h.qos == 0 || waiting_bytes_ + bytes > max_bytes_) {
        ++dropped_;
        forget(h);
        if (h.qos > 0) {
            if (auto note = owner_.denials().admit())
                spdlog::warn("{}: a message on '{}' is not kept for the client: {} bytes already wait for it ({}){}",
                             logging::escaped(owner_.describe()), logging::escaped(h.msg.topic), waiting_bytes_,
                             limit_key_, *note);
        }
        return false;
    }
    waiting_bytes_ += bytes;
    store(h);
    waiting_.push_back(std::move(h));
    return true;
}

std::list<session_state::held> session_state::take_waiting() {
    waiting_bytes_ = 0;
    return std::exchange(waiting_, {});
}

session_state::held session_state::take_oldest() {
    held h = std::move(waiting_.front());
    waiting_.pop_front();
    waiting_bytes_ -= bytes_of(h.msg);
    return h;
}

void session_state::store(held& h) {
    if (row_ == 0 || h.row != 0 || h.qos == 0) return;
    auto m = thing::to_spool_message(thing::to_ipc(mqtt::publish{h.msg}));
    m.qos = h.qos;  // the QoS of its delivery (the message's own is the broker's)
    h.row = journal_->add_message(row_, {.message = std::move(m), .share = h.share});
}

void session_state::forget(const held& h) { forget_row(h.row); }

void session_state::forget_row(std::int64_t row) {
    if (row != 0 && journal_ != nullptr) journal_->remove_message(row);
}

std::int64_t session_state::store_will(const spool::message& will, std::int64_t due) {
    if (row_ == 0) return 0;
    return journal_->add_message(row_, {.message = will, .will_due = due});
}

void session_state::store_held() {
    for (auto& [tag, h] : unacknowledged_) store(h);
    for (auto& h : waiting_) store(h);
    subscriptions_changed();
}

void session_state::restore(mqtt::publish msg, std::int64_t row, std::string share) {
    const auto qos = static_cast<std::uint8_t>(msg.qos);
    hold({std::move(msg), qos, std::move(share), row});
}

std::vector<thing::shared_leftover> session_state::take_shared_leftovers() {
    std::vector<thing::shared_leftover> out;
    const auto take = [&](held& h) {
        if (h.share.empty()) return false;
        forget(h);  // the member that gets it stores it, if its session is stored
        h.msg.qos = static_cast<mqtt::qos>(h.qos);
        out.push_back({std::move(h.share), std::move(h.msg)});
        return true;
    };
    // Sent to a connection that never acknowledged them (oldest first), then those that waited.
    for (auto it = unacknowledged_.begin(); it != unacknowledged_.end();) {
        if (!take(it->second)) {
            ++it;
            continue;
        }
        unacknowledged_bytes_ -= bytes_of(out.back().msg);
        it = unacknowledged_.erase(it);
    }
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (!take(*it)) {
            ++it;
            continue;
        }
        waiting_bytes_ -= bytes_of(out.back().msg);
        it = waiting_.erase(it);
    }
    return out;
}

void session_state::subscribing(std::uint32_t request_id, std::vector<spool::format::subscription> asked) {
    if (expiry.count() > 0) subscribing_[request_id] = std::move(asked);
}

void session_state::unsubscribing(std::uint32_t request_id, std::vector<std::string> filters) {
    if (expiry.count() > 0) unsubscribing_[request_id] = std::move(filters);
}

void session_state::subscribe_done(std::uint32_t request_id, const std::vector<ipc::result>& outcomes) {
    const auto it = subscribing_.find(request_id);
    if (it == subscribing_.end()) return;
    auto asked = std::move(it->second);
    subscribing_.erase(it);
    for (std::size_t i = 0; i < asked.size() && i < outcomes.size(); ++i) {
        if (!ipc::accepted(outcomes[i].code)) continue;
        auto same = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                                 [&](const auto& s) { return s.filter == asked[i].filter; });
        if (same == subscriptions_.end()) {
            subscriptions_.push_back(std::move(asked[i]));
        } else {
            *same = std::move(asked[i]);
        }
    }
    subscriptions_changed();
}

void session_state::unsubscribe_done(std::uint32_t request_id) {
    const auto it = unsubscribing_.find(request_id);
    if (it == unsubscribing_.end()) return;
    for (const auto& f : it->second) std::erase_if(subscriptions_, [&](const auto& s) { return s.filter == f; });
    unsubscribing_.erase(it);
    subscriptions_changed();
}

void session_state::subscriptions_changed() {
    if (row_ != 0) journal_->set_subscriptions(row_, subscriptions_);
}

}  // namespace thingmux::hub
