// thingmuxd's jobs service of one Thing (docs/services.md): jobs_logic run as a local
// session of the Thing's pipeline, like the rotation's channel (daemon/identity/pipeline_channel):
// its requests share the one connection with the apps' under the same guardrails and shapers,
// its subscriptions are reference-counted with theirs, and it hands each job to the apps holding
// "$thingmux/jobs/OPERATION" through pipeline::deliver_local(). It may use the Thing's Jobs
// topics and "$thingmux/jobs/#", nothing else.
//
// Everything runs on the io_context's one thread. Inputs from the pipeline (messages, link
// states, publish results) are posted before they reach the logic, so the logic never runs
// inside one of its own actions. It logs each event once; lines about unreadable messages from
// the broker's side are rate-limited.
#pragma once

#include "daemon/logging.hpp"
#include "daemon/services/jobs_logic.hpp"
#include "daemon/thing/pipeline.hpp"
#include "daemon/thing/ports.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace thingmux::services {

// What D-Bus and thingmuxctl show of a Thing's jobs service.
struct jobs_status {
    // The operations apps are registered for: the filters held under "$thingmux/jobs/", that
    // prefix cut off (an app holding "$thingmux/jobs/+" shows as "+").
    std::vector<std::string> operations;
    std::string state;       // to_string(jobs_state): "idle", "handed", ...
    std::string job_id;      // the current job; empty: none
    std::string operation;   // its operation
    std::string job_status;  // its status as AWS last gave it ("IN_PROGRESS")
    jobs_counts counts;      // handed, rejected, left, failures, malformed
};

class jobs_service final : public thing::local_session, public std::enable_shared_from_this<jobs_service> {
public:
    // `flow`: a session id of its own in the pipeline (the hub's next client id).
    static std::shared_ptr<jobs_service> create(boost::asio::io_context& io, std::shared_ptr<thing::pipeline> pipe,
                                                thing::session_id flow, config::jobs_settings settings);
    ~jobs_service() override;
    jobs_service(const jobs_service&) = delete;
    jobs_service& operator=(const jobs_service&) = delete;

    // Attaches to the pipeline and subscribes; takes jobs once the Thing is connected and the
    // subscriptions are answered.
    void start();
    // Configuration reload: the jobs: block of the Thing's new settings.
    void reconfigure(config::jobs_settings settings);
    // Leaves the pipeline (its subscriptions released); a job already handed stays with its app.
    void close();

    [[nodiscard]] jobs_status status() const;

    // local_session
    [[nodiscard]] thing::session_id flow() const override { return flow_; }
    [[nodiscard]] std::string describe() const override { return "thingmuxd's jobs service of " + thing_; }
    [[nodiscard]] std::string peer_description() const override { return "thingmuxd"; }
    [[nodiscard]] const config::grants& rights() const override { return rights_; }
    [[nodiscard]] thing::denial_log& denials() override { return denials_; }
    void publish_done(std::uint32_t request_id, ipc::result outcome) override;
    void subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    void unsubscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
    bool deliver(thing::inbound_message& m, std::uint8_t qos) override;
    void link_changed(const ipc::state& s) override;

private:
    jobs_service(boost::asio::io_context& io, std::shared_ptr<thing::pipeline> pipe, thing::session_id flow,
                 config::jobs_settings settings);
    // Carries out the logic's actions, in order.
    void run(jobs_actions actions);
    // Tells the logic the link is up once the Thing is connected and the subscriptions answered.
    void sync_link();
    void wake_at(steady_time at);
    void log(const jobs_action::log& l);

    boost::asio::io_context& io_;
    std::shared_ptr<thing::pipeline> pipe_;
    thing::session_id flow_;
    std::string thing_;
    config::grants rights_;
    thing::denial_log denials_;
    jobs_logic logic_;
    boost::asio::steady_timer timer_;
    logging::rate_limiter noise_log_{1, std::chrono::seconds(10)};
    bool attached_ = false;
    bool closed_ = false;
    bool subscribed_ = false;  // the SUBSCRIBE of logic_.filters() is answered
    bool logic_up_ = false;    // what the logic was told of the link
    std::uint32_t next_request_ = 1;
    std::map<std::uint32_t, std::string> publishes_;  // request id -> the request's clientToken
};

}  // namespace thingmux::services
