#include "tests/support/daemon_fixture.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace thingmux::test {

bool mqtt_socket_accepts(const std::filesystem::path& socket, int timeout_ms) {
    const int fd = connect_stream(socket);
    if (fd < 0) {
        ADD_FAILURE() << "cannot connect to " << socket.string() << ": " << std::strerror(-fd);
        return false;
    }
    const unsigned char malformed[] = {0x00, 0x00};
    // A peer that accepted and closed at once may do so before the packet is sent. A connection
    // waiting in the backlog of a socket nobody accepts from never fails to send.
    const bool accepted = ::send(fd, malformed, sizeof malformed, MSG_NOSIGNAL) == 2
                              ? hung_up(fd, timeout_ms)
                              : errno == EPIPE || errno == ECONNRESET;
    ::close(fd);
    return accepted;
}

// --- daemon_fixture ---

daemon_fixture::daemon_fixture(const broker_fixture& broker, daemon_setup setup)
    : broker_(broker), setup_(std::move(setup)) {
    dir_ = broker_.dir() / ("thingmuxd-" + setup_.things.at(0));
    std::filesystem::create_directories(dir_);
    socket_ = setup_.socket.empty() ? dir_ / "thingmux.sock" : setup_.socket;
    write_config(config_yaml());
    start();
}

std::string daemon_fixture::config_yaml() const {
    std::string y = "things:\n";
    auto indented = [](const std::string& lines, const std::string& indent) {
        std::string out;
        std::size_t pos = 0;
        while (pos < lines.size()) {
            auto end = lines.find('\n', pos);
            if (end == std::string::npos) end = lines.size();
            out += indent + lines.substr(pos, end - pos) + "\n";
            pos = end + 1;
        }
        return out;
    };
    for (const auto& name : setup_.things) {
        const auto id = broker_.thing(name);
        y += "  - name: " + name + "\n    endpoint: " + broker_.host() + "\n    port: " + std::to_string(setup_.port != 0 ? setup_.port : broker_.port()) +
             "\n    protocol: " + setup_.protocol + "\n    ca: " + broker_.ca_file().string() + "\n";
        if (setup_.client_certificate) y += "    cert: " + id.cert.string() + "\n    key: " + id.key.string() + "\n";
        if (!setup_.thing.empty()) y += indented(setup_.thing, "    ");
        if (!setup_.limits.empty()) y += "    limits:\n" + indented(setup_.limits, "      ");
    }
    y += "apps:\n" + setup_.apps;
    y += "ipc:\n  socket: " + socket_.string() + "\n  mode: \"0666\"\n  group: \"\"\n" + indented(setup_.ipc, "  ");
    if (!setup_.mqtt.empty()) y += "mqtt:\n" + indented(setup_.mqtt, "  ");
    y += "spool:\n  path: " + (dir_ / "spool.db").string() + "\n" + indented(setup_.spool, "  ");
    if (!setup_.top.empty()) y += indented(setup_.top, "");
    return y;
}

void daemon_fixture::configure(daemon_setup setup) {
    setup_ = std::move(setup);
    write_config(config_yaml());
}

void daemon_fixture::write_config(const std::string& yaml) {
    std::ofstream(config_file(), std::ios::trunc) << yaml;
}

void daemon_fixture::reload() {
    if (proc_) proc_->signal(SIGHUP);
}

daemon_fixture::~daemon_fixture() {
    if (proc_) proc_->stop(5000);
}

