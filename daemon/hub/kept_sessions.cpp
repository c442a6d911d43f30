// Sessions kept beyond their connections, whatever their front end (MQTT: mqtt_session; IPC:
// ipc_session): how long each is granted, when one without a connection expires, and bringing
// the stored ones back from the spool's file when thingmuxd starts.
#include "daemon/hub/hub.hpp"
#include "daemon/hub/session_storage.hpp"
#include "daemon/hub/thing_entry.hpp"
#include "daemon/logging.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

namespace thingmux::hub {

namespace asio = boost::asio;

namespace {
// A stored session of type S, made again in `sessions` under `key` with the rights of its owner;
// null when the hub has that session already (a Thing added again by a reload).
template <class S, class Map, class Key>
std::shared_ptr<S> make_again(Map& sessions, const Key& key, thing::session_id flow, const spool::session_record& r,
                              peer_credentials peer, config::shared_grants rights, std::size_t queue) {
    if (sessions.contains(key)) return nullptr;
    auto s = std::make_shared<S>(flow, r.thing, r.client_id, std::make_shared<const peer_credentials>(std::move(peer)),
                                 std::move(rights), queue);
    sessions.emplace(key, s);
    return s;
}
}  // namespace

std::chrono::seconds hub::grant_expiry(std::chrono::seconds asked, bool was_kept, kept_count kept_now,
                                       const config::session_limits& limits, const std::string& who,
                                       const char* section) {
    const auto granted = std::min(asked, limits.expiry);
    if (granted.count() <= 0 || was_kept) return granted;
    const bool all_full = kept_now.all >= limits.max;
    if (!all_full && kept_now.owners < limits.max_per_uid) return granted;
    if (auto note = mqtt_refusal_log_.admit()) {
        spdlog::warn("{}: its session is not kept beyond the connection: {} sessions are kept already{} ({}.{}){}",
                     logging::escaped(who), all_full ? limits.max : limits.max_per_uid,
                     all_full ? "" : " for its owner", section, all_full ? "max_sessions" : "max_sessions_per_uid",
                     *note);
    }
    return std::chrono::seconds{0};
}

void hub::keep_session(session_state& s, thing::pipeline& pipe, thing::session_id flow, const session_storage::owner& o,
                       std::chrono::seconds granted) {
    if (s.expiry.count() == 0 && granted.count() > 0) {
        // Its subscriptions were not tracked while it was not to be kept: they are the
        // pipeline's (at QoS 1 and the default options, which it does not keep per session).
        std::vector<spool::format::subscription> held;
        for (auto& f : pipe.filters_of(flow)) held.push_back({.filter = std::move(f), .max_qos = 1, .options = 0});
        s.restore(std::move(held));
    }
    s.expiry = granted;
    session_storage::keep(journal_, s, o, granted);
}

void hub::expire_sessions() {
    const auto now = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> next;
    const auto due_at = [&](std::chrono::steady_clock::time_point t) { next = next ? std::min(*next, t) : t; };
    for (auto it = mqtt_sessions_.begin(); it != mqtt_sessions_.end();) {
        auto s = it->second;
        if (s->will_pending() && s->will_due() <= now && !s->bound()) publish_will(std::move(*s->take_will()), *s);
        if (s->bound()) {
            ++it;
        } else if (s->state().expires <= now) {
            it = mqtt_sessions_.erase(it);
            end_mqtt_session(s, "its expiry interval passed without a connection");
        } else {
            due_at(s->will_pending() ? std::min(s->state().expires, s->will_due()) : s->state().expires);
            ++it;
        }
    }
    for (auto it = ipc_sessions_.begin(); it != ipc_sessions_.end();) {
        auto s = it->second;
        if (s->bound()) {
            ++it;
        } else if (s->state().expires <= now) {
            it = ipc_sessions_.erase(it);
            end_ipc_session(s, "its expiry passed without a connection");
        } else {
            due_at(s->state().expires);
            ++it;
        }
    }
    if (!next) return;
    if (!session_expiry_) session_expiry_ = std::make_unique<asio::steady_timer>(io_);
    session_expiry_->expires_at(*next);
    session_expiry_->async_wait([this](boost::system::error_code ec) {
        if (!ec) expire_sessions();
    });
}

void hub::restore_sessions(thing_entry& t) {
    auto* store = journal_.store();
    if (store == nullptr) return;
    const auto& name = t.pipe->settings().name;
    auto loaded = store->load_sessions();
    for (const auto& p : loaded.problems)
        spdlog::warn("spool {}: {}", logging::escaped(spool_->path().string()), logging::escaped(p));
    if (!loaded.error.empty())
        spdlog::error("spool {}: {}", logging::escaped(spool_->path().string()), logging::escaped(loaded.error));
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    std::size_t restored[2] = {0, 0};  // MQTT, IPC
    std::size_t messages = 0;
    for (auto& r : loaded.sessions) {
        if (r.thing != name) continue;
        const bool mqtt = r.kind == "mqtt";
        const std::string who = std::string("stored ") + (mqtt ? "MQTT session '" : "IPC session '") + r.client_id +
                                "' (uid " + std::to_string(r.uid) + ")";
        const auto left = session_storage::seconds_left(r, now);
        if (left <= 0) {
            spdlog::info("{} of Thing {} expired while thingmuxd was not running; removed", logging::escaped(who),
                         name);
            journal_.remove_session(r.id);
            continue;
        }
        auto peer = session_storage::peer_of(r);
        auto rights = config::grants_for(*config_, peer.identity(), name);
        if (rights.rules.empty()) {
            spdlog::warn("{} of Thing {} removed: no rule under apps: applies to its owner any more",
                         logging::escaped(who), name);
            journal_.remove_session(r.id);
            continue;
        }
        auto shared = grants_.share(std::move(rights));
        const auto back = mqtt ? restore_mqtt_session(t, r, std::move(peer), std::move(shared), now, left)
                               : restore_ipc_session(t, r, std::move(peer), std::move(shared), now, left);
        if (!back) continue;  // already here (a Thing added again by a reload)
        ++restored[mqtt ? 0 : 1];
        messages += *back;
    }
    if (restored[0] + restored[1] == 0) return;
    spdlog::info("thing {}: {} stored session(s) restored ({} MQTT, {} IPC) with {} message(s) waiting", name,
                 restored[0] + restored[1], restored[0], restored[1], messages);
    expire_sessions();
}

std::optional<std::size_t> hub::restore_mqtt_session(thing_entry& t, const spool::session_record& r,
                                                     peer_credentials peer, config::shared_grants rights, std::int64_t now,
                                                     std::int64_t left) {
    auto session = make_again<mqtt_session>(
        mqtt_sessions_, mqtt_session_key{static_cast<uid_t>(r.uid), r.mqtt_user, r.client_id}, client_id{next_client_},
        r, std::move(peer), std::move(rights), config_->mqtt.sessions.queue);
    if (!session) return std::nullopt;
    ++next_client_;
    auto back = session_storage::restore(journal_, session->state(), r, now, left, spool_->path().string());
    if (back.will) session->restore_will(std::move(*back.will));
    std::vector<mqtt::subscription> subscriptions;
    for (const auto& f : r.subscriptions)
        subscriptions.push_back({.filter = f.filter,
                                 .max_qos = static_cast<mqtt::qos>(f.max_qos),
                                 .no_local = (f.options & 0x04) != 0,
                                 .retain_as_published = (f.options & 0x08) != 0,
                                 .retain_handling = static_cast<std::uint8_t>((f.options >> 4) & 0x03)});
    t.pipe->attach(session);
    subscribe_mqtt(session, mqtt_session::no_request, std::move(subscriptions));
    return back.messages;
}

std::optional<std::size_t> hub::restore_ipc_session(thing_entry& t, const spool::session_record& r,
                                                    peer_credentials peer, config::shared_grants rights, std::int64_t now,
                                                    std::int64_t left) {
    auto session = make_again<ipc_session>(
        ipc_sessions_, ipc_session_key{static_cast<uid_t>(r.uid), r.thing, r.client_id}, client_id{next_client_}, r,
        std::move(peer), std::move(rights), config_->ipc.sessions.queue);
    if (!session) return std::nullopt;
    ++next_client_;
    auto back = session_storage::restore(journal_, session->state(), r, now, left, spool_->path().string());
    if (back.will) session->state().forget_row(back.will->id);  // an IPC session has no will
    std::vector<ipc::subscription> filters;
    for (const auto& f : r.subscriptions) filters.push_back({f.filter, f.max_qos});
    t.pipe->attach(session);
    if (!filters.empty()) t.pipe->subscribe(session, ipc_session::no_request, std::move(filters));
    return back.messages;
}

}  // namespace thingmux::hub
