#include "daemon/bus/bus_impl.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <poll.h>

namespace thingmux::bus {

namespace detail {

// The D-Bus error for an IPC outcome, e.g. not_authorized -> org.thingmux.Thingmux1.Error.NotAuthorized.
std::string error_name(ipc::errc code) {
    switch (code) {
    case ipc::errc::not_authorized: return std::string(error_prefix) + "NotAuthorized";
    case ipc::errc::invalid_topic: return std::string(error_prefix) + "InvalidTopic";
    case ipc::errc::payload_too_large: return std::string(error_prefix) + "PayloadTooLarge";
    case ipc::errc::qos_not_supported: return std::string(error_prefix) + "QoSNotSupported";
    case ipc::errc::quota_exceeded: return std::string(error_prefix) + "QuotaExceeded";
    case ipc::errc::rate_limited: return std::string(error_prefix) + "RateLimited";
    case ipc::errc::unknown_thing: return std::string(error_prefix) + "UnknownThing";
    case ipc::errc::broker_refused: return std::string(error_prefix) + "BrokerRefused";
    case ipc::errc::not_connected: return std::string(error_prefix) + "NotConnected";
    case ipc::errc::daemon_shutting_down: return std::string(error_prefix) + "ShuttingDown";
    case ipc::errc::invalid_payload: return std::string(error_prefix) + "InvalidPayload";
    case ipc::errc::invalid_configuration: return std::string(error_prefix) + "InvalidConfiguration";
    default: return std::string(error_prefix) + "Failed";
    }
}

int append_strings(sd_bus_message* m, const std::vector<std::string>& items) {
    int r = sd_bus_message_open_container(m, 'a', "s");
    for (const auto& s : items) {
        if (r < 0) return r;
        r = sd_bus_message_append(m, "s", s.c_str());
    }
    return r < 0 ? r : sd_bus_message_close_container(m);
}

int query_caller(sd_bus_message* m, bool augment, caller_ids& out) {
    std::uint64_t mask = SD_BUS_CREDS_PID | SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID | SD_BUS_CREDS_SUPPLEMENTARY_GIDS;
    if (augment) mask |= SD_BUS_CREDS_AUGMENT;
    sd_bus_creds* creds = nullptr;
    const int r = sd_bus_query_sender_creds(m, mask, &creds);
    if (r < 0) return r;
    const gid_t* gids = nullptr;
    (void)sd_bus_creds_get_pid(creds, &out.pid);
    (void)sd_bus_creds_get_euid(creds, &out.uid);
    (void)sd_bus_creds_get_egid(creds, &out.gid);
    const int ngids = sd_bus_creds_get_supplementary_gids(creds, &gids);
    if (ngids > 0) out.groups.assign(gids, gids + ngids);
    sd_bus_creds_unref(creds);
    return 0;
}

}  // namespace detail

using namespace detail;

namespace {




std::string state_name(uplink::link_state s) { return uplink::to_string(s); }

// systemd's LogControl1 speaks syslog level names.
const char* syslog_level(spdlog::level::level_enum l) {
    switch (l) {
    case spdlog::level::trace:
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warning";
    case spdlog::level::err: return "err";
    case spdlog::level::critical: return "crit";
    case spdlog::level::off: return "emerg";
    default: return "info";
    }
}

std::optional<spdlog::level::level_enum> from_syslog_level(const std::string& s) {
    static const std::map<std::string, spdlog::level::level_enum, std::less<>> levels{
        {"emerg", spdlog::level::critical}, {"alert", spdlog::level::critical}, {"crit", spdlog::level::critical},
        {"err", spdlog::level::err},        {"warning", spdlog::level::warn},   {"notice", spdlog::level::info},
        {"info", spdlog::level::info},      {"debug", spdlog::level::debug}};
    auto it = levels.find(s);
    if (it == levels.end()) return std::nullopt;
    return it->second;
}

std::uint64_t monotonic_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000U + static_cast<std::uint64_t>(ts.tv_nsec) / 1000U;
}





}  // namespace


