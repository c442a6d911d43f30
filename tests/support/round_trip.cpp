#include "tests/support/round_trip.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <vector>

namespace thingmux::test {

void expect_round_trip(const broker_fixture& broker, daemon_fixture& daemon, int n, std::uint8_t qos,
                       const std::string& app_name, const std::string& thing) {
    observer_subscription cloud(broker, "dt/" + thing + "/#");
    ASSERT_TRUE(cloud.wait_ready());
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, app_name)) << read_file(daemon.log_file());
    ASSERT_EQ(app.subscribe({"cmd/" + thing + "/#"}).at(0).code, ipc::errc::ok);
    publish_from_cloud(broker, "cmd/" + thing + "/x", numbered(n));
    EXPECT_TRUE(app.wait_messages(static_cast<std::size_t>(n)));
    std::set<std::string> got;
    for (const auto& m : app.messages) got.insert(m.payload);
    EXPECT_EQ(got.size(), static_cast<std::size_t>(n)) << "messages from the cloud lost on the way";
    std::vector<std::string> expected;
    for (const auto& p : numbered(n, "up-")) {
        const auto r = app.publish("dt/" + thing + "/x", p, qos);
        ASSERT_EQ(r.code, ipc::errc::ok) << r.message;
        expected.push_back("dt/" + thing + "/x " + p);
    }
    EXPECT_EQ(cloud.wait_for_all(expected, 20'000), 0U) << "messages to the cloud lost on the way";
}

std::vector<std::string> publish_all(ipc_client& app, const std::string& topic,
                                     const std::vector<std::string>& payloads, std::optional<ipc::errc> must_be) {
    std::vector<std::string> expected;
    for (const auto& p : payloads) {
        const auto r = app.publish(topic, p, 1);
        EXPECT_TRUE(ipc::accepted(r.code)) << p << ": " << r.message;
        if (must_be) {
            EXPECT_EQ(r.code, *must_be) << p << ": " << r.message;
        }
        expected.push_back(topic + " " + p);
    }
    return expected;
}

std::size_t log_lines(const daemon_fixture& d, const std::string& text) {
    std::ifstream in(d.log_file());
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.find(text) != std::string::npos) ++n;
    }
    return n;
}

std::filesystem::path secret_file(const std::filesystem::path& dir, const std::string& name, const std::string& text) {
    const auto p = dir / name;
    std::ofstream(p, std::ios::trunc) << text;
    ::chmod(p.c_str(), 0600);
    return p;
}

std::string ctl_status(const std::string& bus_address, const daemon_fixture& daemon) {
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_address.c_str(), 1);
    std::string out;
    EXPECT_EQ(run_command({std::string(THINGMUX_BIN_DIR) + "/thingmuxctl", "--socket", daemon.socket_path().string(), "status"},
                          &out),
              0)
        << out;
    ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
    return out;
}

}  // namespace thingmux::test
