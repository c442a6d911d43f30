// The metrics endpoint (docs/metrics.md), end to end: the real thingmuxd and the AWS-like
// mosquitto, apps under two app rules (one of them another uid), scraped with thingmuxctl
// metrics, curl and raw sockets; the output checked by Debian's promtool; hostile clients on
// the metrics socket.
#include "tests/support/as_user.hpp"
#include "tests/support/daemon_fixture.hpp"
#include "tests/support/measure.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace thingmux::test {
namespace {

const std::string thingmuxctl = std::string(THINGMUX_BIN_DIR) + "/thingmuxctl";

// The value of the sample `name` whose labels include every one of `labels` (k="v"); nullopt
// when no line has them all.
std::optional<double> sample(const std::string& text, const std::string& name,
                             const std::vector<std::pair<std::string, std::string>>& labels = {}) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line.front() == '#') continue;
        const auto brace = line.find('{');
        const auto space = line.rfind(' ');
        if (space == std::string::npos) continue;
        const auto metric = line.substr(0, std::min(brace, space));
        if (metric != name) continue;
        const auto label_text = brace == std::string::npos ? std::string{} : line.substr(brace, space - brace);
        bool all = true;
        for (const auto& [k, v] : labels) {
            const auto want = k + "=\"" + v + "\"";
            if (label_text.find("{" + want + ",") == std::string::npos && label_text.find("," + want + ",") == std::string::npos &&
                label_text.find("," + want + "}") == std::string::npos && label_text.find("{" + want + "}") == std::string::npos)
                all = false;
        }
        if (all) return std::stod(line.substr(space + 1));
    }
    return std::nullopt;
}

