// thingmux-bench: drives one benchmark scenario over one path (direct, thingmux, mqtt-face or
// bridge; see bench_clients.hpp) and prints one result line of key=value pairs. scripts/bench.sh runs it for
// every scenario and path in one go and writes docs/benchmarks.md.
//
//   publish  A apps publish M messages in total at QoS q, each keeping up to W awaiting their
//            result. The clock starts when every client is up and stops when the cloud observer
//            has received each app's QoS 1 "fence", published after all of that app's messages
//            completed. Since fences arrive after the app's earlier messages, the clock covers
//            delivery to the upstream broker on every path (a bridge's local PUBACK does not).
//            The broker's own count ($SYS/broker/publish/messages/received) then says how many
//            of the M messages it received: lost = M - received.
//   fanout   the cloud observer publishes M messages to a command topic that N local
//            subscribers hold; deliveries/s = messages received by all subscribers / time from
//            the first publish to the last delivery.
//   latency  one app subscribes to a topic and publishes to it at a fixed rate; round trip =
//            publish call to delivery back through the upstream broker (percentiles in µs).
//   idle     N clients connect and each subscribes K filters; prints "ready ..." and holds them
//            until stdin closes (the script reads the daemon's or mosquitto's RSS meanwhile).
//            With --warm-up W, the first W connect first, "warm ..." is printed, and the rest
//            follow once a line arrives on stdin: the memory between the two is per client, not
//            the code a process runs for its first client.
//
// Everything runs on one io_context thread (bench_clients.hpp); the main thread only sequences
// the steps and waits.
//
// Exit status: 0 on a complete run, 1 when messages were lost or requests failed (the line is
// still printed), 2 when the run could not be set up or timed out.
#include "tests/bench/bench_clients.hpp"

#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace bench = thingmux::bench;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

const std::string sys_received_topic = "$SYS/broker/publish/messages/received";

struct settings {
    std::string scenario;
    bench::path path = bench::path::thingmux;
    bench::endpoints ends;
    unsigned apps = 1;
    int qos = 1;
    std::size_t size = 200;
    std::uint64_t messages = 100000;
    std::uint64_t window = 1000;
    unsigned rate = 1000;         // latency: messages per second
    unsigned subscriptions = 10;  // idle: filters per client
    unsigned warm_up = 0;         // idle: clients connected before the "warm" line
    unsigned timeout_s = 300;
    double sys_interval_s = 1;    // the upstream broker's sys_interval
};

// CPU seconds this process used so far (user + system), to tell when the driver is the bottleneck.
double own_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return sec(u.ru_utime) + sec(u.ru_stime);
}

class setup_error : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The io_context thread, and calls into it from the main thread.
class loop {
public:
    loop() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
    ~loop() {
        work_.reset();
        io_.stop();
        thread_.join();
    }
    asio::io_context& io() { return io_; }

    // Runs `f` on the loop thread and waits for its result.
    template <class F>
    auto call(F f) {
        std::packaged_task<decltype(f())()> task(std::move(f));
        auto result = task.get_future();
        asio::post(io_, [&task] { task(); });
        return result.get();
    }

    // Starts an asynchronous request on the loop thread and waits for its completion.
    bench::status request(const std::function<void(bench::client::done_fn)>& start, std::chrono::seconds timeout) {
        auto promise = std::make_shared<std::promise<bench::status>>();
        auto result = promise->get_future();
        asio::post(io_, [start, promise] {
            start([promise, once = std::make_shared<bool>(false)](const bench::status& s) {
                if (std::exchange(*once, true)) return;
                promise->set_value(s);
            });
        });
        if (result.wait_for(timeout) != std::future_status::ready)
            return {.ok = false, .error = "timed out after " + std::to_string(timeout.count()) + " s"};
        return result.get();
    }

    // Waits until `done()` (evaluated on the loop thread) holds; false on timeout.
    bool wait_until(const std::function<bool()>& done, clock_type::duration timeout) {
        const auto deadline = clock_type::now() + timeout;
        while (!call([&] { return done(); })) {
            if (clock_type::now() > deadline) return false;
            std::this_thread::sleep_for(2ms);
        }
        return true;
    }

private:
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
};

