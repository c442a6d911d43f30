#include "daemon/spool/spool.hpp"

#include <sqlite3.h>

#include <array>
#include <chrono>
#include <ctime>
#include <limits>
#include <system_error>
#include <utility>

namespace thingmux::spool {

namespace {

// Marks the file as ours, so that another SQLite database put at the path (or restored from the
// wrong backup) is moved aside instead of being mistaken for an empty spool. "Thmx".
constexpr int application_id = 0x54686d78;
constexpr int schema_version = 1;

// How long a statement waits for a lock held by another process (an admin's `sqlite3` shell)
// before it fails. Short, because the daemon's single thread is blocked meanwhile.
constexpr int busy_timeout_ms = 1000;

// A checkpoint resets the WAL but leaves the file at its largest size; this caps what a burst of
// large messages leaves behind.
constexpr int journal_size_limit = 4 * 1024 * 1024;

// AUTOINCREMENT: an id is never reused, even after the newest message was removed. The daemon holds
// ids until the broker acknowledges them, and a late remove() must never hit a newer message.
// The index serves load()'s "this Thing, after this id, oldest first" without a sort.
constexpr const char* schema_sql =
    "CREATE TABLE spool ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " thing TEXT NOT NULL,"
    " message BLOB NOT NULL,"
    " bytes INTEGER NOT NULL CHECK (bytes >= 0));"
    "CREATE INDEX spool_by_thing ON spool (thing, id);";

// The largest value an INTEGER column holds, as the unsigned type the interface counts in.
constexpr std::uint64_t int64_max = static_cast<std::uint64_t>(std::numeric_limits<sqlite3_int64>::max());

// What to do about a file that failed to open as a spool.
enum class verdict : std::uint8_t {
    usable,
    replace,  // the file is at fault (not SQLite, corrupt, not ours, unwritable): move it aside
    give_up,  // the environment is (no directory, disk full or failing, locked): a new file won't help
};

verdict verdict_for(int rc) {
    switch (rc & 0xff) {  // the primary code of an extended one
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
        case SQLITE_NOMEM:
        case SQLITE_FULL:
        case SQLITE_IOERR:
        case SQLITE_INTERRUPT:
            return verdict::give_up;
        default:
            return verdict::replace;
    }
}

std::string utc_timestamp() {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::array<char, 32> text{};
    const std::size_t n = std::strftime(text.data(), text.size(), "%Y%m%dT%H%M%SZ", &tm);
    return {text.data(), n};
}

std::filesystem::path with_suffix(const std::filesystem::path& p, std::string_view suffix) {
    std::filesystem::path out = p;
    out += suffix;
    return out;
}

// The files SQLite keeps next to the database; they belong to it and move with it. A WAL left
// next to a fresh database would be replayed into it.
constexpr std::array<std::string_view, 3> companion_suffixes = {"-wal", "-shm", "-journal"};

// SQLite's message, plus the OS's when a system call failed: "unable to open database file" is
// clearer with "(Not a directory)", "disk I/O error" with "(File too large)".
std::string sqlite_reason(sqlite3* db, int rc) {
    if (db == nullptr) return sqlite3_errstr(rc);
    std::string out = sqlite3_errmsg(db);
    if (const int os_error = sqlite3_system_errno(db); os_error != 0) {
        out += " (" + std::error_code{os_error, std::generic_category()}.message() + ")";
    }
    return out;
}

bool present(const std::filesystem::path& p) {
    std::error_code ec;
    return std::filesystem::symlink_status(p, ec).type() != std::filesystem::file_type::not_found && !ec;
}

}  // namespace

void store::db_closer::operator()(sqlite3* db) const noexcept {
    sqlite3_close_v2(db);
}

void store::stmt_finalizer::operator()(sqlite3_stmt* stmt) const noexcept {
    sqlite3_finalize(stmt);
}

// Opening is a sequence of checks, each of which may find the file unusable; this keeps them out
// of the public class.
struct opener {
    struct attempt {
        verdict outcome = verdict::usable;
        std::unique_ptr<store> opened;
        std::string reason;  // when not usable
    };

