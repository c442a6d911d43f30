// thingmux-bench: publish throughput, through thingmuxd (libthingmux apps) or straight to the
// broker (the project's own uplink: the same MQTT session code, one connection; the floor).
//
// Both modes publish `--messages` messages of `--size` bytes at `--qos`, keep at most `--window`
// publishes awaiting their result per connection/app, and count completions. The clock starts
// once every connection is up and stops at the last completion. A QoS 0 completion only means
// the message was handed on (to the session's write queue, or by the daemon to its session), so
// for QoS 0 each connection/app ends with one QoS 1 "fence" publish on the same path; its PUBACK
// proves that everything before it reached the broker, and its time is included.
//
// Prints one line: mode=... apps=A qos=q size=S messages=M seconds=T msgs_per_s=R
// Exit status: 0 when every publish succeeded, 1 when some failed, 2 on setup errors.
#include "daemon/uplink/uplink.hpp"

#include <thingmux/client.hpp>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct settings {
    std::string mode;
    unsigned apps = 1;
    int qos = 1;
    std::size_t size = 200;
    std::uint64_t messages = 20000;
    std::uint64_t window = 1000;
    unsigned timeout_s = 300;
    // thingmux
    std::string socket;
    // direct
    std::string host = "localhost";
    std::uint16_t port = 8883;
    std::string thing;
    std::string ca;
    std::string cert;
    std::string key;
    std::uint16_t inflight = 90;
    std::string protocol = "mqtt5";
};

struct outcome {
    double seconds = 0;
    std::uint64_t failed = 0;
    bool complete = false;
};

void print_line(const settings& s, const outcome& o) {
    const double rate = o.seconds > 0 ? static_cast<double>(s.messages) / o.seconds : 0.0;
    std::printf("mode=%s apps=%u qos=%d size=%zu messages=%llu seconds=%.3f msgs_per_s=%.0f\n", s.mode.c_str(),
                s.mode == "direct" ? 1U : s.apps, s.qos, s.size, static_cast<unsigned long long>(s.messages), o.seconds,
                rate);
    std::fflush(stdout);
}

// --- direct: one uplink, one io_context on this thread ------------------------------------------

outcome run_direct(const settings& s) {
    thingmux::uplink::uplink_config cfg;
    cfg.thing_name = s.thing;
    cfg.host = s.host;
    cfg.port = s.port;
    cfg.tls = {.ca_file = s.ca, .cert_file = s.cert, .key_file = s.key};
    cfg.session.version = s.protocol == "mqtt311" ? thingmux::mqtt::protocol_version::v311 : thingmux::mqtt::protocol_version::v5;
    cfg.session.max_inflight = s.inflight;

    asio::io_context io;
    auto link = thingmux::uplink::uplink::create(io, cfg);
    const std::string topic = "dt/" + s.thing + "/bench/direct";
    const std::string payload(s.size, 'x');
    const auto q = static_cast<thingmux::mqtt::qos>(s.qos);

    outcome out;
    std::uint64_t sent = 0, done = 0, outstanding = 0;
    bool pumping = false, started = false, fence_sent = false;
    clock_type::time_point t0;

    auto finish = [&] {
        out.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
        out.complete = true;
        link->stop([&io] { io.stop(); });
    };
    std::function<void()> pump;
    auto on_done = [&](const thingmux::mqtt::action::publish_done& d) {
        if (d.error != thingmux::mqtt::local_error::none || d.reason_code >= 0x80) {
            if (out.failed++ == 0)
                std::cerr << "thingmux-bench: publish failed: "
                          << (d.error != thingmux::mqtt::local_error::none ? thingmux::mqtt::to_string(d.error)
                                                                         : thingmux::mqtt::reason_string(d.reason_code))
                          << '\n';
        }
        --outstanding;
        ++done;
        pump();
    };
    // QoS 0 publishes complete inside publish(): the guard turns that recursion into this loop.
    pump = [&] {
        if (pumping) return;
        pumping = true;
        while (sent < s.messages && outstanding < s.window) {
            ++sent;
            ++outstanding;
            link->publish({.topic = topic, .payload = payload, .qos = q}, on_done);
        }
        pumping = false;
        if (done == s.messages && !fence_sent) {
            fence_sent = true;
            if (q == thingmux::mqtt::qos::at_least_once) return finish();
            link->publish({.topic = topic, .payload = "fence", .qos = thingmux::mqtt::qos::at_least_once},
                          [&](const thingmux::mqtt::action::publish_done& d) {
                              if (d.error != thingmux::mqtt::local_error::none || d.reason_code >= 0x80) ++out.failed;
                              finish();
                          });
        }
    };

    link->on_state([&](const thingmux::uplink::state_event& ev) {
        if (ev.state == thingmux::uplink::link_state::connected && !started) {
            started = true;
            t0 = clock_type::now();
            pump();
        } else if (ev.fatal) {
            std::cerr << "thingmux-bench: " << ev.reason << '\n';
            link->stop([&io] { io.stop(); });
        } else if (ev.state == thingmux::uplink::link_state::backing_off && started) {
            std::cerr << "thingmux-bench: connection lost during the run: " << ev.reason << '\n';
        }
    });
    asio::steady_timer deadline(io, std::chrono::seconds(s.timeout_s));
    deadline.async_wait([&](boost::system::error_code ec) {
        if (ec) return;
        std::cerr << "thingmux-bench: timed out: " << done << " of " << s.messages << " completed\n";
        link->stop([&io] { io.stop(); });
    });
    link->start();
    io.run();
    return out;
}

