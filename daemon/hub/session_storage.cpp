#include "daemon/hub/session_storage.hpp"

#include "daemon/logging.hpp"
#include "daemon/thing/outcome.hpp"
#include "daemon/thing/spool_message.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace thingmux::hub::session_storage {

void keep(session_journal& journal, session_state& s, const owner& o, std::chrono::seconds expiry) {
    if (!journal.enabled()) return;
    if (expiry.count() <= 0) {
        journal.remove_session(s.row());
        s.unstore();
        return;
    }
    const auto seconds = static_cast<std::uint32_t>(expiry.count());
    if (s.stored()) return journal.set_ended(s.row(), std::nullopt, seconds);
    const auto& p = o.peer;
    spool::session_record r{.thing = o.thing,
                            .kind = o.kind,
                            .client_id = o.name,
                            .uid = p.uid,
                            .gid = p.gid,
                            .groups = {p.groups.begin(), p.groups.end()},
                            .user = p.user,
                            .group_names = p.group_names,
                            .unit = p.unit,
                            .mqtt_user = p.mqtt_user,
                            .expiry = seconds,
                            .ended_at = std::nullopt,
                            .subscriptions = s.subscriptions()};
    if (!journal.save(r)) return;
    s.store_in(journal, r.id);
    s.store_held();
}

peer_credentials peer_of(const spool::session_record& r) {
    peer_credentials peer;
    peer.pid = 0;
    peer.uid = r.uid;
    peer.gid = r.gid;
    peer.groups.assign(r.groups.begin(), r.groups.end());
    peer.user = r.user;
    peer.group_names = r.group_names;
    peer.unit = r.unit;
    peer.unit_withheld = "restored from the spool";
    peer.mqtt_user = r.mqtt_user;
    return peer;
}

std::int64_t seconds_left(const spool::session_record& r, std::int64_t now) {
    // An end time in the future (a clock set back, or a damaged row) never gives more than the
    // expiry itself, and never overflows the clock it is added to.
    const auto ended = std::min(r.ended_at.value_or(now), now);
    return ended + static_cast<std::int64_t>(r.expiry) - now;
}

restored restore(session_journal& journal, session_state& s, const spool::session_record& r, std::int64_t now,
                 std::int64_t left, const std::string& spool_path) {
    s.expires = std::chrono::steady_clock::now() + std::chrono::seconds{left};
    s.expiry = std::chrono::seconds{r.expiry};
    auto held = journal.store()->load_messages(r.id);
    for (const auto& p : held.problems) spdlog::warn("spool {}: {}", logging::escaped(spool_path), logging::escaped(p));
    restored out;
    for (auto& m : held.messages) {
        if (m.will_due) {
            out.will = std::move(m);
            continue;
        }
        s.restore(thing::to_mqtt(thing::from_spool_message(std::move(m.message))), m.id, std::move(m.share));
        ++out.messages;
    }
    s.store_in(journal, r.id);
    s.restore(r.subscriptions);
    journal.set_ended(r.id, r.ended_at.value_or(now), r.expiry);
    return out;
}

}  // namespace thingmux::hub::session_storage