void require(const bench::status& s, const std::string& what) {
    if (!s) throw setup_error(what + ": " + s.error);
}

std::unique_ptr<bench::client> connected_client(loop& l, const settings& s, unsigned index) {
    auto c = l.call([&] { return bench::make_client(l.io(), s.path, s.ends, index); });
    require(l.request([&c](auto done) { c->start(std::move(done)); }, 30s),
            std::string(bench::to_string(s.path)) + " client " + std::to_string(index));
    return c;
}

std::uint64_t failures = 0;  // loop thread only
bool winding_down = false;   // requests cut short by stopping the clients are not failures
void count(const bench::status& s) {
    if (s || winding_down) return;
    if (failures++ == 0) std::cerr << "thingmux-bench: request failed: " << s.error << '\n';
}

// Publishes `quota` messages keeping at most `window` awaiting their result; loop thread only.
// QoS 0 publishes may complete inside publish(): `pumping` turns that recursion into the loop.
struct window_sender {
    std::uint64_t quota = 0, window = 0, sent = 0, done = 0, outstanding = 0;
    bool pumping = false;
    std::function<void(bench::client::done_fn)> publish_one;
    std::function<void()> finished;  // once, after the last result

    void pump() {
        if (pumping) return;
        pumping = true;
        while (sent < quota && outstanding < window) {
            ++sent;
            ++outstanding;
            publish_one([this](const bench::status& st) {
                count(st);
                --outstanding;
                ++done;
                pump();
            });
        }
        pumping = false;
        if (done == quota && finished) std::exchange(finished, {})();
    }
};

// One client of a run and its counters; touched only on the loop thread.
struct app_state {
    std::unique_ptr<bench::client> client;
    std::string topic;
    window_sender sender;
    std::uint64_t received = 0;
};

void stop_all(loop& l, std::vector<app_state>& apps) {
    l.call([&] {
        winding_down = true;
        for (auto& a : apps) a.client->stop();
        return 0;
    });
    l.call([&] {
        apps.clear();
        return 0;
    });
}

// The cloud observer: counts fences and tracks the broker's count of received publishes.
struct observer {
    std::unique_ptr<bench::client> client;
    std::uint64_t fences = 0;
    clock_type::time_point last_fence;
    std::optional<std::uint64_t> broker_received;

    static std::unique_ptr<observer> connect(loop& l, const settings& s, bool count_fences) {
        auto o = std::make_unique<observer>();
        o->client = l.call([&] { return bench::make_observer(l.io(), s.ends); });
        auto* self = o.get();
        l.call([&] {
            self->client->on_message = [self](std::string_view topic, std::string_view payload) {
                if (topic == sys_received_topic) {
                    self->broker_received = std::strtoull(std::string(payload).c_str(), nullptr, 10);
                } else if (topic.ends_with("/bench/fence")) {
                    ++self->fences;
                    self->last_fence = clock_type::now();
                }
            };
            return 0;
        });
        require(l.request([self](auto done) { self->client->start(std::move(done)); }, 30s), "observer");
        if (count_fences) {
            require(l.request([self](auto done) { self->client->subscribe("dt/+/bench/fence", 1, std::move(done)); }, 30s),
                    "observer subscribe");
            require(l.request([self](auto done) { self->client->subscribe(sys_received_topic, 0, std::move(done)); }, 30s),
                    "observer subscribe to $SYS (the broker's ACL must let the observer read $SYS/#)");
        }
        return o;
    }

    // mosquitto publishes its $SYS counters when more than sys_interval whole seconds have
    // passed since the last update (so every 2 s with sys_interval 1), and only when they
    // changed. The count is settled once it reached `at_least`, or after two such periods.
    std::uint64_t settled_count(loop& l, const settings& s, std::uint64_t at_least) {
        const auto period = std::chrono::duration<double>(2 * s.sys_interval_s + 0.5);
        l.wait_until([&] { return broker_received && *broker_received >= at_least; },
                     std::chrono::duration_cast<clock_type::duration>(period));
        const auto v = l.call([&] { return broker_received; });
        if (!v) throw setup_error("the upstream broker publishes no " + sys_received_topic + " (is sys_interval 0?)");
        return *v;
    }
};

