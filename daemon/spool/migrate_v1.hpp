// Migration of a spool of schema 1 (thingmux 0.1.0) to the current schema (format.hpp).
//
// Schema 1 kept each message as the IPC protocol 1 `publish` frame the daemon had received, so
// reading it takes the IPC codec: this file is the spool's only dependency on ipc/, and only for
// this conversion.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct sqlite3;

namespace thingmux::spool {

struct migration_report {
    std::uint64_t converted = 0;  // rows now in the current format
    // One line per row that is not a publish frame, moved to the `quarantine` table:
    // "message 7 of Thing gateway-01: <why>".
    std::vector<std::string> quarantined;
};

// Converts every row of a schema 1 database, in one transaction: same ids, same Thing and byte
// count, the frame decoded into the columns of the current schema; a row whose frame cannot be
// decoded goes to `quarantine` with the reason. The AUTOINCREMENT counter is kept, so no id is
// ever reused. Ends with `PRAGMA user_version` at the current version. Returns SQLITE_OK, or the
// failing step's SQLite result code with `error` naming the step and SQLite's reason; the
// transaction is then rolled back and the file is still the schema 1 spool it was.
[[nodiscard]] int migrate_from_v1(sqlite3* db, migration_report& report, std::string& error);

}  // namespace thingmux::spool
