// D-Bus method calls of org.thingmux.Thingmux1.Manager and .Thing (docs/dbus.md).
#include "daemon/bus/bus_impl.hpp"

#include <spdlog/spdlog.h>

namespace thingmux::bus {

using namespace detail;

int bus_service::impl::method_reload(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& s = *static_cast<impl*>(userdata);
    return guarded(err, [&] {
        const auto problem = s.options.reload ? s.options.reload() : std::string("reloading is not available");
        if (!problem.empty())
            return sd_bus_error_setf(err, (std::string(error_prefix) + "InvalidConfiguration").c_str(), "%s", problem.c_str());
        return sd_bus_reply_method_return(m, "");
    });
}

int bus_service::impl::method_list_clients(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& s = *static_cast<impl*>(userdata);
    return guarded(err, [&] {
        // Clients show their pid, user, unit and topics: an administrator (root, or admin: true
        // in apps:) sees all of them, anyone else only the clients running under its own uid —
        // the hub's one rule, which IPC list_clients follows too. Group thingmux is no privilege
        // here: it is the group of the apps themselves. The ids are the ones the bus reports,
        // the groups (for an admin rule matching a group) as for Publish.
        caller_ids caller;
        if (const int r = query_caller(m, true, caller); r < 0)
            return sd_bus_error_set_errnof(err, -r, "cannot tell who the caller is");
        if (caller.uid == static_cast<uid_t>(-1))
            return sd_bus_error_set(err, SD_BUS_ERROR_ACCESS_DENIED, "the caller's uid is unknown");
        const auto visible = s.hub.clients_visible_to(
            hub::make_peer_credentials(caller.pid, caller.uid, caller.gid, std::move(caller.groups)));
        sd_bus_message* reply = nullptr;
        int r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0) r = sd_bus_message_open_container(reply, 'a', "(tuussssasttt)");
        for (const auto& c : visible) {
            if (r < 0) break;
            r = sd_bus_message_open_container(reply, 'r', "tuussssasttt");
            if (r >= 0)
                r = sd_bus_message_append(reply, "tuusss", c.id, static_cast<std::uint32_t>(c.peer.pid), c.peer.uid,
                                          c.peer.user.c_str(), c.peer.unit.c_str(), c.app_name.c_str());
            if (r >= 0) r = sd_bus_message_append(reply, "s", c.thing.c_str());
            if (r >= 0) r = append_strings(reply, c.subscriptions);
            if (r >= 0) r = sd_bus_message_append(reply, "ttt", c.queued_bytes, c.messages_in, c.messages_out);
            if (r >= 0) r = sd_bus_message_close_container(reply);
        }
        if (r >= 0) r = sd_bus_message_close_container(reply);
        if (r >= 0) r = sd_bus_send(nullptr, reply, nullptr);
        sd_bus_message_unref(reply);
        return r;
    });
}

int bus_service::impl::method_publish(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& s = *static_cast<impl*>(userdata);
    return guarded(err, [&] {
        const char* thing = nullptr;
        const char* topic = nullptr;
        const void* payload = nullptr;
        std::size_t size = 0;
        std::uint8_t qos = 0;
        int r = sd_bus_message_read(m, "ss", &thing, &topic);
        if (r >= 0) r = sd_bus_message_read_array(m, 'y', &payload, &size);
        if (r >= 0) r = sd_bus_message_read(m, "y", &qos);
        if (r < 0) return r;
        if (qos > 2) return sd_bus_error_setf(err, SD_BUS_ERROR_INVALID_ARGS, "qos must be 0 or 1, not %u", unsigned{qos});

        // The caller is authorized like an app: by its uid, groups and unit.
        caller_ids caller;
        if (r = query_caller(m, true, caller); r < 0)
            return sd_bus_error_set_errnof(err, -r, "cannot tell who the caller is");
        if (caller.uid == static_cast<uid_t>(-1))
            return sd_bus_error_set(err, SD_BUS_ERROR_ACCESS_DENIED, "the caller's uid is unknown");

        ipc::publish p{.request_id = 0,
                       .topic = topic,
                       .payload = std::string(static_cast<const char*>(payload), size),
                       .qos = qos,
                       .retain = false,
                       .props = {}};
        sd_bus_message_ref(m);
        s.hub.publish(thing, std::move(p),
                      hub::make_peer_credentials(caller.pid, caller.uid, caller.gid, std::move(caller.groups)),
                      [&s, m, weak = std::weak_ptr<bool>(s.alive)](ipc::result res) {
                          if (!weak.expired() && s.bus) {
                              if (ipc::accepted(res.code))
                                  sd_bus_reply_method_return(m, "y", res.mqtt_reason_code);
                              else
                                  sd_bus_reply_method_errorf(m, error_name(res.code).c_str(), "%s", res.message.c_str());
                              s.kick();
                          }
                          sd_bus_message_unref(m);
                      });
        return 1;  // answered when the broker acknowledged (or a check refused it)
    });
}