// --- publish ------------------------------------------------------------------------------------

int run_publish(const settings& s) {
    if (s.path == bench::path::direct && s.apps != 1)
        throw setup_error("direct has one connection (the Thing's client ID): use --apps 1");
    loop l;
    auto obs = observer::connect(l, s, true);
    const auto before = obs->settled_count(l, s, UINT64_MAX);  // waits the full period

    std::vector<app_state> apps(s.apps);
    for (unsigned i = 0; i < s.apps; ++i) {
        apps[i].client = connected_client(l, s, i);
        apps[i].topic = "dt/" + bench::thing_of(s.path, s.ends) + "/bench/app" + std::to_string(i);
    }
    const std::string payload(s.size, 'x');
    const std::string fence_topic = "dt/" + bench::thing_of(s.path, s.ends) + "/bench/fence";
    for (unsigned i = 0; i < s.apps; ++i) {
        auto& a = apps[i];
        a.sender.quota = s.messages / s.apps + (i < s.messages % s.apps ? 1 : 0);
        a.sender.window = s.window;
        a.sender.publish_one = [&a, &payload, &s](bench::client::done_fn done) {
            a.client->publish(a.topic, payload, s.qos, std::move(done));
        };
        a.sender.finished = [&a, &fence_topic] { a.client->publish(fence_topic, "fence", 1, count); };
    }
    const auto cpu0 = own_cpu_seconds();
    const auto t0 = l.call([&] {
        const auto now = clock_type::now();
        for (auto& a : apps) a.sender.pump();
        return now;
    });
    if (!l.wait_until([&] { return obs->fences == s.apps; }, std::chrono::seconds(s.timeout_s))) {
        const auto done = l.call([&] {
            std::uint64_t d = 0;
            for (auto& a : apps) d += a.sender.done;
            return d;
        });
        throw setup_error("timed out: " + std::to_string(done) + " of " + std::to_string(s.messages) +
                          " publishes completed, " + std::to_string(l.call([&] { return obs->fences; })) + " of " +
                          std::to_string(s.apps) + " fences arrived");
    }
    const auto seconds = std::chrono::duration<double>(l.call([&] { return obs->last_fence; }) - t0).count();
    const auto cpu = own_cpu_seconds() - cpu0;
    stop_all(l, apps);
    const auto after = obs->settled_count(l, s, before + s.messages + s.apps);
    l.call([&] {
        obs->client->stop();
        return 0;
    });
    const auto fences = std::uint64_t{s.apps};
    const std::uint64_t received = after - before >= fences ? after - before - fences : 0;
    const auto lost = received < s.messages ? s.messages - received : 0;
    std::printf("scenario=publish path=%s apps=%u qos=%d size=%zu messages=%llu seconds=%.3f msgs_per_s=%.0f "
                "broker_received=%llu lost=%llu failed=%llu driver_cpu_s=%.2f\n",
                bench::to_string(s.path), s.apps, s.qos, s.size, static_cast<unsigned long long>(s.messages), seconds,
                static_cast<double>(s.messages) / seconds, static_cast<unsigned long long>(received),
                static_cast<unsigned long long>(lost), static_cast<unsigned long long>(failures), cpu);
    return lost == 0 && failures == 0 ? 0 : 1;
}

// --- fanout -------------------------------------------------------------------------------------