// The metrics socket next to the daemon's IPC socket, once thingmuxd bound it (the fixture's
// start() returns when the IPC socket listens, a moment before).
std::filesystem::path metrics_socket_of(const daemon_fixture& d) {
    const auto socket = d.socket_path().parent_path() / "metrics.sock";
    EXPECT_TRUE(eventually([&] { return std::filesystem::is_socket(socket); }, 10'000)) << read_file(d.log_file());
    return socket;
}

std::string scrape(const daemon_fixture& d, const std::vector<std::string>& extra = {}) {
    (void)metrics_socket_of(d);
    std::vector<std::string> argv{thingmuxctl, "--socket", d.socket_path().string(), "metrics"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::string out;
    const int rc = run_command(argv, &out);
    EXPECT_EQ(rc, 0) << out;
    return out;
}

// promtool check metrics reads the text on stdin: exit 0 when it has nothing to say, 3 for lint
// problems (one per line), 1 when it cannot parse the text.
int promtool_check(const std::filesystem::path& dir, const std::string& text, std::string& out) {
    const auto file = dir / "scrape.txt";
    std::ofstream(file, std::ios::binary) << text;
    return run_command({"/bin/sh", "-c", "promtool check metrics < '" + file.string() + "'"}, &out);
}

// Debian's python3-prometheus-client has a strict OpenMetrics parser: it checks what promtool
// (Prometheus text format only) cannot, e.g. a counter family's `_total` samples, units, `# EOF`.
// Prints "family type unit samples" per family; exit 0 when the text parses.
int openmetrics_parse(const std::filesystem::path& dir, const std::string& text, std::string& out) {
    const auto file = dir / "scrape.om";
    std::ofstream(file, std::ios::binary) << text;
    return run_command({"/usr/bin/python3", "-c",
                        "import sys\n"
                        "from prometheus_client.openmetrics.parser import text_string_to_metric_families\n"
                        "for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
                        "    print(f.name, f.type, f.unit or '-', len(f.samples))\n",
                        file.string()},
                       &out);
}

ipc::result publish_as(ipc_client& c, const std::string& topic, const std::string& payload) { return c.publish(topic, payload, 1); }

// Raw bytes to a Unix socket; what came back before the server closed (or `timeout_ms` passed).
std::string exchange(const std::filesystem::path& socket, const std::string& bytes, int timeout_ms = 15'000) {
    unix_stream s(socket);
    (void)s.write(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (!s.closed() && remaining_ms(deadline) > 0) (void)s.read_some(remaining_ms(deadline));
    return {s.buffer().begin(), s.buffer().end()};
}

class MetricsTest : public ::testing::Test {
protected:
    broker_fixture broker;
};

// Two apps under two app rules publish N and M QoS 1 messages, some refused by the rules: the
// scrape counts exactly those, per app and result, and the broker's side agrees.
TEST_F(MetricsTest, ScrapeCountsEachAppsPublishesByResult) {
    shared_temp_dir dir;
    daemon_setup setup;
    setup.socket = dir.path() / "thingmux.sock";
    setup.apps = "  - name: tests\n"
                 "    match: { uid: 0 }\n"
                 "    publish: ['dt/${thing}/root/#']\n"
                 "    subscribe: ['#']\n"
                 "  - name: sensors\n"
                 "    match: { user: nobody }\n"
                 "    publish: ['dt/${thing}/nobody/#']\n";
    daemon_fixture daemon(broker, setup);
    ASSERT_EQ(metrics_socket_of(daemon), dir.path() / "metrics.sock");

    constexpr int n = 5;
    constexpr int n_refused = 2;
    constexpr int m = 3;
    constexpr int m_refused = 1;
    ipc_client root(daemon.socket_path());
    ASSERT_TRUE(hello_connected(root, "root-app"));
    std::uint64_t root_ok_bytes = 0;
    std::uint64_t root_refused_bytes = 0;
    for (int i = 0; i < n; ++i) {
        const std::string topic = "dt/gateway-01/root/t";
        const auto payload = "r" + std::to_string(i);
        ASSERT_EQ(publish_as(root, topic, payload).code, ipc::errc::ok);
        root_ok_bytes += topic.size() + payload.size();
    }
    for (int i = 0; i < n_refused; ++i) {
        const std::string topic = "dt/gateway-01/nobody/t";  // not the root rule's
        ASSERT_EQ(publish_as(root, topic, "x").code, ipc::errc::not_authorized);
        root_refused_bytes += topic.size() + 1;
    }
    const auto r = run_as_user({.uid = 65534, .gid = 65534, .groups = {65534}}, [&](std::string& out) {
        ipc_client c(daemon.socket_path());
        (void)c.hello("sensor");
        for (int i = 0; i < m; ++i) {
            const auto res = c.publish("dt/gateway-01/nobody/t", "n" + std::to_string(i), 1);
            if (res.code != ipc::errc::ok) out += std::string("publish: ") + ipc::to_string(res.code) + " " + res.message + "\n";
        }
        for (int i = 0; i < m_refused; ++i) {
            if (c.publish("dt/gateway-01/root/t", "x", 1).code != ipc::errc::not_authorized) out += "not refused\n";
        }
        return out.empty() ? 0 : 1;
    });
    ASSERT_EQ(r.exit_code, 0) << r.output;

    const auto text = scrape(daemon);
    SCOPED_TRACE(text);
    const std::vector<std::pair<std::string, std::string>> tests{{"thing", "gateway-01"}, {"app", "tests"}, {"uid", "0"}};
    const std::vector<std::pair<std::string, std::string>> sensors{{"thing", "gateway-01"}, {"app", "sensors"}, {"uid", "65534"}};
    const auto with = [](auto labels, const std::string& result) {
        labels.emplace_back("result", result);
        return labels;
    };
    EXPECT_EQ(sample(text, "thingmux_app_publishes_total", with(tests, "ok")), n);
    EXPECT_EQ(sample(text, "thingmux_app_publishes_total", with(tests, "not_authorized")), n_refused);
    EXPECT_EQ(sample(text, "thingmux_app_publishes_total", with(sensors, "ok")), m);
    EXPECT_EQ(sample(text, "thingmux_app_publishes_total", with(sensors, "not_authorized")), m_refused);
    EXPECT_EQ(sample(text, "thingmux_app_publish_bytes_total", with(tests, "ok")), static_cast<double>(root_ok_bytes));
    EXPECT_EQ(sample(text, "thingmux_app_publish_bytes_total", with(tests, "not_authorized")), static_cast<double>(root_refused_bytes));
    // The sensor app is gone: its series stay. The root app is still connected.
    EXPECT_EQ(sample(text, "thingmux_apps_connected", tests), 1);
    EXPECT_FALSE(sample(text, "thingmux_apps_connected", sensors));

    // What went upstream: the accepted ones, each answered by a PUBACK.
    EXPECT_EQ(sample(text, "thingmux_uplink_messages_total", {{"thing", "gateway-01"}, {"direction", "out"}}), n + m);
    EXPECT_EQ(sample(text, "thingmux_publish_round_trip_seconds_count", {{"thing", "gateway-01"}}), n + m);
    EXPECT_EQ(sample(text, "thingmux_publish_round_trip_seconds_bucket", {{"thing", "gateway-01"}, {"le", "+Inf"}}), n + m);
    EXPECT_EQ(sample(text, "thingmux_link_up", {{"thing", "gateway-01"}}), 1);
    EXPECT_EQ(sample(text, "thingmux_link_state", {{"thing", "gateway-01"}, {"state", "connected"}}), 1);
    EXPECT_EQ(sample(text, "thingmux_link_state", {{"thing", "gateway-01"}, {"state", "backing_off"}}), 0);
    EXPECT_EQ(sample(text, "thingmux_spool_messages", {{"thing", "gateway-01"}}), 0);
    EXPECT_EQ(sample(text, "thingmux_subscriptions", {{"thing", "gateway-01"}, {"scope", "upstream"}}), 0);
    EXPECT_EQ(sample(text, "thingmux_link_failures_total", {{"thing", "gateway-01"}, {"reason", "takeover"}}), 0);
    EXPECT_TRUE(sample(text, "thingmux_build_info"));
    // The broker's certificate for the Thing, made at test time, expires in the future.
    const auto expiry = sample(text, "thingmux_certificate_expiry_timestamp_seconds", {{"thing", "gateway-01"}});
    ASSERT_TRUE(expiry);
    EXPECT_GT(*expiry, static_cast<double>(std::time(nullptr)));
    EXPECT_TRUE(text.ends_with("# EOF\n"));
}

// promtool (Debian's prometheus package) accepts both formats; the Prometheus one is what
// node_exporter's textfile collector reads. promtool 2.42 parses only the Prometheus text format:
// it reads the OpenMetrics text too, but cannot pair a counter family with its `_total` samples,
// so its only remarks there are "…_total no help text"; the strict OpenMetrics parser of
// python3-prometheus-client checks that format fully.
TEST_F(MetricsTest, PromtoolAcceptsBothFormats) {
    if (!std::filesystem::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool is not installed (apt-get install prometheus)";
    daemon_fixture daemon(broker);
    ipc_client c(daemon.socket_path());
    ASSERT_TRUE(hello_connected(c, "app"));
    ASSERT_EQ(c.publish("dt/gateway-01/x", "1", 1).code, ipc::errc::ok);
    ASSERT_EQ(c.subscribe({"cmd/gateway-01/#"}).at(0).code, ipc::errc::ok);
    for (const std::string format : {"openmetrics", "prometheus"}) {
        const auto text = scrape(daemon, {"--format", format});
        std::string out;
        const int rc = promtool_check(daemon.dir(), text, out);
        if (format == "prometheus") {
            EXPECT_EQ(rc, 0) << out << "\n" << text;
            EXPECT_EQ(out, "");
        } else {
            EXPECT_TRUE(rc == 0 || rc == 3) << rc << ": " << out << "\n" << text;
            for (const auto& line : complete_lines(out))
                EXPECT_TRUE(line.ends_with("_total no help text")) << line;
        }
        EXPECT_EQ(text.ends_with("# EOF\n"), format == "openmetrics");
        EXPECT_EQ(sample(text, "thingmux_subscriptions", {{"thing", "gateway-01"}, {"scope", "upstream"}}), 1) << text;
        EXPECT_EQ(sample(text, "thingmux_subscriptions", {{"thing", "gateway-01"}, {"scope", "local"}}), 1) << text;
    }
    if (std::filesystem::exists("/usr/lib/python3/dist-packages/prometheus_client/openmetrics/parser.py")) {
        const auto text = scrape(daemon);
        std::string out;
        ASSERT_EQ(openmetrics_parse(daemon.dir(), text, out), 0) << out << "\n" << text;
        EXPECT_NE(out.find("thingmux_app_publishes counter - "), std::string::npos) << out;
        EXPECT_NE(out.find("thingmux_uplink_bytes counter bytes 2"), std::string::npos) << out;
        EXPECT_NE(out.find("thingmux_publish_round_trip_seconds histogram seconds "), std::string::npos) << out;
        EXPECT_NE(out.find("thingmux_build_info gauge - 1"), std::string::npos) << out;
    } else {
        std::cout << "[ skipped  ] the strict OpenMetrics parse: python3-prometheus-client is not installed\n";
    }
    // --thing: that Thing's series only; an unknown one has none.
    const auto one = scrape(daemon, {"--thing", "gateway-01"});
    EXPECT_TRUE(sample(one, "thingmux_link_up", {{"thing", "gateway-01"}}));
    const auto none = scrape(daemon, {"--thing", "no-such-thing"});
    EXPECT_FALSE(sample(none, "thingmux_link_up"));
    EXPECT_TRUE(sample(none, "thingmux_build_info"));
}

// curl over the Unix socket, as docs/metrics.md shows, and the loopback TCP listener.
TEST_F(MetricsTest, CurlOverTheUnixSocketAndTheTcpListener) {
    if (!std::filesystem::exists("/usr/bin/curl")) GTEST_SKIP() << "curl is not installed (apt-get install curl)";
    const auto port = free_tcp_port();
    daemon_setup setup;
    setup.top = "metrics:\n  listen: \"127.0.0.1:" + std::to_string(port) + "\"\n";
    daemon_fixture daemon(broker, setup);
    const auto socket = metrics_socket_of(daemon);
    std::string out;
    ASSERT_EQ(run_command({"curl", "-sS", "-i", "--unix-socket", socket.string(), "http://localhost/metrics"}, &out), 0) << out;
    EXPECT_TRUE(out.starts_with("HTTP/1.1 200 OK\r\n")) << out;
    EXPECT_NE(out.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos) << out;
    ASSERT_EQ(run_command({"curl", "-sS", "-i", "-H", "Accept: application/openmetrics-text; version=1.0.0",
                           "http://127.0.0.1:" + std::to_string(port) + "/metrics"},
                          &out),
              0)
        << out;
    EXPECT_NE(out.find("Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"), std::string::npos) << out;
    EXPECT_TRUE(out.ends_with("# EOF\n")) << out;
    ASSERT_EQ(run_command({"curl", "-sS", "-i", "--unix-socket", socket.string(), "http://localhost/other"}, &out), 0) << out;
    EXPECT_TRUE(out.starts_with("HTTP/1.1 404 Not Found\r\n")) << out;
    ASSERT_EQ(run_command({"curl", "-sS", "-i", "-X", "POST", "--unix-socket", socket.string(), "http://localhost/metrics"}, &out), 0)
        << out;
    EXPECT_TRUE(out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")) << out;
    EXPECT_NE(out.find("Allow: GET\r\n"), std::string::npos) << out;
}

// thingmuxctl metrics without a daemon names the socket and what to do.
TEST_F(MetricsTest, CtlNamesTheSocketWhenItCannotConnect) {
    shared_temp_dir dir;
    std::string out;
    const auto socket = dir.path() / "metrics.sock";
    EXPECT_EQ(run_command({thingmuxctl, "metrics", "--metrics-socket", socket.string()}, &out), 3) << out;
    EXPECT_NE(out.find("cannot connect to the metrics socket " + socket.string()), std::string::npos) << out;
    EXPECT_NE(out.find("is thingmuxd running"), std::string::npos) << out;
}

// Hostile clients on the metrics socket: garbage, a 100 KiB header, 100 idle connections. Each
// is refused or closed, the daemon's memory stays bounded, scrapes are answered all along, and
// the log says so in a bounded number of lines with nothing of what the clients sent.
TEST_F(MetricsTest, HostileClientsAreRefusedWhileScrapesAreAnswered) {
    daemon_fixture daemon(broker);
    const auto socket = metrics_socket_of(daemon);
    ipc_client app(daemon.socket_path());
    ASSERT_TRUE(hello_connected(app, "app"));
    (void)scrape(daemon);
    const auto idle_rss = resident_bytes(daemon.pid());

    // Garbage: a TLS ClientHello and an escape sequence, refused with 400 at once.
    const std::string garbage = std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + "\x1b[31mred\n\n";
    auto answer = exchange(socket, garbage);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 400 Bad Request\r\n")) << answer;

    // A 100 KiB header: 431, closed, nothing kept of it.
    const std::string big = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(100 * 1024, 'a') + "\r\n\r\n";
    answer = exchange(socket, big);
    EXPECT_TRUE(answer.empty() || answer.starts_with("HTTP/1.1 431 ")) << answer.substr(0, 200);

    // Other methods and paths.
    EXPECT_TRUE(exchange(socket, "DELETE /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    EXPECT_TRUE(exchange(socket, "GET /../etc/passwd HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));

    // 100 idle connections: the oldest make room for the newest; a scrape still gets through.
    constexpr int idle = 100;
    std::vector<std::unique_ptr<unix_stream>> idlers;
    for (int i = 0; i < idle; ++i) idlers.push_back(std::make_unique<unix_stream>(socket));
    const auto text = scrape(daemon);
    EXPECT_TRUE(sample(text, "thingmux_link_up", {{"thing", "gateway-01"}})) << text;
    // All but the last 15 (the scrape took the 16th place) are closed by the daemon.
    std::size_t closed = 0;
    for (auto& s : idlers)
        if (hung_up(s->fd(), 100)) ++closed;
    EXPECT_GE(closed, static_cast<std::size_t>(idle - 15));
    const auto during_rss = resident_bytes(daemon.pid());
    // The rest time out (10 s) and are closed too.
    std::vector<bool> gone(idlers.size());
    EXPECT_TRUE(eventually([&] {
        bool all = true;
        for (std::size_t i = 0; i < idlers.size(); ++i) {
            if (!gone[i]) gone[i] = hung_up(idlers[i]->fd(), 10);
            all = all && gone[i];
        }
        return all;
    }, 25'000));
    idlers.clear();
    EXPECT_TRUE(sample(scrape(daemon), "thingmux_link_up", {{"thing", "gateway-01"}}));
#ifndef THINGMUX_SANITIZED  // under ASan, VmRSS measures its quarantine and shadow memory
    EXPECT_LT(during_rss, idle_rss + 4 * 1024 * 1024) << "VmRSS idle " << idle_rss << ", with the hostile clients " << during_rss;
#else
    (void)during_rss;
    (void)idle_rss;
#endif

    // The log: refusals rate-limited (5 a minute, then a count), nothing the clients sent.
    const auto log = read_file(daemon.log_file());
    const auto refusals = count_of(log, "refused with") + count_of(log, "closed the oldest one");
    EXPECT_GE(refusals, 3U) << log;
    EXPECT_LE(refusals, 5U) << lines_with(log, "metrics");
    EXPECT_EQ(log.find('\x1b'), std::string::npos);
    EXPECT_EQ(log.find("aaaaaaaaaaaaaaaa"), std::string::npos);
    EXPECT_EQ(log.find("[31m"), std::string::npos);
    std::cout << "[ measured ] VmRSS idle " << idle_rss / 1024 << " KiB, with " << idle << " idle metrics clients "
              << during_rss / 1024 << " KiB; " << closed << " closed at once; " << refusals << " log lines\n";
}

}  // namespace
}  // namespace thingmux::test
