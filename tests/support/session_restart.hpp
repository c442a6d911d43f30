// Pieces of the tests of local sessions that survive thingmuxd (mqtt_session_restart_test.cpp,
// ipc_session_restart_test.cpp): the spool file read from outside, numbered commands from the
// cloud while the daemon is killed, and the count of what reached the app in the end.
#pragma once

#include "tests/support/daemon_fixture.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace thingmux::test {

// `SELECT count(*) FROM <from>` on the spool file, read-only (WAL: the daemon keeps writing
// meanwhile). `from` is a table, optionally with a condition: "local_session WHERE kind = 'ipc'".
// -1 when the file cannot be read yet.
[[nodiscard]] long long spool_rows(const std::filesystem::path& spool, const std::string& from);

// Payloads "cmd-FROM" .. "cmd-TO".
[[nodiscard]] std::vector<std::string> commands(int from, int to);

// What kill_daemon_while_the_cloud_sends() saw.
struct restart_under_traffic {
    bool stored = false;           // the spool held the messages asked for before the kill
    int sent_at_kill = 0;          // the last command the cloud had sent at the kill
    long long stored_at_kill = 0;  // messages waiting for sessions in the spool then
    int sent_at_start = 0;         // the last command sent when thingmuxd started again
};

// The cloud sends commands(from, to) to `topic` in bursts of 20 from a thread, as a device's
// backend would. Meanwhile thingmuxd is killed with SIGKILL as soon as its spool holds
// `min_stored` messages for absent clients (local_message rows; after 60 s without), and started
// again once the cloud sent 200 more, which the broker queues for the Thing's session. Returns
// once the cloud sent them all.
restart_under_traffic kill_daemon_while_the_cloud_sends(const broker_fixture& broker, daemon_fixture& daemon,
                                                        const std::string& topic, int from, int to,
                                                        long long min_stored);

// How numbered commands reached an app, given how often each payload arrived (over every
// instance of the app).
struct arrival_count {
    int absent = 0;
    int duplicates = 0;
    std::string absent_ones;  // the first 20 of them, for failure messages
};
[[nodiscard]] arrival_count count_arrivals(const std::map<std::string, int>& times,
                                           const std::vector<std::string>& expected);

}  // namespace thingmux::test
