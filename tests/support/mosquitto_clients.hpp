// Debian's unmodified MQTT command-line clients, mosquitto_pub and mosquitto_sub (2.0), pointed
// at thingmuxd's MQTT face over its Unix socket (--unix), with what they print read back: the
// reason code of every PUBACK (-d prints "received PUBACK (Mid: 1, RC:135)"), the messages a
// subscriber got ("topic payload", -v) and the SUBACK's codes ("Subscribed (mid: 1): 1").
#pragma once

#include "tests/support/process.hpp"

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace thingmux::test {

// How a mosquitto client connects.
struct mqtt_endpoint {
    std::filesystem::path socket;
    std::string version = "5";  // -V: "5", "311" or "31"
    std::string client_id;      // -i; empty: the client's own (MQTT 5: assigned by the server)
};

// What one run of mosquitto_pub did.
struct publish_run {
    int exit_code = -1;  // 0 also when an MQTT 5 PUBACK refused the message (it warns on stderr)
    // Reason codes of the PUBACKs (QoS 1) or PUBCOMPs (QoS 2) received, in order.
    std::vector<std::uint8_t> acks;
    bool connection_lost = false;  // "Error: The connection was lost." (exit code 7)
    std::string output;            // stdout and stderr
};

// Runs `mosquitto_pub -d --unix ... -t topic -q qos` to completion, one message per payload
// over one connection: one payload with -m; several with -l, on stdin, so none may contain a
// newline (and with -l mosquitto_pub connects again after a lost connection and sends the
// message again, without end if the server keeps closing it). `extra` is appended to the
// command line (e.g. {"-r"}).
[[nodiscard]] publish_run mosquitto_pub(const mqtt_endpoint& to, const std::string& topic,
                                        const std::vector<std::string>& payloads, int qos = 1,
                                        const std::vector<std::string>& extra = {}, int timeout_ms = 60'000);

// A `mosquitto_sub -d -v --unix ...` process for the lifetime of the object, its output in
// files under `dir`. `extra` is appended to the command line (e.g. {"-c"} for a session that
// outlives the connection).
class mosquitto_subscriber {
public:
    mosquitto_subscriber(const mqtt_endpoint& to, const std::vector<std::string>& filters, const std::filesystem::path& dir,
                         int qos = 1, const std::vector<std::string>& extra = {});
    mosquitto_subscriber(const mosquitto_subscriber&) = delete;
    mosquitto_subscriber& operator=(const mosquitto_subscriber&) = delete;

    // Waits until the SUBACK arrived; returns its codes (nullopt on timeout or exit).
    [[nodiscard]] std::optional<std::vector<std::uint8_t>> wait_subscribed(int timeout_ms = 10'000);
    // Messages received so far as "topic payload".
    [[nodiscard]] std::vector<std::string> messages() const;
    // Waits until every one of `expected` ("topic payload") arrived at least once or
    // `timeout_ms` passed; returns how many are still missing.
    std::size_t wait_for_all(const std::vector<std::string>& expected, int timeout_ms);
    // Whether mosquitto_sub still runs (it exits when its connection is closed or taken over).
    [[nodiscard]] bool running() { return proc_.running(); }
    // SIGKILL: the client dies without a DISCONNECT (what it printed stays readable).
    void kill() { proc_.signal(SIGKILL); }
    // Its debug output and errors, for failure messages.
    [[nodiscard]] std::string transcript() const;

private:
    std::filesystem::path out_;
    std::filesystem::path err_;
    child_process proc_;
};

class broker_fixture;

// The cloud publishes probes to `topic` until every subscriber got one: from then on the
// upstream subscriptions are live, so what the cloud sends next is not lost to a race.
[[nodiscard]] bool probes_reach(const broker_fixture& broker, const std::string& topic,
                                const std::vector<mosquitto_subscriber*>& subs);

// Lines of a subscriber that are on `topic` with a payload starting with `prefix`.
[[nodiscard]] std::size_t count_on(const std::vector<std::string>& lines, const std::string& topic, const std::string& prefix);

// "topic payload" lines for payloads on one topic, as mosquitto_sub -v prints them.
[[nodiscard]] std::vector<std::string> topic_lines(const std::string& topic, const std::vector<std::string>& payloads);

}  // namespace thingmux::test
