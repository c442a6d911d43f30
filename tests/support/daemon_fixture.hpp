// The real thingmuxd for integration tests, connected to a broker_fixture, and a raw IPC client
// that speaks the protocol byte for byte over a real Unix socket (for the tests that need to send
// what libthingmux never would: malformed frames, a client that stops reading).
#pragma once

#include "ipc/codec.hpp"
#include "tests/support/broker_fixture.hpp"
#include "tests/support/unix_stream.hpp"

#include <deque>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace thingmux::test {

// What goes into the configuration file the fixture writes for thingmuxd.
struct daemon_setup {
    std::vector<std::string> things{"gateway-01"};  // each with its certificate from the broker's PKI
    std::string protocol = "mqtt5";
    std::string limits;  // YAML mapping lines under every Thing's limits:, e.g. "publishes_per_second: 20"
    std::string thing;   // more YAML mapping lines for every Thing, e.g. "keep_alive: 2s"
    std::uint16_t port = 0;  // broker port the Things connect to; 0: the broker's (else e.g. a proxy)
    bool client_certificate = true;  // cert: and key: of each Thing; false: none (e.g. with a custom authorizer)
    std::string ipc;     // YAML mapping lines under ipc:, e.g. "client_queue: 65536"
    // YAML mapping lines under mqtt:, e.g. "enabled: false"; none: no section (the face is on with
    // its defaults, its socket mqtt.sock next to the IPC socket). start() also waits for the MQTT
    // socket unless these lines say "enabled: false".
    std::string mqtt;
    std::string spool;   // YAML mapping lines under spool: besides path, e.g. "max_messages: 3"
    std::string top;     // YAML lines at the top level, e.g. "tpm2_tcti: swtpm:port=2321"
    // D-Bus address for the management interface ("unix:path=..."); empty: --bus none.
    std::string bus;
    std::vector<std::string> env;       // extra environment ("NAME=value")
    std::vector<std::string> launcher;  // argv prefix, e.g. systemd-socket-activate -l PATH
    // Where the IPC socket goes; default: the fixture's directory, which only root can reach.
    std::filesystem::path socket;
    // The apps: list. The default lets root (the test process) use every topic.
    std::string apps = "  - name: tests\n"
                       "    match: { uid: 0 }\n"
                       "    publish: ['#', '$aws/#']\n"
                       "    subscribe: ['#', '$aws/#']\n";
};

class daemon_fixture {
public:
    // Writes the configuration, starts thingmuxd against `broker` and waits until its socket
    // accepts clients.
    explicit daemon_fixture(const broker_fixture& broker, daemon_setup setup = {});
    ~daemon_fixture();
    daemon_fixture(const daemon_fixture&) = delete;
    daemon_fixture& operator=(const daemon_fixture&) = delete;

