#include "bus_commands.hpp"

#include "commands.hpp"

#include <systemd/sd-bus.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iomanip>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace thingmux::ctl {

namespace {

constexpr const char* service = "org.thingmux.Thingmux1";
constexpr const char* manager_path = "/org/thingmux/Thingmux1";
constexpr const char* manager_iface = "org.thingmux.Thingmux1.Manager";
constexpr const char* thing_prefix = "/org/thingmux/Thingmux1/thing";
constexpr const char* thing_iface = "org.thingmux.Thingmux1.Thing";

// The system bus, or nullptr with why in `why`.
sd_bus* open_system_bus(std::string& why) {
    sd_bus* bus = nullptr;
    if (const int r = sd_bus_open_system(&bus); r < 0) {
        why = std::string("cannot reach the system bus: ") + std::strerror(-r) +
              " (thingmuxd's management interface is on D-Bus; is dbus running?)";
        return nullptr;
    }
    return bus;
}

// The system bus, or nullptr after saying why on stderr.
sd_bus* open_bus(std::string_view command) {
    std::string why;
    sd_bus* bus = open_system_bus(why);
    if (bus == nullptr) complain(command) << why << '\n';
    return bus;
}

// Calls a method without arguments on `path` (`iface`), waiting up to `timeout_usec` (0: sd-bus's
// default, 25 s); on failure prints the error and returns the exit code.
int call_on(std::string_view command, const char* path, const char* iface, const char* method, std::uint64_t timeout_usec,
            sd_bus_message** reply) {
    sd_bus* bus = open_bus(command);
    if (bus == nullptr) return exit_unavailable;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* m = nullptr;
    int r = sd_bus_message_new_method_call(bus, &m, service, path, iface, method);
    if (r >= 0) r = sd_bus_call(bus, m, timeout_usec, &error, reply);
    sd_bus_message_unref(m);
    int rc = exit_ok;
    if (r < 0) {
        const bool absent = sd_bus_error_has_name(&error, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
                            sd_bus_error_has_name(&error, SD_BUS_ERROR_NAME_HAS_NO_OWNER);
        complain(command) << method << " failed: " << (error.message ? error.message : std::strerror(-r));
        if (absent) std::cerr << " (is thingmuxd running with --bus system?)";
        std::cerr << '\n';
        rc = absent ? exit_unavailable : exit_refused;
    }
    sd_bus_error_free(&error);
    sd_bus_flush_close_unref(bus);
    return rc;
}

// Calls a Manager method without arguments; on failure prints the error and returns the exit code.
int call(std::string_view command, const char* method, sd_bus_message** reply) {
    return call_on(command, manager_path, manager_iface, method, 0, reply);
}

}  // namespace

namespace {

// Runs `read` (sd-bus calls on the Thing's object, returning the first negative result) on the
// system bus; why it failed, empty when it did not.
std::string read_thing(const std::string& thing, const std::function<int(sd_bus*, const char*, sd_bus_error*)>& read) {
    std::string why;
    sd_bus* bus = open_system_bus(why);
    if (bus == nullptr) return why;
    char* path = nullptr;
    if (const int r = sd_bus_path_encode(thing_prefix, thing.c_str(), &path); r < 0) {
        sd_bus_flush_close_unref(bus);
        return std::string("cannot name the Thing's D-Bus object: ") + std::strerror(-r);
    }
    sd_bus_error error = SD_BUS_ERROR_NULL;
    const int r = read(bus, path, &error);
    std::free(path);
    if (r < 0) why = error.message != nullptr ? error.message : std::strerror(-r);
    sd_bus_error_free(&error);
    sd_bus_flush_close_unref(bus);
    return why;
}

}  // namespace

std::variant<retained_cache_figures, std::string> read_retained_cache(const std::string& thing) {
    retained_cache_figures figures;
    auto why = read_thing(thing, [&](sd_bus* bus, const char* path, sd_bus_error* error) {
        int r = 0;
        for (const auto& [property, value] : {std::pair{"RetainedMessages", &figures.messages},
                                              {"RetainedBytes", &figures.bytes},
                                              {"RetainedDropped", &figures.dropped}}) {
            r = sd_bus_get_property_trivial(bus, service, path, thing_iface, property, error, 't', value);
            if (r < 0) break;
        }
        return r;
    });
    if (!why.empty()) return why;
    return figures;
}

std::variant<thing_route, std::string> read_route(const std::string& thing) {
    thing_route route;
    auto why = read_thing(thing, [&](sd_bus* bus, const char* path, sd_bus_error* error) {
        int r = 0;
        for (const auto& [property, value] : {std::pair{"Endpoint", &route.endpoint}, {"Transport", &route.transport},
                                              {"Proxy", &route.proxy}, {"Auth", &route.auth}}) {
            char* text = nullptr;
            r = sd_bus_get_property_string(bus, service, path, thing_iface, property, error, &text);
            if (r < 0) break;
            *value = text;
            std::free(text);
        }
        return r;
    });
    if (!why.empty()) return why;
    return route;
}

std::variant<thing_identity, std::string> read_identity(const std::string& thing) {
    thing_identity id;
    auto why = read_thing(thing, [&](sd_bus* bus, const char* path, sd_bus_error* error) {
        int r = 0;
        for (const auto& [property, value] : {std::pair{"IdentityState", &id.state}, {"CertificateId", &id.certificate_id},
                                              {"IdentityError", &id.error}}) {
            char* text = nullptr;
            r = sd_bus_get_property_string(bus, service, path, thing_iface, property, error, &text);
            if (r < 0) return r;
            *value = text;
            std::free(text);
        }
        return sd_bus_get_property_trivial(bus, service, path, thing_iface, "CertificateNotAfterUSec", error, 't',
                                           &id.not_after_usec);
    });
    if (!why.empty()) return why;
    return id;
}

int run_rotate_certificate(const std::string& thing, std::chrono::seconds timeout) {
    char* path = nullptr;
    if (const int r = sd_bus_path_encode(thing_prefix, thing.c_str(), &path); r < 0) {
        complain("rotate-certificate") << "cannot name the Thing's D-Bus object: " << std::strerror(-r) << '\n';
        return exit_refused;
    }
    std::cout << "asking thingmuxd to rotate the certificate of " << thing << " (up to " << timeout.count() << " s)...\n"
              << std::flush;
    sd_bus_message* reply = nullptr;
    const int rc = call_on("rotate-certificate", path, thing_iface, "RotateCertificate",
                           static_cast<std::uint64_t>(timeout.count()) * 1'000'000U, &reply);
    std::free(path);
    if (rc == exit_ok) {
        const char* id = nullptr;
        if (sd_bus_message_read(reply, "s", &id) >= 0)
            std::cout << "rotated: new certificate " << id << "; thingmuxd reconnects with it\n";
    }
    sd_bus_message_unref(reply);
    return rc;
}

bool management_on_bus(std::string& why) {
    sd_bus* bus = nullptr;
    if (const int r = sd_bus_open_system(&bus); r < 0) {
        why = std::string("no system bus: ") + std::strerror(-r);
        return false;
    }
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    int owned = 0;
    int r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner",
                               &error, &reply, "s", service);
    if (r >= 0) r = sd_bus_message_read(reply, "b", &owned);
    if (r < 0)
        why = std::string("cannot ask the system bus who owns ") + service + ": " +
              (error.message != nullptr ? error.message : std::strerror(-r));
    else if (owned == 0)
        why = std::string("nobody owns ") + service + " on the system bus";
    sd_bus_message_unref(reply);
    sd_bus_error_free(&error);
    sd_bus_flush_close_unref(bus);
    return r >= 0 && owned != 0;
}