// --- thingmux: A libthingmux clients, each on its library thread --------------------------------

struct bench_app {
    std::unique_ptr<thingmux::client> client;
    std::string topic;
    std::uint64_t quota = 0;
    std::mutex mutex;  // guards the counters: the first pump runs on main, the rest on the library thread
    std::uint64_t sent = 0, done = 0, outstanding = 0;
    bool fence_sent = false;
};

class thingmux_run {
public:
    explicit thingmux_run(const settings& s) : s_(s), payload_(s.size, 'x') {}

    outcome run() {
        outcome out;
        thingmux::options opts;
        opts.socket_path = s_.socket;
        opts.max_backlog = static_cast<std::size_t>(s_.window) + 16;
        opts.max_backlog_bytes = std::max<std::size_t>(opts.max_backlog_bytes, (s_.size + 256) * opts.max_backlog);
        opts.reconnect = false;
        for (unsigned i = 0; i < s_.apps; ++i) {
            auto app = std::make_unique<bench_app>();
            opts.app_name = "thingmux-bench-" + std::to_string(i);
            app->client = std::make_unique<thingmux::client>(opts);
            app->quota = s_.messages / s_.apps + (i < s_.messages % s_.apps ? 1U : 0U);
            app->client->start();
            const auto r = app->client->connect().get();
            if (!r) {
                std::cerr << "thingmux-bench: connect: " << r.message << " (" << thingmux::to_string(r.code) << ")\n";
                return out;
            }
            const auto info = app->client->daemon();
            app->topic = "dt/" + (info ? info->thing : std::string("unknown")) + "/bench/app" + std::to_string(i);
            apps_.push_back(std::move(app));
        }
        // QoS 0 is refused while the Thing is offline, and QoS 1 would be spooled: wait for the link.
        const auto up_by = clock_type::now() + 30s;
        for (auto& a : apps_) {
            while (a->client->current_state().uplink != thingmux::uplink_state::connected) {
                if (clock_type::now() > up_by) {
                    std::cerr << "thingmux-bench: the daemon's uplink is not connected: "
                              << a->client->current_state().uplink_reason << '\n';
                    return out;
                }
                std::this_thread::sleep_for(10ms);
            }
        }

        t0_ = clock_type::now();
        for (auto& a : apps_) pump(*a);
        {
            std::unique_lock lock(mutex_);
            if (!cv_.wait_for(lock, std::chrono::seconds(s_.timeout_s), [&] { return finished_ == apps_.size(); })) {
                std::cerr << "thingmux-bench: timed out: " << finished_ << " of " << apps_.size() << " apps finished\n";
                lock.unlock();
                for (auto& a : apps_) a->client->close();
                out.failed = failed_.load();
                return out;
            }
        }
        out.seconds = std::chrono::duration<double>(end_ - t0_).count();
        out.failed = failed_.load();
        out.complete = true;
        for (auto& a : apps_) a->client->close();
        return out;
    }

private:
    void count_result(const thingmux::result& r) {
        if (r) return;
        if (failed_++ == 0) std::cerr << "thingmux-bench: publish failed: " << thingmux::to_string(r.code) << ": " << r.message << '\n';
    }