    void start();
    // SIGTERM; returns the exit status (WEXITSTATUS), or -1 when it did not exit in time.
    int stop(int timeout_ms = 15'000);
    void kill();  // SIGKILL
    // Rewrites the configuration file (applied by reload() or the next start()).
    void configure(daemon_setup setup);
    void write_config(const std::string& yaml);
    // SIGHUP: thingmuxd re-reads its configuration.
    void reload();

    [[nodiscard]] std::string config_yaml() const;
    [[nodiscard]] const std::filesystem::path& socket_path() const noexcept { return socket_; }
    // The MQTT face's socket where the configuration does not move it: mqtt.sock next to the IPC socket.
    [[nodiscard]] std::filesystem::path mqtt_socket_path() const { return socket_.parent_path() / "mqtt.sock"; }
    [[nodiscard]] std::filesystem::path log_file() const { return dir_ / "thingmuxd.log"; }
    [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }
    [[nodiscard]] std::filesystem::path config_file() const { return dir_ / "thingmux.yaml"; }
    [[nodiscard]] pid_t pid() const { return proc_ ? proc_->pid() : -1; }

private:
    const broker_fixture& broker_;
    daemon_setup setup_;
    std::filesystem::path dir_;
    std::filesystem::path socket_;
    std::optional<child_process> proc_;
};

// Whether the daemon's log holds `text`.
[[nodiscard]] bool log_has(const daemon_fixture& d, const std::string& text);

// Lines of the broker's log saying `client_id` connected: counts upstream (re)connections
// independently of the daemon's own counters.
[[nodiscard]] std::size_t broker_connections(const broker_fixture& broker, const std::string& client_id);

// Filters the broker's log shows in SUBSCRIBE (or UNSUBSCRIBE) packets from `client_id`, in
// order: what really went upstream.
[[nodiscard]] std::vector<std::string> broker_filters(const broker_fixture& broker, const std::string& client_id,
                                                      const std::string& packet = "SUBSCRIBE");
// The same for both packet types, in the order the broker received them: "SUBSCRIBE a/#",
// "UNSUBSCRIBE a/b/+", ...
[[nodiscard]] std::vector<std::string> broker_filter_changes(const broker_fixture& broker,
                                                             const std::string& client_id);
// PUBLISH packets on `topic` the broker's log shows it sent to `client_id` (one per matching
// subscription of that session on mosquitto).
[[nodiscard]] std::size_t broker_sent(const broker_fixture& broker, const std::string& client_id,
                                      const std::string& topic);

// Topics of the PUBLISH packets the broker's log shows, in order: `direction` "Received" (from
// `client_id`) or "Sending" (to `client_id`). Counts what really crossed the broker, independently
// of the daemon and of the receiving client. mosquitto buffers its log: the last lines are only
// certain to be there once it stopped (broker_fixture::stop()).
[[nodiscard]] std::vector<std::string> broker_publishes(const broker_fixture& broker, const std::string& direction,
                                                        const std::string& client_id);

// Publishes one QoS 1 message per payload to `topic` from the cloud side (the observer
// identity, one mosquitto_pub process). Fails the test if mosquitto_pub fails.
void publish_from_cloud(const broker_fixture& broker, const std::string& topic, const std::vector<std::string>& payloads);
// Publishes one retained QoS 1 message from the cloud side, for the broker to keep. Fails the
// test if mosquitto_pub fails.
void retain_from_cloud(const broker_fixture& broker, const std::string& topic, const std::string& payload);
// Payloads "1".."n".
[[nodiscard]] std::vector<std::string> numbered(int n, const std::string& prefix = {});

// Whether thingmuxd accepts connections on an MQTT socket: one that sends a malformed packet
// (type 0, reserved) is hung up on within `timeout_ms`, by the MQTT face or by a build without it.
[[nodiscard]] bool mqtt_socket_accepts(const std::filesystem::path& socket, int timeout_ms = 10'000);

class ipc_client {
public:
    // Connects (no handshake). Throws std::runtime_error when nothing listens.
    explicit ipc_client(const std::filesystem::path& socket) : stream_(socket) {}
    // Takes over a socket connected by other means (e.g. by another process).
    explicit ipc_client(int connected_fd) : stream_(connected_fd) {}
    ipc_client(const ipc_client&) = delete;
    ipc_client& operator=(const ipc_client&) = delete;

    void send(const ipc::client_message& m);
    void send_raw(std::span<const std::uint8_t> bytes);
    // Next frame from the daemon within `timeout_ms`; nullopt on timeout or when the daemon
    // closed the connection (then closed() is true).
    std::optional<ipc::daemon_message> receive(int timeout_ms = 10'000);
    [[nodiscard]] bool closed() const noexcept { return stream_.closed(); }
    // Waits up to timeout_ms for the daemon to close the connection, collecting frames.
    bool wait_closed(int timeout_ms = 10'000);

    // Handshake; fails the test if the answer is not a welcome.
    ipc::welcome hello(const std::string& app_name, const std::string& thing = {});
    // Handshake in the version of `h` (version 2: with its session fields); fails the test if the
    // answer is not a welcome.
    ipc::welcome hello(const ipc::hello& h);
    // Version 2: the delivery with this id was handled (IPC-44). No answer comes.
    void ack(std::uint32_t delivery_id) { send(ipc::ack{delivery_id}); }
    // Requests that wait for their result; other frames arriving meanwhile are kept (messages in
    // messages, states in states, an error in last_error).
    std::vector<ipc::result> subscribe(const std::vector<std::string>& filters, std::uint8_t qos = 1);
    std::vector<ipc::result> unsubscribe(const std::vector<std::string>& filters);
    ipc::result publish(const std::string& topic, const std::string& payload, std::uint8_t qos = 1);
    // The result frame for a request sent with send(), or nullopt after `timeout_ms`.
    std::optional<ipc::daemon_message> result_of(std::uint32_t request_id, int timeout_ms = 20'000) {
        return await_result(request_id, timeout_ms);
    }
    // Reads whatever already arrived, without waiting, and keeps it.
    void drain();
    // Sends a ping and waits for its pong, keeping the frames that come before it: true once the
    // daemon has handled every frame sent before (IPC-33).
    bool ping(std::uint32_t token, int timeout_ms = 10'000);
    // Waits until at least `n` messages were received in total.
    bool wait_messages(std::size_t n, int timeout_ms = 20'000);
    // Waits for a state frame with `link`.
    bool wait_state(ipc::link_state link, int timeout_ms = 20'000);

    int fd() const noexcept { return stream_.fd(); }

    std::vector<ipc::message> messages;
    std::vector<ipc::state> states;
    std::optional<ipc::error> last_error;

private:
    std::optional<ipc::daemon_message> await_result(std::uint32_t request_id, int timeout_ms = 20'000);
    void keep(ipc::daemon_message&& m);

    unix_stream stream_;
    // The connection's version: that of the hello sent (IPC-9); frames both ways have its layout.
    ipc::wire_version version_ = ipc::wire_version::v1;
    std::uint32_t next_request_ = 1;
    std::deque<ipc::daemon_message> results_;  // results not yet claimed
};

// Handshake, then wait for the Thing's link to be up; false when it does not come up.
[[nodiscard]] bool hello_connected(ipc_client& c, const std::string& app, const std::string& thing = {});

}  // namespace thingmux::test