void daemon_fixture::start() {
    std::vector<std::string> argv = setup_.launcher;
    for (const auto& a : {std::string(THINGMUX_BIN_DIR) + "/thingmuxd", std::string("--config"), config_file().string(),
                          std::string("--log-level"), std::string("debug"), std::string("--bus"),
                          std::string(setup_.bus.empty() ? "none" : "system")})
        argv.push_back(a);
    auto env = setup_.env;
    if (!setup_.bus.empty()) env.push_back("DBUS_SYSTEM_BUS_ADDRESS=" + setup_.bus);
    std::ofstream(log_file(), std::ios::app) << "---- start\n";
    proc_.emplace(argv, log_file(), log_file(), env);
    // The IPC socket is bound before the MQTT one: wait for both.
    const bool up = eventually([&] {
        try {
            ::close(connect_unix(socket_));
            if (setup_.mqtt.find("enabled: false") == std::string::npos) ::close(connect_unix(mqtt_socket_path()));
            return true;
        } catch (const std::exception&) {
            return !proc_->running();
        }
    }, 15'000);
    if (!up || !proc_->running())
        throw std::runtime_error("thingmuxd did not start; log " + log_file().string() + ":\n" + read_file(log_file()));
}

int daemon_fixture::stop(int timeout_ms) {
    if (!proc_) return -1;
    proc_->signal(SIGTERM);
    const auto status = proc_->wait(timeout_ms);
    if (!status) {
        proc_->stop(1000);
        proc_.reset();
        return -1;
    }
    proc_.reset();
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
}

void daemon_fixture::kill() {
    if (!proc_) return;
    proc_->signal(SIGKILL);
    proc_->wait(5000);
    proc_.reset();
}

bool log_has(const daemon_fixture& d, const std::string& text) {
    return read_file(d.log_file()).find(text) != std::string::npos;
}

std::size_t broker_connections(const broker_fixture& broker, const std::string& client_id) {
    std::ifstream in(broker.log_file());
    std::size_t n = 0;
    const std::string needle = " as " + client_id + " (";
    for (std::string line; std::getline(in, line);) {
        if (line.find("New client connected") != std::string::npos && line.find(needle) != std::string::npos) ++n;
    }
    return n;
}

std::vector<std::string> broker_filter_changes(const broker_fixture& broker, const std::string& client_id) {
    std::ifstream in(broker.log_file());
    std::vector<std::string> out;
    std::string packet;  // of the filter lines that follow; empty outside a packet
    for (std::string line; std::getline(in, line);) {
        // A filter line is "TIMESTAMP: \tFILTER (QoS n)" (SUBSCRIBE) or "TIMESTAMP: \tFILTER".
        const auto tab = line.find('\t');
        if (line.find("Received SUBSCRIBE from " + client_id) != std::string::npos) {
            packet = "SUBSCRIBE";
        } else if (line.find("Received UNSUBSCRIBE from " + client_id) != std::string::npos) {
            packet = "UNSUBSCRIBE";
        } else if (!packet.empty() && tab != std::string::npos) {
            auto filter = line.substr(tab + 1);
            if (const auto qos = filter.rfind(" (QoS "); qos != std::string::npos) filter.resize(qos);
            out.push_back(packet + " " + filter);
        } else if (!packet.empty() && line.find(": " + client_id + " ") != std::string::npos) {
            continue;  // mosquitto's "CLIENT QOS FILTER" echo between the filter lines
        } else {
            packet.clear();
        }
    }
    return out;
}

std::vector<std::string> broker_filters(const broker_fixture& broker, const std::string& client_id,
                                        const std::string& packet) {
    std::vector<std::string> out;
    const std::string prefix = packet + " ";
    for (auto& change : broker_filter_changes(broker, client_id)) {
        if (change.starts_with(prefix)) out.push_back(change.substr(prefix.size()));
    }
    return out;
}

std::vector<std::string> broker_publishes(const broker_fixture& broker, const std::string& direction,
                                          const std::string& client_id) {
    // "TIMESTAMP: Received PUBLISH from CLIENT (d0, q1, r0, m12, 'TOPIC', ... (N bytes))"
    std::ifstream in(broker.log_file());
    std::vector<std::string> out;
    const std::string header = direction + " PUBLISH " + (direction == "Received" ? "from " : "to ") + client_id + " (";
    for (std::string line; std::getline(in, line);) {
        const auto at = line.find(header);
        if (at == std::string::npos) continue;
        const auto open = line.find('\'', at + header.size());
        const auto close = line.rfind("', ... (");
        if (open != std::string::npos && close != std::string::npos && close > open)
            out.push_back(line.substr(open + 1, close - open - 1));
    }
    return out;
}

std::size_t broker_sent(const broker_fixture& broker, const std::string& client_id, const std::string& topic) {
    const auto sent = broker_publishes(broker, "Sending", client_id);
    return static_cast<std::size_t>(std::count(sent.begin(), sent.end(), topic));
}

void publish_from_cloud(const broker_fixture& broker, const std::string& topic, const std::vector<std::string>& payloads) {
    const auto input = broker.dir() / ("cloud-" + std::to_string(::getpid()) + ".txt");
    {
        std::ofstream f(input);
        for (const auto& p : payloads) f << p << '\n';
    }
    // -l: one message per input line, over one connection.
    std::string cmd = "mosquitto_pub -l -q 1 -t '" + topic + "'";
    for (const auto& a : broker.client_args(broker.observer(), "cloud-publisher")) cmd += " '" + a + "'";
    cmd += " < '" + input.string() + "'";
    std::string out;
    const int rc = run_command({"sh", "-c", cmd}, &out);
    EXPECT_EQ(rc, 0) << "mosquitto_pub failed: " << out;
}

void retain_from_cloud(const broker_fixture& broker, const std::string& topic, const std::string& payload) {
    std::vector<std::string> cmd{"mosquitto_pub", "-r", "-q", "1", "-t", topic, "-m", payload};
    for (auto& a : broker.client_args(broker.observer(), "cloud-retainer")) cmd.push_back(std::move(a));
    std::string out;
    EXPECT_EQ(run_command(cmd, &out), 0) << "mosquitto_pub -r failed: " << out;
}

std::vector<std::string> numbered(int n, const std::string& prefix) {
    std::vector<std::string> v;
    for (int i = 1; i <= n; ++i) v.push_back(prefix + std::to_string(i));
    return v;
}

// --- ipc_client ---

void ipc_client::send(const ipc::client_message& m) {
    if (const auto* h = std::get_if<ipc::hello>(&m)) version_ = ipc::known_version(h->version).value_or(ipc::wire_version::v1);
    const auto bytes = ipc::encode(m, version_);
    send_raw(bytes);
}

void ipc_client::send_raw(std::span<const std::uint8_t> bytes) { stream_.write(bytes); }

std::optional<ipc::daemon_message> ipc_client::receive(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        auto r = ipc::decode_daemon_message(stream_.buffer(), ipc::default_max_frame, version_);
        if (auto* ok = std::get_if<ipc::decoded<ipc::daemon_message>>(&r)) {
            auto m = std::move(ok->message);
            stream_.consume(ok->consumed);
            return m;
        }
        if (auto* bad = std::get_if<ipc::malformed>(&r)) {
            ADD_FAILURE() << "daemon sent a malformed frame: " << bad->reason;
            stream_.mark_closed();
            return std::nullopt;
        }
        // Frames already read are decoded above first, so a close loses none of them.
        if (!stream_.read_some(remaining_ms(deadline))) return std::nullopt;
    }
}

