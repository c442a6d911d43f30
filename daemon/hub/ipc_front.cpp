// The hub's IPC sessions (docs/ipc-protocol.md section 8, ipc_session.hpp): opened, resumed and
// taken over by version 2 hellos, kept after their connection for the expiry granted (at most
// ipc.session_expiry, while fewer than ipc.max_sessions are kept), stored in the spool's file
// when there is one, and ended when their expiry passes without a connection.
#include "daemon/hub/hub.hpp"
#include "daemon/hub/session_storage.hpp"
#include "daemon/hub/thing_entry.hpp"
#include "daemon/logging.hpp"

#include <spdlog/spdlog.h>

#include <ctime>

namespace thingmux::hub {

hub::session_granted hub::open_ipc_session(local_client& c, const ipc::hello& m, thing_entry& t,
                                           config::shared_grants rights) {
    const auto& name = t.pipe->settings().name;
    const ipc_session_key key{c.peer().uid, name, m.session_name};
    std::shared_ptr<ipc_session> session;
    if (auto it = ipc_sessions_.find(key); it != ipc_sessions_.end()) session = it->second;
    const bool present = session != nullptr;
    if (present) {
        if (auto old = session->connection(); old && old.get() != &c) {
            // IPC-43: the new connection takes the session over; the old one is told why.
            spdlog::info("client {} takes over session '{}' of uid {} from client {}", c.id().value,
                         logging::escaped(m.session_name), c.peer().uid, old->id().value);
            session->unbind(*old);
            old->session.reset();
            old->close_with_error(ipc::errc::session_taken_over, "client " + std::to_string(c.id().value) +
                                                                     " resumed session '" + m.session_name + "'");
        }
        session->set_rights(std::move(rights));
    } else {
        session = std::make_shared<ipc_session>(client_id{next_client_++}, name, m.session_name,
                                                std::make_shared<const peer_credentials>(c.peer()), std::move(rights),
                                                config_->ipc.sessions.queue);
        ipc_sessions_[key] = session;
        t.pipe->attach(session);
    }
    const auto granted = grant_expiry(
        std::chrono::seconds{m.session_expiry}, present && session->state().expiry.count() > 0,
        kept(ipc_sessions_, c.peer()), config_->ipc.sessions,
        "client " + std::to_string(c.id().value) + " ('" + m.app_name + "', " + c.peer().describe() + ")", "ipc");
    keep_session(session->state(), *t.pipe, session->flow(), {name, "ipc", session->name(), session->peer()}, granted);
    c.session = session;
    return {present, granted};
}

void hub::release_ipc_session(local_client& c) {
    auto session = std::exchange(c.session, nullptr);
    if (!session) return;
    session->unbind(c);
    const auto it = ipc_sessions_.find({session->peer().uid, session->thing(), session->name()});
    const bool registered = it != ipc_sessions_.end() && it->second == session;
    const auto expiry = session->state().expiry;
    if (registered && expiry.count() > 0 && !shutting_down_) {
        session->state().expires = std::chrono::steady_clock::now() + expiry;
        journal_.set_ended(session->state().row(), std::time(nullptr), static_cast<std::uint32_t>(expiry.count()));
        spdlog::info("{} is kept for {} s{}", logging::escaped(session->describe()), expiry.count(),
                     session->state().stored() ? ", also across restarts" : "");
        return expire_sessions();
    }
    if (shutting_down_ && session->state().stored()) {
        // Kept in the spool's file for the next start of thingmuxd, subscriptions included: not
        // detached, so that its filters stay subscribed upstream and what arrives is kept too.
        journal_.set_ended(session->state().row(), std::time(nullptr), static_cast<std::uint32_t>(expiry.count()));
        return;
    }
    if (registered) ipc_sessions_.erase(it);
    end_ipc_session(session, "its connection ended and it was not to be kept");
}

void hub::end_ipc_session(const std::shared_ptr<ipc_session>& s, const char* why) {
    journal_.remove_session(s->state().row());
    s->state().unstore();
    thing::pipeline::detached gone;
    if (auto* t = thing_named(s->thing())) gone = t->pipe->detach(s->flow());
    spdlog::info("{} ended: {}; {} upstream filter(s) released, {} waiting message(s) dropped",
                 logging::escaped(s->describe()), why, gone.released, s->state().waiting());
}

// IPC-44. A version 1 connection cannot send one (its decoder refuses the type).
void hub::handle(local_client& c, ipc::ack&& m) {
    if (!c.session) {
        return c.close_with_error(ipc::errc::protocol_violation, "ack of delivery " + std::to_string(m.delivery_id) +
                                                                     " on a connection without a session");
    }
    if (!c.session->acknowledged(m.delivery_id)) {
        c.close_with_error(ipc::errc::protocol_violation,
                           "ack of delivery " + std::to_string(m.delivery_id) + ", which awaits no acknowledgement");
    }
}

}  // namespace thingmux::hub
