#include "daemon/spool/migrate_v1.hpp"

#include "daemon/spool/format.hpp"
#include "daemon/spool/sqlite.hpp"
#include "ipc/codec.hpp"

#include <sqlite3.h>

#include <limits>
#include <optional>
#include <span>
#include <utility>

namespace thingmux::spool {

namespace {

// The fields of an IPC protocol 1 publish the daemon sent upstream (the request id was the
// app's, and is no part of the message).
message from_ipc(ipc::publish&& p) {
    message m{.topic = std::move(p.topic),
              .payload = std::move(p.payload),
              .qos = p.qos,
              .retain = p.retain,
              .payload_format_indicator = p.props.payload_format_indicator,
              .message_expiry_interval = p.props.message_expiry_interval,
              .content_type = std::move(p.props.content_type),
              .response_topic = std::move(p.props.response_topic),
              .correlation_data = std::move(p.props.correlation_data),
              .user_properties = {}};
    m.user_properties.reserve(p.props.user_properties.size());
    for (auto& u : p.props.user_properties) m.user_properties.push_back({std::move(u.key), std::move(u.value)});
    return m;
}

// The message in a schema 1 row, or nullopt with `why`.
std::optional<message> decode_row(std::span<const std::uint8_t> frame, std::string& why) {
    // No limit: the frame was accepted under the limits.max_frame of its day, and a frame longer
    // than the row is then reported as cut short. The decoder allocates no more than the row.
    auto result = ipc::decode_client_message(frame, std::numeric_limits<std::size_t>::max());
    if (std::holds_alternative<ipc::need_more>(result)) {
        why = "the frame is cut short (" + std::to_string(frame.size()) + " bytes)";
        return std::nullopt;
    }
    if (auto* bad = std::get_if<ipc::malformed>(&result)) {
        why = "not an IPC frame: " + bad->reason;
        return std::nullopt;
    }
    auto& done = std::get<ipc::decoded<ipc::client_message>>(result);
    if (done.consumed != frame.size()) {
        why = std::to_string(frame.size() - done.consumed) + " bytes follow the frame";
        return std::nullopt;
    }
    auto* publish = std::get_if<ipc::publish>(&done.message);
    if (publish == nullptr) {
        why = "an IPC frame of another type than publish";
        return std::nullopt;
    }
    return from_ipc(std::move(*publish));
}

constexpr const char* quarantine_format = "ipc-publish-frame-1";

// Runs the steps inside a transaction opened by migrate_from_v1.
class migration {
public:
    migration(sqlite3* db, migration_report& report) : db_{db}, report_{report} {}

    // SQLITE_OK, or the result code of the step named in step_.
    int run() {
        sqlite3_int64 counter = 0;
        int rc = SQLITE_OK;
        if ((rc = read_counter(counter)) != SQLITE_OK) return rc;
        // The old table moves out of the way under another name; its index name is needed again.
        if ((rc = exec("set the schema 1 table aside",
                       "DROP INDEX IF EXISTS spool_by_thing; ALTER TABLE spool RENAME TO spool_v1;")) != SQLITE_OK ||
            (rc = exec("create the schema", format::create_sql)) != SQLITE_OK ||
            (rc = exec("create the local session tables", format::create_sessions_sql)) != SQLITE_OK ||
            (rc = convert_rows()) != SQLITE_OK ||
            // Dropping it also drops its AUTOINCREMENT counter, restored just below.
            (rc = exec("drop the schema 1 table", "DROP TABLE spool_v1")) != SQLITE_OK ||
            (rc = restore_counter(counter)) != SQLITE_OK) {
            return rc;
        }
        return exec("set the schema version", ("PRAGMA user_version = " + std::to_string(format::version)).c_str());
    }

    [[nodiscard]] const std::string& step() const { return step_; }

private:
    int exec(const char* step, const char* sql) {
        step_ = step;
        return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    }

