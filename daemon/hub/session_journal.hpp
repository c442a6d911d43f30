// The hub's writer of local sessions to the spool's file (spool/sessions.hpp): every write joins
// one batch, committed once at the end of the event loop's turn; whatever must wait for the
// commit (telling the broker an inbound message is safe) runs after it. Without a spool (none
// configured, or it failed to open), nothing is written and nothing waits: sessions then outlive
// their connections in memory only.
//
// A failed write or commit is logged (rate-limited) and the session goes on in memory: the
// message is still delivered, it just would not survive a crash of the daemon.
#pragma once

#include "daemon/logging.hpp"
#include "daemon/spool/sessions.hpp"

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::hub {

class session_journal {
public:
    session_journal(boost::asio::io_context& io, spool::session_store* store) : io_(io), store_(store) {}
    session_journal(const session_journal&) = delete;
    session_journal& operator=(const session_journal&) = delete;

    [[nodiscard]] bool enabled() const noexcept { return store_ != nullptr; }

    // Each returns what the store returns (0 / false on failure, logged). No-ops when disabled.
    [[nodiscard]] bool save(spool::session_record& r);
    void set_subscriptions(std::int64_t session, const std::vector<spool::format::subscription>& s);
    void set_ended(std::int64_t session, std::optional<std::int64_t> ended_at, std::uint32_t expiry);
    void remove_session(std::int64_t session);
    [[nodiscard]] std::int64_t add_message(std::int64_t session, const spool::session_message& m);
    void remove_message(std::int64_t id);

    // Runs `then` once what was written so far is committed: now when nothing waits.
    void after_commit(std::function<void()> then);
    // Whether after_commit() would wait: writes are not committed yet, or others wait.
    [[nodiscard]] bool holding() const noexcept {
        return store_ != nullptr && (store_->pending() || !waiting_.empty());
    }
    // Commits now (shutdown, tests); runs what waited.
    void commit();

    [[nodiscard]] spool::session_store* store() const noexcept { return store_; }

private:
    void failed(const std::string& error);
    void schedule();

    boost::asio::io_context& io_;
    spool::session_store* store_;
    bool scheduled_ = false;
    std::vector<std::function<void()>> waiting_;
    logging::rate_limiter errors_{1, std::chrono::seconds(10)};
};

}  // namespace thingmux::hub
