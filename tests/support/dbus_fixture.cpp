#include "tests/support/dbus_fixture.hpp"

#include <fstream>
#include <stdexcept>

#include <sys/stat.h>
#include <sys/un.h>

namespace thingmux::test {
namespace fs = std::filesystem;
namespace {

constexpr int ready_timeout_ms = 15'000;    // generous: two cores are shared with other builds
constexpr int command_timeout_ms = 30'000;  // busctl's own method call timeout is 25 s

std::string xml_escape(const std::string& s) {
    std::string out;
    for (const char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

// Everything allowed, as in /usr/share/dbus-1/session.conf; plus every uid may connect, which a
// session bus does not need (only its own user connects) but tests with other uids do.
constexpr const char* permissive_policy = R"(  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
)";

// The policy sections of Debian's /usr/share/dbus-1/system.conf (dbus 1.14), verbatim: nothing
// may own a name or receive a method call unless an included file punches the hole.
constexpr const char* system_bus_policy = R"(  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus" />
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Containers1"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
)";

}  // namespace

dbus_fixture::dbus_fixture() : dbus_fixture(options{}) {}

dbus_fixture::dbus_fixture(options opts) : opts_(std::move(opts)) {
    // sockaddr_un::sun_path is 108 bytes; dbus-daemon's own error for a longer path is cryptic.
    if (socket_path().string().size() >= sizeof(sockaddr_un{}.sun_path))
        throw std::runtime_error("dbus_fixture: socket path too long: " + socket_path().string());
    write_config();
    // --print-address to a file, not a descriptor: child_process closes inherited descriptors.
    // dbus-daemon prints it only once it listens, so the line is the first readiness signal.
    daemon_.emplace(std::vector<std::string>{"dbus-daemon", "--nofork", "--nopidfile", "--nosyslog", "--print-address",
                                             "--config-file=" + config_file().string()},
                    dir() / "address", stderr_file());
    try {
        wait_until_ready();
    } catch (...) {
        daemon_.reset();  // stop it before dir_ goes away
        throw;
    }
}

dbus_fixture::~dbus_fixture() {
    daemon_.reset();
}

void dbus_fixture::write_config() const {
    std::ofstream out(config_file());
    out << R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=)"
        << xml_escape(socket_path().string()) << "</listen>\n"
        << (opts_.default_allow ? permissive_policy : system_bus_policy);
    // After the defaults, like system.d/ in system.conf: its default-context rules win over ours.
    if (!opts_.include_policy.empty())
        out << "  <include>" << xml_escape(fs::absolute(opts_.include_policy).string()) << "</include>\n";
    out << "</busconfig>\n";
    if (!out.flush()) throw std::runtime_error("dbus_fixture: cannot write " + config_file().string());
}

void dbus_fixture::wait_until_ready() {
    const auto fail = [this](const std::string& why) {
        return std::runtime_error("dbus_fixture: " + why + "\nconfig " + config_file().string() +
                                  "\ndbus-daemon stderr:\n" + read_file(stderr_file()));
    };
    const bool listening =
        eventually([&] { return read_file(dir() / "address").find('\n') != std::string::npos || !daemon_->running(); },
                   ready_timeout_ms);
    if (!daemon_->running()) throw fail("dbus-daemon exited during startup");
    if (!listening) throw fail("dbus-daemon printed no address within " + std::to_string(ready_timeout_ms) + " ms");
    // dbus-daemon makes the socket 0777 itself; stated here because tests as other uids rely on it.
    if (::chmod(socket_path().c_str(), 0666) != 0) throw fail("cannot chmod " + socket_path().string());

    command_result last;
    const bool answers = eventually(
        [&] {
            last = busctl({"call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId"});
            return last.exit_code == 0;
        },
        ready_timeout_ms);
    if (!answers) throw fail("the bus does not answer busctl:\n" + last.output);
}

command_result dbus_fixture::busctl(const std::vector<std::string>& args,
                                    const std::optional<user_identity>& as) const {
    std::vector<std::string> argv{"/usr/bin/busctl", "--address=" + address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(std::move(argv), as);
}

command_result dbus_fixture::thing_property(const std::string& property, const std::string& path, int timeout_ms) const {
    command_result r;
    (void)eventually(
        [&] {
            r = busctl({"get-property", "org.thingmux.Thingmux1", path, "org.thingmux.Thingmux1.Thing", property});
            return r.exit_code == 0;
        },
        timeout_ms);
    return r;
}

command_result dbus_fixture::dbus_send(const std::vector<std::string>& args,
                                       const std::optional<user_identity>& as) const {
    std::vector<std::string> argv{"dbus-send", "--bus=" + address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(std::move(argv), as);
}

command_result dbus_fixture::run(std::vector<std::string> argv, const std::optional<user_identity>& as) const {
    command_result r;
    if (!as) {
        r.exit_code = run_command(argv, &r.output, command_timeout_ms);
        return r;
    }
    // The command itself must run with `as`'s credentials: the bus reads them off the socket.
    const auto res = run_as_user(
        *as, [&](std::string& out) { return run_command(argv, &out, command_timeout_ms); }, command_timeout_ms + 5'000);
    r.exit_code = res.exit_code;
    r.output = res.output;
    return r;
}

}  // namespace thingmux::test