    void app_finished() {
        std::lock_guard lock(mutex_);
        end_ = clock_type::now();
        ++finished_;
        cv_.notify_all();
    }

    void pump(bench_app& a) {
        for (;;) {
            bool fence = false;
            {
                std::lock_guard lock(a.mutex);
                if (a.done == a.quota && !a.fence_sent) {
                    a.fence_sent = true;
                    fence = true;
                } else if (a.sent >= a.quota || a.outstanding >= s_.window) {
                    return;
                } else {
                    ++a.sent;
                    ++a.outstanding;
                }
            }
            if (fence) {
                if (s_.qos == 1) return app_finished();
                a.client->publish({.topic = a.topic, .payload = "fence", .qos = 1}, [this](const thingmux::result& r) {
                    count_result(r);
                    app_finished();
                });
                return;
            }
            a.client->publish({.topic = a.topic, .payload = payload_, .qos = s_.qos}, [this, &a](const thingmux::result& r) {
                count_result(r);
                {
                    std::lock_guard lock(a.mutex);
                    --a.outstanding;
                    ++a.done;
                }
                pump(a);
            });
        }
    }

    const settings& s_;
    const std::string payload_;
    std::vector<std::unique_ptr<bench_app>> apps_;
    std::atomic<std::uint64_t> failed_{0};
    std::mutex mutex_;
    std::condition_variable cv_;
    std::size_t finished_ = 0;
    clock_type::time_point t0_;
    clock_type::time_point end_;
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"thingmux-bench: publish throughput through thingmuxd (libthingmux) or straight to the broker"};
    settings s;
    app.add_option("mode", s.mode, "direct or thingmux")->required()->check(CLI::IsMember({"direct", "thingmux"}));
    app.add_option("--apps", s.apps, "thingmux: number of libthingmux clients sharing the messages")
        ->check(CLI::Range(1U, 1000U))
        ->capture_default_str();
    app.add_option("--qos", s.qos, "QoS (0 or 1)")->check(CLI::Range(0, 1))->capture_default_str();
    app.add_option("--size", s.size, "payload bytes")->check(CLI::Range(std::size_t{1}, std::size_t{131072}))->capture_default_str();
    app.add_option("--messages", s.messages, "messages in total")->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100000000}))->capture_default_str();
    app.add_option("--window", s.window, "publishes awaiting their result, per connection or app")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{65535}))
        ->capture_default_str();
    app.add_option("--timeout", s.timeout_s, "give up after this many seconds")->capture_default_str();
    app.add_option("--socket", s.socket, "thingmux: the daemon's socket (default: $THINGMUX_SOCKET or the system one)");
    app.add_option("--host", s.host, "direct: broker host")->capture_default_str();
    app.add_option("--port", s.port, "direct: broker port")->capture_default_str();
    app.add_option("--thing", s.thing, "direct: Thing name (client ID; use one the daemon does not use)");
    app.add_option("--ca", s.ca, "direct: CA bundle (PEM)");
    app.add_option("--cert", s.cert, "direct: Thing certificate (PEM)");
    app.add_option("--key", s.key, "direct: Thing private key (PEM)");
    app.add_option("--inflight", s.inflight, "direct: QoS 1 in-flight window (thingmuxd's limits.inflight)")->capture_default_str();
    app.add_option("--protocol", s.protocol, "direct: mqtt5 or mqtt311")->check(CLI::IsMember({"mqtt5", "mqtt311"}))->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    if (s.mode == "direct" && (s.thing.empty() || s.ca.empty() || s.cert.empty() || s.key.empty())) {
        std::cerr << "thingmux-bench: direct needs --thing, --ca, --cert and --key\n";
        return 2;
    }
    if (s.mode == "direct" && s.apps != 1) std::cerr << "thingmux-bench: direct uses one connection; --apps ignored\n";

    outcome o;
    if (s.mode == "direct") {
        o = run_direct(s);
    } else {
        thingmux_run r(s);
        o = r.run();
    }
    if (!o.complete) return 2;
    print_line(s, o);
    if (o.failed != 0) {
        std::cerr << "thingmux-bench: " << o.failed << " publish(es) failed\n";
        return 1;
    }
    return 0;
}
