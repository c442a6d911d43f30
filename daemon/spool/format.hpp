// The spool's file format, schema 4 (`PRAGMA user_version = 4`), owned by this module alone.
//
// One SQLite database (WAL) marked `PRAGMA application_id = 0x54686d78` ("Thmx"):
//
//   spool        one row per message, oldest first by id:
//     id               INTEGER PRIMARY KEY AUTOINCREMENT  order of acceptance; never reused
//     thing            TEXT NOT NULL      the Thing the message goes to
//     bytes            INTEGER NOT NULL   what it counts against spool.max_bytes (topic + payload)
//     topic            TEXT NOT NULL
//     payload          BLOB NOT NULL      binary; empty is a zero-length blob, never NULL
//     qos              INTEGER NOT NULL   0, 1 or 2
//     retain           INTEGER NOT NULL   0 or 1
//     payload_format   INTEGER            MQTT 5 Payload Format Indicator, 0 or 1; NULL = absent
//     message_expiry   INTEGER            MQTT 5 Message Expiry Interval, seconds; NULL = absent
//     content_type     TEXT               NULL = absent ('' = present and empty, as below)
//     response_topic   TEXT
//     correlation_data BLOB
//     user_properties  BLOB               NULL = none; else the encoding below
//   index spool_by_thing (thing, id)      serves "this Thing, after this id, oldest first"
//
//   quarantine   messages the daemon could not read, kept for a person to look at:
//     id               INTEGER PRIMARY KEY  the id the message had in `spool`
//     thing, bytes                          as in `spool`
//     format           TEXT NOT NULL      what `record` holds: 'ipc-publish-frame-1' (a schema 1
//                                         row: the IPC protocol 1 publish frame) or
//                                         'spool-2-row-json' (a schema 2 row as a JSON object,
//                                         blobs in hex)
//     record           BLOB NOT NULL      the message as it was stored
//     reason           TEXT NOT NULL      why it could not be read
//     quarantined_at   INTEGER NOT NULL   Unix time, seconds
//
//   local_session  one row per local session kept beyond its connection (sessions.hpp):
//     id               INTEGER PRIMARY KEY AUTOINCREMENT
//     thing            TEXT NOT NULL      the Thing the session belongs to
//     kind             TEXT NOT NULL      the front end: 'mqtt'
//     client_id        TEXT NOT NULL      the client's own id (MQTT client identifier)
//     uid, gid         INTEGER NOT NULL   the peer's kernel identity when it last connected
//     groups           TEXT NOT NULL      its supplementary gids, comma-separated
//     user             TEXT NOT NULL      the name of uid ('' unknown)
//     group_names      TEXT NOT NULL      comma-separated (group names never hold a comma)
//     unit             TEXT NOT NULL      its systemd unit ('' none)
//     mqtt_user        TEXT NOT NULL      the MQTT user whose password was checked ('' none)
//     expiry           INTEGER NOT NULL   seconds the session is kept after its connection ends
//     ended_at         INTEGER            Unix time its last connection ended; NULL while one is
//                                         open (after a crash: the daemon's start counts)
//     subscriptions    BLOB NOT NULL      the encoding below
//     UNIQUE (kind, uid, mqtt_user, client_id)   how local sessions are keyed
//   local_message  QoS 1 messages a local session has not acknowledged yet, oldest first by id,
//                  and the MQTT will it is to publish after a delay:
//     id               INTEGER PRIMARY KEY AUTOINCREMENT
//     session          INTEGER NOT NULL   local_session.id, ON DELETE CASCADE
//     share            TEXT               the shared subscription ("$share/NAME/FILTER") the
//                                         session took it for; NULL: a plain subscription
//     will_due         INTEGER            NULL: a message for the client; else this row is the
//                                         session's delayed will (MQTT 5 Will Delay Interval),
//                                         due at this Unix time
//     bytes, topic, payload, qos, retain, payload_format, message_expiry, content_type,
//     response_topic, correlation_data, user_properties     as in `spool`
//   index local_message_by_session (session, id)
//
// Subscriptions encoding (version 1): one byte 0x01, then per subscription: filter length (4
// bytes, big endian), filter bytes, maximum QoS (one byte, 0..2), options (one byte: the MQTT 5
// SUBSCRIBE options byte's bits 2..5, No Local, Retain As Published, Retain Handling).
//
// User properties encoding (version 1), an ordered list that may repeat keys:
//   one byte 0x01 (the encoding's version), then per property, in order:
//   key length (4 bytes, big endian), key bytes, value length (4 bytes, big endian), value bytes.
// Nothing follows the last property. A reader refuses other versions and any byte left over or
// missing.
//
// Schema history: 1 (thingmux 0.1.0) had `spool (id, thing, message BLOB, bytes)` with the IPC
// publish frame in `message`; migrate_v1.hpp converts it. 2 had no local_session and
// local_message; opening it adds them. 3 keyed local_session by (kind, uid, mqtt_user, client_id)
// without the Thing, and local_message had no share and will_due; opening it rebuilds the table
// with the Thing in the key and adds the columns (rekey_sessions_sql).
// A version above 4 is a later release's file: the store moves it aside like any file it cannot
// read.
#pragma once

