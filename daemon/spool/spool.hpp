// The durable spool: outbound QoS 1 publishes the daemon accepted while it could not send them
// (Thing offline), kept in SQLite so that a crash, `kill -9` or power cut loses none of them.
//
// One table holds every Thing's messages; the autoincrement id gives the global order of
// acceptance and is the handle the daemon keeps until the broker acknowledges the message. Each
// message is a spool::message (message.hpp) in columns of the spool's own format (format.hpp),
// versioned apart from the IPC protocol and the MQTT codec; a file of an older schema is migrated
// when it is opened (migrate_v1.hpp). Each append is its own transaction, committed with
// synchronous=FULL before append() returns, so "accepted" can be reported to the app only once
// the message would survive a power cut.
//
// Pure: only the standard library and SQLite (and the IPC codec, to read schema 1 files);
// nothing logs. Events worth a log line (a corrupt file moved aside, a migration) are returned
// as text for the daemon to log. Single-threaded like the daemon: one store per file, used from
// one thread.
#pragma once

#include "daemon/spool/message.hpp"
#include "daemon/spool/sqlite.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;

namespace thingmux::spool {

class batch;
class session_store;

// Bounds of the whole spool (all Things together), since it is one file on one disk. nullopt
// lifts a bound.
struct limits {
    std::optional<std::uint64_t> max_bytes;     // sum of the callers' byte counts
    std::optional<std::uint64_t> max_messages;  // rows
};

enum class failure : std::uint8_t {
    none,
    full,  // a limit would be exceeded; nothing was stored
    io,    // SQLite failed (disk full, I/O error); nothing was stored
};

// One spooled message as loaded back.
struct stored {
    std::int64_t id = 0;
    std::string thing;
    spool::message message;
    std::uint64_t bytes = 0;
};

class store {
public:
    struct append_result {
        failure error = failure::none;
        std::int64_t id = 0;  // valid when error == failure::none
        std::string message;  // why, when error != failure::none
    };
    struct load_result {
        std::vector<stored> rows;
        // Empty on success; rows may then be incomplete. Also says which messages were found
        // unreadable and moved to the quarantine table (they are not in rows).
        std::string error;
    };

    // Opens or creates the spool at `path` (WAL, synchronous=FULL, a busy timeout). A file of
    // schema 1 (thingmux 0.1.0) is converted to the current schema in one transaction, with a
    // line in `notices` saying so and one per message that could not be read (those are kept in
    // the quarantine table, not sent); if the conversion fails, the file stays as it was. A file
    // that is not a usable spool (not SQLite, corrupt, an unknown schema such as a later
    // release's) is renamed to
    // "<path>.corrupt-<UTC YYYYmmddTHHMMSSZ>" together with its -wal/-shm files and a fresh spool
    // is created in its place, with one line per such event appended to `notices`: the daemon
    // must never refuse to start because of its spool. Returns nullptr, with `error` naming the
    // path and the reason, only when no spool can be opened at all: the directory is missing or
    // not writable, the disk is full or failing, or another process holds the file locked.
    [[nodiscard]] static std::unique_ptr<store> open(const std::filesystem::path& path, limits l,
                                                     std::vector<std::string>& notices, std::string& error);

    store(const store&) = delete;
    store& operator=(const store&) = delete;
    store(store&&) = delete;
    store& operator=(store&&) = delete;
    ~store();

    // Appends one message of `thing`, durably: committed to disk before it returns. `bytes` is
    // what counts against max_bytes (the caller decides, e.g. topic + payload). Refuses with
    // failure::full when a limit would be exceeded, or failure::io with SQLite's reason; nothing
    // is stored then. Never throws.
    [[nodiscard]] append_result append(std::string_view thing, const message& m, std::uint64_t bytes);

    // Deletes a message once the broker acknowledged it. An unknown id is not an error (the
    // message is gone either way). False, with `error` set, on an I/O failure.
    [[nodiscard]] bool remove(std::int64_t id, std::string& error);

    // Oldest first: at most `max` messages of `thing` with an id greater than `after`. Page
    // through a backlog by passing the last id of the previous page. A row whose columns break
    // the format (a file edited by hand) is moved to the quarantine table and named in `error`.
    [[nodiscard]] load_result load(std::string_view thing, std::int64_t after, std::size_t max);

    // Usage, kept in memory so that checks on the hot path cost no query.
    [[nodiscard]] std::uint64_t count(std::string_view thing) const;  // messages of `thing`
    [[nodiscard]] std::uint64_t bytes(std::string_view thing) const;  // their byte counts summed
    [[nodiscard]] std::uint64_t total_count() const noexcept { return total_.count; }
    [[nodiscard]] std::uint64_t total_bytes() const noexcept { return total_.bytes; }
    // Things that have spooled messages, in name order (e.g. a Thing dropped from the config).
    [[nodiscard]] std::vector<std::string> things() const;

    // New limits (configuration reload). Messages already stored stay even when they now exceed
    // the limits; appends are refused until enough of them are removed.
    void set_limits(limits l) noexcept { limits_ = l; }
    [[nodiscard]] const limits& current_limits() const noexcept { return limits_; }

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

    // The local sessions kept in the same file (sessions.hpp).
    [[nodiscard]] session_store& sessions() noexcept { return *sessions_; }

private:
    struct usage {
        std::uint64_t count = 0;
        std::uint64_t bytes = 0;
    };
    struct db_closer {
        void operator()(sqlite3* db) const noexcept;
    };
    using db_ptr = std::unique_ptr<sqlite3, db_closer>;

    store(std::filesystem::path path, limits l, db_ptr db);
    friend struct opener;  // spool.cpp: opens, checks and, if need be, replaces the file

    [[nodiscard]] std::string describe_error(std::string_view what) const;
    [[nodiscard]] std::string check_limits(std::uint64_t bytes) const;
    // Moves an unreadable row (loaded without its message) to the quarantine table; says so.
    [[nodiscard]] std::string quarantine(const stored& row, const std::string& why);
    void add_usage(std::string_view thing, std::uint64_t bytes);
    void subtract_usage(std::string_view thing, std::uint64_t bytes);

    std::filesystem::path path_;
    limits limits_;
    // Declared before the statements so that they are finalized before the connection closes.
    db_ptr db_;
    statement insert_;
    statement delete_;
    statement select_;
    std::unique_ptr<batch> batch_;
    std::unique_ptr<session_store> sessions_;
    std::map<std::string, usage, std::less<>> by_thing_;
    usage total_;
};

}  // namespace thingmux::spool
