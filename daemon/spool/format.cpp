#include "daemon/spool/format.hpp"

#include <sqlite3.h>

#include <limits>

namespace thingmux::spool::format {

// A message's columns, from `bytes` on, and the end of its table: the same in `spool` and in
// `local_message` (bind_message() and read_message() serve both). A macro, so that each CREATE
// stays one string literal.
#define THINGMUX_MESSAGE_COLUMNS \
    " bytes INTEGER NOT NULL CHECK (bytes >= 0),"                                     \
    " topic TEXT NOT NULL,"                                                           \
    " payload BLOB NOT NULL,"                                                         \
    " qos INTEGER NOT NULL CHECK (qos IN (0, 1, 2)),"                                 \
    " retain INTEGER NOT NULL CHECK (retain IN (0, 1)),"                              \
    " payload_format INTEGER CHECK (payload_format IN (0, 1)),"                       \
    " message_expiry INTEGER CHECK (message_expiry BETWEEN 0 AND 4294967295),"        \
    " content_type TEXT,"                                                             \
    " response_topic TEXT,"                                                           \
    " correlation_data BLOB,"                                                         \
    " user_properties BLOB);"

// AUTOINCREMENT: an id is never reused, even after the newest message was removed. The daemon
// holds ids until the broker acknowledges them, and a late remove() must never hit a newer
// message. The CHECKs keep what read_message() relies on true for every row written.
const char* const create_sql =
    "CREATE TABLE spool ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " thing TEXT NOT NULL,"
    THINGMUX_MESSAGE_COLUMNS
    "CREATE INDEX spool_by_thing ON spool (thing, id);"
    "CREATE TABLE quarantine ("
    " id INTEGER PRIMARY KEY,"
    " thing TEXT NOT NULL,"
    " bytes INTEGER NOT NULL,"
    " format TEXT NOT NULL,"
    " record BLOB NOT NULL,"
    " reason TEXT NOT NULL,"
    " quarantined_at INTEGER NOT NULL);";

// A local session's columns and the end of its table: the same in the table as created and as
// rebuilt from schema 3. The key has the Thing: an IPC session is its uid's, its Thing's and its
// name's (IPC-43); an MQTT session's client id is its uid's and MQTT user's on one Thing at a time
// (the hub ends it when the id connects for another Thing).
#define THINGMUX_SESSION_COLUMNS \
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"                 \
    " thing TEXT NOT NULL,"                                  \
    " kind TEXT NOT NULL,"                                   \
    " client_id TEXT NOT NULL,"                              \
    " uid INTEGER NOT NULL,"                                 \
    " gid INTEGER NOT NULL,"                                 \
    " groups TEXT NOT NULL,"                                 \
    " user TEXT NOT NULL,"                                   \
    " group_names TEXT NOT NULL,"                            \
    " unit TEXT NOT NULL,"                                   \
    " mqtt_user TEXT NOT NULL,"                              \
    " expiry INTEGER NOT NULL CHECK (expiry >= 0),"          \
    " ended_at INTEGER,"                                     \
    " subscriptions BLOB NOT NULL,"                          \
    " UNIQUE (kind, uid, mqtt_user, thing, client_id));"

// The tables of local sessions: the sessions that outlive their connections, and the messages
// that wait for them. ON DELETE CASCADE: a session's messages go with it.
const char* const create_sessions_sql =
    "CREATE TABLE local_session ("
    THINGMUX_SESSION_COLUMNS
"CREATE TABLE local_message ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " session INTEGER NOT NULL REFERENCES local_session (id) ON DELETE CASCADE,"
    " share TEXT,"
    " will_due INTEGER,"
    THINGMUX_MESSAGE_COLUMNS
    "CREATE INDEX local_message_by_session ON local_message (session, id);";

