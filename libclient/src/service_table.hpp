// The shadow and jobs requests of one client that wait for their answer, by clientToken, and the
// answer subscriptions they need.
//
// Pure: no socket, no thread, no lock, no handler called. The service engine (services.hpp) owns
// it under its lock and runs the completions it hands back.
#pragma once

#include "thingmux/services.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::detail {

using service_clock = std::chrono::steady_clock;

// One request waiting for its answer.
struct service_request {
    std::string token;
    std::string request_topic;  // the answer comes on request_topic + "/accepted" or "/rejected"
    std::string answer_filter;  // the subscription the answer needs: request_topic + "/+" or wider
    std::string payload;        // what to publish once answer_filter is held
    service_clock::time_point deadline;
    std::function<void(const service_reply&)> done;
    bool published = false;  // the publish was handed to the client
};

// Makes the clientTokens of one client: a random prefix per client (so two clients' tokens do not
// collide when no thingmuxd router stands between them and AWS) and a counter.
class token_maker {
public:
    token_maker();
    explicit token_maker(std::uint64_t seed);
    [[nodiscard]] std::string next();

private:
    std::string prefix_;
    std::uint64_t counter_ = 0;
};

// State of an answer subscription.
enum class filter_state : std::uint8_t { subscribing, held };

class service_table {
public:
    explicit service_table(std::size_t max_pending = max_pending_service_requests, std::size_t max_filters = 64)
        : max_pending_(max_pending), max_filters_(max_filters) {}

    // Adds `r`; false (nothing changes) when max_pending requests already wait or its token is in
    // use.
    [[nodiscard]] bool add(service_request&& r);
    // The request `token` names, removed, if the answer's topic is the one it waits on: an answer
    // with one of our tokens on another request's topic is not its answer.
    [[nodiscard]] std::optional<service_request> take_answered(std::string_view token, std::string_view request_topic);
    // The request `token` names, removed (its publish or subscribe failed).
    [[nodiscard]] std::optional<service_request> take(std::string_view token);
    // Requests whose deadline is at or before `now`, removed, oldest deadline first.
    [[nodiscard]] std::vector<service_request> take_expired(service_clock::time_point now);
    // Every request, removed.
    [[nodiscard]] std::vector<service_request> take_all();
    [[nodiscard]] std::optional<service_clock::time_point> earliest_deadline() const;

    // Answer subscriptions. need(): what to do for `filter` before publishing: nothing (held:
    // publish now), wait (subscribing), or subscribe (the caller subscribes; the filter is
    // now subscribing). Nothing at all (nullopt) when max_filters are already in use.
    enum class filter_action : std::uint8_t { publish, wait, subscribe };
    [[nodiscard]] std::optional<filter_action> need(const std::string& filter);
    // The subscription's answer. Held: the requests waiting for it that were not published yet are
    // marked published and their tokens returned, to publish. Refused: the filter is forgotten,
    // and the tokens of the requests waiting for it are returned, to fail.
    [[nodiscard]] std::vector<std::string> settle(const std::string& filter, bool held);
    [[nodiscard]] const service_request* find(std::string_view token) const;

    [[nodiscard]] std::size_t size() const noexcept { return pending_.size(); }
    [[nodiscard]] std::size_t filters() const noexcept { return filters_.size(); }

private:
    std::size_t max_pending_;
    std::size_t max_filters_;
    std::map<std::string, service_request, std::less<>> pending_;  // by token
    std::map<std::string, filter_state, std::less<>> filters_;
};

}  // namespace thingmux::detail
