// An enrollment's channel (daemon/identity/enrollment_runner.hpp) through a Thing's pipeline: a
// local session of the daemon itself, so its requests share the one session with the apps' under
// the same guardrails, shapers and reference-counted subscriptions (rotation over the Thing's own
// connection).
#pragma once

#include "daemon/identity/enrollment_runner.hpp"
#include "daemon/thing/pipeline.hpp"
#include "daemon/thing/ports.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace thingmux::identity {

class pipeline_channel final : public thing::local_session,
                               public channel,
                               public std::enable_shared_from_this<pipeline_channel> {
public:
    using message_handler = std::function<void(const std::string& topic, const std::string& payload)>;
    // `rights`: the request and answer topics of the enrollment (what an IoT policy grants the
    // Thing for them); `on_message` gets what arrives on its subscriptions.
    pipeline_channel(std::shared_ptr<thing::pipeline> pipe, thing::session_id flow, std::string thing,
                     config::grants rights, message_handler on_message);
    ~pipeline_channel() override;
    pipeline_channel(const pipeline_channel&) = delete;
    pipeline_channel& operator=(const pipeline_channel&) = delete;

    // channel
    void subscribe(std::vector<std::string> filters, std::function<void(std::vector<std::uint8_t>)> done) override;
    void unsubscribe(std::vector<std::string> filters) override;
    // QoS 0: a request is only worth sending now; one that waited in the spool would be answered
    // after its enrollment gave up. The enrollment's timeout covers a lost one.
    void publish(std::string topic, std::string payload, std::function<void(std::error_code, std::string)> done) override;

    // Leaves the pipeline: its subscriptions are released, its answers dropped.
    void close();

    // local_session
    [[nodiscard]] thing::session_id flow() const override { return flow_; }
    [[nodiscard]] std::string describe() const override { return "thingmuxd's identity service of " + thing_; }
    [[nodiscard]] std::string peer_description() const override { return "thingmuxd"; }
    [[nodiscard]] const config::grants& rights() const override { return rights_; }
    [[nodiscard]] thing::denial_log& denials() override { return denials_; }
    void publish_done(std::uint32_t request_id, ipc::result outcome) override;
    void subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) override;
    void unsubscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
    bool deliver(thing::inbound_message& m, std::uint8_t qos) override;
    void link_changed(const ipc::state&) override {}

private:
    std::shared_ptr<thing::pipeline> pipe_;
    thing::session_id flow_;
    std::string thing_;
    config::grants rights_;
    message_handler on_message_;
    thing::denial_log denials_;
    bool attached_ = false;
    std::uint32_t next_request_ = 1;
    std::map<std::uint32_t, std::function<void(std::error_code, std::string)>> publishes_;
    std::map<std::uint32_t, std::function<void(std::vector<std::uint8_t>)>> subscribes_;
};

}  // namespace thingmux::identity
