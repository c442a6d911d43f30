#include "tests/support/session_restart.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

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

std::vector<std::string> commands(int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i <= to; ++i) out.push_back("cmd-" + std::to_string(i));
    return out;
}

restart_under_traffic kill_daemon_while_the_cloud_sends(const broker_fixture& broker, daemon_fixture& daemon,
                                                        const std::string& topic, int from, int to,
                                                        long long min_stored) {
    const auto spool = daemon.dir() / "spool.db";
    std::atomic<int> sent{from - 1};
    std::thread cloud([&] {
        for (int first = from; first <= to; first += 20) {
            const int last = std::min(first + 19, to);
            publish_from_cloud(broker, topic, commands(first, last));
            sent = last;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));  // pacing, not synchronization
        }
    });
    restart_under_traffic r;
    r.stored = eventually([&] { return spool_rows(spool, "local_message") >= min_stored; }, 60'000);
    daemon.kill();
    r.sent_at_kill = sent;
    r.stored_at_kill = spool_rows(spool, "local_message");
    // The broker queues what the cloud sends meanwhile for the Thing's session.
    EXPECT_TRUE(eventually([&] { return sent >= std::min(r.sent_at_kill + 200, to); }, 60'000));
    daemon.start();
    r.sent_at_start = sent;
    cloud.join();
    return r;
}

arrival_count count_arrivals(const std::map<std::string, int>& times, const std::vector<std::string>& expected) {
    arrival_count c;
    for (const auto& e : expected) {
        const auto it = times.find(e);
        if (it == times.end()) {
            if (++c.absent <= 20) c.absent_ones += " " + e;
        } else {
            c.duplicates += it->second - 1;
        }
    }
    return c;
}

}  // namespace thingmux::test