// Schema 3's local_session had the key (kind, uid, mqtt_user, client_id). SQLite cannot change a
// table's constraints: the table is built again under its name, rows, ids and the id sequence
// kept. local_message refers to it by name and is left as it is; the caller turns foreign keys off
// around it, or the DROP would delete every waiting message by cascade.
const char* const rekey_sessions_sql =
    "CREATE TABLE local_session_4 ("
    THINGMUX_SESSION_COLUMNS
    "INSERT INTO local_session_4 SELECT * FROM local_session;"
    "DELETE FROM sqlite_sequence WHERE name = 'local_session_4';"
    "INSERT INTO sqlite_sequence (name, seq) SELECT 'local_session_4', seq FROM sqlite_sequence"
    " WHERE name = 'local_session';"
    "DROP TABLE local_session;"
    "ALTER TABLE local_session_4 RENAME TO local_session;"
    "ALTER TABLE local_message ADD COLUMN share TEXT;"
    "ALTER TABLE local_message ADD COLUMN will_due INTEGER;";

#undef THINGMUX_SESSION_COLUMNS
#undef THINGMUX_MESSAGE_COLUMNS

const char* const insert_sql =
    "INSERT INTO spool (id, thing, bytes, topic, payload, qos, retain, payload_format, message_expiry,"
    " content_type, response_topic, correlation_data, user_properties)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

const char* const select_sql =
    "SELECT id, bytes, topic, payload, qos, retain, payload_format, message_expiry, content_type, response_topic,"
    " correlation_data, user_properties FROM spool WHERE thing = ?1 AND id > ?2 ORDER BY id LIMIT ?3";

const char* const quarantine_row_sql =
    "INSERT INTO quarantine (id, thing, bytes, format, record, reason, quarantined_at)"
    " SELECT id, thing, bytes, 'spool-2-row-json',"
    " json_object('topic', topic, 'payload', hex(payload), 'qos', qos, 'retain', retain,"
    " 'payload_format', payload_format, 'message_expiry', message_expiry, 'content_type', content_type,"
    " 'response_topic', response_topic, 'correlation_data', hex(correlation_data),"
    " 'user_properties', hex(user_properties)),"
    " ?2, CAST(strftime('%s', 'now') AS INTEGER) FROM spool WHERE id = ?1";

const char* const quarantine_record_sql =
    "INSERT INTO quarantine (id, thing, bytes, format, record, reason, quarantined_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, CAST(strftime('%s', 'now') AS INTEGER))";

namespace {

// Columns of select_sql from select_message_column on, in order.
enum column : int {
    topic = select_message_column,
    payload,
    qos,
    retain,
    payload_format,
    message_expiry,
    content_type,
    response_topic,
    correlation_data,
    user_properties,
};

constexpr std::uint8_t user_properties_encoding = 1;
constexpr std::uint8_t subscriptions_encoding = 1;

// An empty view or string may have a null data pointer, which SQLite would store as NULL.
constexpr char no_bytes[] = "";

int bind_text(sqlite3_stmt* stmt, int index, std::string_view text) {
    return sqlite3_bind_text64(stmt, index, text.empty() ? no_bytes : text.data(), text.size(), SQLITE_STATIC,
                               SQLITE_UTF8);
}

int bind_blob(sqlite3_stmt* stmt, int index, std::span<const std::uint8_t> blob) {
    return blob.empty() ? sqlite3_bind_zeroblob(stmt, index, 0)
                        : sqlite3_bind_blob64(stmt, index, blob.data(), blob.size(), SQLITE_STATIC);
}

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

int bind_optional_text(sqlite3_stmt* stmt, int index, const std::optional<std::string>& text) {
    return text ? bind_text(stmt, index, *text) : sqlite3_bind_null(stmt, index);
}

int bind_optional_int(sqlite3_stmt* stmt, int index, std::optional<std::int64_t> value) {
    return value ? sqlite3_bind_int64(stmt, index, *value) : sqlite3_bind_null(stmt, index);
}

std::string_view column_bytes(sqlite3_stmt* stmt, int col) {
    // The pointer first, then the size: the order SQLite documents.
    const auto* data = sqlite3_column_blob(stmt, col);
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, col));
    return data == nullptr ? std::string_view{} : std::string_view{static_cast<const char*>(data), size};
}

// Reads the messages' columns one by one, stopping at the first that breaks the format.
class row_reader {
public:
    explicit row_reader(sqlite3_stmt* stmt) : stmt_{stmt} {}

