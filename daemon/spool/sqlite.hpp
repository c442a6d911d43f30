// Small helpers over SQLite's C API shared by the store and the migrations: owned statements and
// error text. Internal to daemon/spool.
#pragma once

#include <memory>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace thingmux::spool {

struct statement_finalizer {
    void operator()(sqlite3_stmt* stmt) const noexcept;
};
using statement = std::unique_ptr<sqlite3_stmt, statement_finalizer>;

// sqlite3_prepare_v3 into `out`; returns SQLite's result code. `flags`: SQLITE_PREPARE_*.
[[nodiscard]] int prepare(sqlite3* db, const char* sql, statement& out, unsigned flags = 0);

// SQLite's message for `rc`, plus the OS's when a system call failed: "unable to open database
// file" is clearer with "(Not a directory)", "disk I/O error" with "(File too large)".
[[nodiscard]] std::string sqlite_reason(sqlite3* db, int rc);

}  // namespace thingmux::spool