void ipc_client::drain() {
    while (auto m = receive(0)) keep(std::move(*m));
}

bool ipc_client::ping(std::uint32_t token, int timeout_ms) {
    send(ipc::ping{.token = token});
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!closed()) {
        auto m = receive(remaining_ms(deadline));
        if (!m) return false;
        if (const auto* pong = std::get_if<ipc::pong>(&*m); pong && pong->token == token) return true;
        keep(std::move(*m));
    }
    return false;
}

bool ipc_client::wait_closed(int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!closed() && std::chrono::steady_clock::now() < deadline) {
        if (auto m = receive(50)) keep(std::move(*m));
    }
    return closed();
}

void ipc_client::keep(ipc::daemon_message&& m) {
    if (auto* msg = std::get_if<ipc::message>(&m)) {
        messages.push_back(std::move(*msg));
    } else if (auto* st = std::get_if<ipc::state>(&m)) {
        states.push_back(std::move(*st));
    } else if (auto* err = std::get_if<ipc::error>(&m)) {
        last_error = std::move(*err);
    } else {
        results_.push_back(std::move(m));
    }
}

ipc::welcome ipc_client::hello(const std::string& app_name, const std::string& thing) {
    return hello(ipc::hello{.version = ipc::protocol_version, .app_name = app_name, .thing = thing});
}

