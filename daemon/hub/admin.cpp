// Management over the IPC socket (docs/ipc-protocol.md section 9): list_clients and reload for
// tools without the system bus. One definition of who sees which clients serves D-Bus
// ListClients too, and a reload runs the very function D-Bus Reload and SIGHUP run.
#include "daemon/hub/hub.hpp"
#include "daemon/logging.hpp"
#include "ipc/admin_clients.hpp"
#include "common/printable.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace thingmux::hub {

namespace asio = boost::asio;

namespace {

// IPC-49: one reload per second per connection; the daemon re-reads every file of the
// configuration each time.
constexpr auto reload_interval = std::chrono::seconds(1);

ipc::client_entry entry_of(const client_status& c) {
    return {.id = c.id,
            .pid = static_cast<std::uint32_t>(c.peer.pid),
            .uid = c.peer.uid,
            .user = c.peer.user,
            .unit = c.peer.unit,
            .app_name = c.app_name,
            .thing = c.thing,
            .subscriptions = c.subscriptions,
            .queued_bytes = c.queued_bytes,
            .messages_in = c.messages_in,
            .messages_out = c.messages_out};
}

// The match of a rule for this peer, for the message that says which grant to add.
std::string suggested_match(const peer_credentials& p) {
    if (!p.unit.empty()) return "{unit: " + p.unit + "}";
    if (!p.user.empty()) return "{user: " + p.user + "}";
    return "{uid: " + std::to_string(p.uid) + "}";
}

}  // namespace

bool hub::is_admin(const peer_credentials& p) const { return config::is_admin(*config_, p.identity()); }

std::vector<client_status> hub::clients_visible_to(const peer_credentials& viewer) const {
    auto all = clients();
    if (is_admin(viewer)) return all;
    // Clients show their pid, user, unit and topics: anyone else sees those of its own uid only.
    std::erase_if(all, [&](const client_status& c) { return c.peer.uid != viewer.uid; });
    return all;
}

void hub::handle(local_client& c, ipc::admin&& m) {
    const auto answer = [&c, id = m.request_id](ipc::result outcome, std::string body = {}, bool truncated = false) {
        c.send(ipc::admin_result{.request_id = id, .outcome = std::move(outcome), .body = std::move(body), .truncated = truncated});
    };
    switch (m.command) {
    case ipc::admin_command::list_clients: {
        const auto visible = clients_visible_to(c.peer());
        std::vector<ipc::client_entry> entries;
        entries.reserve(visible.size());
        for (const auto& v : visible) entries.push_back(entry_of(v));
        // IPC-51: the answer must fit the client's queue as well as the frame.
        const auto budget = std::min(ipc::max_admin_body, limits_.max_queue_bytes / 2);
        auto j = ipc::write_clients_json(entries, budget);
        if (j.listed == entries.size()) return answer({}, std::move(j.text));
        return answer({.code = ipc::errc::ok,
                       .mqtt_reason_code = 0,
                       .message = std::to_string(j.listed) + " of " + std::to_string(entries.size()) +
                                  " clients listed: the others do not fit in " + std::to_string(budget) + " bytes"},
                      std::move(j.text), true);
    }
    case ipc::admin_command::reload: {
        if (!is_admin(c.peer())) {
            if (const auto suffix = admin_refusal_log_.admit())
                spdlog::warn("client {} ({}): reload refused: not an administrator{}", c.id().value,
                             logging::escaped(c.peer().describe()), *suffix);
            return answer({.code = ipc::errc::not_authorized,
                           .mqtt_reason_code = 0,
                           .message = "reloading needs an administrator: add admin: true to a rule under apps: that "
                                      "matches " + c.peer().describe() + " (e.g. match: " + suggested_match(c.peer()) +
                                      "), or ask root; then reload"});
        }
        const auto now = std::chrono::steady_clock::now();
        if (c.last_reload && now - *c.last_reload < reload_interval) {
            if (const auto suffix = admin_refusal_log_.admit())
                spdlog::warn("client {} ({}): reload refused: more than one per second{}", c.id().value,
                             logging::escaped(c.peer().describe()), *suffix);
            const auto wait = std::chrono::ceil<std::chrono::milliseconds>(reload_interval - (now - *c.last_reload));
            return answer({.code = ipc::errc::rate_limited,
                           .mqtt_reason_code = 0,
                           .message = "at most one reload per second per connection; try again in " +
                                      std::to_string(wait.count()) + " ms"});
        }
        c.last_reload = now;
        spdlog::info("client {} ({}) asks for a reload over IPC", c.id().value, logging::escaped(c.peer().describe()));
        // Out of the client's read path: a reload may close clients (a Thing removed).
        asio::post(io_, [this, weak = std::weak_ptr<local_client>(c.shared_from_this()), id = m.request_id] {
            auto problems = reload_ ? reload_() : std::string("reloading is not available");
            const auto client = weak.lock();
            if (!client || !client->open()) return;
            ipc::result outcome;
            if (!problems.empty()) {
                outcome = {.code = ipc::errc::invalid_configuration,
                           .mqtt_reason_code = 0,
                           .message = "the configuration file has problems; the one in force stays"};
                // IPC-51: bounded like every body (the problems of a huge file).
                if (problems.size() > ipc::max_admin_body) problems.resize(ipc::max_admin_body);
                if (!ipc::valid_utf8(problems)) problems = text::printable(problems, ipc::max_admin_body / 4);
            }
            client->send(ipc::admin_result{.request_id = id, .outcome = std::move(outcome), .body = std::move(problems), .truncated = false});
        });
        return;
    }
    }
    answer({.code = ipc::errc::protocol_violation,
            .mqtt_reason_code = 0,
            .message = "unknown management command " + std::to_string(static_cast<unsigned>(m.command)) +
                       "; this thingmuxd knows 1 (list_clients) and 2 (reload)"});
}

}  // namespace thingmux::hub
