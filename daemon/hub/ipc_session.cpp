#include "daemon/hub/ipc_session.hpp"

#include "daemon/hub/local_client.hpp"

#include <utility>

namespace thingmux::hub {

ipc_session::ipc_session(thing::session_id flow, std::string thing, std::string name,
                         std::shared_ptr<const peer_credentials> peer, config::shared_grants rights,
                         std::size_t max_queued_bytes)
    : flow_(flow),
      thing_(std::move(thing)),
      name_(std::move(name)),
      peer_(std::move(peer)),
      rights_(std::move(rights)),
      max_queued_bytes_(max_queued_bytes),
      state_(*this, max_queued_bytes, "ipc.session_queue") {}

std::string ipc_session::describe() const {
    if (connection_) return connection_->describe() + " in session '" + name_ + "'";
    return "IPC session '" + name_ + "' (" + peer_->describe() + ", no connection)";
}

void ipc_session::bind(const std::shared_ptr<local_client>& connection) {
    connection_ = connection;
    ++generation_;
    send_waiting();
}

void ipc_session::unbind(const local_client& connection) {
    if (connection_.get() != &connection) return;
    connection_.reset();
    state_.connection_ended();
}

bool ipc_session::acknowledged(std::uint32_t delivery_id) {
    if (!state_.acknowledged(delivery_id)) return false;
    send_waiting();
    return true;
}

std::uint32_t ipc_session::request_id(std::uint32_t client_request) {
    do {
        ++next_request_;
    } while (next_request_ == no_request || requests_.contains(next_request_));
    requests_[next_request_] = {generation_, client_request};
    return next_request_;
}

local_client* ipc_session::answer_to(std::uint32_t request_id, std::uint32_t& client_request) {
    const auto it = requests_.find(request_id);
    if (it == requests_.end()) return nullptr;
    const auto a = it->second;
    requests_.erase(it);
    if (!connection_ || a.generation != generation_) return nullptr;
    client_request = a.client_request;
    return connection_.get();
}

void ipc_session::subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) {
    state_.subscribe_done(request_id, outcomes);
    std::uint32_t asked = 0;
    if (auto* c = answer_to(request_id, asked)) c->subscribe_done(asked, std::move(outcomes));
}

void ipc_session::subscribe_registered(std::uint32_t request_id, std::vector<ipc::result> outcomes) {
    // The request stays the session's until subscribe_done(): only its connection is told now.
    const auto it = requests_.find(request_id);
    if (it == requests_.end() || !connection_ || it->second.generation != generation_) return;
    connection_->subscribe_registered(it->second.client_request, std::move(outcomes));
}

void ipc_session::unsubscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) {
    state_.unsubscribe_done(request_id);
    std::uint32_t asked = 0;
    if (auto* c = answer_to(request_id, asked)) c->unsubscribe_done(asked, std::move(outcomes));
}

bool ipc_session::window_full(std::size_t next_bytes) const noexcept {
    // One message always fits, however large, so that the window never stays shut.
    return state_.unacknowledged() >= max_unacknowledged ||
           (state_.unacknowledged() > 0 && state_.unacknowledged_bytes() + next_bytes > max_queued_bytes_);
}

bool ipc_session::send_with_id(session_state::held& h) {
    // Delivery ids are unique among those awaiting an ack; 0 means "nothing to acknowledge".
    do {
        ++next_delivery_;
    } while (next_delivery_ == 0 || state_.awaiting(next_delivery_));
    if (!connection_->deliver(h.msg, next_delivery_)) return false;
    state_.sent(next_delivery_, std::move(h));
    return true;
}

void ipc_session::send_waiting() {
    while (connection_ && connection_->open()) {
        const auto* next = state_.oldest();
        if (next == nullptr || window_full(next->msg.topic.size() + next->msg.payload.size())) return;
        auto h = state_.take_oldest();
        if (!send_with_id(h)) {
            (void)state_.hold(std::move(h));  // cut off meanwhile: it waits for the next connection
            return;
        }
    }
}

bool ipc_session::deliver(thing::inbound_message& m, std::uint8_t qos) {
    if (!connection_ || !connection_->open()) {
        return state_.expiry.count() > 0 && state_.hold({for_client(m.msg), qos, {}, 0});
    }
    if (qos == 0) return connection_->deliver(m, 0);  // the shared frame, delivery id 0
    session_state::held h{for_client(m.msg), qos, {}, 0};
    // Behind what already waits, in order; and within the window.
    if (state_.oldest() != nullptr || window_full(h.msg.topic.size() + h.msg.payload.size()))
        return state_.hold(std::move(h));
    if (send_with_id(h)) return true;
    return state_.expiry.count() > 0 && state_.hold(std::move(h));
}

}  // namespace thingmux::hub
