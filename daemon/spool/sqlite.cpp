#include "daemon/spool/sqlite.hpp"

#include <sqlite3.h>

#include <system_error>

namespace thingmux::spool {

void statement_finalizer::operator()(sqlite3_stmt* stmt) const noexcept {
    sqlite3_finalize(stmt);
}

int prepare(sqlite3* db, const char* sql, statement& out, unsigned flags) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db, sql, -1, flags, &raw, nullptr);
    out.reset(raw);
    return rc;
}

std::string sqlite_reason(sqlite3* db, int rc) {
    if (db == nullptr) return sqlite3_errstr(rc);
    std::string out = sqlite3_errmsg(db);
    if (const int os_error = sqlite3_system_errno(db); os_error != 0) {
        out += " (" + std::error_code{os_error, std::generic_category()}.message() + ")";
    }
    return out;
}

}  // namespace thingmux::spool