int bus_service::impl::method_reconnect(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& s = *static_cast<impl*>(userdata);
    return guarded(err, [&] {
        const auto name = s.thing_of(sd_bus_message_get_path(m));
        if (!s.hub.reconnect(name))
            return sd_bus_error_setf(err, (std::string(error_prefix) + "UnknownThing").c_str(), "no Thing '%s'", name.c_str());
        return sd_bus_reply_method_return(m, "");
    });
}

// Answered when the rotation is over (it takes two answers of AWS IoT: call with a timeout of a
// minute or more, e.g. busctl --timeout=120).
int bus_service::impl::method_rotate_certificate(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& s = *static_cast<impl*>(userdata);
    return guarded(err, [&] {
        const auto name = s.thing_of(sd_bus_message_get_path(m));
        sd_bus_message_ref(m);
        const bool known = s.hub.rotate_certificate(
            name, [&s, m, weak = std::weak_ptr<bool>(s.alive)](const std::string& error, const std::string& id) {
                if (!weak.expired() && s.bus) {
                    if (error.empty())
                        sd_bus_reply_method_return(m, "s", id.c_str());
                    else
                        sd_bus_reply_method_errorf(m, (std::string(error_prefix) + "RotationFailed").c_str(), "%s",
                                                   error.c_str());
                    s.kick();
                }
                sd_bus_message_unref(m);
            });
        if (!known) {
            sd_bus_message_unref(m);
            return sd_bus_error_setf(err, (std::string(error_prefix) + "UnknownThing").c_str(), "no Thing '%s'", name.c_str());
        }
        return 1;
    });
}

// ShadowGet, ShadowUpdate and ShadowDelete: answered with AWS IoT's accepted document, or an
// error: ShadowRejected with AWS's code and message (e.g. 404 when there is no shadow, 409 on a
// version conflict), or the local refusal (NotAuthorized, NotConnected, …).
int bus_service::impl::method_shadow(sd_bus_message* m, void* userdata, sd_bus_error* err) {
    auto& s = *static_cast<impl*>(userdata);
    return guarded(err, [&] {
        const std::string_view member = sd_bus_message_get_member(m);
        const std::string_view operation = member == "ShadowGet" ? "get" : member == "ShadowUpdate" ? "update" : "delete";
        const char* shadow = nullptr;
        const char* request = "";
        int r = sd_bus_message_read(m, "s", &shadow);
        if (r >= 0 && operation == "update") r = sd_bus_message_read(m, "s", &request);
        if (r < 0) return r;
        caller_ids caller;
        if (r = query_caller(m, true, caller); r < 0)
            return sd_bus_error_set_errnof(err, -r, "cannot tell who the caller is");
        if (caller.uid == static_cast<uid_t>(-1))
            return sd_bus_error_set(err, SD_BUS_ERROR_ACCESS_DENIED, "the caller's uid is unknown");
        sd_bus_message_ref(m);
        s.hub.shadow_request(
            s.thing_of(sd_bus_message_get_path(m)), operation, shadow, request,
            hub::make_peer_credentials(caller.pid, caller.uid, caller.gid, std::move(caller.groups)),
            [&s, m, weak = std::weak_ptr<bool>(s.alive)](hub::service_caller::answer a) {
                if (!weak.expired() && s.bus) {
                    if (a.outcome.code != ipc::errc::ok)
                        sd_bus_reply_method_errorf(m, error_name(a.outcome.code).c_str(), "%s", a.outcome.message.c_str());
                    else if (a.topic.ends_with("/accepted"))
                        sd_bus_reply_method_return(m, "s", a.payload.c_str());
                    else
                        sd_bus_reply_method_errorf(m, (std::string(error_prefix) + "ShadowRejected").c_str(),
                                                   "AWS IoT rejected the request: %s", a.payload.c_str());
                    s.kick();
                }
                sd_bus_message_unref(m);
            });
        return 1;  // answered when AWS IoT answered (or a check refused it)
    });
}

}  // namespace thingmux::bus
