#include "daemon/spool/sessions.hpp"

#include <sqlite3.h>

#include <charconv>
#include <limits>

namespace thingmux::spool {

namespace {

constexpr char no_bytes[] = "";

int bind_text(sqlite3_stmt* stmt, int index, std::string_view text) {
    return sqlite3_bind_text64(stmt, index, text.empty() ? no_bytes : text.data(), text.size(), SQLITE_TRANSIENT,
                               SQLITE_UTF8);
}

std::string column_text(sqlite3_stmt* stmt, int col) {
    const auto* data = sqlite3_column_text(stmt, col);
    return data == nullptr ? std::string{}
                           : std::string{reinterpret_cast<const char*>(data), static_cast<std::size_t>(sqlite3_column_bytes(stmt, col))};
}

template <class T>
std::string joined(const std::vector<T>& items) {
    std::string out;
    for (const auto& i : items) {
        if (!out.empty()) out += ',';
        if constexpr (std::is_same_v<T, std::string>) {
            out += i;
        } else {
            out += std::to_string(i);
        }
    }
    return out;
}

std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> out;
    if (text.empty()) return out;
    std::size_t start = 0;
    for (;;) {
        const auto comma = text.find(',', start);
        out.push_back(text.substr(start, comma - start));
        if (comma == std::string::npos) return out;
        start = comma + 1;
    }
}

bool parse_ids(const std::string& text, std::vector<std::uint32_t>& out) {
    out.clear();
    for (const auto& s : split(text)) {
        std::uint32_t v = 0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc{} || end != s.data() + s.size()) return false;
        out.push_back(v);
    }
    return true;
}

// Columns of the session select, in order.
enum session_column : int { s_id, s_thing, s_kind, s_client, s_uid, s_gid, s_groups, s_user, s_group_names, s_unit,
                            s_mqtt_user, s_expiry, s_ended_at, s_subscriptions };

const char* const select_sessions_sql =
    "SELECT id, thing, kind, client_id, uid, gid, groups, user, group_names, unit, mqtt_user, expiry, ended_at,"
    " subscriptions FROM local_session ORDER BY id";

// The same column layout as the spool's select (format::select_sql), so format::read_message reads it.
const char* const select_messages_sql =
    "SELECT id, bytes, topic, payload, qos, retain, payload_format, message_expiry, content_type, response_topic,"
    " correlation_data, user_properties, share, will_due FROM local_message WHERE session = ?1 ORDER BY id";
constexpr int m_share = 12;
constexpr int m_will_due = 13;

bool read_session(sqlite3_stmt* stmt, session_record& r, std::string& why) {
    constexpr std::int64_t uint32_max = std::numeric_limits<std::uint32_t>::max();
    r.id = sqlite3_column_int64(stmt, s_id);
    r.thing = column_text(stmt, s_thing);
    r.kind = column_text(stmt, s_kind);
    r.client_id = column_text(stmt, s_client);
    const auto uid = sqlite3_column_int64(stmt, s_uid);
    const auto gid = sqlite3_column_int64(stmt, s_gid);
    const auto expiry = sqlite3_column_int64(stmt, s_expiry);
    if (uid < 0 || uid > uint32_max || gid < 0 || gid > uint32_max || expiry < 0 || expiry > uint32_max) {
        why = "uid, gid or expiry out of range";
        return false;
    }
    r.uid = static_cast<std::uint32_t>(uid);
    r.gid = static_cast<std::uint32_t>(gid);
    r.expiry = static_cast<std::uint32_t>(expiry);
    if (!parse_ids(column_text(stmt, s_groups), r.groups)) {
        why = "groups is not a list of numbers";
        return false;
    }
    r.user = column_text(stmt, s_user);
    r.group_names = split(column_text(stmt, s_group_names));
    r.unit = column_text(stmt, s_unit);
    r.mqtt_user = column_text(stmt, s_mqtt_user);
    if (sqlite3_column_type(stmt, s_ended_at) == SQLITE_NULL) {
        r.ended_at.reset();
    } else {
        r.ended_at = sqlite3_column_int64(stmt, s_ended_at);
    }
    const auto* blob = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, s_subscriptions));
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, s_subscriptions));
    std::string problem;
    if (!format::decode_subscriptions({blob, blob == nullptr ? 0 : size}, r.subscriptions, problem)) {
        why = "subscriptions " + problem;
        return false;
    }
    return true;
}

}  // namespace

int batch::join() {
    if (open_) return SQLITE_OK;
    const int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    open_ = rc == SQLITE_OK;
    return rc;
}

