#include "daemon/spool/spool.hpp"

#include "common/utc_time.hpp"

#include "daemon/spool/format.hpp"
#include "daemon/spool/migrate_v1.hpp"
#include "daemon/spool/sessions.hpp"

#include <sqlite3.h>

#include <array>
#include <chrono>
#include <limits>
#include <utility>

namespace thingmux::spool {

namespace {

// The schema of thingmux 0.1.0, converted when opened.
constexpr int schema_version_1 = 1;
// The schema before local sessions: opening it adds their tables.
constexpr int schema_version_2 = 2;
// Local sessions keyed without their Thing: opening it rebuilds local_session.
constexpr int schema_version_3 = 3;

// Lines naming unreadable messages in the notices of one migration; the rest are counted.
constexpr std::size_t max_quarantine_notices = 10;

// How long a statement waits for a lock held by another process (an admin's `sqlite3` shell)
// before it fails. Short, because the daemon's single thread is blocked meanwhile.
constexpr int busy_timeout_ms = 1000;

// A checkpoint resets the WAL but leaves the file at its largest size; this caps what a burst of
// large messages leaves behind.
constexpr int journal_size_limit = 4 * 1024 * 1024;

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


std::filesystem::path with_suffix(const std::filesystem::path& p, std::string_view suffix) {
    std::filesystem::path out = p;
    out += suffix;
    return out;
}

// The files SQLite keeps next to the database; they belong to it and move with it. A WAL left
// next to a fresh database would be replayed into it.
constexpr std::array<std::string_view, 3> companion_suffixes = {"-wal", "-shm", "-journal"};

bool present(const std::filesystem::path& p) {
    std::error_code ec;
    return std::filesystem::symlink_status(p, ec).type() != std::filesystem::file_type::not_found && !ec;
}

}  // namespace

void store::db_closer::operator()(sqlite3* db) const noexcept {
    sqlite3_close_v2(db);
}

// Opening is a sequence of checks, each of which may find the file unusable; this keeps them out
// of the public class.
struct opener {
    struct attempt {
        verdict outcome = verdict::usable;
        std::unique_ptr<store> opened;
        std::string reason;                // when not usable
        std::vector<std::string> notices;  // when usable: what a migration did
    };

    static attempt fail(verdict v, std::string reason) { return {v, nullptr, std::move(reason), {}}; }

    static attempt fail(verdict v, sqlite3* db, int rc, std::string_view what) {
        std::string reason{what};
        reason += ": ";
        reason += sqlite_reason(db, rc);
        return fail(v, std::move(reason));
    }

    // Runs `sql` and sets the current schema version in one transaction. On failure it is rolled
    // back and the attempt says why (`what`, then SQLite's reason).
    static std::optional<attempt> upgrade(sqlite3* db, const char* sql, std::string_view what) {
        const std::string all = std::string{"BEGIN IMMEDIATE;"} + sql + "PRAGMA user_version = " +
                                std::to_string(format::version) + ";COMMIT;";
        const int rc = sqlite3_exec(db, all.c_str(), nullptr, nullptr, nullptr);
        if (rc == SQLITE_OK) return std::nullopt;
        auto failed = fail(verdict_for(rc), db, rc, what);  // an existing file: judged like one
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        return failed;
    }

