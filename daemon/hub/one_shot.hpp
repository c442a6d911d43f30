// A local session for one publish that nobody stays connected for: a D-Bus Publish() call, the
// will of an MQTT client that is gone. It lives until its answer, which goes to `done`.
#pragma once

#include "config/authorization.hpp"
#include "daemon/thing/pipeline.hpp"
#include "daemon/thing/ports.hpp"

#include <functional>
#include <string>
#include <utility>

namespace thingmux::hub {

class one_shot_publish final : public thing::local_session {
public:
    // `who` names it in log lines ("D-Bus caller (pid 12 uid 0 …)"); `peer` is the peer alone.
    one_shot_publish(std::string who, std::string peer, config::grants rights, thing::denial_log& denials,
                     std::function<void(ipc::result)> done)
        : who_(std::move(who)), peer_(std::move(peer)), rights_(std::move(rights)), denials_(denials),
          done_(std::move(done)) {}
    // They all share one queue in the Thing's shaper.
    [[nodiscard]] thing::session_id flow() const override { return thing::pipeline::one_shot_flow; }
    [[nodiscard]] std::string describe() const override { return who_; }
    [[nodiscard]] std::string peer_description() const override { return peer_; }
    [[nodiscard]] const config::grants& rights() const override { return rights_; }
    [[nodiscard]] thing::denial_log& denials() override { return denials_; }
    [[nodiscard]] thing::session_owner owner() const override { return owner_; }
    // Who asked, for the per-app metrics (a D-Bus caller, the client whose will it is).
    void set_owner(thing::session_owner o) { owner_ = std::move(o); }
    void publish_done(std::uint32_t, ipc::result outcome) override {
        if (done_) std::exchange(done_, {})(std::move(outcome));
    }
    // It only publishes: it holds no subscription and is never attached.
    void subscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
    void unsubscribe_done(std::uint32_t, std::vector<ipc::result>) override {}
    bool deliver(thing::inbound_message&, std::uint8_t) override { return false; }
    void link_changed(const ipc::state&) override {}

private:
    std::string who_;
    std::string peer_;
    config::grants rights_;
    thing::denial_log& denials_;
    std::function<void(ipc::result)> done_;
    thing::session_owner owner_;
};

}  // namespace thingmux::hub