int batch::commit() {
    if (!open_) return SQLITE_OK;
    open_ = false;
    const int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK && sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return rc;
}

session_store::session_store(sqlite3* db, spool::batch& batch) : db_{db}, batch_{batch} {
    // Prepared here: the schema was checked by the store before it made this object. A failure
    // shows up as a null statement, which run() reports.
    (void)prepare(db_,
                  "INSERT INTO local_session (thing, kind, client_id, uid, gid, groups, user, group_names, unit,"
                  " mqtt_user, expiry, ended_at, subscriptions) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
                  " ?12, ?13)",
                  save_, SQLITE_PREPARE_PERSISTENT);
    (void)prepare(db_, "UPDATE local_session SET subscriptions = ?2 WHERE id = ?1", set_subscriptions_,
                  SQLITE_PREPARE_PERSISTENT);
    (void)prepare(db_, "UPDATE local_session SET ended_at = ?2, expiry = ?3 WHERE id = ?1", set_ended_,
                  SQLITE_PREPARE_PERSISTENT);
    (void)prepare(db_, "DELETE FROM local_session WHERE id = ?1", remove_session_, SQLITE_PREPARE_PERSISTENT);
    (void)prepare(db_,
                  "INSERT INTO local_message (id, session, bytes, topic, payload, qos, retain, payload_format,"
                  " message_expiry, content_type, response_topic, correlation_data, user_properties, share, will_due)"
                  " VALUES (NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                  add_message_, SQLITE_PREPARE_PERSISTENT);
    (void)prepare(db_, "DELETE FROM local_message WHERE id = ?1", remove_message_, SQLITE_PREPARE_PERSISTENT);
}

std::string session_store::reason(const char* what) const {
    return std::string{"cannot "} + what + ": " + sqlite_reason(db_, sqlite3_errcode(db_));
}

bool session_store::run(statement& stmt, const char* what, std::string& error) {
    if (!stmt) {
        error = std::string{"cannot "} + what + ": the statement could not be prepared";
        return false;
    }
    int rc = batch_.join();
    if (rc == SQLITE_OK) rc = sqlite3_step(stmt.get());
    const bool ok = rc == SQLITE_DONE;
    if (!ok) error = reason(what);
    sqlite3_reset(stmt.get());
    sqlite3_clear_bindings(stmt.get());
    return ok;
}

bool session_store::save(session_record& r, std::string& error) {
    // The key is unique: a session stored under it before (not removed, e.g. after a crash) goes,
    // with its messages.
    statement old;
    if (prepare(db_, "DELETE FROM local_session WHERE kind = ?1 AND uid = ?2 AND mqtt_user = ?3 AND client_id = ?4 AND thing = ?5",
                old) != SQLITE_OK) {
        error = reason("replace a stored session");
        return false;
    }
    (void)bind_text(old.get(), 1, r.kind);
    sqlite3_bind_int64(old.get(), 2, r.uid);
    (void)bind_text(old.get(), 3, r.mqtt_user);
    (void)bind_text(old.get(), 4, r.client_id);
    (void)bind_text(old.get(), 5, r.thing);
    if (!run(old, "replace a stored session", error)) return false;

    auto* s = save_.get();
    if (s != nullptr) {
        const auto subscriptions = format::encode_subscriptions(r.subscriptions);
        (void)bind_text(s, 1, r.thing);
        (void)bind_text(s, 2, r.kind);
        (void)bind_text(s, 3, r.client_id);
        sqlite3_bind_int64(s, 4, r.uid);
        sqlite3_bind_int64(s, 5, r.gid);
        (void)bind_text(s, 6, joined(r.groups));
        (void)bind_text(s, 7, r.user);
        (void)bind_text(s, 8, joined(r.group_names));
        (void)bind_text(s, 9, r.unit);
        (void)bind_text(s, 10, r.mqtt_user);
        sqlite3_bind_int64(s, 11, r.expiry);
        if (r.ended_at) {
            sqlite3_bind_int64(s, 12, *r.ended_at);
        } else {
            sqlite3_bind_null(s, 12);
        }
        sqlite3_bind_blob64(s, 13, subscriptions.data(), subscriptions.size(), SQLITE_TRANSIENT);
    }
    if (!run(save_, "store a session", error)) return false;
    r.id = sqlite3_last_insert_rowid(db_);
    return true;
}

bool session_store::set_subscriptions(std::int64_t session, const std::vector<format::subscription>& subscriptions,
                                      std::string& error) {
    if (auto* s = set_subscriptions_.get()) {
        const auto encoded = format::encode_subscriptions(subscriptions);
        sqlite3_bind_int64(s, 1, session);
        sqlite3_bind_blob64(s, 2, encoded.data(), encoded.size(), SQLITE_TRANSIENT);
    }
    return run(set_subscriptions_, "store a session's subscriptions", error);
}

bool session_store::set_ended(std::int64_t session, std::optional<std::int64_t> ended_at, std::uint32_t expiry,
                              std::string& error) {
    if (auto* s = set_ended_.get()) {
        sqlite3_bind_int64(s, 1, session);
        if (ended_at) {
            sqlite3_bind_int64(s, 2, *ended_at);
        } else {
            sqlite3_bind_null(s, 2);
        }
        sqlite3_bind_int64(s, 3, expiry);
    }
    return run(set_ended_, "store a session's end", error);
}

bool session_store::remove_session(std::int64_t session, std::string& error) {
    if (auto* s = remove_session_.get()) sqlite3_bind_int64(s, 1, session);
    return run(remove_session_, "remove a session", error);
}

std::int64_t session_store::add_message(std::int64_t session, const session_message& sm, std::string& error) {
    const auto& m = sm.message;
    if (auto* s = add_message_.get()) {
        sqlite3_bind_int64(s, 2, session);
        sqlite3_bind_int64(s, 3, static_cast<sqlite3_int64>(m.topic.size() + m.payload.size()));
        if (!sm.share.empty()) sqlite3_bind_text64(s, 14, sm.share.data(), sm.share.size(), SQLITE_STATIC, SQLITE_UTF8);
        if (sm.will_due) sqlite3_bind_int64(s, 15, *sm.will_due);
        if (format::bind_message(s, m) != SQLITE_OK) {
            error = reason("store a session's message");
            sqlite3_clear_bindings(s);
            return 0;
        }
    }
    if (!run(add_message_, "store a session's message", error)) return 0;
    return sqlite3_last_insert_rowid(db_);
}

bool session_store::remove_message(std::int64_t id, std::string& error) {
    if (auto* s = remove_message_.get()) sqlite3_bind_int64(s, 1, id);
    return run(remove_message_, "remove a session's message", error);
}

session_store::loaded_sessions session_store::load_sessions() {
    loaded_sessions out;
    statement select;
    int rc = prepare(db_, select_sessions_sql, select);
    std::vector<std::int64_t> unreadable;
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(select.get());
        if (rc != SQLITE_ROW) break;
        session_record r;
        std::string why;
        if (read_session(select.get(), r, why)) {
            out.sessions.push_back(std::move(r));
        } else {
            unreadable.push_back(r.id);
            out.problems.push_back("session " + std::to_string(r.id) + " is unreadable (" + why + "); removed");
        }
    }
    if (rc != SQLITE_DONE) out.error = reason("load the local sessions");
    select.reset();
    std::string error;
    for (const auto id : unreadable) {
        if (!remove_session(id, error)) out.problems.push_back(error);
    }
    return out;
}