int run_fanout(const settings& s) {
    if (s.path == bench::path::direct && s.apps != 1)
        throw setup_error("direct has one connection (the Thing's client ID): use --apps 1");
    loop l;
    auto obs = observer::connect(l, s, false);
    const std::string topic = "cmd/" + bench::thing_of(s.path, s.ends) + "/bench/fanout";
    std::vector<app_state> subs(s.apps);
    std::uint64_t total = 0;
    clock_type::time_point last_delivery;
    for (unsigned i = 0; i < s.apps; ++i) {
        subs[i].client = connected_client(l, s, i);
        auto* a = &subs[i];
        l.call([&] {
            a->client->on_message = [a, &total, &last_delivery](std::string_view, std::string_view) {
                ++a->received;
                ++total;
                last_delivery = clock_type::now();
            };
            return 0;
        });
        require(l.request([a, &topic](auto done) { a->client->subscribe(topic, 1, std::move(done)); }, 30s),
                "subscribe " + std::to_string(i));
    }
    // The bridge subscribes upstream on its own (its configured topics), the others before their
    // SUBACK: every path is ready to receive here.
    const std::string payload(s.size, 'c');
    window_sender pub{.quota = s.messages, .window = s.window};
    pub.publish_one = [&](bench::client::done_fn done) { obs->client->publish(topic, payload, s.qos, std::move(done)); };
    const auto cpu0 = own_cpu_seconds();
    const auto t0 = l.call([&] {
        pub.pump();
        return clock_type::now();
    });
    const std::uint64_t expected = s.messages * s.apps;
    // Stop at completion, or when deliveries stalled (lost messages never arrive).
    std::uint64_t seen = 0;
    auto progress_at = clock_type::now();
    for (;;) {
        const auto now_total = l.call([&] { return total; });
        if (now_total >= expected) break;
        if (now_total != seen) {
            seen = now_total;
            progress_at = clock_type::now();
        } else if (clock_type::now() - progress_at > 10s) {
            break;
        }
        std::this_thread::sleep_for(2ms);
    }
    const auto cpu = own_cpu_seconds() - cpu0;
    auto [received, least, end] = l.call([&] {
        std::uint64_t lo = UINT64_MAX;
        for (auto& a : subs) lo = std::min(lo, a.received);
        return std::tuple{total, lo, last_delivery};
    });
    stop_all(l, subs);
    l.call([&] {
        obs->client->stop();
        return 0;
    });
    const auto seconds = std::chrono::duration<double>(end - t0).count();
    std::printf("scenario=fanout path=%s subscribers=%u qos=%d size=%zu messages=%llu seconds=%.3f "
                "deliveries=%llu deliveries_per_s=%.0f least_per_subscriber=%llu lost=%llu failed=%llu driver_cpu_s=%.2f\n",
                bench::to_string(s.path), s.apps, s.qos, s.size, static_cast<unsigned long long>(s.messages), seconds,
                static_cast<unsigned long long>(received), static_cast<double>(received) / seconds,
                static_cast<unsigned long long>(least), static_cast<unsigned long long>(expected - std::min(expected, received)),
                static_cast<unsigned long long>(failures), cpu);
    return received >= expected && failures == 0 ? 0 : 1;
}

// --- latency ------------------------------------------------------------------------------------

