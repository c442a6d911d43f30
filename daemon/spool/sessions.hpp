// Local sessions that outlive their connections, and the QoS 1 messages waiting for them, kept
// in the spool's file (tables local_session and local_message, format.hpp) so that neither a
// restart of the app nor one of the daemon loses a message the broker was told was delivered.
//
// Writes are batched: the first write opens a transaction and every write joins it until
// commit(), which the daemon runs once per turn of its event loop; the broker is told a message
// was received only after the commit that stored it (one disk sync for every message that
// arrived in one read). The spool's own appends commit the open batch with them (store::append).
//
// Pure: only the standard library and SQLite; nothing logs. Single-threaded, like the store
// that owns it (store::sessions()).
#pragma once

#include "daemon/spool/format.hpp"
#include "daemon/spool/message.hpp"
#include "daemon/spool/sqlite.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace thingmux::spool {

// One transaction that several writes join; shared by the store and its session store.
class batch {
public:
    explicit batch(sqlite3* db) noexcept : db_{db} {}
    // Opens the transaction unless it is open. SQLite's result code.
    [[nodiscard]] int join();
    // Commits the open transaction (none: SQLITE_OK). On failure it is rolled back: every write
    // since join() is lost, and the result code says so.
    [[nodiscard]] int commit();
    [[nodiscard]] bool open() const noexcept { return open_; }

private:
    sqlite3* db_;
    bool open_ = false;
};

// A local session as stored: who owns it (enough to apply the app rules again after a restart),
// how long it is kept, and what it subscribed to.
struct session_record {
    std::int64_t id = 0;  // row id, set by save()
    std::string thing;
    std::string kind = "mqtt";
    std::string client_id;  // MQTT: the client id; IPC: the session name (IPC-43)
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::vector<std::uint32_t> groups;
    std::string user;
    std::vector<std::string> group_names;
    std::string unit;
    std::string mqtt_user;
    std::uint32_t expiry = 0;               // seconds kept after the connection ends
    std::optional<std::int64_t> ended_at;   // Unix time; nullopt while a connection is open
    std::vector<format::subscription> subscriptions;
};

// A message waiting for a session, or its delayed will.
struct session_message {
    std::int64_t id = 0;
    spool::message message;
    std::string share;                     // the shared subscription it came for; empty: a plain one
    std::optional<std::int64_t> will_due;  // a delayed will, due at this Unix time
};

class session_store {
public:
    session_store(sqlite3* db, spool::batch& batch);

    // Each write joins the batch; false, with `error` set, when SQLite failed (then the batch
    // is rolled back by the next commit).
    // Inserts the session, or replaces the one with the same kind, uid, MQTT user, Thing and
    // client id (its messages go with it); sets r.id.
    [[nodiscard]] bool save(session_record& r, std::string& error);
    [[nodiscard]] bool set_subscriptions(std::int64_t session, const std::vector<format::subscription>& s, std::string& error);
    // The session's connection ended at `ended_at` (Unix time), or one is open again (nullopt).
    [[nodiscard]] bool set_ended(std::int64_t session, std::optional<std::int64_t> ended_at, std::uint32_t expiry,
                                 std::string& error);
    [[nodiscard]] bool remove_session(std::int64_t session, std::string& error);
    // Returns the message's id, 0 on failure. `m.share` and `m.will_due` are stored with it;
    // `m.id` is not read.
    [[nodiscard]] std::int64_t add_message(std::int64_t session, const session_message& m, std::string& error);
    [[nodiscard]] bool remove_message(std::int64_t id, std::string& error);

    struct loaded_sessions {
        std::vector<session_record> sessions;
        std::vector<std::string> problems;  // rows that could not be read (and were deleted)
        std::string error;                  // SQLite failed; what was read is in sessions
    };
    // Every stored session, oldest first.
    [[nodiscard]] loaded_sessions load_sessions();
    struct loaded_messages {
        std::vector<session_message> messages;
        std::vector<std::string> problems;
        std::string error;
    };
    // The messages of one session, oldest first.
    [[nodiscard]] loaded_messages load_messages(std::int64_t session);

    // Commits the batch. False, with `error`, when the commit failed (its writes are lost).
    [[nodiscard]] bool commit(std::string& error);
    [[nodiscard]] bool pending() const noexcept { return batch_.open(); }

private:
    [[nodiscard]] bool run(statement& stmt, const char* what, std::string& error);
    [[nodiscard]] std::string reason(const char* what) const;

    sqlite3* db_;
    spool::batch& batch_;
    statement save_;
    statement set_subscriptions_;
    statement set_ended_;
    statement remove_session_;
    statement add_message_;
    statement remove_message_;
};

}  // namespace thingmux::spool
