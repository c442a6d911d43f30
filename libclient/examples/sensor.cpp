// Example: a sensor that publishes numbered temperature readings through thingmuxd.
//
//   thingmux-example-sensor --count 10 --interval 1000
//
// Uses the library thread (start()) and the future-returning publish: each reading waits for
// its end-to-end result (QoS 1: the broker's PUBACK) and prints it.
#include <thingmux/client.hpp>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <string>
#include <thread>

int main(int argc, char** argv) {
    CLI::App app{"Publishes numbered temperature readings to dt/THING/temperature through thingmuxd."};
    std::uint64_t count = 10;
    std::uint64_t interval_ms = 1000;
    std::string topic;
    std::string socket;
    int qos = 1;
    bool wait = false;
    app.add_option("--count", count, "Readings to publish (0: until interrupted)")->capture_default_str();
    app.add_option("--interval", interval_ms, "Milliseconds between readings")->capture_default_str();
    app.add_option("--topic", topic, "Topic [default: dt/THING/temperature, THING from the daemon]");
    app.add_option("--socket", socket, "thingmuxd's socket [default: $THINGMUX_SOCKET or /run/thingmux/thingmux.sock]");
    app.add_option("--qos", qos, "QoS of the readings")->capture_default_str()->check(CLI::IsMember({0, 1}));
    app.add_flag("--wait", wait, "Wait for thingmuxd instead of failing when it is not running");
    CLI11_PARSE(app, argc, argv);

    thingmux::options opts;
    opts.socket_path = socket;
    opts.wait_for_daemon = wait;
    thingmux::client client(opts);
    client.on_state([](const thingmux::state& s) {
        std::cerr << "state: daemon " << to_string(s.daemon);
        if (!s.daemon_reason.empty()) {
            std::cerr << " (" << s.daemon_reason << ")";
        }
        std::cerr << ", uplink " << to_string(s.uplink);
        if (!s.uplink_reason.empty()) {
            std::cerr << " (" << s.uplink_reason << ")";
        }
        std::cerr << '\n';
    });
    client.start();

    if (const auto r = client.connect().get(); !r) {
        std::cerr << "cannot connect: " << r.message << '\n';
        return 3;
    }
    const auto info = client.daemon();
    if (topic.empty()) {
        topic = "dt/" + (info ? info->thing : std::string("unknown")) + "/temperature";
    }
    std::cout << "publishing to " << topic << " as " << (info ? info->client_id : "?") << '\n';

    std::uint64_t failures = 0;
    for (std::uint64_t seq = 1; count == 0 || seq <= count; ++seq) {
        const double celsius = 21.0 + 2.0 * std::sin(static_cast<double>(seq) / 10.0);
        thingmux::message m;
        m.topic = topic;
        m.payload = "{\"seq\":" + std::to_string(seq) + ",\"celsius\":" + std::to_string(celsius) + "}";
        m.qos = qos;
        m.content_type = "application/json";
        const auto r = client.publish(std::move(m)).get();
        std::cout << "#" << seq << ' ' << to_string(r.code);
        if (r.ok()) {
            std::cout << " (reason code 0x" << std::hex << std::setw(2) << std::setfill('0')
                      << static_cast<unsigned>(r.reason_code) << std::dec << ")";
        } else {
            ++failures;
            std::cout << ": " << r.message;
        }
        std::cout << std::endl;
        if (count == 0 || seq < count) {
            std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
        }
    }
    return failures == 0 ? 0 : 1;
}
