// An enrollment's channel (daemon/identity/enrollment_runner.hpp) straight over an uplink of its
// own: fleet provisioning, whose connection logs in with the claim certificate and carries
// nothing of the apps (their publishes wait in the Thing's pipeline meanwhile).
#pragma once

#include "daemon/identity/enrollment_runner.hpp"
#include "daemon/uplink/uplink.hpp"

#include <memory>

namespace thingmux::identity {

class uplink_channel final : public channel {
public:
    explicit uplink_channel(std::shared_ptr<uplink::uplink> link) : link_(std::move(link)) {}
    void subscribe(std::vector<std::string> filters, std::function<void(std::vector<std::uint8_t>)> done) override;
    void unsubscribe(std::vector<std::string> filters) override;
    void publish(std::string topic, std::string payload, std::function<void(std::error_code, std::string)> done) override;

private:
    std::shared_ptr<uplink::uplink> link_;
};

}  // namespace thingmux::identity
