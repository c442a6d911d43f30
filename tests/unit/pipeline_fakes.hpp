// Fakes for the Thing pipeline's ports (daemon/thing/ports.hpp): an upstream that records what
// the pipeline sends and lets the test answer it, a clock the test moves by hand, and sessions
// that record every answer, delivery and state they get. No broker, no socket, no timer.
#pragma once

#include "daemon/thing/pipeline.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace thingmux::thing::testing {

using namespace std::chrono_literals;

class fake_upstream final : public upstream {
public:
    struct sent_publish {
        mqtt::publish msg;
        std::uint64_t tag = 0;  // 0 once answered
    };
    struct sent_subscribe {
        std::vector<std::string> filters;
        subscribe_done done;
    };
    std::vector<sent_publish> publishes;  // in the order the pipeline sent them
    std::vector<sent_subscribe> subscribes;
    std::vector<std::string> unsubscribed;  // every filter of every UNSUBSCRIBE, in order
    std::vector<mqtt::inbound_ticket> acknowledged;
    // Where publish results go (the rig sets it).
    pipeline* results = nullptr;
    // When set, a publish is answered inside publish() with this error (as the uplink does for
    // a publish the session refuses before sending it).
    std::optional<mqtt::local_error> refuse_inline;

    void publish(mqtt::publish&& msg, std::uint64_t tag) override {
        if (refuse_inline) {
            results->on_published(mqtt::action::publish_done{.id = {}, .reason_code = mqtt::reason::unspecified_error,
                                                             .error = *refuse_inline, .reason_string = "refused inline",
                                                             .tag = tag});
            return;
        }
        publishes.push_back({std::move(msg), tag});
    }
    void subscribe(std::vector<mqtt::subscription> filters, subscribe_done done) override {
        sent_subscribe s{.filters = {}, .done = std::move(done)};
        for (auto& f : filters) s.filters.push_back(std::move(f.filter));
        subscribes.push_back(std::move(s));
    }
    void unsubscribe(std::vector<std::string> filters) override {
        unsubscribed.insert(unsubscribed.end(), filters.begin(), filters.end());
    }
    void acknowledge(const mqtt::inbound_ticket& ticket) override { acknowledged.push_back(ticket); }

    // Answers the i-th publish sent (PUBACK with `reason_code`, or a local error).
    void answer_publish(std::size_t i, std::uint8_t reason_code = mqtt::reason::success,
                        mqtt::local_error error = mqtt::local_error::none) {
        ASSERT_LT(i, publishes.size());
        ASSERT_NE(publishes[i].tag, 0U) << "publish " << i << " answered twice";
        const auto tag = std::exchange(publishes[i].tag, 0);
        results->on_published(
            mqtt::action::publish_done{.id = {}, .reason_code = reason_code, .error = error, .reason_string = {}, .tag = tag});
    }
    void answer_all_publishes() {
        for (std::size_t i = 0; i < publishes.size(); ++i)
            if (publishes[i].tag != 0) answer_publish(i);
    }
    // Answers the i-th SUBSCRIBE with one code per filter (default: all granted QoS 1).
    void answer_subscribe(std::size_t i, std::vector<std::uint8_t> codes = {}) {
        ASSERT_LT(i, subscribes.size());
        if (codes.empty()) codes.assign(subscribes[i].filters.size(), 1);
        auto done = std::exchange(subscribes[i].done, {});
        ASSERT_TRUE(done) << "SUBSCRIBE " << i << " answered twice";
        done(codes);
    }
    [[nodiscard]] std::vector<std::string> subscribed_filters() const {
        std::vector<std::string> out;
        for (const auto& s : subscribes) out.insert(out.end(), s.filters.begin(), s.filters.end());
        return out;
    }
    [[nodiscard]] std::vector<std::string> published_topics() const {
        std::vector<std::string> out;
        for (const auto& p : publishes) out.push_back(p.msg.topic);
        return out;
    }
};

class fake_clock final : public clock {
public:
    clock_type::time_point current{std::chrono::hours(1000)};
    std::optional<clock_type::time_point> wake;  // the earliest wake-up asked for and not yet given

