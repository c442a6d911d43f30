#include "tests/support/mosquitto_clients.hpp"

#include "tests/support/daemon_fixture.hpp"
#include "tests/support/measure.hpp"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>

#include <unistd.h>

namespace thingmux::test {
namespace {

std::vector<std::string> connection_args(const mqtt_endpoint& to) {
    std::vector<std::string> args{"--unix", to.socket.string(), "-V", to.version};
    if (!to.client_id.empty()) args.insert(args.end(), {"-i", to.client_id});
    return args;
}

std::string shell_quoted(const std::string& s) {
    std::string out = "'";
    for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// A file name no other client of this test process uses.
std::string unique_name(const std::string& what) {
    static std::atomic<int> counter{0};
    return what + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// "... received PUBACK (Mid: 1, RC:135)" -> 135; nullopt for other lines.
std::optional<std::uint8_t> ack_code(const std::string& line) {
    for (const char* ack : {"received PUBACK (Mid: ", "received PUBCOMP (Mid: "}) {
        if (line.find(ack) == std::string::npos) continue;
        const auto rc = line.find("RC:");
        if (rc == std::string::npos) return std::nullopt;
        return static_cast<std::uint8_t>(std::stoul(line.substr(rc + 3)));
    }
    return std::nullopt;
}

// What mosquitto_sub -d prints about its own protocol steps, as opposed to the messages (-v).
bool debug_line(const std::string& line) {
    return line.starts_with("Client ") || line.starts_with("Subscribed (mid: ");
}

}  // namespace

publish_run mosquitto_pub(const mqtt_endpoint& to, const std::string& topic, const std::vector<std::string>& payloads,
                          int qos, const std::vector<std::string>& extra, int timeout_ms) {
    std::vector<std::string> argv{"mosquitto_pub", "-d", "-q", std::to_string(qos), "-t", topic};
    for (auto& a : connection_args(to)) argv.push_back(std::move(a));
    argv.insert(argv.end(), extra.begin(), extra.end());
    publish_run run;
    if (payloads.size() == 1) {
        // -m: after a lost connection mosquitto_pub exits (7); with -l it would connect again and
        // send the message again, for ever if the server keeps closing the connection on it.
        argv.insert(argv.end(), {"-m", payloads.front()});
        run.exit_code = run_command(argv, &run.output, timeout_ms);
    } else {
        const auto input = std::filesystem::temp_directory_path() / (unique_name("thingmux-mosquitto-pub") + ".txt");
        {
            std::ofstream f(input);
            for (const auto& p : payloads) f << p << '\n';
        }
        std::string cmd = "exec";
        for (const auto& a : argv) cmd += " " + shell_quoted(a);
        cmd += " -l < " + shell_quoted(input.string());
        run.exit_code = run_command({"sh", "-c", cmd}, &run.output, timeout_ms);
        std::filesystem::remove(input);
    }
    std::istringstream lines(run.output);
    for (std::string line; std::getline(lines, line);) {
        if (const auto code = ack_code(line)) run.acks.push_back(*code);
        if (line.find("The connection was lost") != std::string::npos) run.connection_lost = true;
    }
    return run;
}

mosquitto_subscriber::mosquitto_subscriber(const mqtt_endpoint& to, const std::vector<std::string>& filters,
                                           const std::filesystem::path& dir, int qos, const std::vector<std::string>& extra)
    : out_(dir / (unique_name("mosquitto-sub") + ".out")),
      err_(std::filesystem::path(out_).replace_extension(".err")),
      proc_([&] {
          // mosquitto_sub flushes stdout after each message but not after its debug lines (the
          // SUBACK's): line buffering makes every line visible as it is printed.
          std::vector<std::string> argv{"stdbuf", "-oL", "mosquitto_sub", "-d", "-v", "-q", std::to_string(qos)};
          for (auto& a : connection_args(to)) argv.push_back(std::move(a));
          for (const auto& f : filters) argv.insert(argv.end(), {"-t", f});
          argv.insert(argv.end(), extra.begin(), extra.end());
          return argv;
      }(), out_, err_) {}

std::optional<std::vector<std::uint8_t>> mosquitto_subscriber::wait_subscribed(int timeout_ms) {
    // "Subscribed (mid: 1): 1, 128" for two filters.
    std::optional<std::vector<std::uint8_t>> codes;
    eventually([&] {
        for (const auto& line : complete_lines(read_file(out_))) {
            if (!line.starts_with("Subscribed (mid: ")) continue;
            std::vector<std::uint8_t> found;
            std::istringstream list(line.substr(line.find("): ") + 3));
            for (std::string code; std::getline(list, code, ',');) found.push_back(static_cast<std::uint8_t>(std::stoul(code)));
            codes = std::move(found);
        }
        return codes.has_value() || !proc_.running();
    }, timeout_ms);
    return codes;
}

std::vector<std::string> mosquitto_subscriber::messages() const {
    auto all = complete_lines(read_file(out_));
    std::erase_if(all, debug_line);
    return all;
}

std::size_t mosquitto_subscriber::wait_for_all(const std::vector<std::string>& expected, int timeout_ms) {
    eventually([&] { return missing_from(messages(), expected) == 0 || !proc_.running(); }, timeout_ms);
    return missing_from(messages(), expected);
}

std::string mosquitto_subscriber::transcript() const {
    std::string text;
    for (const auto& line : complete_lines(read_file(out_)))
        if (debug_line(line)) text += line + "\n";
    return text + read_file(err_);
}

std::vector<std::string> topic_lines(const std::string& topic, const std::vector<std::string>& payloads) {
    std::vector<std::string> out;
    for (const auto& p : payloads) out.push_back(topic + " " + p);
    return out;
}

bool probes_reach(const broker_fixture& broker, const std::string& topic, const std::vector<mosquitto_subscriber*>& subs) {
    int round = 0;
    return eventually([&] {
        const std::string probe = "probe-" + std::to_string(++round);
        publish_from_cloud(broker, topic, {probe});
        return eventually([&] {
            return std::all_of(subs.begin(), subs.end(), [&](mosquitto_subscriber* s) {
                const auto got = s->messages();
                return std::any_of(got.begin(), got.end(), [&](const std::string& l) { return l.starts_with(topic + " probe-"); });
            });
        }, 500);
    }, 20'000);
}

std::size_t count_on(const std::vector<std::string>& lines, const std::string& topic, const std::string& prefix) {
    return static_cast<std::size_t>(
        std::count_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.starts_with(topic + " " + prefix); }));
}

}  // namespace thingmux::test