session_store::loaded_messages session_store::load_messages(std::int64_t session) {
    loaded_messages out;
    statement select;
    int rc = prepare(db_, select_messages_sql, select);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(select.get(), 1, session);
    std::vector<std::int64_t> unreadable;
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(select.get());
        if (rc != SQLITE_ROW) break;
        session_message m;
        m.id = sqlite3_column_int64(select.get(), 0);
        m.share = column_text(select.get(), m_share);
        if (sqlite3_column_type(select.get(), m_will_due) != SQLITE_NULL)
            m.will_due = sqlite3_column_int64(select.get(), m_will_due);
        std::string why;
        if (format::read_message(select.get(), m.message, why)) {
            out.messages.push_back(std::move(m));
        } else {
            unreadable.push_back(m.id);
            out.problems.push_back("message " + std::to_string(m.id) + " of session " + std::to_string(session) +
                                   " is unreadable (" + why + "); removed");
        }
    }
    if (rc != SQLITE_DONE) out.error = reason("load a session's messages");
    select.reset();
    std::string error;
    for (const auto id : unreadable) {
        if (!remove_message(id, error)) out.problems.push_back(error);
    }
    return out;
}

bool session_store::commit(std::string& error) {
    const int rc = batch_.commit();
    if (rc == SQLITE_OK) return true;
    error = "cannot commit the local sessions' changes (lost): " + sqlite_reason(db_, rc);
    return false;
}

}  // namespace thingmux::spool