int bus_list_clients(std::vector<ipc::client_entry>& out) {
    sd_bus_message* reply = nullptr;
    if (const int rc = call("clients", "ListClients", &reply); rc != exit_ok) return rc;
    int r = sd_bus_message_enter_container(reply, 'a', "(tuussssasttt)");
    while (r > 0 && (r = sd_bus_message_enter_container(reply, 'r', "tuussssasttt")) > 0) {
        ipc::client_entry c;
        const char *user = nullptr, *unit = nullptr, *app = nullptr, *thing = nullptr;
        r = sd_bus_message_read(reply, "tuussss", &c.id, &c.pid, &c.uid, &user, &unit, &app, &thing);
        if (r >= 0) r = sd_bus_message_enter_container(reply, 'a', "s");
        const char* s = nullptr;
        while (r >= 0 && (r = sd_bus_message_read(reply, "s", &s)) > 0) c.subscriptions.emplace_back(s);
        if (r >= 0) r = sd_bus_message_exit_container(reply);
        if (r >= 0) r = sd_bus_message_read(reply, "ttt", &c.queued_bytes, &c.messages_in, &c.messages_out);
        if (r >= 0) r = sd_bus_message_exit_container(reply);
        if (r < 0) break;
        c.user = user;
        c.unit = unit;
        c.app_name = app;
        c.thing = thing;
        out.push_back(std::move(c));
    }
    sd_bus_message_unref(reply);
    if (r < 0) {
        complain("clients") << "unexpected ListClients reply: " << std::strerror(-r) << '\n';
        return exit_refused;
    }
    return exit_ok;
}

int bus_reload() {
    sd_bus_message* reply = nullptr;
    const int rc = call("reload", "Reload", &reply);
    sd_bus_message_unref(reply);
    return rc;
}

}  // namespace thingmux::ctl