// Round trip through the upstream broker: direct, thingmux and mqtt-face publish to a topic they
// subscribe to (thingmuxd never hands a local publish to a local subscriber itself); a bridge client publishes to rtt-up/, which the bridge maps out to dt/THING/rtt/, and
// receives from rtt-down/, to which the bridge maps that remote topic back in (a bridge would
// otherwise hand a local subscriber the local copy without going to the cloud).
int run_latency(const settings& s) {
    loop l;
    auto c = connected_client(l, s, 0);
    const auto& thing = bench::thing_of(s.path, s.ends);
    const bool bridge = s.path == bench::path::bridge;
    const std::string out_topic = bridge ? "rtt-up/0" : "dt/" + thing + "/rtt/0";
    const std::string in_topic = bridge ? "rtt-down/0" : out_topic;

    std::vector<clock_type::time_point> sent(s.messages);
    std::vector<double> rtt_us;
    rtt_us.reserve(s.messages);
    l.call([&] {
        c->on_message = [&](std::string_view, std::string_view payload) {
            std::uint64_t seq = 0;
            if (payload.size() < sizeof seq) return;
            std::memcpy(&seq, payload.data(), sizeof seq);
            if (seq >= sent.size()) return;
            rtt_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - sent[seq]).count());
        };
        return 0;
    });
    require(l.request([&](auto done) { c->subscribe(in_topic, 1, std::move(done)); }, 30s), "subscribe");

    // Publishes on a fixed schedule (not "after the previous one came back"), like telemetry.
    asio::steady_timer timer(l.io());
    std::string payload(std::max<std::size_t>(s.size, sizeof(std::uint64_t)), 'r');
    const auto period = std::chrono::nanoseconds(1'000'000'000 / s.rate);
    std::uint64_t next = 0;
    clock_type::time_point start;
    std::function<void()> tick = [&] {
        std::memcpy(payload.data(), &next, sizeof next);
        sent[next] = clock_type::now();
        c->publish(out_topic, payload, 1, count);
        if (++next == s.messages) return;
        timer.expires_at(start + period * next);
        timer.async_wait([&](boost::system::error_code ec) {
            if (!ec) tick();
        });
    };
    l.call([&] {
        start = clock_type::now();
        tick();
        return 0;
    });
    const auto run_time = std::chrono::duration_cast<clock_type::duration>(period * s.messages);
    l.wait_until([&] { return rtt_us.size() == s.messages; }, run_time + 10s);
    l.call([&] {
        winding_down = true;
        timer.cancel();
        c->stop();
        return 0;
    });
    const auto samples = l.call([&] { return rtt_us; });
    if (samples.empty()) throw setup_error("no message came back");
    // The first second warms caches and connections up; it is not counted.
    const std::size_t warm = std::min<std::size_t>(s.rate, samples.size() / 10);
    std::vector<double> v(samples.begin() + static_cast<std::ptrdiff_t>(warm), samples.end());
    std::sort(v.begin(), v.end());
    auto pct = [&](double p) { return v[std::min(v.size() - 1, static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size())))]; };
    std::printf("scenario=latency path=%s rate=%u size=%zu messages=%llu samples=%zu p50_us=%.1f p90_us=%.1f "
                "p99_us=%.1f p999_us=%.1f max_us=%.1f lost=%llu failed=%llu\n",
                bench::to_string(s.path), s.rate, payload.size(), static_cast<unsigned long long>(s.messages), v.size(),
                pct(50), pct(90), pct(99), pct(99.9), v.back(),
                static_cast<unsigned long long>(s.messages - samples.size()), static_cast<unsigned long long>(failures));
    return samples.size() == s.messages && failures == 0 ? 0 : 1;
}

// --- idle ---------------------------------------------------------------------------------------