    static attempt fail(verdict v, std::string reason) { return {v, nullptr, std::move(reason)}; }

    static attempt fail(verdict v, sqlite3* db, int rc, std::string_view what) {
        std::string reason{what};
        reason += ": ";
        reason += sqlite_reason(db, rc);
        return fail(v, std::move(reason));
    }

    // Runs a statement that returns at most one interesting value in its first row.
    static int query_int(sqlite3* db, const char* sql, sqlite3_int64& out) {
        sqlite3_stmt* raw = nullptr;
        int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
        const store::stmt_ptr stmt{raw};
        if (rc != SQLITE_OK) return rc;
        rc = sqlite3_step(stmt.get());
        if (rc == SQLITE_ROW) {
            out = sqlite3_column_int64(stmt.get(), 0);
            return SQLITE_OK;
        }
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    static int query_text(sqlite3* db, const char* sql, std::string& out) {
        sqlite3_stmt* raw = nullptr;
        int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
        const store::stmt_ptr stmt{raw};
        if (rc != SQLITE_OK) return rc;
        rc = sqlite3_step(stmt.get());
        if (rc == SQLITE_ROW) {
            const auto* text = sqlite3_column_text(stmt.get(), 0);
            out.assign(text != nullptr ? reinterpret_cast<const char*>(text) : "",
                       static_cast<std::size_t>(sqlite3_column_bytes(stmt.get(), 0)));
            return SQLITE_OK;
        }
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    static int prepare(sqlite3* db, const char* sql, store::stmt_ptr& out) {
        sqlite3_stmt* raw = nullptr;
        // PERSISTENT: these live as long as the store, so SQLite should not take their memory
        // from its short-lived lookaside pool.
        const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
        out.reset(raw);
        return rc;
    }

    static attempt try_open(const std::filesystem::path& path, limits l) {
        // Whether there was a file before: a failure to create one is never the file's fault.
        const bool existed = present(path);
        const auto judge = [existed](int rc) { return existed ? verdict_for(rc) : verdict::give_up; };

        sqlite3* raw = nullptr;
        // NOMUTEX: the daemon uses the store from its one thread.
        int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
        store::db_ptr db{raw};
        if (rc != SQLITE_OK) return fail(judge(rc), raw, rc, "cannot open");
        sqlite3_extended_result_codes(db.get(), 1);
        sqlite3_busy_timeout(db.get(), busy_timeout_ms);
        // Until the file has passed the checks, closing must leave it and its WAL as they were
        // found: the last connection to close would otherwise checkpoint the WAL into a file it
        // may not understand, then delete the WAL, and what is moved aside would lack both.
        sqlite3_db_config(db.get(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, static_cast<int*>(nullptr));
        // SQLite silently opens read-only what it cannot open for writing; a spool that cannot
        // take messages is no spool.
        if (sqlite3_db_readonly(db.get(), "main") == 1) {
            return fail(existed ? verdict::replace : verdict::give_up, "cannot open for writing");
        }

        // The first statements read the header: "file is not a database" shows up here.
        sqlite3_int64 app_id = 0;
        sqlite3_int64 version = 0;
        sqlite3_int64 objects = 0;
        if ((rc = query_int(db.get(), "PRAGMA application_id", app_id)) != SQLITE_OK ||
            (rc = query_int(db.get(), "PRAGMA user_version", version)) != SQLITE_OK ||
            (rc = query_int(db.get(), "SELECT count(*) FROM sqlite_master", objects)) != SQLITE_OK) {
            return fail(judge(rc), db.get(), rc, "cannot read");
        }
        const bool fresh = app_id == 0 && version == 0 && objects == 0;
        if (!fresh) {
            if (app_id != application_id) {
                return fail(verdict::replace, "not a thingmux spool (application_id " + std::to_string(app_id) + ")");
            }
            if (version != schema_version) {
                return fail(verdict::replace, "unknown spool schema version " + std::to_string(version));
            }
            // Cheaper than integrity_check (no index cross-checks) and still reads every page, so a
            // damaged file is found now rather than by a failing append later.
            std::string check;
            if ((rc = query_text(db.get(), "PRAGMA quick_check", check)) != SQLITE_OK) {
                return fail(judge(rc), db.get(), rc, "integrity check failed");
            }
            if (check != "ok") return fail(verdict::replace, "corrupt: " + check);
        }

        // FULL: the WAL is synced at every commit, so a committed append survives a power cut
        // (NORMAL would only guarantee consistency, and lose the last commits).
        std::string mode;
        if ((rc = query_text(db.get(), "PRAGMA journal_mode = WAL", mode)) != SQLITE_OK ||
            (rc = sqlite3_exec(db.get(), "PRAGMA synchronous = FULL", nullptr, nullptr, nullptr)) != SQLITE_OK ||
            (rc = sqlite3_exec(db.get(), ("PRAGMA journal_size_limit = " + std::to_string(journal_size_limit)).c_str(),
                               nullptr, nullptr, nullptr)) != SQLITE_OK) {
            return fail(judge(rc), db.get(), rc, "cannot configure");
        }
        // Another journal mode would still be durable with synchronous=FULL, only slower; WAL is
        // refused only by file systems without shared memory support, which a state directory is not.
        if (mode != "wal") return fail(verdict::give_up, "cannot use WAL (journal_mode is " + mode + ")");

        if (fresh) {
            const std::string create = std::string{"BEGIN IMMEDIATE;"} + schema_sql +
                                       "PRAGMA application_id = " + std::to_string(application_id) +
                                       ";PRAGMA user_version = " + std::to_string(schema_version) + ";COMMIT;";
            if ((rc = sqlite3_exec(db.get(), create.c_str(), nullptr, nullptr, nullptr)) != SQLITE_OK) {
                auto failed = fail(verdict::give_up, db.get(), rc, "cannot create the schema");
                sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
                return failed;
            }
        }

        std::unique_ptr<store> s{new store{path, l, std::move(db)}};
        sqlite3* const conn = s->db_.get();
        // A table of the right name but the wrong columns fails here.
        if ((rc = prepare(conn, "INSERT INTO spool (thing, message, bytes) VALUES (?1, ?2, ?3)", s->insert_)) !=
                SQLITE_OK ||
            (rc = prepare(conn, "DELETE FROM spool WHERE id = ?1 RETURNING thing, bytes", s->delete_)) != SQLITE_OK ||
            (rc =
                 prepare(conn, "SELECT id, message, bytes FROM spool WHERE thing = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                         s->select_)) != SQLITE_OK) {
            return fail(judge(rc), conn, rc, "wrong schema");
        }

        // One scan at open; from here on usage is kept up to date in memory.
        sqlite3_stmt* raw_sum = nullptr;
        rc = sqlite3_prepare_v2(conn, "SELECT thing, count(*), sum(bytes) FROM spool GROUP BY thing", -1, &raw_sum,
                                nullptr);
        const store::stmt_ptr sum{raw_sum};
        if (rc != SQLITE_OK) return fail(judge(rc), conn, rc, "wrong schema");
        while ((rc = sqlite3_step(sum.get())) == SQLITE_ROW) {
            const auto* text = sqlite3_column_text(sum.get(), 0);
            const std::string thing{text != nullptr ? reinterpret_cast<const char*>(text) : "",
                                    static_cast<std::size_t>(sqlite3_column_bytes(sum.get(), 0))};
            const store::usage u{static_cast<std::uint64_t>(sqlite3_column_int64(sum.get(), 1)),
                                 static_cast<std::uint64_t>(sqlite3_column_int64(sum.get(), 2))};
            s->by_thing_[thing] = u;
            s->total_.count += u.count;
            s->total_.bytes += u.bytes;
        }
        if (rc != SQLITE_DONE) return fail(judge(rc), conn, rc, "cannot read");
        // A spool of ours: a clean shutdown may checkpoint and remove the WAL again.
        sqlite3_db_config(conn, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, static_cast<int*>(nullptr));
        return {verdict::usable, std::move(s), {}};
    }

    // Renames the database and its companion files to "<path>.corrupt-<UTC time>[.N]"; returns the
    // new path, or nullopt with `error` set.
    static std::optional<std::filesystem::path> move_aside(const std::filesystem::path& path, std::string& error) {
        const std::filesystem::path base = with_suffix(path, ".corrupt-" + utc_timestamp());
        std::filesystem::path target = base;
        // Twice in one second (a crash loop) must not overwrite the first one kept.
        for (int n = 1; present(target) || present(with_suffix(target, "-wal")); ++n) {
            target = with_suffix(base, "." + std::to_string(n));
        }
        std::error_code ec;
        std::filesystem::rename(path, target, ec);
        if (ec) {
            error = "cannot move " + path.string() + " to " + target.string() + ": " + ec.message();
            return std::nullopt;
        }
        for (const auto suffix : companion_suffixes) {
            const auto from = with_suffix(path, suffix);
            if (!present(from)) continue;
            std::filesystem::rename(from, with_suffix(target, suffix), ec);
            if (ec) {
                error = "cannot move " + from.string() + " to " + with_suffix(target, suffix).string() + ": " +
                        ec.message();
                return std::nullopt;
            }
        }
        return target;
    }
};

std::unique_ptr<store> store::open(const std::filesystem::path& path, limits l, std::vector<std::string>& notices,
                                   std::string& error) {
    auto first = opener::try_open(path, l);
    if (first.outcome == verdict::usable) return std::move(first.opened);
    if (first.outcome == verdict::give_up) {
        error = "spool " + path.string() + ": " + first.reason;
        return nullptr;
    }
    // The connection (if any) is closed by now: nothing holds the file while it is renamed.
    std::string move_error;
    const auto moved = opener::move_aside(path, move_error);
    if (!moved) {
        error = "spool " + path.string() + ": " + first.reason + "; " + move_error;
        return nullptr;
    }
    notices.push_back("spool " + path.string() + ": " + first.reason + "; moved it to " + moved->string() +
                      " and started an empty spool");
    auto second = opener::try_open(path, l);
    if (second.outcome == verdict::usable) return std::move(second.opened);
    error = "spool " + path.string() + ": " + second.reason;
    return nullptr;
}

store::store(std::filesystem::path path, limits l, db_ptr db)
    : path_{std::move(path)}, limits_{l}, db_{std::move(db)} {}

store::~store() = default;

std::string store::describe_error(std::string_view what) const {
    std::string out = "spool " + path_.string() + ": ";
    out += what;
    out += ": ";
    out += sqlite_reason(db_.get(), sqlite3_errcode(db_.get()));
    return out;
}

std::string store::check_limits(std::uint64_t bytes) const {
    if (limits_.max_messages && total_.count >= *limits_.max_messages) {
        return "spool full: " + std::to_string(total_.count) + " messages (spool.max_messages " +
               std::to_string(*limits_.max_messages) + ")";
    }
    // Written so that nothing overflows, and so that a limit lowered below the usage refuses.
    if (limits_.max_bytes && (total_.bytes > *limits_.max_bytes || bytes > *limits_.max_bytes - total_.bytes)) {
        return "spool full: " + std::to_string(total_.bytes) + " bytes stored, " + std::to_string(bytes) +
               " more would exceed spool.max_bytes " + std::to_string(*limits_.max_bytes);
    }
    if (bytes > int64_max - total_.bytes) {  // SQLite counts in signed 64 bits
        return "spool full: " + std::to_string(bytes) + " bytes cannot be counted";
    }
    return {};
}

store::append_result store::append(std::string_view thing, std::span<const std::uint8_t> message, std::uint64_t bytes) {
    if (auto full = check_limits(bytes); !full.empty()) return {failure::full, 0, std::move(full)};

    sqlite3_stmt* const stmt = insert_.get();
    // An empty view or span may have a null data pointer, which SQLite would store as NULL.
    static constexpr char no_text[] = "";
    int rc =
        sqlite3_bind_text64(stmt, 1, thing.empty() ? no_text : thing.data(), thing.size(), SQLITE_STATIC, SQLITE_UTF8);
    if (rc == SQLITE_OK) {
        rc = message.empty() ? sqlite3_bind_zeroblob(stmt, 2, 0)
                             : sqlite3_bind_blob64(stmt, 2, message.data(), message.size(), SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(stmt, 3, static_cast<sqlite3_int64>(bytes));
    // Autocommit: the INSERT is its own transaction, committed (and, with synchronous=FULL,
    // synced) when the step returns DONE. On failure SQLite rolls it back: nothing partial stays.
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
    append_result result;
    if (rc == SQLITE_DONE) {
        result.id = sqlite3_last_insert_rowid(db_.get());
        add_usage(thing, bytes);
    } else {
        result.error = failure::io;
        result.message = describe_error("cannot append");
    }
    sqlite3_reset(stmt);
    // The bindings point into the caller's buffers, which are about to go away.
    sqlite3_clear_bindings(stmt);
    return result;
}

bool store::remove(std::int64_t id, std::string& error) {
    sqlite3_stmt* const stmt = delete_.get();
    sqlite3_bind_int64(stmt, 1, id);
    std::optional<std::pair<std::string, std::uint64_t>> removed;
    int rc = SQLITE_OK;
    // RETURNING tells what the row counted for; the delete commits only when the statement has
    // run to DONE, so usage is updated only then.
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const auto* text = sqlite3_column_text(stmt, 0);
        removed.emplace(std::string{text != nullptr ? reinterpret_cast<const char*>(text) : "",
                                    static_cast<std::size_t>(sqlite3_column_bytes(stmt, 0))},
                        static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 1)));
    }
    const bool ok = rc == SQLITE_DONE;
    if (ok && removed) subtract_usage(removed->first, removed->second);
    if (!ok) error = describe_error("cannot remove message " + std::to_string(id));
    sqlite3_reset(stmt);
    return ok;
}

store::load_result store::load(std::string_view thing, std::int64_t after, std::size_t max) {
    load_result result;
    if (max == 0) return result;
    sqlite3_stmt* const stmt = select_.get();
    static constexpr char no_text[] = "";
    sqlite3_bind_text64(stmt, 1, thing.empty() ? no_text : thing.data(), thing.size(), SQLITE_STATIC, SQLITE_UTF8);
    sqlite3_bind_int64(stmt, 2, after);
    sqlite3_bind_int64(stmt, 3,
                       max > int64_max ? std::numeric_limits<sqlite3_int64>::max() : static_cast<sqlite3_int64>(max));
    int rc = SQLITE_OK;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        stored row;
        row.id = sqlite3_column_int64(stmt, 0);
        row.thing.assign(thing);
        const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, 1));
        const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, 1));
        if (data != nullptr) row.message.assign(data, data + size);
        row.bytes = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 2));
        result.rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) result.error = describe_error("cannot load");
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return result;
}

