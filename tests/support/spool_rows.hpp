// What the daemon's spool file holds, read from outside as another process would: the tests of
// sessions that survive thingmuxd count the rows it stored before they kill it.
#pragma once

#include <filesystem>
#include <string>

namespace thingmux::test {

// `SELECT count(*) FROM <from>` on the spool file, read-only (WAL: the daemon keeps writing
// meanwhile). `from` is a table, optionally with a condition: "local_session WHERE kind = 'ipc'".
// -1 when the file cannot be read yet.
[[nodiscard]] long long spool_rows(const std::filesystem::path& spool, const std::string& from);

}  // namespace thingmux::test