    [[nodiscard]] clock_type::time_point now() const override { return current; }
    void wake_at(clock_type::time_point when) override {
        if (!wake || when < *wake) wake = when;
    }
    // Moves time forward by `d`, calling on_timer() for every wake-up that falls due meanwhile.
    void advance(pipeline& p, clock_type::duration d) {
        const auto end = current + d;
        while (wake && *wake <= end) {
            current = std::max(current, *wake);
            wake.reset();
            p.on_timer();
        }
        current = end;
    }
};

class recording_session final : public local_session {
public:
    recording_session(std::uint64_t id, config::grants g) : id_{id}, rights_(std::move(g)) {}

    std::map<std::uint32_t, ipc::result> published;  // request id -> result
    std::vector<std::uint32_t> published_order;
    std::map<std::uint32_t, std::vector<ipc::result>> subscribed;
    std::map<std::uint32_t, std::vector<ipc::result>> registered;  // subscribe_registered() (IPC-61)
    std::map<std::uint32_t, std::vector<ipc::result>> unsubscribed;
    struct delivery {
        std::string topic;
        std::uint8_t qos;
        bool retain = false;
        std::string payload;
        std::size_t answered = 0;  // subscribe requests answered before it
        std::string share = {};    // the shared subscription it came for; empty: a plain one
    };
    std::vector<delivery> delivered;
    std::vector<ipc::state> states;
    bool accepting = true;  // false: deliver() fails, as for a client that was cut off
    bool present = true;    // connected(): false for a session kept while its app is away
    bool shares = true;     // takes_shared_subscriptions()
    std::vector<shared_leftover> leftovers;  // what take_shared_leftovers() gives back

    [[nodiscard]] session_id flow() const override { return id_; }
    [[nodiscard]] std::string describe() const override { return "client " + std::to_string(id_.value); }
    [[nodiscard]] std::string peer_description() const override { return "uid 1000"; }
    [[nodiscard]] const config::grants& rights() const override { return rights_; }
    [[nodiscard]] denial_log& denials() override { return denials_; }
    void publish_done(std::uint32_t request_id, ipc::result outcome) override {
        EXPECT_FALSE(published.contains(request_id)) << "publish " << request_id << " answered twice";
        published[request_id] = std::move(outcome);
        published_order.push_back(request_id);
    }
    void subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override {
        EXPECT_FALSE(subscribed.contains(request_id)) << "subscribe " << request_id << " answered twice";
        subscribed[request_id] = std::move(outcomes);
    }
    void subscribe_registered(std::uint32_t request_id, std::vector<ipc::result> outcomes) override {
        EXPECT_FALSE(registered.contains(request_id)) << "subscribe " << request_id << " registered twice";
        EXPECT_FALSE(subscribed.contains(request_id)) << "subscribe " << request_id << " registered after its answer";
        registered[request_id] = std::move(outcomes);
    }
    void unsubscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override {
        unsubscribed[request_id] = std::move(outcomes);
    }
    bool deliver(inbound_message& m, std::uint8_t qos) override {
        if (!accepting) return false;
        delivered.push_back({m.msg.topic, qos, m.msg.retain, m.msg.payload, subscribed.size(), std::string(m.share)});
        return true;
    }
    void link_changed(const ipc::state& s) override { states.push_back(s); }
    [[nodiscard]] bool takes_shared_subscriptions() const override { return shares; }
    [[nodiscard]] bool connected() const override { return present; }
    [[nodiscard]] std::vector<shared_leftover> take_shared_leftovers() override { return std::exchange(leftovers, {}); }

    // The result of filter `index` of subscribe request `request_id`; internal_error while unanswered.
    [[nodiscard]] ipc::errc subscribe_code(std::uint32_t request_id, std::size_t index = 0) const {
        const auto it = subscribed.find(request_id);
        return it == subscribed.end() || index >= it->second.size() ? ipc::errc::internal_error : it->second[index].code;
    }
    [[nodiscard]] ipc::errc code_of(std::uint32_t request_id) const {
        const auto it = published.find(request_id);
        return it == published.end() ? ipc::errc::internal_error : it->second.code;
    }

private:
    session_id id_;
    config::grants rights_;
    denial_log denials_;
};

