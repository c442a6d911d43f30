// The D-Bus management interface (docs/dbus.md, docs/org.thingmux.Thingmux1.xml): sd-bus on the
// daemon's one io_context — the bus fd and sd-bus's timeout are waited on by Asio, no thread.
//
// Objects:
//   /org/thingmux/Thingmux1                 org.thingmux.Thingmux1.Manager
//   /org/thingmux/Thingmux1/thing/<name>    org.thingmux.Thingmux1.Thing (one per Thing)
//   /org/freedesktop/LogControl1            org.freedesktop.LogControl1
// The bus is optional: when it cannot be reached the daemon logs it once and goes on serving
// IPC clients. sd-bus callbacks never throw; failures become D-Bus errors.
#pragma once

#include "daemon/hub/hub.hpp"

#include <boost/asio/io_context.hpp>

#include <functional>
#include <memory>
#include <string>

namespace thingmux::bus {

enum class bus_kind : std::uint8_t { system, user, none };

struct bus_options {
    bus_kind kind = bus_kind::system;  // system: honours DBUS_SYSTEM_BUS_ADDRESS
    std::string version;
    // Reloads the configuration; returns "" on success, else what is wrong with the file.
    std::function<std::string()> reload;
    // LogControl1's LogTarget: reads and sets where the log goes ("console", "journal", ...);
    // set returns "" on success, else why not.
    std::function<std::string()> log_target;
    std::function<std::string(const std::string&)> set_log_target;
};

class bus_service {
public:
    bus_service(boost::asio::io_context& io, hub::hub& h, bus_options options);
    ~bus_service();
    bus_service(const bus_service&) = delete;
    bus_service& operator=(const bus_service&) = delete;

    // Connects and takes the name; false (logged) when the bus is unavailable or the name taken.
    bool start();
    // The configuration was reloaded (by SIGHUP or by the Reload method): signal Reloaded.
    void reloaded();
    [[nodiscard]] bool connected() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace thingmux::bus