    bool text(int col, const char* name, std::string& out) { return bytes(col, name, SQLITE_TEXT, out); }
    bool blob(int col, const char* name, std::string& out) { return bytes(col, name, SQLITE_BLOB, out); }

    bool optional_text(int col, const char* name, std::optional<std::string>& out) {
        return optional(col, [&] { return text(col, name, out.emplace()); });
    }
    bool optional_blob(int col, const char* name, std::optional<std::string>& out) {
        return optional(col, [&] { return blob(col, name, out.emplace()); });
    }

    template <class Int>
    bool integer(int col, const char* name, std::int64_t max, Int& out) {
        if (sqlite3_column_type(stmt_, col) != SQLITE_INTEGER) return fail(name, "is not an integer");
        const std::int64_t v = sqlite3_column_int64(stmt_, col);
        if (v < 0 || v > max) return fail(name, "is " + std::to_string(v) + ", out of range");
        out = static_cast<Int>(v);
        return true;
    }
    template <class Int>
    bool optional_integer(int col, const char* name, std::int64_t max, std::optional<Int>& out) {
        return optional(col, [&] { return integer(col, name, max, out.emplace()); });
    }

    bool fail(const char* name, const std::string& problem) {
        why_ = std::string{name} + " " + problem;
        return false;
    }
    [[nodiscard]] std::string& why() { return why_; }

private:
    bool bytes(int col, const char* name, int type, std::string& out) {
        if (sqlite3_column_type(stmt_, col) != type)
            return fail(name, type == SQLITE_TEXT ? "is not text" : "is not a blob");
        out.assign(column_bytes(stmt_, col));
        return true;
    }
    template <class Read>
    bool optional(int col, Read read) {
        return sqlite3_column_type(stmt_, col) == SQLITE_NULL || read();
    }

    sqlite3_stmt* stmt_;
    std::string why_;
};

void put_length(std::vector<std::uint8_t>& out, std::size_t n) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(n >> shift));
}

void put_string(std::vector<std::uint8_t>& out, std::string_view s) {
    put_length(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
}

// Reads the encodings above: 4-byte big-endian lengths before strings, single bytes.
class byte_reader {
public:
    byte_reader(std::span<const std::uint8_t> bytes, std::string& why) : rest_{bytes}, why_{why} {}
    [[nodiscard]] bool done() const noexcept { return rest_.empty(); }
    bool string(std::string& s) {
        if (rest_.size() < 4) {
            why_ = "ends inside a length";
            return false;
        }
        std::size_t n = 0;
        for (std::size_t i = 0; i < 4; ++i) n = (n << 8) | rest_[i];
        rest_ = rest_.subspan(4);
        if (n > rest_.size()) {
            why_ = "has a string of " + std::to_string(n) + " bytes with " + std::to_string(rest_.size()) + " left";
            return false;
        }
        s.assign(reinterpret_cast<const char*>(rest_.data()), n);
        rest_ = rest_.subspan(n);
        return true;
    }
    bool byte(std::uint8_t& b) {
        if (rest_.empty()) {
            why_ = "ends inside an entry";
            return false;
        }
        b = rest_[0];
        rest_ = rest_.subspan(1);
        return true;
    }

private:
    std::span<const std::uint8_t> rest_;
    std::string& why_;
};

// An encoding's version byte, then entries up to the end, each read by `read`.
template <class T, class Read>
bool decode_list(std::span<const std::uint8_t> encoded, std::uint8_t encoding, std::vector<T>& out, std::string& why,
                 Read read) {
    out.clear();
    if (encoded.empty() || encoded[0] != encoding) {
        why = encoded.empty() ? "is empty" : "has unknown encoding " + std::to_string(encoded[0]);
        return false;
    }
    byte_reader in{encoded.subspan(1), why};
    while (!in.done()) {
        if (!read(in, out.emplace_back())) return false;
    }
    return true;
}

}  // namespace

int bind_row(sqlite3_stmt* insert, std::optional<std::int64_t> id, std::string_view thing, std::uint64_t bytes,
             const message& m) {
    int rc = bind_optional_int(insert, 1, id);
    if (rc == SQLITE_OK) rc = bind_text(insert, 2, thing);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(insert, 3, static_cast<sqlite3_int64>(bytes));
    return rc == SQLITE_OK ? bind_message(insert, m) : rc;
}

