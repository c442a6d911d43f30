// Requests to AWS IoT's request/response services (Device Shadow) on behalf of D-Bus callers.
//
// One per Thing, made on the first call: a local session of the Thing's pipeline (so requests pass
// the same guardrails, shapers and reference-counted subscriptions as the apps', and the pipeline
// routes each answer to this session only, by clientToken). A call subscribes to its request
// topic's answers ("REQUEST/+": accepted and rejected) before it publishes, and completes with the
// first answer carrying its clientToken, or after `timeout`. The caller's own rights were checked
// by the D-Bus adapter; this session holds the Thing's shadow topics.
#pragma once

#include "daemon/identity/pipeline_channel.hpp"
#include "daemon/thing/pipeline.hpp"
#include "ipc/messages.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>

namespace thingmux::hub {

class service_caller {
public:
    // ok: the answer arrived (`topic` ends in /accepted or /rejected; `payload` is AWS's JSON with
    // the request's clientToken removed). Otherwise the request did not get an answer: the code
    // and message say why (a local refusal, not_connected, internal_error on timeout).
    struct answer {
        ipc::result outcome;
        std::string topic;
        std::string payload;
    };
    using done_fn = std::function<void(answer)>;

    // At most this many calls wait for their answer at once (more: quota_exceeded), and this many
    // answer filters are kept subscribed (the least recently used one idle is released first).
    static constexpr std::size_t max_pending = 64;
    static constexpr std::size_t max_filters = 16;

    service_caller(boost::asio::io_context& io, std::shared_ptr<thing::pipeline> pipe, thing::session_id flow,
                   std::string thing, std::chrono::milliseconds timeout);
    ~service_caller();
    service_caller(const service_caller&) = delete;
    service_caller& operator=(const service_caller&) = delete;

    // `topic`: a shadow request topic of this Thing; `payload`: a JSON object (text; "" = {}) whose
    // clientToken, if any, is replaced by this caller's.
    void request(std::string topic, std::string payload, done_fn done);

    // Leaves the pipeline; calls still waiting complete with daemon_shutting_down.
    void close();

private:
    struct pending {
        std::string filter;
        done_fn done;
        std::unique_ptr<boost::asio::steady_timer> timer;
    };
    struct filter_state {
        bool acknowledged = false;
        std::vector<std::string> waiting;  // tokens whose request goes out once acknowledged
    };
    void on_message(const std::string& topic, const std::string& payload);
    void send(const std::string& token, std::string topic, std::string payload);
    void finish(const std::string& token, answer a);
    void release_idle_filters();

    boost::asio::io_context& io_;
    std::string thing_;
    std::chrono::milliseconds timeout_;
    std::shared_ptr<identity::pipeline_channel> channel_;
    std::uint64_t next_token_ = 1;
    std::map<std::string, pending> pending_;         // by clientToken
    std::map<std::string, filter_state> filters_;    // answer filters subscribed or being subscribed
    std::list<std::string> filter_use_;              // least recently used first
    std::map<std::string, std::pair<std::string, std::string>> outgoing_;  // token -> (topic, payload) until sent
};

}  // namespace thingmux::hub