    int read_counter(sqlite3_int64& counter) {
        step_ = "read the id counter";
        statement stmt;
        int rc = prepare(db_, "SELECT seq FROM sqlite_sequence WHERE name = 'spool'", stmt);
        if (rc != SQLITE_OK) return rc;
        rc = sqlite3_step(stmt.get());
        if (rc == SQLITE_ROW) counter = sqlite3_column_int64(stmt.get(), 0);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    // The counter is at least the largest id converted; it goes back to what it was, which may be
    // higher (the newest messages were acknowledged and removed).
    int restore_counter(sqlite3_int64 counter) {
        step_ = "restore the id counter";
        statement update;
        int rc = prepare(db_, "UPDATE sqlite_sequence SET seq = max(seq, ?1) WHERE name = 'spool'", update);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(update.get(), 1, counter);
        if (rc == SQLITE_OK) rc = sqlite3_step(update.get());
        if (rc != SQLITE_DONE) return rc;
        if (sqlite3_changes(db_) > 0 || counter == 0) return SQLITE_OK;
        statement insert;  // no row was converted: the table has no counter yet
        rc = prepare(db_, "INSERT INTO sqlite_sequence (name, seq) VALUES ('spool', ?1)", insert);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(insert.get(), 1, counter);
        if (rc == SQLITE_OK) rc = sqlite3_step(insert.get());
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    int convert_rows() {
        step_ = "convert the messages";
        statement select;
        statement insert;
        statement quarantine;
        int rc = SQLITE_OK;
        if ((rc = prepare(db_, "SELECT id, thing, message, bytes FROM spool_v1 ORDER BY id", select)) != SQLITE_OK ||
            (rc = prepare(db_, format::insert_sql, insert)) != SQLITE_OK ||
            (rc = prepare(db_, format::quarantine_record_sql, quarantine)) != SQLITE_OK) {
            return rc;
        }
        while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
            const std::int64_t id = sqlite3_column_int64(select.get(), 0);
            const auto* thing_text = sqlite3_column_text(select.get(), 1);
            const std::string thing{thing_text != nullptr ? reinterpret_cast<const char*>(thing_text) : "",
                                    static_cast<std::size_t>(sqlite3_column_bytes(select.get(), 1))};
            const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(select.get(), 2));
            const std::span<const std::uint8_t> frame{data,
                                                      static_cast<std::size_t>(sqlite3_column_bytes(select.get(), 2))};
            const sqlite3_int64 bytes = sqlite3_column_int64(select.get(), 3);

            std::string why;
            if (const auto m = decode_row(frame, why)) {
                rc = format::bind_row(insert.get(), id, thing, static_cast<std::uint64_t>(bytes), *m);
                if (rc == SQLITE_OK) rc = finish(insert.get());
                ++report_.converted;
            } else {
                rc = quarantine_row(quarantine.get(), id, thing, bytes, frame, why);
                auto& line = report_.quarantined.emplace_back("message " + std::to_string(id));
                line += " of Thing ";
                line += thing;
                line += ": ";
                line += why;
            }
            if (rc != SQLITE_OK) return rc;
        }
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    static int quarantine_row(sqlite3_stmt* stmt, std::int64_t id, const std::string& thing, sqlite3_int64 bytes,
                              std::span<const std::uint8_t> frame, const std::string& why) {
        int rc = sqlite3_bind_int64(stmt, 1, id);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text64(stmt, 2, thing.c_str(), thing.size(), SQLITE_STATIC, SQLITE_UTF8);
        if (rc == SQLITE_OK) rc = sqlite3_bind_int64(stmt, 3, bytes);
        if (rc == SQLITE_OK) rc = sqlite3_bind_text(stmt, 4, quarantine_format, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK) {
            rc = frame.empty() ? sqlite3_bind_zeroblob(stmt, 5, 0)
                               : sqlite3_bind_blob64(stmt, 5, frame.data(), frame.size(), SQLITE_STATIC);
        }
        if (rc == SQLITE_OK) rc = sqlite3_bind_text64(stmt, 6, why.c_str(), why.size(), SQLITE_STATIC, SQLITE_UTF8);
        return rc == SQLITE_OK ? finish(stmt) : rc;
    }

    // Runs an insert to its end and readies it for the next row.
    static int finish(sqlite3_stmt* stmt) {
        const int rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
        return rc == SQLITE_DONE ? SQLITE_OK : rc;
    }

    sqlite3* db_;
    migration_report& report_;
    std::string step_;
};

}  // namespace

int migrate_from_v1(sqlite3* db, migration_report& report, std::string& error) {
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
        error = "cannot begin the migration: " + sqlite_reason(db, rc);
        return rc;
    }
    migration m{db, report};
    std::string step;
    if ((rc = m.run()) != SQLITE_OK) {
        step = m.step();
    } else if ((rc = sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr)) != SQLITE_OK) {
        step = "commit";
    } else {
        return SQLITE_OK;
    }
    error = "cannot migrate from schema 1 (" + step + "): " + sqlite_reason(db, rc);
    // A failed COMMIT may leave the transaction open; the file keeps schema 1 either way.
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    report = {};
    return rc;
}

}  // namespace thingmux::spool
