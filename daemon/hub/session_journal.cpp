#include "daemon/hub/session_journal.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include <utility>

namespace thingmux::hub {

void session_journal::failed(const std::string& error) {
    if (auto note = errors_.admit())
        spdlog::error("local sessions: {}; they go on in memory (what they hold would not survive a restart of "
                      "thingmuxd){}",
                      logging::escaped(error), *note);
}

void session_journal::schedule() {
    if (scheduled_ || !holding()) return;
    scheduled_ = true;
    // After everything already queued on the loop: one commit for what this turn wrote.
    boost::asio::post(io_, [this] {
        scheduled_ = false;
        commit();
    });
}

bool session_journal::save(spool::session_record& r) {
    if (store_ == nullptr) return false;
    std::string error;
    const bool ok = store_->save(r, error);
    if (!ok) failed(error);
    schedule();
    return ok;
}

void session_journal::set_subscriptions(std::int64_t session, const std::vector<spool::format::subscription>& s) {
    std::string error;
    if (store_ == nullptr || session == 0) return;
    if (!store_->set_subscriptions(session, s, error)) failed(error);
    schedule();
}

void session_journal::set_ended(std::int64_t session, std::optional<std::int64_t> ended_at, std::uint32_t expiry) {
    std::string error;
    if (store_ == nullptr || session == 0) return;
    if (!store_->set_ended(session, ended_at, expiry, error)) failed(error);
    schedule();
}

void session_journal::remove_session(std::int64_t session) {
    std::string error;
    if (store_ == nullptr || session == 0) return;
    if (!store_->remove_session(session, error)) failed(error);
    schedule();
}

std::int64_t session_journal::add_message(std::int64_t session, const spool::session_message& m) {
    std::string error;
    if (store_ == nullptr || session == 0) return 0;
    const auto id = store_->add_message(session, m, error);
    if (id == 0) failed(error);
    schedule();
    return id;
}

void session_journal::remove_message(std::int64_t id) {
    std::string error;
    if (store_ == nullptr || id == 0) return;
    if (!store_->remove_message(id, error)) failed(error);
    schedule();
}

void session_journal::after_commit(std::function<void()> then) {
    // In order: the broker expects acknowledgements in the order its messages came.
    if (!holding()) return then();
    waiting_.push_back(std::move(then));
    schedule();
}

void session_journal::commit() {
    if (store_ != nullptr) {
        std::string error;
        if (!store_->commit(error)) failed(error);
    }
    // Also after a failed commit: what waited cannot be helped by waiting longer.
    for (auto& then : std::exchange(waiting_, {})) then();
}

}  // namespace thingmux::hub
