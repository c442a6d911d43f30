#include "tests/support/wss_front.hpp"

#include "tests/support/process_inl.hpp"
#include "tests/support/round_trip.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include <csignal>

namespace thingmux::test {
namespace fs = std::filesystem;

wss_front::wss_front(const broker_fixture& broker, options opts) : broker_(broker), opts_(std::move(opts)) {
    char tmpl[] = "/tmp/thingmux-wss-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    port_ = free_tcp_port();
    try {
        start();
    } catch (...) {
        relay_.reset();
        fs::remove_all(dir_);
        throw;
    }
}

wss_front::~wss_front() {
    relay_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

void wss_front::kill() {
    if (!relay_) return;
    relay_->signal(SIGKILL);
    (void)relay_->wait(5'000);
    relay_.reset();
}

void wss_front::start() {
    if (relay_ && relay_->running()) return;
    const auto pki = broker_.dir() / "pki";
    const auto who = broker_.thing(opts_.identity);
    std::vector<std::string> argv{std::string(THINGMUX_BIN_DIR) + "/wss_relay",
                                  "--port",
                                  std::to_string(port_),
                                  "--cert",
                                  (pki / "server.crt").string(),
                                  "--key",
                                  (pki / "server.key").string(),
                                  "--broker-port",
                                  std::to_string(broker_.port()),
                                  "--broker-ca",
                                  broker_.ca_file().string(),
                                  "--broker-cert",
                                  who.cert.string(),
                                  "--broker-key",
                                  who.key.string(),
                                  "--record",
                                  (dir_ / "upgrades.jsonl").string()};
    if (opts_.require_client_cert) argv.insert(argv.end(), {"--client-ca", broker_.ca_file().string()});
    if (opts_.status != 0) argv.insert(argv.end(), {"--status", std::to_string(opts_.status)});
    if (opts_.subprotocol) argv.insert(argv.end(), {"--subprotocol", *opts_.subprotocol});
    if (opts_.fragment != 0) argv.insert(argv.end(), {"--fragment", std::to_string(opts_.fragment)});
    if (opts_.oversized != 0) argv.insert(argv.end(), {"--oversized", std::to_string(opts_.oversized)});
    if (opts_.body_bytes != 0) argv.insert(argv.end(), {"--body-bytes", std::to_string(opts_.body_bytes)});
    if (opts_.close_reason) argv.insert(argv.end(), {"--close-reason", *opts_.close_reason});
    relay_.emplace(argv, dir_ / "relay.out", dir_ / "relay.out");
    // The relay prints its line once it listens (bound before, so no connection is needed).
    if (!eventually(
            [&] { return !relay_->running() || read_file(dir_ / "relay.out").find("listening") != std::string::npos; },
            15'000) ||
        !relay_->running())
        throw std::runtime_error("wss_relay did not start: " + read_file(dir_ / "relay.out"));
}

std::vector<std::string> wss_front::upgrades() const {
    std::vector<std::string> lines;
    std::ifstream in(dir_ / "upgrades.jsonl");
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

void expect_nothing_lost_while_front_down(const broker_fixture& broker, daemon_fixture& daemon, wss_front& front,
                                          const std::function<void()>& while_down) {
    observer_subscription cloud(broker, "dt/gateway-01/#", "observer-front-down");
    ASSERT_TRUE(cloud.wait_ready());
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "while-front-down"));
    front.kill();
    const auto expected = publish_all(app, "dt/gateway-01/y", numbered(30, "offline-"));
    if (while_down) while_down();
    front.start();
    EXPECT_EQ(cloud.wait_for_all(expected, 30'000), 0U) << read_file(daemon.log_file());
}

}  // namespace thingmux::test