int bind_message(sqlite3_stmt* insert, const message& m) {
    int rc = bind_text(insert, 4, m.topic);
    if (rc == SQLITE_OK) rc = bind_blob(insert, 5, bytes_of(m.payload));
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(insert, 6, m.qos);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int(insert, 7, m.retain ? 1 : 0);
    if (rc == SQLITE_OK) rc = bind_optional_int(insert, 8, m.payload_format_indicator);
    if (rc == SQLITE_OK) rc = bind_optional_int(insert, 9, m.message_expiry_interval);
    if (rc == SQLITE_OK) rc = bind_optional_text(insert, 10, m.content_type);
    if (rc == SQLITE_OK) rc = bind_optional_text(insert, 11, m.response_topic);
    if (rc == SQLITE_OK) {
        rc = m.correlation_data ? bind_blob(insert, 12, bytes_of(*m.correlation_data)) : sqlite3_bind_null(insert, 12);
    }
    if (rc == SQLITE_OK) {
        // SQLITE_TRANSIENT: the encoding is a temporary.
        rc = m.user_properties.empty() ? sqlite3_bind_null(insert, 13) : [&] {
            const auto encoded = encode_user_properties(m.user_properties);
            return sqlite3_bind_blob64(insert, 13, encoded.data(), encoded.size(), SQLITE_TRANSIENT);
        }();
    }
    return rc;
}

bool read_message(sqlite3_stmt* select, message& out, std::string& why) {
    constexpr std::int64_t uint32_max = std::numeric_limits<std::uint32_t>::max();
    row_reader r{select};
    bool ok = r.text(topic, "topic", out.topic) && r.blob(payload, "payload", out.payload) &&
              r.integer(qos, "qos", 2, out.qos) && r.integer(retain, "retain", 1, out.retain) &&
              r.optional_integer(payload_format, "payload_format", 1, out.payload_format_indicator) &&
              r.optional_integer(message_expiry, "message_expiry", uint32_max, out.message_expiry_interval) &&
              r.optional_text(content_type, "content_type", out.content_type) &&
              r.optional_text(response_topic, "response_topic", out.response_topic) &&
              r.optional_blob(correlation_data, "correlation_data", out.correlation_data);
    out.user_properties.clear();
    if (ok && sqlite3_column_type(select, user_properties) != SQLITE_NULL) {
        std::string encoded;
        ok = r.blob(user_properties, "user_properties", encoded);
        std::string problem;
        if (ok && !decode_user_properties(bytes_of(encoded), out.user_properties, problem)) {
            ok = r.fail("user_properties", problem);
        }
    }
    if (!ok) why = std::move(r.why());
    return ok;
}

std::vector<std::uint8_t> encode_subscriptions(const std::vector<subscription>& subscriptions) {
    std::vector<std::uint8_t> out{subscriptions_encoding};
    for (const auto& s : subscriptions) {
        put_string(out, s.filter);
        out.push_back(s.max_qos);
        out.push_back(s.options);
    }
    return out;
}

bool decode_subscriptions(std::span<const std::uint8_t> encoded, std::vector<subscription>& out, std::string& why) {
    return decode_list(encoded, subscriptions_encoding, out, why, [&why](byte_reader& in, subscription& s) {
        if (!in.string(s.filter) || !in.byte(s.max_qos) || !in.byte(s.options)) return false;
        if (s.max_qos <= 2) return true;
        why = "has QoS " + std::to_string(s.max_qos) + " for filter '" + s.filter + "'";
        return false;
    });
}

std::vector<std::uint8_t> encode_user_properties(const std::vector<user_property>& properties) {
    std::vector<std::uint8_t> out{user_properties_encoding};
    for (const auto& p : properties) {
        put_string(out, p.key);
        put_string(out, p.value);
    }
    return out;
}

bool decode_user_properties(std::span<const std::uint8_t> encoded, std::vector<user_property>& out, std::string& why) {
    return decode_list(encoded, user_properties_encoding, out, why,
                       [](byte_reader& in, user_property& p) { return in.string(p.key) && in.string(p.value); });
}

}  // namespace thingmux::spool::format
