#include "tests/support/spool_rows.hpp"

#include <sqlite3.h>

namespace thingmux::test {

long long spool_rows(const std::filesystem::path& spool, const std::string& from) {
    sqlite3* db = nullptr;
    long long n = -1;
    if (sqlite3_open_v2(spool.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
        sqlite3_stmt* stmt = nullptr;
        const std::string sql = "SELECT count(*) FROM " + from;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
            n = sqlite3_column_int64(stmt, 0);
        sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return n;
}

}  // namespace thingmux::test
