#include "daemon/identity/pipeline_channel.hpp"

#include "ipc/error.hpp"

#include <utility>

namespace thingmux::identity {

pipeline_channel::pipeline_channel(std::shared_ptr<thing::pipeline> pipe, thing::session_id flow, std::string thing,
                                   config::grants rights, message_handler on_message)
    : pipe_(std::move(pipe)), flow_(flow), thing_(std::move(thing)), rights_(std::move(rights)),
      on_message_(std::move(on_message)) {}

pipeline_channel::~pipeline_channel() = default;

void pipeline_channel::subscribe(std::vector<std::string> filters, std::function<void(std::vector<std::uint8_t>)> done) {
    if (!attached_) {
        pipe_->attach(shared_from_this());
        attached_ = true;
    }
    std::vector<ipc::subscription> subs;
    subs.reserve(filters.size());
    for (auto& f : filters) subs.push_back({.filter = std::move(f), .max_qos = 1});
    const auto id = next_request_++;
    subscribes_.emplace(id, std::move(done));
    pipe_->subscribe(shared_from_this(), id, std::move(subs));
}

void pipeline_channel::unsubscribe(std::vector<std::string> filters) {
    if (attached_) pipe_->unsubscribe(shared_from_this(), next_request_++, filters);
}

void pipeline_channel::publish(std::string topic, std::string payload, std::function<void(std::error_code, std::string)> done) {
    const auto id = next_request_++;
    publishes_.emplace(id, std::move(done));
    pipe_->publish(shared_from_this(), id,
                   ipc::publish{.request_id = id, .topic = std::move(topic), .payload = std::move(payload), .qos = 0,
                                .retain = false, .props = {}});
}

void pipeline_channel::close() {
    publishes_.clear();
    subscribes_.clear();
    on_message_ = {};
    if (attached_) {
        attached_ = false;
        (void)pipe_->detach(flow_);
    }
}

void pipeline_channel::publish_done(std::uint32_t request_id, ipc::result outcome) {
    const auto it = publishes_.find(request_id);
    if (it == publishes_.end()) return;
    auto done = std::move(it->second);
    publishes_.erase(it);
    if (outcome.code == ipc::errc::ok) return done({}, {});
    auto why = outcome.message.empty() ? std::string(ipc::to_string(outcome.code)) : outcome.message;
    done(ipc::make_error_code(outcome.code), std::move(why));
}

void pipeline_channel::subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) {
    const auto it = subscribes_.find(request_id);
    if (it == subscribes_.end()) return;
    auto done = std::move(it->second);
    subscribes_.erase(it);
    // The SUBACK's codes as the broker gave them; a local refusal counts as a failure (0x80).
    std::vector<std::uint8_t> codes;
    codes.reserve(outcomes.size());
    for (const auto& r : outcomes) codes.push_back(r.code == ipc::errc::ok ? r.mqtt_reason_code : std::uint8_t{0x80});
    done(std::move(codes));
}

bool pipeline_channel::deliver(thing::inbound_message& m, std::uint8_t) {
    if (on_message_) on_message_(m.msg.topic, m.msg.payload);
    return true;
}

}  // namespace thingmux::identity