// Grants to publish, subscribe and receive everything under `root/#`.
inline config::grants grants_under(const std::string& root) {
    return {.rules = {"test"}, .publish = {root + "/#"}, .subscribe = {root + "/#"}, .receive = {root + "/#"}};
}

inline ipc::state link_of(ipc::link_state s) { return {.link = s, .reason = {}, .fatal = false, .retry_in_ms = 0}; }

// A real spool file in a directory of its own under /tmp, removed with the object.
class temporary_spool {
public:
    temporary_spool() {
        const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = std::filesystem::temp_directory_path() /
               ("thingmux-pipeline-spool-" + std::to_string(::getpid()) + "-" + test->test_suite_name() + "-" + test->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        std::vector<std::string> notices;
        std::string error;
        store_ = spool::store::open(dir_ / "spool.db", {}, notices, error);
        if (!store_) ADD_FAILURE() << "cannot open a spool in " << dir_ << ": " << error;
    }
    ~temporary_spool() {
        store_.reset();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    temporary_spool(const temporary_spool&) = delete;
    temporary_spool& operator=(const temporary_spool&) = delete;
    [[nodiscard]] spool::store* get() const noexcept { return store_.get(); }
    spool::store* operator->() const noexcept { return store_.get(); }

private:
    std::filesystem::path dir_;
    std::unique_ptr<spool::store> store_;
};

// A pipeline with fakes around it; limits default to unlimited rates so a test turns on only
// the rule it is about.
struct pipeline_rig {
    explicit pipeline_rig(config::thing_limits limits = unlimited(), session_rules rules = {},
                          spool::store* spool = nullptr, std::vector<std::string> local_topics = {}) {
        config::thing t;
        t.name = "gateway-01";
        t.limits = limits;
        t.local_topics = std::move(local_topics);
        pipe = std::make_shared<pipeline>(std::move(t), rules,
                                          shared_parts{.counters = counters, .spool = spool,
                                                       .spool_error_log = spool_log,
                                                       .publish_settled = [this] { ++settled; }},
                                          up, clk);
        up.results = pipe.get();
    }
    static config::thing_limits unlimited() {
        config::thing_limits l;
        l.publishes_per_second = std::nullopt;
        l.bytes_per_second = std::nullopt;
        l.subscriptions_per_second = std::nullopt;
        return l;
    }
    std::shared_ptr<recording_session> session(std::uint64_t id, const std::string& root = "dt") {
        auto s = std::make_shared<recording_session>(id, grants_under(root));
        pipe->attach(s);
        return s;
    }
    void connect() { pipe->on_link(link_of(ipc::link_state::connected)); }
    void publish(const std::shared_ptr<recording_session>& s, std::uint32_t request, std::string topic,
                 std::uint8_t qos = 1, std::string payload = "x") {
        pipe->publish(s, request,
                      ipc::publish{.request_id = request, .topic = std::move(topic), .payload = std::move(payload), .qos = qos,
                                   .retain = false, .props = {}});
    }
    void subscribe(const std::shared_ptr<recording_session>& s, std::uint32_t request, std::vector<std::string> filters) {
        std::vector<ipc::subscription> subs;
        for (auto& f : filters) subs.push_back({.filter = std::move(f), .max_qos = 1});
        pipe->subscribe(s, request, std::move(subs));
    }
    void inbound(std::string topic, std::optional<mqtt::inbound_ticket> ticket = std::nullopt, std::string payload = "p") {
        pipe->on_message(mqtt::publish{.topic = std::move(topic), .payload = std::move(payload),
                                       .qos = ticket ? mqtt::qos::at_least_once : mqtt::qos::at_most_once},
                         ticket);
    }

    traffic_counters counters;
    std::size_t settled = 0;  // publish results the daemon was told of (its shutdown waits on them)
    logging::rate_limiter spool_log{1, std::chrono::seconds(10)};
    fake_upstream up;
    fake_clock clk;
    std::shared_ptr<pipeline> pipe;
};

}  // namespace thingmux::thing::testing