// The vtables are C aggregates built by sd-bus's macros, which use C casts.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
namespace {
constexpr auto emits = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE;
constexpr auto constant = SD_BUS_VTABLE_PROPERTY_CONST;
}  // namespace


const sd_bus_vtable bus_service::impl::manager_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Version", "s", bus_service::impl::manager_property, 0, constant),
    SD_BUS_PROPERTY("Things", "ao", bus_service::impl::manager_property, 0, emits),
    SD_BUS_PROPERTY("ClientCount", "u", bus_service::impl::manager_property, 0, emits),
    SD_BUS_METHOD_WITH_NAMES("Reload", "", "", "", "", bus_service::impl::method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ListClients", "", "", "a(tuussssasttt)", SD_BUS_PARAM(clients), bus_service::impl::method_list_clients,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("Publish", "ssayy", SD_BUS_PARAM(thing) SD_BUS_PARAM(topic) SD_BUS_PARAM(payload) SD_BUS_PARAM(qos),
                             "y", SD_BUS_PARAM(reason_code), bus_service::impl::method_publish, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_SIGNAL("Reloaded", "", 0),
    SD_BUS_VTABLE_END};

const sd_bus_vtable bus_service::impl::thing_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Name", "s", bus_service::impl::thing_property, 0, constant),
    SD_BUS_PROPERTY("Endpoint", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("Proxy", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("Auth", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("Transport", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("ClientId", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("Protocol", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("State", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("StateReason", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("ConnectedSinceUSec", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("Reconnects", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("UpstreamSubscriptions", "as", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("InFlight", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("SpoolDepth", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("SpoolBytes", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("SpoolRejected", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("OfflineDropped", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("SharedDropped", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("RetainedMessages", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("RetainedBytes", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("RetainedDropped", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("ServiceRequests", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("ServiceTimeouts", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("CachedShadows", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("JobsState", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("JobOperations", "as", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("CurrentJob", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("JobsHanded", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("JobsRejected", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("MessagesPublished", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("MessagesReceived", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("BytesIn", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("BytesOut", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("LastError", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("IdentityState", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("CertificateId", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("CertificateNotAfterUSec", "t", bus_service::impl::thing_property, 0, emits),
    SD_BUS_PROPERTY("IdentityError", "s", bus_service::impl::thing_property, 0, emits),
    SD_BUS_METHOD("Reconnect", "", "", bus_service::impl::method_reconnect, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("RotateCertificate", "", "", "s", SD_BUS_PARAM(certificate_id),
                             bus_service::impl::method_rotate_certificate, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ShadowGet", "s", SD_BUS_PARAM(shadow), "s", SD_BUS_PARAM(document),
                             bus_service::impl::method_shadow, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ShadowUpdate", "ss", SD_BUS_PARAM(shadow) SD_BUS_PARAM(request), "s", SD_BUS_PARAM(document),
                             bus_service::impl::method_shadow, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("ShadowDelete", "s", SD_BUS_PARAM(shadow), "s", SD_BUS_PARAM(document),
                             bus_service::impl::method_shadow, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_SIGNAL_WITH_NAMES("StateChanged", "ss", SD_BUS_PARAM(state) SD_BUS_PARAM(reason), 0),
    SD_BUS_VTABLE_END};

const sd_bus_vtable bus_service::impl::log_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_WRITABLE_PROPERTY("LogLevel", "s", bus_service::impl::log_property, bus_service::impl::set_log_property, 0, 0),
    SD_BUS_WRITABLE_PROPERTY("LogTarget", "s", bus_service::impl::log_property, bus_service::impl::set_log_property, 0, 0),
    SD_BUS_PROPERTY("SyslogIdentifier", "s", bus_service::impl::log_property, 0, constant),
    SD_BUS_VTABLE_END};
#pragma GCC diagnostic pop

bool bus_service::impl::start() {
    if (options.kind == bus_kind::none) return false;
    const bool system = options.kind == bus_kind::system;
    int r = system ? sd_bus_open_system(&bus) : sd_bus_open_user(&bus);
    auto fail = [&](const char* step, int code) {
        spdlog::warn("D-Bus management interface unavailable ({} bus: {}: {}); serving IPC clients without it",
                     system ? "system" : "user", step, std::strerror(-code));
        if (bus) bus = sd_bus_flush_close_unref(bus);
        return false;
    };
    if (r < 0) return fail("cannot connect", r);
    if ((r = sd_bus_add_object_vtable(bus, &manager_slot, manager_path, manager_iface, manager_vtable, this)) < 0)
        return fail("cannot register the Manager object", r);
    if ((r = sd_bus_add_fallback_vtable(bus, &thing_slot, thing_prefix, thing_iface, thing_vtable, find_thing, this)) < 0)
        return fail("cannot register the Thing objects", r);
    if ((r = sd_bus_add_node_enumerator(bus, &enumerator_slot, thing_prefix, enumerate_things, this)) < 0)
        return fail("cannot register the Thing enumerator", r);
    if ((r = sd_bus_add_object_vtable(bus, &log_slot, log_path, log_iface, log_vtable, this)) < 0)
        return fail("cannot register LogControl1", r);
    if ((r = sd_bus_request_name(bus, bus_name, 0)) < 0) {
        return fail(r == -EEXIST ? "the name org.thingmux.Thingmux1 is owned by another process"
                                 : "cannot own the name org.thingmux.Thingmux1 (see the D-Bus policy in systemd/)",
                    r);
    }
    const int bus_fd = sd_bus_get_fd(bus);
    if (bus_fd < 0) return fail("no descriptor", bus_fd);
    fd.assign(bus_fd);
    hub.on_thing_state([this, weak = std::weak_ptr<bool>(alive)](const std::string& name, const uplink::state_event& ev) {
        if (!weak.expired()) thing_changed(name, ev);
    });
    counters_timer = std::make_unique<asio::steady_timer>(io);
    emit_counters();
    spdlog::info("D-Bus: {} on the {} bus", bus_name, system ? "system" : "user");
    kick();
    return true;
}

void bus_service::impl::lost(int r) {
    spdlog::warn("D-Bus connection lost ({}); the management interface is unavailable until thingmuxd restarts",
                 std::strerror(-r));
    timer.cancel();
    if (counters_timer) counters_timer->cancel();
    if (fd.is_open()) (void)fd.release();
    bus = sd_bus_flush_close_unref(bus);
}

void bus_service::impl::kick() {
    if (kicked || !bus) return;
    kicked = true;
    asio::post(io, [this, alive = std::weak_ptr<bool>(alive)] {
        if (alive.expired()) return;
        kicked = false;
        process();
    });
}

void bus_service::impl::process() {
    if (!bus) return;
    int r = 0;
    while ((r = sd_bus_process(bus, nullptr)) > 0) {
        if (!bus) return;
    }
    if (r < 0) return lost(r);
    arm();
}

void bus_service::impl::arm() {
    const int events = sd_bus_get_events(bus);
    if (events < 0) return lost(events);
    auto weak = std::weak_ptr<bool>(alive);
    if ((events & POLLIN) != 0 && !reading) {
        reading = true;
        fd.async_wait(asio::posix::stream_descriptor::wait_read, [this, weak](boost::system::error_code ec) {
            if (weak.expired()) return;
            reading = false;
            if (!ec) process();
        });
    }
    if ((events & POLLOUT) != 0 && !writing) {
        writing = true;
        fd.async_wait(asio::posix::stream_descriptor::wait_write, [this, weak](boost::system::error_code ec) {
            if (weak.expired()) return;
            writing = false;
            if (!ec) process();
        });
    }
    std::uint64_t until = 0;
    if (sd_bus_get_timeout(bus, &until) >= 0 && until != UINT64_MAX) {
        const auto now = monotonic_usec();
        timer.expires_after(std::chrono::microseconds(until > now ? until - now : 0));
        timer.async_wait([this, weak](boost::system::error_code ec) {
            if (weak.expired() || ec) return;
            process();
        });
    }
}

std::string bus_service::impl::path_of(const std::string& thing) const {
    char* path = nullptr;
    if (sd_bus_path_encode(thing_prefix, thing.c_str(), &path) < 0) return {};
    std::string out = path;
    std::free(path);
    return out;
}

std::string bus_service::impl::thing_of(const char* path) const {
    char* name = nullptr;
    if (sd_bus_path_decode(path, thing_prefix, &name) <= 0 || name == nullptr) return {};
    std::string out = name;
    std::free(name);
    return out;
}

void bus_service::impl::thing_changed(const std::string& name, const uplink::state_event& ev) {
    if (!bus) return;
    const auto path = path_of(name);
    sd_bus_emit_properties_changed(bus, path.c_str(), thing_iface, "State", "StateReason", "ConnectedSinceUSec",
                                   "Reconnects", "LastError", nullptr);
    sd_bus_emit_signal(bus, path.c_str(), thing_iface, "StateChanged", "ss", state_name(ev.state).c_str(),
                       ev.reason.c_str());
    kick();
}

// Counters change with every message: announce them at most once a second, and only what changed.
void bus_service::impl::emit_counters() {
    if (!bus) return;
    for (const auto& name : hub.thing_names()) {
        auto now = hub.status_of(name);
        if (!now) continue;
        auto& was = announced[name];
        std::vector<const char*> changed;
        if (now->endpoint != was.endpoint) changed.push_back("Endpoint");
        if (now->proxy != was.proxy) changed.push_back("Proxy");
        if (now->auth != was.auth) changed.push_back("Auth");
        if (now->transport != was.transport) changed.push_back("Transport");
        if (now->identity.state != was.identity.state) changed.push_back("IdentityState");
        if (now->identity.certificate_id != was.identity.certificate_id) changed.push_back("CertificateId");
        if (now->identity.not_after != was.identity.not_after) changed.push_back("CertificateNotAfterUSec");
        if (now->identity.last_error != was.identity.last_error) changed.push_back("IdentityError");
        if (now->counters.messages_out != was.counters.messages_out) changed.push_back("MessagesPublished");
        if (now->counters.messages_in != was.counters.messages_in) changed.push_back("MessagesReceived");
        if (now->counters.bytes_in != was.counters.bytes_in) changed.push_back("BytesIn");
        if (now->counters.bytes_out != was.counters.bytes_out) changed.push_back("BytesOut");
        if (now->in_flight != was.in_flight) changed.push_back("InFlight");
        if (now->waiting != was.waiting) changed.push_back("SpoolDepth");
        if (now->waiting_bytes != was.waiting_bytes) changed.push_back("SpoolBytes");
        if (now->spool_rejected != was.spool_rejected) changed.push_back("SpoolRejected");
        if (now->offline_dropped != was.offline_dropped) changed.push_back("OfflineDropped");
        if (now->shared_dropped != was.shared_dropped) changed.push_back("SharedDropped");
        if (now->retained_messages != was.retained_messages) changed.push_back("RetainedMessages");
        if (now->retained_bytes != was.retained_bytes) changed.push_back("RetainedBytes");
        if (now->retained_dropped != was.retained_dropped) changed.push_back("RetainedDropped");
        if (now->service_requests != was.service_requests) changed.push_back("ServiceRequests");
        if (now->service_timeouts != was.service_timeouts) changed.push_back("ServiceTimeouts");
        if (now->cached_shadows != was.cached_shadows) changed.push_back("CachedShadows");
        if (now->jobs.state != was.jobs.state) changed.push_back("JobsState");
        if (now->jobs.operations != was.jobs.operations) changed.push_back("JobOperations");
        if (now->jobs.job_id != was.jobs.job_id) changed.push_back("CurrentJob");
        if (now->jobs.counts.handed != was.jobs.counts.handed) changed.push_back("JobsHanded");
        if (now->jobs.counts.rejected != was.jobs.counts.rejected) changed.push_back("JobsRejected");
        if (now->upstream_filters != was.upstream_filters) changed.push_back("UpstreamSubscriptions");
        if (!changed.empty()) {
            changed.push_back(nullptr);
            const auto path = path_of(name);
            sd_bus_emit_properties_changed_strv(bus, path.c_str(), thing_iface, const_cast<char**>(changed.data()));
        }
        was = std::move(*now);
    }
    if (const auto n = hub.connection_count(); n != announced_clients) {
        announced_clients = n;
        sd_bus_emit_properties_changed(bus, manager_path, manager_iface, "ClientCount", nullptr);
    }
    kick();
    counters_timer->expires_after(std::chrono::seconds(1));
    counters_timer->async_wait([this, weak = std::weak_ptr<bool>(alive)](boost::system::error_code ec) {
        if (!weak.expired() && !ec) emit_counters();
    });
}

int bus_service::impl::manager_property(sd_bus*, const char*, const char*, const char* property, sd_bus_message* reply,
                                        void* userdata, sd_bus_error* err) {
    auto& s = *static_cast<impl*>(userdata);
    return guarded(err, [&] {
        const std::string_view p(property);
        if (p == "Version") return sd_bus_message_append(reply, "s", s.options.version.c_str());
        if (p == "ClientCount") return sd_bus_message_append(reply, "u", static_cast<std::uint32_t>(s.hub.connection_count()));
        int r = sd_bus_message_open_container(reply, 'a', "o");
        for (const auto& name : s.hub.thing_names()) {
            if (r < 0) return r;
            r = sd_bus_message_append(reply, "o", s.path_of(name).c_str());
        }
        return r < 0 ? r : sd_bus_message_close_container(reply);
    });
}

int bus_service::impl::thing_property(sd_bus*, const char* path, const char*, const char* property, sd_bus_message* reply,
                                      void* userdata, sd_bus_error* err) {
    auto& s = *static_cast<impl*>(userdata);
    return guarded(err, [&] {
        const auto st = s.hub.status_of(s.thing_of(path));
        if (!st) return sd_bus_error_setf(err, SD_BUS_ERROR_UNKNOWN_OBJECT, "no Thing at %s", path);
        const std::string_view p(property);
        auto str = [&](const std::string& v) { return sd_bus_message_append(reply, "s", v.c_str()); };
        auto u64 = [&](std::uint64_t v) { return sd_bus_message_append(reply, "t", v); };
        if (p == "Name") return str(st->name);
        if (p == "Endpoint") return str(st->endpoint);
        if (p == "Proxy") return str(st->proxy);
        if (p == "Auth") return str(st->auth);
        if (p == "Transport") return str(st->transport);
        if (p == "ClientId") return str(st->client_id);
        if (p == "Protocol") return str(st->protocol);
        if (p == "State") return str(state_name(st->state));
        if (p == "StateReason") return str(st->reason);
        if (p == "LastError") return str(st->last_error);
        if (p == "IdentityState") return str(st->identity.state);
        if (p == "CertificateId") return str(st->identity.certificate_id);
        if (p == "IdentityError") return str(st->identity.last_error);
        if (p == "CertificateNotAfterUSec") {
            const auto& t = st->identity.not_after;
            return u64(t ? static_cast<std::uint64_t>(std::max<std::int64_t>(
                               0, std::chrono::duration_cast<std::chrono::microseconds>(t->time_since_epoch()).count()))
                         : 0);
        }
        if (p == "ConnectedSinceUSec") return u64(st->connected_since_usec);
        if (p == "Reconnects") return u64(st->reconnects);
        if (p == "InFlight") return u64(st->in_flight);
        if (p == "SpoolDepth") return u64(st->waiting);
        if (p == "SpoolBytes") return u64(st->waiting_bytes);
        if (p == "SpoolRejected") return u64(st->spool_rejected);
        if (p == "OfflineDropped") return u64(st->offline_dropped);
        if (p == "SharedDropped") return u64(st->shared_dropped);
        if (p == "RetainedMessages") return u64(st->retained_messages);
        if (p == "RetainedBytes") return u64(st->retained_bytes);
        if (p == "RetainedDropped") return u64(st->retained_dropped);
        if (p == "ServiceRequests") return u64(st->service_requests);
        if (p == "ServiceTimeouts") return u64(st->service_timeouts);
        if (p == "CachedShadows") return u64(st->cached_shadows);
        if (p == "MessagesPublished") return u64(st->counters.messages_out);
        if (p == "MessagesReceived") return u64(st->counters.messages_in);
        if (p == "BytesIn") return u64(st->counters.bytes_in);
        if (p == "BytesOut") return u64(st->counters.bytes_out);
        if (p == "UpstreamSubscriptions") return append_strings(reply, st->upstream_filters);
        if (p == "JobOperations") return append_strings(reply, st->jobs.operations);
        if (p == "JobsState") return str(st->jobs.state);
        if (p == "CurrentJob") return str(st->jobs.job_id);
        if (p == "JobsHanded") return u64(st->jobs.counts.handed);
        if (p == "JobsRejected") return u64(st->jobs.counts.rejected);
        return sd_bus_error_setf(err, SD_BUS_ERROR_UNKNOWN_PROPERTY, "no property %s", property);
    });
}

int bus_service::impl::log_property(sd_bus*, const char*, const char*, const char* property, sd_bus_message* reply,
                                    void* userdata, sd_bus_error* err) {
    auto& s = *static_cast<impl*>(userdata);
    return guarded(err, [&] {
        const std::string_view p(property);
        if (p == "LogLevel") return sd_bus_message_append(reply, "s", syslog_level(spdlog::get_level()));
        if (p == "LogTarget") return sd_bus_message_append(reply, "s", s.options.log_target ? s.options.log_target().c_str() : "console");
        return sd_bus_message_append(reply, "s", "thingmuxd");
    });
}

int bus_service::impl::set_log_property(sd_bus*, const char*, const char*, const char* property, sd_bus_message* value,
                                        void* userdata, sd_bus_error* err) {
    auto& s = *static_cast<impl*>(userdata);
    return guarded(err, [&] {
        const char* v = nullptr;
        if (int r = sd_bus_message_read(value, "s", &v); r < 0) return r;
        if (std::string_view(property) == "LogLevel") {
            const auto level = from_syslog_level(v);
            if (!level)
                return sd_bus_error_setf(err, SD_BUS_ERROR_INVALID_ARGS,
                                         "'%s' is not a log level (emerg, alert, crit, err, warning, notice, info, debug)", v);
            spdlog::set_level(*level);
            spdlog::info("log level set to {} over D-Bus", v);
            return 0;
        }
        const auto problem = s.options.set_log_target ? s.options.set_log_target(v) : std::string("not supported");
        if (!problem.empty()) return sd_bus_error_setf(err, SD_BUS_ERROR_INVALID_ARGS, "%s", problem.c_str());
        return 0;
    });
}

int bus_service::impl::find_thing(sd_bus*, const char* path, const char*, void* userdata, void** found, sd_bus_error*) {
    auto& s = *static_cast<impl*>(userdata);
    try {
        if (!s.hub.status_of(s.thing_of(path))) return 0;
    } catch (...) {
        return 0;
    }
    *found = userdata;
    return 1;
}

int bus_service::impl::enumerate_things(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error* err) {
    auto& s = *static_cast<impl*>(userdata);
    return guarded(err, [&] {
        const auto names = s.hub.thing_names();
        auto** list = static_cast<char**>(std::calloc(names.size() + 1, sizeof(char*)));
        if (list == nullptr) return -ENOMEM;
        for (std::size_t i = 0; i < names.size(); ++i) list[i] = ::strdup(s.path_of(names[i]).c_str());
        *nodes = list;
        return 1;
    });
}

bus_service::bus_service(asio::io_context& io, hub::hub& h, bus_options options)
    : impl_(std::make_unique<impl>(io, h, std::move(options))) {}

bus_service::~bus_service() = default;

bool bus_service::start() { return impl_->start(); }

bool bus_service::connected() const noexcept { return impl_->bus != nullptr; }

void bus_service::reloaded() {
    if (!impl_->bus) return;
    sd_bus_emit_signal(impl_->bus, manager_path, manager_iface, "Reloaded", "");
    sd_bus_emit_properties_changed(impl_->bus, manager_path, manager_iface, "Things", nullptr);
    impl_->kick();
}

}  // namespace thingmux::bus