    // Runs a statement that returns at most one interesting value in its first row.
    static int query_int(sqlite3* db, const char* sql, sqlite3_int64& out) {
        statement stmt;
        int rc = prepare(db, sql, stmt);
        if (rc != SQLITE_OK) return rc;
        rc = sqlite3_step(stmt.get());
        if (rc == SQLITE_ROW) {
            out = sqlite3_column_int64(stmt.get(), 0);
            return SQLITE_OK;
        }
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    static int query_text(sqlite3* db, const char* sql, std::string& out) {
        statement stmt;
        int rc = prepare(db, sql, stmt);
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

    // PERSISTENT: these live as long as the store, so SQLite should not take their memory from
    // its short-lived lookaside pool.
    static int prepare_persistent(sqlite3* db, const char* sql, statement& out) {
        return prepare(db, sql, out, SQLITE_PREPARE_PERSISTENT);
    }

    // Converts a schema 1 file, reporting what it did in `notices`.
    static int migrate(sqlite3* db, std::vector<std::string>& notices, std::string& error) {
        migration_report report;
        const int rc = migrate_from_v1(db, report, error);
        if (rc != SQLITE_OK) return rc;
        notices.push_back("converted " + std::to_string(report.converted) + " message(s) from spool schema " +
                          std::to_string(schema_version_1) + " (thingmux 0.1.0) to schema " +
                          std::to_string(format::version));
        for (std::size_t i = 0; i < report.quarantined.size() && i < max_quarantine_notices; ++i) {
            notices.push_back(report.quarantined[i] + "; not sent, kept in the table quarantine");
        }
        if (report.quarantined.size() > max_quarantine_notices) {
            notices.push_back(std::to_string(report.quarantined.size() - max_quarantine_notices) +
                              " more unreadable message(s) kept in the table quarantine");
        }
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
            if (app_id != format::application_id) {
                return fail(verdict::replace, "not a thingmux spool (application_id " + std::to_string(app_id) + ")");
            }
            // A later release's file is as unreadable as a corrupt one: moved aside, never guessed at.
            if (version != format::version && version != schema_version_1 && version != schema_version_2 &&
                version != schema_version_3) {
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

        std::vector<std::string> notices;
        if (!fresh && version == schema_version_3) {
            // Foreign keys off (SQLite's default, said here in case a build turns them on): the
            // rebuild must not cascade to the messages. Set outside a transaction, where it counts.
            if ((rc = sqlite3_exec(db.get(), "PRAGMA foreign_keys = OFF", nullptr, nullptr, nullptr)) != SQLITE_OK) {
                return fail(judge(rc), db.get(), rc, "cannot configure");
            }
            if (auto failed = upgrade(db.get(), format::rekey_sessions_sql, "cannot convert the local session table"))
                return std::move(*failed);
            notices.push_back("local sessions are keyed by their Thing too (spool schema " +
                              std::to_string(schema_version_3) + " to " + std::to_string(format::version) + ")");
        }
        // The cascade from a local session to its messages.
        if ((rc = sqlite3_exec(db.get(), "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr)) != SQLITE_OK) {
            return fail(judge(rc), db.get(), rc, "cannot configure");
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
            const std::string create = std::string{"BEGIN IMMEDIATE;"} + format::create_sql +
                                       format::create_sessions_sql + "PRAGMA application_id = " + std::to_string(format::application_id) +
                                       ";PRAGMA user_version = " + std::to_string(format::version) + ";COMMIT;";
            if ((rc = sqlite3_exec(db.get(), create.c_str(), nullptr, nullptr, nullptr)) != SQLITE_OK) {
                auto failed = fail(verdict::give_up, db.get(), rc, "cannot create the schema");
                sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
                return failed;
            }
        }
        if (!fresh && version == schema_version_1) {
            std::string error;
            if ((rc = migrate(db.get(), notices, error)) != SQLITE_OK) return fail(judge(rc), error);
        }
        if (!fresh && version == schema_version_2) {
            if (auto failed = upgrade(db.get(), format::create_sessions_sql, "cannot add the local session tables"))
                return std::move(*failed);
            notices.push_back("added the tables of local sessions (spool schema " + std::to_string(schema_version_2) +
                              " to " + std::to_string(format::version) + ")");
        }

        std::unique_ptr<store> s{new store{path, l, std::move(db)}};
        sqlite3* const conn = s->db_.get();
        statement probe;
        // A table of the right name but the wrong columns fails here.
        if ((rc = prepare_persistent(conn, format::insert_sql, s->insert_)) != SQLITE_OK ||
            (rc = prepare_persistent(conn, "DELETE FROM spool WHERE id = ?1 RETURNING thing, bytes", s->delete_)) !=
                SQLITE_OK ||
            (rc = prepare_persistent(conn, format::select_sql, s->select_)) != SQLITE_OK ||
            (rc = prepare(conn, "SELECT count(*) FROM local_session, local_message WHERE 0", probe)) != SQLITE_OK) {
            return fail(judge(rc), conn, rc, "wrong schema");
        }
        probe.reset();
        s->sessions_ = std::make_unique<session_store>(conn, *s->batch_);

        // One scan at open; from here on usage is kept up to date in memory.
        statement sum;
        rc = prepare(conn, "SELECT thing, count(*), sum(bytes) FROM spool GROUP BY thing", sum);
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
        return {verdict::usable, std::move(s), {}, std::move(notices)};
    }

    // Renames the database and its companion files to "<path>.corrupt-<UTC time>[.N]"; returns the
    // new path, or nullopt with `error` set.
    static std::optional<std::filesystem::path> move_aside(const std::filesystem::path& path, std::string& error) {
        const std::filesystem::path base =
            with_suffix(path, ".corrupt-" + utc_text(std::chrono::system_clock::now(), utc_format::compact));
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
    const auto note = [&](const std::string& what) { notices.push_back("spool " + path.string() + ": " + what); };
    auto first = opener::try_open(path, l);
    if (first.outcome == verdict::usable) {
        for (const auto& n : first.notices) note(n);
        return std::move(first.opened);
    }
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
    note(first.reason + "; moved it to " + moved->string() + " and started an empty spool");
    auto second = opener::try_open(path, l);
    if (second.outcome == verdict::usable) return std::move(second.opened);
    error = "spool " + path.string() + ": " + second.reason;
    return nullptr;
}

store::store(std::filesystem::path path, limits l, db_ptr db)
    : path_{std::move(path)}, limits_{l}, db_{std::move(db)}, batch_{std::make_unique<batch>(db_.get())} {}

store::~store() {
    // What the session store wrote in this loop turn (a clean shutdown); a failure has no one
    // left to tell.
    if (batch_) (void)batch_->commit();
}

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

store::append_result store::append(std::string_view thing, const message& m, std::uint64_t bytes) {
    if (auto full = check_limits(bytes); !full.empty()) return {failure::full, 0, std::move(full)};

    sqlite3_stmt* const stmt = insert_.get();
    int rc = format::bind_row(stmt, std::nullopt, thing, bytes, m);
    // Autocommit: the INSERT is its own transaction, committed (and, with synchronous=FULL,
    // synced) when the step returns DONE. On failure SQLite rolls it back: nothing partial stays.
    // While the session store's batch is open, the INSERT joins it and the batch commits now.
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE && batch_->open()) rc = batch_->commit() == SQLITE_OK ? SQLITE_DONE : SQLITE_IOERR;
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
    std::vector<std::pair<stored, std::string>> unreadable;  // the row without its message, and why
    int rc = SQLITE_OK;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        stored row;
        row.id = sqlite3_column_int64(stmt, 0);
        row.thing.assign(thing);
        row.bytes = static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 1));
        std::string why;
        if (format::read_message(stmt, row.message, why)) {
            result.rows.push_back(std::move(row));
        } else {
            unreadable.emplace_back(std::move(row), std::move(why));
        }
    }
    if (rc != SQLITE_DONE) result.error = describe_error("cannot load");
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    // Outside the SELECT, which must not see its own rows move.
    for (const auto& [row, why] : unreadable) {
        if (!result.error.empty()) result.error += "; ";
        result.error += quarantine(row, why);
    }
    return result;
}

std::string store::quarantine(const stored& row, const std::string& why) {
    const std::int64_t id = row.id;
    const std::string what = "message " + std::to_string(id) + " is unreadable (" + why + ")";
    // Rare (a file edited by hand), so prepared here rather than kept.
    statement copy;
    int rc = sqlite3_exec(db_.get(), "SAVEPOINT quarantine", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) rc = prepare(db_.get(), format::quarantine_row_sql, copy);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(copy.get(), 1, id);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text64(copy.get(), 2, what.c_str(), what.size(), SQLITE_STATIC, SQLITE_UTF8);
    if (rc == SQLITE_OK) rc = sqlite3_step(copy.get()) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db_.get());
    std::string error;
    if (rc != SQLITE_OK || !remove(id, error)) {
        auto failed = describe_error(what + "; cannot move it to the table quarantine");
        sqlite3_exec(db_.get(), "ROLLBACK TO quarantine; RELEASE quarantine", nullptr, nullptr, nullptr);
        return failed;
    }
    if (sqlite3_exec(db_.get(), "RELEASE quarantine", nullptr, nullptr, nullptr) != SQLITE_OK) {
        auto failed = describe_error(what + "; cannot move it to the table quarantine");
        sqlite3_exec(db_.get(), "ROLLBACK TO quarantine; RELEASE quarantine", nullptr, nullptr, nullptr);
        add_usage(row.thing, row.bytes);  // remove() counted it gone
        return failed;
    }
    return what + "; moved it to the table quarantine";
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