#include "daemon/spool/message.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3_stmt;

namespace thingmux::spool::format {

// Marks the file as ours, so that another SQLite database put at the path (or restored from the
// wrong backup) is moved aside instead of being mistaken for an empty spool. "Thmx".
inline constexpr int application_id = 0x54686d78;
inline constexpr int version = 4;

// Creates the tables and index of schema 2 (spool, quarantine); run inside the caller's
// transaction.
extern const char* const create_sql;
// Creates the tables of local sessions (local_session, local_message); run after create_sql, or
// alone to bring a schema 2 file to the current schema.
extern const char* const create_sessions_sql;
// Brings schema 3's local_session to the current key and local_message to the current columns;
// run inside the caller's transaction, with foreign keys off.
extern const char* const rekey_sessions_sql;

// A local session's subscription as the file keeps it.
struct subscription {
    std::string filter;
    std::uint8_t max_qos = 1;
    std::uint8_t options = 0;  // MQTT 5 subscription options bits 2..5 (No Local, RAP, Retain Handling)
    friend bool operator==(const subscription&, const subscription&) = default;
};

// Inserts one message. Parameters: ?1 id (NULL: the next one), ?2 thing, ?3 bytes, then the
// message (bind_row() binds them all).
extern const char* const insert_sql;

// Selects the messages of one Thing after an id, oldest first: ?1 thing, ?2 after, ?3 limit.
// Columns: id, bytes, then the message from column select_message_column.
extern const char* const select_sql;
inline constexpr int select_message_column = 2;

// Moves a row of `spool` whose columns cannot be read into `quarantine` as 'spool-2-row-json':
// ?1 id, ?2 reason. The caller deletes it from `spool` in the same transaction.
extern const char* const quarantine_row_sql;

// Records a row of another format in `quarantine`: ?1 id, ?2 thing, ?3 bytes, ?4 format,
// ?5 record, ?6 reason.
extern const char* const quarantine_record_sql;

// Binds a row to an insert_sql statement. The bindings point into the arguments (no copy):
// reset and clear the statement before they go away. Returns SQLite's result code.
[[nodiscard]] int bind_row(sqlite3_stmt* insert, std::optional<std::int64_t> id, std::string_view thing,
                           std::uint64_t bytes, const message& m);

// Binds only the message, parameters ?4 to ?13 (bind_row() calls it; local_message's insert has
// the same layout with the session's id in ?2).
[[nodiscard]] int bind_message(sqlite3_stmt* insert, const message& m);

// Reads the message of the current row of a select_sql statement. False, with `why`, when a
// column breaks the format (wrong type, out of range, undecodable user properties).
[[nodiscard]] bool read_message(sqlite3_stmt* select, message& out, std::string& why);

[[nodiscard]] std::vector<std::uint8_t> encode_subscriptions(const std::vector<subscription>& subscriptions);
[[nodiscard]] bool decode_subscriptions(std::span<const std::uint8_t> encoded, std::vector<subscription>& out,
                                        std::string& why);
[[nodiscard]] std::vector<std::uint8_t> encode_user_properties(const std::vector<user_property>& properties);
[[nodiscard]] bool decode_user_properties(std::span<const std::uint8_t> encoded, std::vector<user_property>& out,
                                          std::string& why);

}  // namespace thingmux::spool::format
