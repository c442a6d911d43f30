// What the hub keeps of one configured Thing (hub.cpp, mqtt_front.cpp).
#pragma once

#include "daemon/hub/hub.hpp"
#include "daemon/hub/uplink_port.hpp"
#include "daemon/identity/thing_identity.hpp"
#include "daemon/services/jobs_service.hpp"

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace thingmux::hub {

// One configured Thing: its uplink, its pipeline wired to it and to a timer, and its identity.
struct hub::thing_entry {
    thing_entry(boost::asio::io_context& io, std::shared_ptr<uplink::uplink> l, std::string fp, session_journal& journal)
        : fingerprint(std::move(fp)), link(std::move(l)), port(link, journal), clock(io, [this] { pipe->on_timer(); }) {}
    // The pipeline holds its sessions: the jobs service must leave it for both to go.
    ~thing_entry() {
        if (jobs) jobs->close();
    }
    thing_entry(const thing_entry&) = delete;
    thing_entry& operator=(const thing_entry&) = delete;

    std::string fingerprint;
    std::shared_ptr<uplink::uplink> link;
    uplink_port port;
    asio_clock clock;
    std::shared_ptr<thing::pipeline> pipe;
    // Provisioning, rotation and expiry of its certificate (after pipe: it holds a session of it).
    std::unique_ptr<identity::thing_identity> identity;
    // The jobs service (things[].jobs; null without): a session of pipe, fed its link states.
    std::shared_ptr<services::jobs_service> jobs;
    // D-Bus callers' shadow requests (made on the first one; after pipe: it holds a session of it).
    std::unique_ptr<service_caller> services;
    std::uint64_t connected_since_usec = 0;
    std::string last_error;
};

}  // namespace thingmux::hub
