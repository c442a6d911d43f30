// The private system-like bus the D-Bus API tests run on: a real dbus-daemon, checked with the
// real busctl and a real sd-bus client, including who may own a name under a strict policy.
#include "tests/support/dbus_fixture.hpp"

#include <gtest/gtest.h>
#include <systemd/sd-bus.h>

#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>

namespace thingmux::test {
namespace {

const user_identity nobody{65534, 65534, {}};
constexpr const char* name = "test.Name";

// A plain sd-bus client connection, the kind thingmuxd will hold.
class bus_client {
public:
    explicit bus_client(const std::string& address) {
        if (sd_bus_new(&bus_) < 0 || sd_bus_set_address(bus_, address.c_str()) < 0 ||
            sd_bus_set_bus_client(bus_, 1) < 0 || sd_bus_start(bus_) < 0)
            throw std::runtime_error("cannot connect to " + address);
    }
    ~bus_client() { sd_bus_flush_close_unref(bus_); }
    bus_client(const bus_client&) = delete;
    bus_client& operator=(const bus_client&) = delete;

    // RequestName; returns "" when this connection became the primary owner, else the D-Bus
    // error name (or the reply code).
    std::string request_name(const char* wanted) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message* reply = nullptr;
        std::string outcome;
        if (sd_bus_call_method(bus_, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "RequestName", &error, &reply, "su", wanted, 0u) < 0) {
            outcome = error.name != nullptr ? error.name : "call failed";
        } else {
            std::uint32_t code = 0;
            if (sd_bus_message_read(reply, "u", &code) < 0 || code != 1) outcome = "reply " + std::to_string(code);
        }
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return outcome;
    }

private:
    sd_bus* bus_ = nullptr;
};

// Runs request_name as `who` in a child, reporting the outcome as its output.
as_user_result request_name_as(const user_identity& who, const dbus_fixture& bus) {
    return run_as_user(who, [&](std::string& out) {
        out = bus_client(bus.address()).request_name(name);
        return 0;
    });
}

TEST(DbusFixtureTest, BusStartsAndBusctlAndDbusSendSeeTheBusDriver) {
    dbus_fixture bus;
    EXPECT_EQ(bus.address(), "unix:path=" + bus.socket_path().string());
    EXPECT_EQ(bus.env().first, "DBUS_SYSTEM_BUS_ADDRESS");

    const auto list = bus.busctl({"list"});
    ASSERT_EQ(list.exit_code, 0) << list.output;
    EXPECT_NE(list.output.find("org.freedesktop.DBus"), std::string::npos) << list.output;

    const auto names = bus.dbus_send(
        {"--print-reply", "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.ListNames"});
    ASSERT_EQ(names.exit_code, 0) << names.output;
    EXPECT_NE(names.output.find("\"org.freedesktop.DBus\""), std::string::npos) << names.output;

    // Another uid reaches the socket too.
    const auto as_nobody = bus.busctl({"list"}, nobody);
    EXPECT_EQ(as_nobody.exit_code, 0) << as_nobody.output;
}

TEST(DbusFixtureTest, PermissiveBusLetsAnyUserOwnAName) {
    dbus_fixture bus;
    const auto r = request_name_as(nobody, bus);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output, "");
}

TEST(DbusFixtureTest, StrictBusLetsOnlyTheIncludedPolicyGrantOwnershipAndCalls) {
    const shared_temp_dir policy_dir;
    const auto policy = policy_dir.path() / "test.conf";
    std::ofstream(policy) << R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root">
    <allow own="test.Name"/>
  </policy>
</busconfig>
)";
    dbus_fixture bus({.include_policy = policy, .default_allow = false});

    const auto denied = request_name_as(nobody, bus);
    EXPECT_EQ(denied.exit_code, 0) << denied.output;
    EXPECT_EQ(denied.output, "org.freedesktop.DBus.Error.AccessDenied");

    bus_client root(bus.address());
    ASSERT_EQ(root.request_name(name), "");
    const auto list = bus.busctl({"list"});
    ASSERT_EQ(list.exit_code, 0) << list.output;
    EXPECT_NE(list.output.find(name), std::string::npos) << list.output;

    // Owning is not receiving: the system-bus default denies method calls the policy does not
    // allow, before they reach the owner.
    const auto call =
        bus.dbus_send({"--print-reply", "--dest=test.Name", "/", "org.freedesktop.DBus.Peer.Ping"}, nobody);
    EXPECT_NE(call.exit_code, 0) << call.output;
    EXPECT_NE(call.output.find("org.freedesktop.DBus.Error.AccessDenied: Rejected send message"), std::string::npos)
        << call.output;
}

TEST(DbusFixtureTest, BusThatCannotStartThrowsWithTheDaemonsReason) {
    try {
        dbus_fixture bus({.include_policy = "/nonexistent/thingmux.conf", .default_allow = false});
        FAIL() << "dbus-daemon started with a missing include";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/thingmux.conf"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace thingmux::test
