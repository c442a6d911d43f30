// The D-Bus service's implementation, shared by bus.cpp (objects, properties, the event loop) and
// bus_methods.cpp (method calls). Private to daemon/bus/.
#pragma once

#include "daemon/bus/bus.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <systemd/sd-bus.h>

#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace thingmux::bus {

namespace asio = boost::asio;

namespace detail {

inline constexpr const char* bus_name = "org.thingmux.Thingmux1";
inline constexpr const char* manager_path = "/org/thingmux/Thingmux1";
inline constexpr const char* manager_iface = "org.thingmux.Thingmux1.Manager";
inline constexpr const char* thing_prefix = "/org/thingmux/Thingmux1/thing";
inline constexpr const char* thing_iface = "org.thingmux.Thingmux1.Thing";
inline constexpr const char* log_path = "/org/freedesktop/LogControl1";
inline constexpr const char* log_iface = "org.freedesktop.LogControl1";
inline constexpr const char* error_prefix = "org.thingmux.Thingmux1.Error.";

// The D-Bus error for an IPC outcome, e.g. not_authorized -> org.thingmux.Thingmux1.Error.NotAuthorized.
[[nodiscard]] std::string error_name(ipc::errc code);
int append_strings(sd_bus_message* m, const std::vector<std::string>& items);

// Runs a callback body; an exception (which must never cross into sd-bus's C code) becomes an error.
template <class F>
int guarded(sd_bus_error* err, F f) noexcept {
    try {
        return f();
    } catch (const std::exception& e) {
        return sd_bus_error_setf(err, SD_BUS_ERROR_FAILED, "internal error: %s", e.what());
    } catch (...) {
        return sd_bus_error_set(err, SD_BUS_ERROR_FAILED, "internal error");
    }
}

// The caller of a method as the bus knows it: ids the bus read from the kernel when the caller
// connected (dbus-daemon: pid and uid). With `augment`, sd-bus fills in the rest (primary gid,
// supplementary groups) from /proc/PID, which is only as good as the pid.
struct caller_ids {
    pid_t pid = 0;
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    std::vector<gid_t> groups;
};

int query_caller(sd_bus_message* m, bool augment, caller_ids& out);

}  // namespace detail

struct bus_service::impl {
    impl(asio::io_context& io_, hub::hub& h, bus_options o) : io(io_), hub(h), options(std::move(o)), fd(io_), timer(io_) {}

    ~impl() {
        if (fd.is_open()) (void)fd.release();  // sd-bus owns the descriptor
        sd_bus_slot_unref(manager_slot);
        sd_bus_slot_unref(thing_slot);
        sd_bus_slot_unref(enumerator_slot);
        sd_bus_slot_unref(log_slot);
        if (bus) sd_bus_flush_close_unref(bus);
    }

    bool start();
    void process();
    void arm();
    void kick();
    void lost(int r);
    void thing_changed(const std::string& name, const uplink::state_event& ev);
    void emit_counters();
    [[nodiscard]] std::string path_of(const std::string& thing) const;
    [[nodiscard]] std::string thing_of(const char* path) const;

    static int manager_property(sd_bus*, const char*, const char*, const char* property, sd_bus_message* reply, void* userdata,
                                sd_bus_error* err);
    static int thing_property(sd_bus*, const char* path, const char*, const char* property, sd_bus_message* reply,
                              void* userdata, sd_bus_error* err);
    static int log_property(sd_bus*, const char*, const char*, const char* property, sd_bus_message* reply, void* userdata,
                            sd_bus_error* err);
    static int set_log_property(sd_bus*, const char*, const char*, const char* property, sd_bus_message* value,
                                void* userdata, sd_bus_error* err);
    static int find_thing(sd_bus*, const char* path, const char*, void* userdata, void** found, sd_bus_error*);
    static int enumerate_things(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error*);
    static int method_reload(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int method_list_clients(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int method_publish(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int method_reconnect(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int method_rotate_certificate(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static int method_shadow(sd_bus_message* m, void* userdata, sd_bus_error* err);
    static const sd_bus_vtable manager_vtable[];
    static const sd_bus_vtable thing_vtable[];
    static const sd_bus_vtable log_vtable[];

    asio::io_context& io;
    hub::hub& hub;
    bus_options options;
    sd_bus* bus = nullptr;
    sd_bus_slot* manager_slot = nullptr;
    sd_bus_slot* thing_slot = nullptr;
    sd_bus_slot* enumerator_slot = nullptr;
    sd_bus_slot* log_slot = nullptr;
    asio::posix::stream_descriptor fd;
    asio::steady_timer timer;
    std::unique_ptr<asio::steady_timer> counters_timer;
    bool reading = false;
    bool writing = false;
    bool kicked = false;
    // Counters last announced per Thing, to signal only what changed.
    std::map<std::string, hub::thing_status, std::less<>> announced;
    std::size_t announced_clients = 0;
    std::shared_ptr<bool> alive = std::make_shared<bool>(true);
};

}  // namespace thingmux::bus
