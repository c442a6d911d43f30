#include "daemon/metrics/collector.hpp"

#include "config/authorization.hpp"
#include "daemon/metrics/link_reasons.hpp"

#include <chrono>
#include <vector>

namespace thingmux::metrics {

collector::collector(hub::hub& h, std::string version, config_source config)
    : hub_(h), version_(std::move(version)), config_(std::move(config)) {
    hub_.set_publish_observer(&apps_);
    hub_.on_thing_state([this](const std::string& thing, const uplink::state_event& ev) { on_link(thing, ev); });
}

void collector::on_link(const std::string& thing, const uplink::state_event& ev) {
    // One count per failed attempt or ended session; the event that announces the wait carries why.
    if (ev.state != uplink::link_state::backing_off && ev.state != uplink::link_state::failed) return;
    ++link_failures_[{thing, classify_link_failure(ev.error, ev.takeover)}];
}

namespace {

constexpr std::array<link_state, 5> all_states{link_state::connecting, link_state::connected, link_state::backing_off,
                                              link_state::failed, link_state::stopped};

// What the connected apps add up to per app.
struct connected_app {
    std::uint64_t connections = 0;
    std::uint64_t queued_bytes = 0;
};

}  // namespace

std::string collector::scrape(format f, std::string_view only) const {
    writer w(f);
    const auto config = config_();
    std::vector<hub::thing_status> things;
    for (const auto& name : hub_.thing_names()) {
        if (!only.empty() && name != only) continue;
        if (auto s = hub_.status_of(name)) things.push_back(std::move(*s));
    }
    const auto per_thing = [&](std::string_view family, metric_type type, std::string_view help, std::string_view unit,
                               auto value) {
        w.family(family, type, help, unit);
        for (const auto& t : things) w.sample({{"thing", t.name}}, value(t));
    };

    // The daemon.
    // A gauge of 1 (Prometheus' convention), not OpenMetrics' info type, which the Prometheus text format lacks.
    w.family("thingmux_build_info", metric_type::gauge, "thingmuxd's version, in the label version; always 1");
    w.sample({{"version", version_}}, std::uint64_t{1});
    const auto& c = hub_.counters();
    w.family("thingmux_clients_accepted", metric_type::counter, "App connections accepted (IPC and MQTT)");
    w.sample({}, c.clients_accepted);
    w.family("thingmux_clients_refused", metric_type::counter, "App connections refused (no app rule, limits)");
    w.sample({}, c.clients_refused);
    w.family("thingmux_clients_cut_off", metric_type::counter,
             "App connections closed because the app read too slowly (their queued messages dropped)");
    w.sample({}, c.clients_cut_off);
    w.family("thingmux_connections", metric_type::gauge, "Open app connections (IPC clients and MQTT clients past CONNACK)");
    w.sample({}, static_cast<std::uint64_t>(hub_.connection_count()));
    w.family("thingmux_inbound_unrouted", metric_type::counter, "Messages from the broker no local session matched, all Things");
    w.sample({}, c.unrouted);

    // Each Thing's link.
    per_thing("thingmux_link_up", metric_type::gauge, "1 while the Thing's MQTT session with the broker is up", "",
              [](const hub::thing_status& t) { return std::uint64_t{t.state == uplink::link_state::connected}; });
    w.family("thingmux_link_state", metric_type::gauge, "1 for the state the Thing's link is in, 0 for the others");
    for (const auto& t : things)
        for (const auto s : all_states)
            w.sample({{"thing", t.name}, {"state", link_state_name(s)}}, std::uint64_t{t.state == s});
    per_thing("thingmux_connect_attempts", metric_type::counter, "Connection attempts to the broker", "",
              [](const hub::thing_status& t) { return t.counters.connect_attempts; });
    per_thing("thingmux_reconnects", metric_type::counter, "MQTT sessions after the first", "",
              [](const hub::thing_status& t) { return t.reconnects; });
    w.family("thingmux_link_failures", metric_type::counter,
             "Connection attempts that failed and sessions that ended, by reason (a fixed set: docs/metrics.md)");
    for (const auto& t : things) {
        for (const auto reason : link_failure_reasons) {
            const auto it = link_failures_.find({t.name, reason});
            w.sample({{"thing", t.name}, {"reason", reason}}, it == link_failures_.end() ? std::uint64_t{0} : it->second);
        }
    }
    w.family("thingmux_uplink_messages", metric_type::counter, "MQTT PUBLISH packets to and from the broker");
    for (const auto& t : things) {
        w.sample({{"thing", t.name}, {"direction", "out"}}, t.counters.messages_out);
        w.sample({{"thing", t.name}, {"direction", "in"}}, t.counters.messages_in);
    }
    w.family("thingmux_uplink_bytes", metric_type::counter, "Bytes to and from the broker (MQTT packets)", "bytes");
    for (const auto& t : things) {
        w.sample({{"thing", t.name}, {"direction", "out"}}, t.counters.bytes_out);
        w.sample({{"thing", t.name}, {"direction", "in"}}, t.counters.bytes_in);
    }
    w.family("thingmux_publish_round_trip_seconds", metric_type::histogram,
             "QoS 1 publishes from their hand-off to the MQTT session to the broker's PUBACK", "seconds");
    for (const auto& t : things) {
        const auto& h = t.pipeline.round_trip;
        const label l[] = {{"thing", t.name}};
        w.histogram(l, h.bounds, h.cumulative, h.count, h.sum);
    }
    w.family("thingmux_certificate_expiry_timestamp_seconds", metric_type::gauge,
             "When the Thing's client certificate expires (Unix time); no sample when thingmuxd cannot read it", "seconds");
    for (const auto& t : things) {
        if (!t.identity.not_after) continue;
        const auto at = std::chrono::duration_cast<std::chrono::seconds>(t.identity.not_after->time_since_epoch()).count();
        w.sample({{"thing", t.name}}, static_cast<double>(at));
    }

    // What waits, and what was dropped.
    per_thing("thingmux_in_flight", metric_type::gauge, "QoS 1 publishes sent to the broker, awaiting PUBACK", "",
              [](const hub::thing_status& t) { return t.in_flight; });
    per_thing("thingmux_waiting_messages", metric_type::gauge,
              "Accepted publishes waiting to go (shaper queue and spool rows)", "",
              [](const hub::thing_status& t) { return t.waiting; });
    per_thing("thingmux_waiting_bytes", metric_type::gauge, "Topic and payload bytes of the waiting publishes", "bytes",
              [](const hub::thing_status& t) { return t.waiting_bytes; });
    per_thing("thingmux_spool_messages", metric_type::gauge, "Messages of the Thing in the durable spool", "",
              [](const hub::thing_status& t) { return t.pipeline.spool_messages; });
    per_thing("thingmux_spool_bytes", metric_type::gauge, "Topic and payload bytes of the Thing's spooled messages", "bytes",
              [](const hub::thing_status& t) { return t.pipeline.spool_bytes; });
    per_thing("thingmux_spool_oldest_age_seconds", metric_type::gauge,
              "Age of the Thing's oldest spooled message (messages spooled before thingmuxd started: since it started); 0 when none",
              "seconds", [](const hub::thing_status& t) { return static_cast<std::uint64_t>(t.pipeline.spool_oldest_age.count()); });
    per_thing("thingmux_throttle_waits", metric_type::counter,
              "Publishes that waited in the shaper for the Thing's rate limits (limits.publishes_per_second, bytes_per_second)", "",
              [](const hub::thing_status& t) { return t.pipeline.throttle_waits; });
    w.family("thingmux_drops", metric_type::counter, "Messages dropped, by reason (a fixed set: docs/metrics.md)");
    for (const auto& t : things) {
        w.sample({{"thing", t.name}, {"reason", "offline_qos0"}}, t.offline_dropped);
        w.sample({{"thing", t.name}, {"reason", "spool_refused"}}, t.spool_rejected);
        w.sample({{"thing", t.name}, {"reason", "shared_no_member"}}, t.shared_dropped);
        w.sample({{"thing", t.name}, {"reason", "retained_evicted"}}, t.retained_dropped);
    }
    per_thing("thingmux_service_timeouts", metric_type::counter,
              "Shadow and jobs requests AWS IoT did not answer in time (answered by thingmuxd's 504)", "",
              [](const hub::thing_status& t) { return t.service_timeouts; });

    // Subscriptions.
    w.family("thingmux_subscriptions", metric_type::gauge,
             "Topic filters held: by local sessions (scope local), and toward the broker (scope upstream)");
    for (const auto& t : things) {
        w.sample({{"thing", t.name}, {"scope", "local"}}, t.pipeline.local_subscriptions);
        w.sample({{"thing", t.name}, {"scope", "upstream"}}, static_cast<std::uint64_t>(t.upstream_filters.size()));
    }
    per_thing("thingmux_suback_failures", metric_type::counter,
              "Upstream subscriptions the broker refused (SUBACK failure, or lost when re-subscribing)", "",
              [](const hub::thing_status& t) { return t.pipeline.suback_failures; });

    // Apps.
    w.family("thingmux_app_publishes", metric_type::counter,
             "Publishes of an app by result (the ipc::errc name: ok, spooled, not_authorized, ...)");
    for (const auto& [k, traffic] : apps_.all()) {
        if (!only.empty() && k.thing != only) continue;
        for (const auto& [result, n] : traffic.results)
            w.sample({{"thing", k.thing}, {"app", k.app}, {"unit", k.unit}, {"uid", k.uid}, {"result", result}}, n.publishes);
    }
    w.family("thingmux_app_publish_bytes", metric_type::counter, "Topic and payload bytes of an app's publishes, by result",
             "bytes");
    for (const auto& [k, traffic] : apps_.all()) {
        if (!only.empty() && k.thing != only) continue;
        for (const auto& [result, n] : traffic.results)
            w.sample({{"thing", k.thing}, {"app", k.app}, {"unit", k.unit}, {"uid", k.uid}, {"result", result}}, n.bytes);
    }
    w.family("thingmux_app_throttle_waits", metric_type::counter,
             "Publishes of an app that waited in the shaper for the Thing's rate limits");
    for (const auto& [k, traffic] : apps_.all()) {
        if (!only.empty() && k.thing != only) continue;
        w.sample({{"thing", k.thing}, {"app", k.app}, {"unit", k.unit}, {"uid", k.uid}}, traffic.throttle_waits);
    }
    std::map<app_key, connected_app> connected;
    for (const auto& client : hub_.clients()) {
        if (!only.empty() && client.thing != only) continue;
        const auto rights = config ? config::grants_for(*config, client.peer.identity(), client.thing) : config::grants{};
        auto& e = connected[apps_.key_of(client.thing, rights, {.uid = client.peer.known_uid(), .unit = client.peer.unit})];
        ++e.connections;
        e.queued_bytes += client.queued_bytes;
    }
    w.family("thingmux_apps_connected", metric_type::gauge, "Connections of an app (IPC and MQTT clients)");
    for (const auto& [k, e] : connected)
        w.sample({{"thing", k.thing}, {"app", k.app}, {"unit", k.unit}, {"uid", k.uid}}, e.connections);
    w.family("thingmux_app_queued_bytes", metric_type::gauge, "Bytes waiting to be written to an app's connections", "bytes");
    for (const auto& [k, e] : connected)
        w.sample({{"thing", k.thing}, {"app", k.app}, {"unit", k.unit}, {"uid", k.uid}}, e.queued_bytes);
    return w.finish();
}

}  // namespace thingmux::metrics
