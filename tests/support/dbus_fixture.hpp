// A private system-like D-Bus for integration tests: a real dbus-daemon on a socket in a fresh
// temporary directory, checked with the real busctl and dbus-send.
//
// Why a private bus: thingmuxd's management API lives on the system bus, and what decides who may
// own its name and call its methods is the dbus-daemon policy, not our code. A mock cannot tell
// whether systemd/org.thingmux.Thingmux1.conf really grants least privilege; a real daemon with
// that file included can. Using the machine's system bus instead would need installing the policy
// under /etc and would let tests collide with each other and with the host.
//
// Two policy modes. Permissive (default_allow = true, like session.conf): anyone may own any name
// and send anything, so tests of the API itself are not about policy. Strict (default_allow =
// false): the default context mirrors Debian's /usr/share/dbus-1/system.conf (deny own, deny
// method calls, allow signals and requested replies, allow talking to the bus driver), so the
// included policy file alone decides, exactly as on a real system bus.
//
// The directory is 0755 and the socket 0666 (a shared_temp_dir), so children running as other
// uids (as_user.hpp) can connect: the uid the bus sees is then theirs, which is what policy
// tests check. Everything is stopped and removed on destruction (THINGMUX_KEEP_TEST_DIRS=1 keeps
// the directory, with the generated config and the daemon's stderr).
#pragma once

#include "tests/support/as_user.hpp"
#include "tests/support/process.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace thingmux::test {

// Exit code and stdout+stderr of a client command (busctl, dbus-send).
struct command_result {
    int exit_code = -1;  // like run_command: 128 + signal, -1 on timeout
    std::string output;
};

class dbus_fixture {
public:
    struct options {
        // A busconfig file <include>d after the default policy (e.g. the project's
        // systemd/org.thingmux.Thingmux1.conf); empty: none.
        std::filesystem::path include_policy;
        // true: everything allowed; false: Debian's system-bus defaults, holes come from
        // include_policy only.
        bool default_allow = true;
    };

    // Writes the config, starts dbus-daemon and waits (bounded) until the bus answers a call.
    // Throws std::runtime_error with the daemon's stderr if it does not come up.
    dbus_fixture();  // default options
    explicit dbus_fixture(options opts);
    ~dbus_fixture();  // SIGTERM dbus-daemon, reap, remove the directory
    dbus_fixture(const dbus_fixture&) = delete;
    dbus_fixture& operator=(const dbus_fixture&) = delete;

    // "unix:path=<socket_path()>", for sd_bus_set_address, busctl --address, dbus-send --bus.
    [[nodiscard]] std::string address() const { return "unix:path=" + socket_path().string(); }
    [[nodiscard]] std::filesystem::path socket_path() const { return dir_.path() / "bus.sock"; }
    [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_.path(); }
    [[nodiscard]] std::filesystem::path config_file() const { return dir_.path() / "bus.conf"; }
    [[nodiscard]] std::filesystem::path stderr_file() const { return dir_.path() / "dbus-daemon.stderr"; }
    // {"DBUS_SYSTEM_BUS_ADDRESS", address()}: makes sd_bus_open_system and friends use this bus.
    [[nodiscard]] std::pair<std::string, std::string> env() const { return {"DBUS_SYSTEM_BUS_ADDRESS", address()}; }
    // The same as "NAME=value", for child_process's extra_env.
    [[nodiscard]] std::string env_assignment() const { return env().first + "=" + env().second; }
    [[nodiscard]] pid_t pid() const noexcept { return daemon_ ? daemon_->pid() : -1; }

    // Runs `/usr/bin/busctl --address=ADDR args...` (as `as` when given: the bus then sees that
    // uid) and returns its exit code and combined output.
    [[nodiscard]] command_result busctl(const std::vector<std::string>& args,
                                        const std::optional<user_identity>& as = std::nullopt) const;
    // busctl get-property of thingmuxd's Thing at `path` (gateway-01's by default), retried until
    // it answers (the daemon may not have taken its name yet) or `timeout_ms` passed: "s \"...\"\n".
    [[nodiscard]] command_result thing_property(const std::string& property,
                                                const std::string& path = "/org/thingmux/Thingmux1/thing/gateway_2d01",
                                                int timeout_ms = 15'000) const;
    // Runs `dbus-send --bus=ADDR args...` likewise.
    [[nodiscard]] command_result dbus_send(const std::vector<std::string>& args,
                                           const std::optional<user_identity>& as = std::nullopt) const;

private:
    void write_config() const;
    void wait_until_ready();
    [[nodiscard]] command_result run(std::vector<std::string> argv, const std::optional<user_identity>& as) const;

    options opts_;
    shared_temp_dir dir_;  // declared before daemon_: removed only after the daemon is stopped
    std::optional<child_process> daemon_;
};

}  // namespace thingmux::test
