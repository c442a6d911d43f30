#include "daemon/services/jobs_service.hpp"

#include "ipc/error.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <random>
#include <utility>

namespace thingmux::services {

namespace {

// Its own clientTokens, unique per daemon run: an answer to an earlier run's request (or to
// another service's) is never taken for one of this run's.
std::string token_prefix() {
    std::random_device random;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%08x%08x", random(), random());
    return std::string("tmx-jobs-") + hex + "-";
}

// The Jobs topics of the Thing and the local topics of the operations: what an IoT policy
// would grant a jobs agent, and no more.
config::grants jobs_grants(const std::string& thing) {
    const std::vector<std::string> topics{"$aws/things/" + thing + "/jobs/#", std::string(jobs_topic_prefix) + "#"};
    return {.rules = {"thingmuxd jobs service"}, .publish = topics, .subscribe = topics, .receive = topics};
}

}  // namespace

std::shared_ptr<jobs_service> jobs_service::create(boost::asio::io_context& io, std::shared_ptr<thing::pipeline> pipe,
                                                   thing::session_id flow, config::jobs_settings settings) {
    return std::shared_ptr<jobs_service>(new jobs_service(io, std::move(pipe), flow, std::move(settings)));
}

jobs_service::jobs_service(boost::asio::io_context& io, std::shared_ptr<thing::pipeline> pipe, thing::session_id flow,
                           config::jobs_settings settings)
    : io_(io), pipe_(std::move(pipe)), flow_(flow), thing_(pipe_->settings().name), rights_(jobs_grants(thing_)),
      logic_(thing_, std::move(settings), token_prefix(), std::chrono::steady_clock::now()), timer_(io) {}

jobs_service::~jobs_service() = default;

void jobs_service::start() {
    if (attached_ || closed_) return;
    pipe_->attach(shared_from_this());
    attached_ = true;
    std::vector<ipc::subscription> subs;
    for (auto& f : logic_.filters()) subs.push_back({.filter = std::move(f), .max_qos = 1});
    spdlog::info("thing {}: jobs service started (jobs of an operation go to the apps subscribed to {}OPERATION; "
                 "unhandled: {}, handler_wait: {} ms)",
                 thing_, jobs_topic_prefix, config::to_string(logic_.settings().unhandled), logic_.settings().handler_wait.count());
    pipe_->subscribe(shared_from_this(), next_request_++, std::move(subs));
}

void jobs_service::reconfigure(config::jobs_settings settings) { logic_.reconfigure(std::move(settings)); }

void jobs_service::close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    publishes_.clear();
    if (attached_) {
        attached_ = false;
        (void)pipe_->detach(flow_);
    }
}

jobs_status jobs_service::status() const {
    jobs_status s;
    for (auto& f : pipe_->local_filters(jobs_topic_prefix)) s.operations.push_back(f.substr(jobs_topic_prefix.size()));
    const auto snap = logic_.snapshot();
    s.state = to_string(snap.state);
    s.job_id = snap.job_id;
    s.operation = snap.operation;
    s.job_status = snap.job_status;
    s.counts = snap.counts;
    return s;
}

void jobs_service::publish_done(std::uint32_t request_id, ipc::result outcome) {
    const auto it = publishes_.find(request_id);
    if (it == publishes_.end()) return;
    auto token = std::move(it->second);
    publishes_.erase(it);
    if (outcome.code == ipc::errc::ok) return;
    auto why = outcome.message.empty() ? std::string(ipc::to_string(outcome.code)) : std::move(outcome.message);
    // Possibly inside run(): the logic hears of it after the actions it is carrying out.
    boost::asio::post(io_, [weak = weak_from_this(), token = std::move(token), why = std::move(why)] {
        if (auto self = weak.lock(); self && !self->closed_)
            self->run(self->logic_.publish_failed(token, why, std::chrono::steady_clock::now()));
    });
}

void jobs_service::subscribe_done(std::uint32_t, std::vector<ipc::result> outcomes) {
    const auto filters = logic_.filters();
    for (std::size_t i = 0; i < outcomes.size() && i < filters.size(); ++i) {
        const auto& r = outcomes[i];
        if (r.code != ipc::errc::ok || r.mqtt_reason_code >= 0x80)
            spdlog::error("thing {}: jobs service: the subscription to {} failed ({}); jobs may not reach thingmuxd", thing_,
                          filters[i], logging::escaped(r.message.empty() ? std::string(ipc::to_string(r.code)) : r.message));
    }
    // Even with one refused: AWS IoT sends the Jobs answers to the device without a subscription.
    subscribed_ = true;
    boost::asio::post(io_, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->sync_link();
    });
}

bool jobs_service::deliver(thing::inbound_message& m, std::uint8_t) {
    if (closed_) return true;
    boost::asio::post(io_, [weak = weak_from_this(), topic = m.msg.topic, payload = m.msg.payload] {
        if (auto self = weak.lock(); self && !self->closed_)
            self->run(self->logic_.message(topic, payload, std::chrono::steady_clock::now()));
    });
    return true;
}

void jobs_service::link_changed(const ipc::state&) {
    // After the pipeline's own work for the new state (a SUBSCRIBE waiting for the connection
    // goes out before the request whose answer it is for).
    boost::asio::post(io_, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->sync_link();
    });
}

void jobs_service::sync_link() {
    if (closed_) return;
    const bool up = subscribed_ && pipe_->online();
    if (up == logic_up_) return;
    logic_up_ = up;
    run(logic_.link(up, std::chrono::steady_clock::now()));
}

void jobs_service::run(jobs_actions actions) {
    for (auto& step : actions) {
        if (closed_) return;
        if (auto* p = std::get_if<jobs_action::publish>(&step)) {
            const auto id = next_request_++;
            publishes_.emplace(id, std::move(p->token));
            pipe_->publish(shared_from_this(), id,
                           ipc::publish{.request_id = id, .topic = std::move(p->topic), .payload = std::move(p->payload),
                                        .qos = p->qos, .retain = false, .props = {}});
        } else if (auto* o = std::get_if<jobs_action::offer>(&step)) {
            const auto topic = std::string(jobs_topic_prefix) + o->operation;
            const auto count = pipe_->has_local_subscriber(topic) ? pipe_->deliver_local(topic, std::move(o->execution)) : 0;
            run(logic_.offered(o->job_id, count, std::chrono::steady_clock::now()));
        } else if (const auto* l = std::get_if<jobs_action::log>(&step)) {
            log(*l);
        } else if (const auto* w = std::get_if<jobs_action::wake>(&step)) {
            wake_at(w->at);
        }
    }
}

void jobs_service::wake_at(steady_time at) {
    timer_.expires_at(at);
    timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        if (ec) return;  // replaced by a later wake, or closed
        if (auto self = weak.lock(); self && !self->closed_) self->run(self->logic_.tick(std::chrono::steady_clock::now()));
    });
}

void jobs_service::log(const jobs_action::log& l) {
    std::string note;
    if (l.peer_noise) {
        auto admitted = noise_log_.admit();
        if (!admitted) return;
        note = std::move(*admitted);
    }
    const auto level = l.level == log_level::error     ? spdlog::level::err
                       : l.level == log_level::warning ? spdlog::level::warn
                                                       : spdlog::level::info;
    spdlog::log(level, "thing {}: jobs: {}{}", thing_, logging::escaped(l.text, 4096), note);
}

}  // namespace thingmux::services