std::uint64_t store::count(std::string_view thing) const {
    const auto it = by_thing_.find(thing);
    return it == by_thing_.end() ? 0 : it->second.count;
}

std::uint64_t store::bytes(std::string_view thing) const {
    const auto it = by_thing_.find(thing);
    return it == by_thing_.end() ? 0 : it->second.bytes;
}

std::vector<std::string> store::things() const {
    std::vector<std::string> out;
    out.reserve(by_thing_.size());
    for (const auto& [thing, u] : by_thing_) out.push_back(thing);
    return out;
}

void store::add_usage(std::string_view thing, std::uint64_t bytes) {
    auto it = by_thing_.find(thing);
    if (it == by_thing_.end()) it = by_thing_.emplace(std::string{thing}, usage{}).first;
    ++it->second.count;
    it->second.bytes += bytes;
    ++total_.count;
    total_.bytes += bytes;
}

void store::subtract_usage(std::string_view thing, std::uint64_t bytes) {
    if (const auto it = by_thing_.find(thing); it != by_thing_.end()) {
        --it->second.count;
        it->second.bytes -= bytes;
        // Drained Things leave the map, so things() lists only those with a backlog.
        if (it->second.count == 0) by_thing_.erase(it);
    }
    --total_.count;
    total_.bytes -= bytes;
}

}  // namespace thingmux::spool
