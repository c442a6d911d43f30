#include "daemon/hub/service_caller.hpp"

#include "daemon/thing/outcome.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <utility>

namespace thingmux::hub {
namespace json = boost::json;

namespace {

// AWS IoT's request documents are small (a shadow document is at most 8 KiB of state); this
// bounds what a caller can make us parse.
constexpr std::size_t max_request_bytes = 64 * 1024;
constexpr unsigned max_json_depth = 32;

// The payload as a JSON object, or nothing when it is not one (or too deep, or too long).
std::optional<json::object> object_of(std::string_view text) {
    if (text.size() > max_request_bytes) return std::nullopt;
    if (text.empty()) return json::object{};
    json::parse_options options;
    options.max_depth = max_json_depth;
    std::error_code ec;
    auto v = json::parse(text, ec, {}, options);
    if (ec || !v.is_object()) return std::nullopt;
    return std::move(v.as_object());
}

config::grants shadow_grants(const std::string& thing) {
    const auto shadows = "$aws/things/" + thing + "/shadow/#";
    return {.rules = {"thingmuxd service caller"}, .publish = {shadows}, .subscribe = {shadows}, .receive = {shadows}};
}

}  // namespace

service_caller::service_caller(boost::asio::io_context& io, std::shared_ptr<thing::pipeline> pipe, thing::session_id flow,
                               std::string thing, std::chrono::milliseconds timeout)
    : io_(io), thing_(std::move(thing)), timeout_(timeout) {
    channel_ = std::make_shared<identity::pipeline_channel>(
        std::move(pipe), flow, thing_, shadow_grants(thing_),
        [this](const std::string& topic, const std::string& payload) { on_message(topic, payload); });
}

service_caller::~service_caller() { close(); }

void service_caller::request(std::string topic, std::string payload, done_fn done) {
    if (pending_.size() >= max_pending)
        return done({.outcome = thing::fail(ipc::errc::quota_exceeded,
                                            std::to_string(max_pending) + " service requests of D-Bus callers already wait for AWS IoT's answer"),
                     .topic = {}, .payload = {}});
    auto document = object_of(payload);
    if (!document)
        return done({.outcome = thing::fail(ipc::errc::invalid_payload,
                                            "the request is not a JSON object of at most 64 KiB (nesting depth at most 32)"),
                     .topic = {}, .payload = {}});
    const auto token = "dbus-" + std::to_string(next_token_++);
    (*document)["clientToken"] = token;
    const auto filter = topic + "/+";

    auto timer = std::make_unique<boost::asio::steady_timer>(io_, timeout_);
    timer->async_wait([this, token](const boost::system::error_code& ec) {
        if (ec) return;
        finish(token, {.outcome = thing::fail(ipc::errc::internal_error,
                                              "no answer from AWS IoT within " + std::to_string(timeout_.count() / 1000) + " s"),
                       .topic = {}, .payload = {}});
    });
    pending_.emplace(token, pending{.filter = filter, .done = std::move(done), .timer = std::move(timer)});

    filter_use_.remove(filter);
    filter_use_.push_back(filter);
    auto [it, fresh] = filters_.try_emplace(filter);
    if (it->second.acknowledged) return send(token, std::move(topic), json::serialize(*document));
    outgoing_.emplace(token, std::make_pair(std::move(topic), json::serialize(*document)));
    it->second.waiting.push_back(token);
    if (!fresh) return;
    // Answers come only while the filter is held: the request goes out once the broker has it.
    channel_->subscribe({filter}, [this, filter](std::vector<std::uint8_t> codes) {
        auto f = filters_.find(filter);
        if (f == filters_.end()) return;
        auto waiting = std::move(f->second.waiting);
        const auto code = codes.empty() ? std::uint8_t{0x80} : codes.front();
        if (code < 0x80) {
            f->second.acknowledged = true;
            for (const auto& ready : waiting) {
                auto out = outgoing_.find(ready);
                if (out == outgoing_.end()) continue;
                auto [t, p] = std::move(out->second);
                outgoing_.erase(out);
                send(ready, std::move(t), std::move(p));
            }
            return;
        }
        filters_.erase(f);
        filter_use_.remove(filter);
        for (const auto& refused : waiting) {
            outgoing_.erase(refused);
            finish(refused, {.outcome = {.code = ipc::errc::broker_refused, .mqtt_reason_code = code,
                                       .message = "the subscription to " + filter + " for the answer was refused"},
                           .topic = {}, .payload = {}});
        }
    });
}

void service_caller::send(const std::string& token, std::string topic, std::string payload) {
    channel_->publish(std::move(topic), std::move(payload), [this, token](std::error_code ec, std::string why) {
        if (!ec) return;  // the answer completes it
        finish(token, {.outcome = thing::fail(static_cast<ipc::errc>(ec.value()), std::move(why)), .topic = {}, .payload = {}});
    });
}

void service_caller::on_message(const std::string& topic, const std::string& payload) {
    auto document = object_of(payload);
    if (!document) return;
    const auto* token = document->if_contains("clientToken");
    if (!token || !token->is_string()) return;
    const auto it = pending_.find(std::string(token->as_string()));
    if (it == pending_.end()) return;
    // Its answer: the request topic + "/accepted" or "/rejected" (the filter minus its "+").
    const std::string_view request = std::string_view(it->second.filter).substr(0, it->second.filter.size() - 1);
    if (!topic.starts_with(request)) return;
    const auto kind = std::string_view(topic).substr(request.size());
    if (kind != "accepted" && kind != "rejected") return;
    const auto key = it->first;
    document->erase("clientToken");
    finish(key, {.outcome = thing::ok(0), .topic = topic, .payload = json::serialize(*document)});
}

void service_caller::finish(const std::string& token, answer a) {
    const auto it = pending_.find(token);
    if (it == pending_.end()) return;
    auto done = std::move(it->second.done);
    it->second.timer->cancel();
    pending_.erase(it);
    outgoing_.erase(token);
    release_idle_filters();
    if (done) done(std::move(a));
}

void service_caller::release_idle_filters() {
    for (auto it = filter_use_.begin(); filters_.size() > max_filters && it != filter_use_.end();) {
        const bool busy = std::any_of(pending_.begin(), pending_.end(), [&](const auto& p) { return p.second.filter == *it; });
        if (busy) {
            ++it;
            continue;
        }
        channel_->unsubscribe({*it});
        filters_.erase(*it);
        it = filter_use_.erase(it);
    }
}

void service_caller::close() {
    if (!channel_) return;
    channel_->close();
    channel_.reset();
    auto waiting = std::move(pending_);
    pending_.clear();
    outgoing_.clear();
    for (auto& [token, p] : waiting) {
        p.timer->cancel();
        if (p.done)
            p.done({.outcome = thing::fail(ipc::errc::daemon_shutting_down, "thingmuxd is shutting down"), .topic = {}, .payload = {}});
    }
}

}  // namespace thingmux::hub