ipc::welcome ipc_client::hello(const ipc::hello& h) {
    send(h);
    auto m = receive();
    if (!m || !std::holds_alternative<ipc::welcome>(*m)) {
        const auto* refused = m ? std::get_if<ipc::error>(&*m) : nullptr;
        ADD_FAILURE() << "no welcome from thingmuxd"
                      << (refused ? std::string(": ") + ipc::to_string(refused->code) + ": " + refused->message : "");
        if (refused) last_error = *refused;
        return {};
    }
    return std::get<ipc::welcome>(*m);
}

std::optional<ipc::daemon_message> ipc_client::await_result(std::uint32_t request_id, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto id_of = [](const ipc::daemon_message& m) -> std::optional<std::uint32_t> {
        return std::visit([](const auto& v) -> std::optional<std::uint32_t> {
            if constexpr (requires { v.request_id; }) return v.request_id;
            return std::nullopt;
        }, m);
    };
    for (;;) {
        for (auto it = results_.begin(); it != results_.end(); ++it) {
            if (id_of(*it) == request_id) {
                auto m = std::move(*it);
                results_.erase(it);
                return m;
            }
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || closed()) return std::nullopt;
        if (auto m = receive(static_cast<int>(left.count()))) keep(std::move(*m));
    }
}

std::vector<ipc::result> ipc_client::subscribe(const std::vector<std::string>& filters, std::uint8_t qos) {
    ipc::subscribe s{.request_id = next_request_++, .subscriptions = {}};
    for (const auto& f : filters) s.subscriptions.push_back({.filter = f, .max_qos = qos});
    send(s);
    auto m = await_result(s.request_id);
    if (!m || !std::holds_alternative<ipc::subscribe_result>(*m)) {
        ADD_FAILURE() << "no subscribe_result";
        return {};
    }
    return std::get<ipc::subscribe_result>(*m).results;
}

std::vector<ipc::result> ipc_client::unsubscribe(const std::vector<std::string>& filters) {
    ipc::unsubscribe u{.request_id = next_request_++, .filters = filters};
    send(u);
    auto m = await_result(u.request_id);
    if (!m || !std::holds_alternative<ipc::unsubscribe_result>(*m)) {
        ADD_FAILURE() << "no unsubscribe_result";
        return {};
    }
    return std::get<ipc::unsubscribe_result>(*m).results;
}

ipc::result ipc_client::publish(const std::string& topic, const std::string& payload, std::uint8_t qos) {
    ipc::publish p{.request_id = next_request_++, .topic = topic, .payload = payload, .qos = qos};
    send(p);
    auto m = await_result(p.request_id);
    if (!m || !std::holds_alternative<ipc::publish_result>(*m)) {
        ADD_FAILURE() << "no publish_result for " << topic;
        return {.code = ipc::errc::internal_error, .mqtt_reason_code = 0, .message = "no result"};
    }
    return std::get<ipc::publish_result>(*m).outcome;
}

bool ipc_client::wait_messages(std::size_t n, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (messages.size() < n && !closed()) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        if (auto m = receive(static_cast<int>(left.count()))) keep(std::move(*m));
    }
    return messages.size() >= n;
}

bool ipc_client::wait_state(ipc::link_state link, int timeout_ms) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto seen = [&] {
        return std::any_of(states.begin(), states.end(), [&](const ipc::state& s) { return s.link == link; });
    };
    while (!seen() && !closed()) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        if (auto m = receive(static_cast<int>(left.count()))) keep(std::move(*m));
    }
    return seen();
}

bool hello_connected(ipc_client& c, const std::string& app, const std::string& thing) {
    return c.hello(app, thing).link == ipc::link_state::connected || c.wait_state(ipc::link_state::connected);
}

}  // namespace thingmux::test