int run_idle(const settings& s) {
    if (s.warm_up >= s.apps && s.warm_up > 0) throw setup_error("--warm-up must be smaller than --apps");
    loop l;
    std::vector<app_state> clients(s.apps);
    for (unsigned i = 0; i < s.apps; ++i) {
        if (i == s.warm_up && i > 0) {
            std::printf("warm path=%s clients=%u\n", bench::to_string(s.path), i);
            std::fflush(stdout);
            for (int ch = std::getchar(); ch != EOF && ch != '\n'; ch = std::getchar()) {}
        }
        clients[i].client = connected_client(l, s, i);
        for (unsigned k = 0; k < s.subscriptions; ++k) {
            const auto filter = "cmd/" + bench::thing_of(s.path, s.ends) + "/idle/" + std::to_string(k);
            auto* c = clients[i].client.get();
            require(l.request([c, &filter](auto done) { c->subscribe(filter, 1, std::move(done)); }, 30s),
                    "subscribe " + filter);
        }
    }
    std::printf("ready path=%s clients=%u subscriptions=%u\n", bench::to_string(s.path), s.apps, s.apps * s.subscriptions);
    std::fflush(stdout);
    // Held until the script closes our stdin.
    for (int ch = std::getchar(); ch != EOF; ch = std::getchar()) {}
    stop_all(l, clients);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"thingmux-bench: one benchmark scenario over one path (direct, thingmux, mqtt-face or bridge); "
                 "see scripts/bench.sh, which runs them all"};
    settings s;
    auto& e = s.ends;
    app.add_option("scenario", s.scenario, "publish, fanout, latency or idle")
        ->required()
        ->check(CLI::IsMember({"publish", "fanout", "latency", "idle"}));
    app.add_option("--path", s.path, "direct, thingmux, mqtt-face or bridge")
        ->transform(CLI::CheckedTransformer(std::map<std::string, bench::path>{{"direct", bench::path::direct},
                                                                               {"thingmux", bench::path::thingmux},
                                                                               {"mqtt-face", bench::path::mqtt_face},
                                                                               {"bridge", bench::path::bridge}}))
        ->default_str("thingmux");
    app.add_option("--apps", s.apps, "publish: apps sharing the messages; fanout: subscribers; idle: clients")
        ->check(CLI::Range(1U, 10000U))
        ->capture_default_str();
    app.add_option("--qos", s.qos, "QoS of the measured messages (0 or 1)")->check(CLI::Range(0, 1))->capture_default_str();
    app.add_option("--size", s.size, "payload bytes")->check(CLI::Range(std::size_t{1}, std::size_t{131072}))->capture_default_str();
    app.add_option("--messages", s.messages, "messages in total")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100000000}))
        ->capture_default_str();
    app.add_option("--window", s.window, "publishes awaiting their result, per client")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{65535}))
        ->capture_default_str();
    app.add_option("--rate", s.rate, "latency: publishes per second")->check(CLI::Range(1U, 1000000U))->capture_default_str();
    app.add_option("--subscriptions", s.subscriptions, "idle: filters per client")->capture_default_str();
    app.add_option("--warm-up", s.warm_up,
                   "idle: clients that connect first; then \"warm ...\" is printed and the rest wait for a line on stdin")
        ->capture_default_str();
    app.add_option("--timeout", s.timeout_s, "give up after this many seconds")->capture_default_str();
    app.add_option("--host", e.host, "upstream broker host")->capture_default_str();
    app.add_option("--port", e.port, "upstream broker port")->capture_default_str();
    app.add_option("--ca", e.ca, "CA bundle of the upstream broker (PEM)")->required();
    app.add_option("--observer-cert", e.observer_cert, "certificate of the cloud-side observer (PEM)")->required();
    app.add_option("--observer-key", e.observer_key, "its private key (PEM)")->required();
    app.add_option("--sys-interval", s.sys_interval_s, "the upstream broker's sys_interval (s)")->capture_default_str();
    app.add_option("--direct-thing", e.direct_thing, "direct: the Thing (client ID) it connects as")->capture_default_str();
    app.add_option("--direct-cert", e.direct_cert, "direct: its certificate (PEM)");
    app.add_option("--direct-key", e.direct_key, "direct: its private key (PEM)");
    app.add_option("--inflight", e.inflight, "QoS 1 window of each MQTT session (thingmuxd's limits.inflight)")->capture_default_str();
    app.add_option("--socket", e.socket, "thingmux: the daemon's socket (default: $THINGMUX_SOCKET or the system one)");
    app.add_option("--mqtt-socket", e.mqtt_socket, "mqtt-face: the daemon's MQTT socket (mqtt.socket)");
    app.add_option("--local-port", e.local_port, "bridge: port of the local mosquitto (plain MQTT on 127.0.0.1)")->capture_default_str();
    app.add_option("--thing", e.thing, "the Thing thingmuxd serves")->capture_default_str();
    app.add_option("--bridge-thing", e.bridge_thing, "the Thing the bridge connects as")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    if (s.path == bench::path::direct && (e.direct_cert.empty() || e.direct_key.empty())) {
        std::cerr << "thingmux-bench: --path direct needs --direct-cert and --direct-key\n";
        return 2;
    }
    if (s.path == bench::path::mqtt_face && e.mqtt_socket.empty()) {
        std::cerr << "thingmux-bench: --path mqtt-face needs --mqtt-socket\n";
        return 2;
    }
    try {
        if (s.scenario == "publish") return run_publish(s);
        if (s.scenario == "fanout") return run_fanout(s);
        if (s.scenario == "latency") return run_latency(s);
        return run_idle(s);
    } catch (const setup_error& err) {
        std::cerr << "thingmux-bench: " << s.scenario << " over " << bench::to_string(s.path) << ": " << err.what() << '\n';
        return 2;
    }
}
