#include "commands.hpp"

#include "bus_commands.hpp"

#include "common/printable.hpp"
#include "common/utc_time.hpp"

#include <thingmux/client.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>
#include <variant>

namespace thingmux::ctl {

std::chrono::milliseconds to_ms(double seconds) {
    return std::chrono::milliseconds{static_cast<std::int64_t>(std::ceil(seconds * 1000.0))};
}

options client_options(const common_options& common, bool reconnect) {
    options o;
    o.socket_path = common.socket;
    o.app_name = common.app_name;
    o.thing = common.thing;
    o.reconnect = reconnect;
    o.handshake_timeout = to_ms(common.connect_timeout_s);
    return o;
}

namespace {

// Codes that say the daemon is not there (or going away), rather than refusing us.
bool daemon_gone(error_code code) {
    return code == error_code::daemon_unavailable || code == error_code::session_closed ||
           code == error_code::daemon_shutting_down || code == error_code::closed;
}

}  // namespace

int report_failure(std::string_view command, const std::string& what, const result& r) {
    if (daemon_gone(r.code)) {
        complain(command) << r.message << '\n';
        return exit_unavailable;
    }
    complain(command) << what << ": " << to_string(r.code);
    if (!r.message.empty()) {
        std::cerr << ": " << r.message;
    }
    std::cerr << '\n';
    return exit_refused;
}

// Connects (one attempt, fail fast). Returns exit_ok or the code to exit with.
int connect_or_report(std::string_view command, client& c, const common_options& common) {
    auto f = c.connect();
    // The handshake timeout makes the library answer first; this is a safety margin.
    if (f.wait_for(to_ms(common.connect_timeout_s) + std::chrono::seconds(2)) != std::future_status::ready) {
        complain(command) << "no answer from thingmuxd at " << c.socket_path() << " within " << common.connect_timeout_s
                          << " s\n";
        return exit_unavailable;
    }
    const auto r = f.get();
    if (r.ok()) {
        return exit_ok;
    }
    if (r.code == error_code::daemon_unavailable) {
        complain(command) << r.message << '\n';
        return exit_unavailable;
    }
    return report_failure(command, "connect", r);
}

namespace {

bool read_all(std::istream& in, std::string& out) {
    out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return !in.bad();
}

}  // namespace

std::string printable(const std::string& s) { return text::printable(s, std::numeric_limits<std::size_t>::max()); }

std::ostream& complain(std::string_view command) {
    return std::cerr << "thingmuxctl " << command << ": ";
}

stop_fds block_stop_signals() {
    sigset_t sigs;
    ::sigemptyset(&sigs);
    for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::sigaddset(&sigs, sig);
    ::pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    return {::signalfd(-1, &sigs, SFD_CLOEXEC), ::eventfd(0, EFD_CLOEXEC)};
}

void stop_fds::done() const noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(done_fd, &one, sizeof one);
}

int run_pub(const common_options& common, const pub_options& opts) {
    message m;
    m.topic = opts.topic;
    m.qos = opts.qos;
    m.retain = opts.retain;
    if (opts.message) {
        m.payload = *opts.message;
    } else if (opts.file) {
        std::ifstream in(*opts.file, std::ios::binary);
        if (!in || !read_all(in, m.payload)) {
            complain("pub") << "cannot read " << *opts.file << '\n';
            return exit_usage;
        }
    } else if (opts.stdin_payload) {
        if (!read_all(std::cin, m.payload)) {
            complain("pub") << "cannot read the payload from stdin\n";
            return exit_usage;
        }
    }
    m.content_type = opts.content_type;
    m.response_topic = opts.response_topic;
    m.correlation_data = opts.correlation_data;
    m.message_expiry_seconds = opts.message_expiry;
    for (const auto& [k, v] : opts.user_properties) {
        m.user_properties.push_back({k, v});
    }
    // Mistakes the library would report after connecting are reported before, as usage errors.
    if (!valid_topic_name(m.topic)) {
        complain("pub") << "\"" << printable(m.topic)
                        << "\" is not a valid topic name (no '+' or '#', not empty, UTF-8)\n";
        return exit_usage;
    }

    client c(client_options(common, false));
    c.start();
    if (const int rc = connect_or_report("pub", c, common); rc != exit_ok) {
        return rc;
    }
    auto f = c.publish(std::move(m));
    if (f.wait_for(to_ms(opts.timeout_s)) != std::future_status::ready) {
        complain("pub") << "no result for the publish within " << opts.timeout_s
                        << " s (the daemon may still deliver it)\n";
        return exit_timeout;
    }
    const auto r = f.get();
    if (!r.ok()) {
        return report_failure("pub", "refused", r);
    }
    if (r.code == error_code::spooled && !opts.quiet) {
        complain("pub") << "spooled: thingmuxd stored the message durably (the Thing is offline, or earlier "
                           "messages wait) and will publish it in order\n";
    }
    return exit_ok;
}

int run_sub(const common_options& common, const sub_options& opts) {
    for (const auto& t : opts.topics) {
        if (!valid_topic_filter(t)) {
            complain("sub") << "\"" << printable(t)
                            << "\" is not a valid topic filter ('+' and '#' must be whole levels, '#' only last)\n";
            return exit_usage;
        }
    }

    // Signals are read from a signalfd in this thread; the library thread blocks them anyway.
    const auto stop = block_stop_signals();
    if (!stop.ok()) {
        complain("sub") << "cannot set up signal handling\n";
        return exit_unavailable;
    }
    std::atomic<int> outcome{exit_ok};
    const auto finish = [&](int code) {
        outcome = code;
        stop.done();
    };

    client c(client_options(common, true));
    bool was_connected = false;
    c.on_state([&](const state& s) {
        if (s.daemon == daemon_state::unavailable && was_connected) {
            complain("sub") << "lost thingmuxd (" << s.daemon_reason << "); reconnecting\n";
            was_connected = false;
        } else if (s.daemon == daemon_state::connected && !was_connected) {
            was_connected = true;
        }
    });
    c.on_subscription_lost([&](const std::string& filter, const result& r) {
        complain("sub") << "after reconnecting, thingmuxd refused \"" << filter << "\": " << to_string(r.code) << ": "
                        << r.message << '\n';
        finish(exit_refused);
    });
    c.start();
    if (const int rc = connect_or_report("sub", c, common); rc != exit_ok) {
        return rc;
    }
    std::cerr.flush();

    std::uint64_t received = 0;
    const auto handler = [&](const message& m) {
        if (opts.count && received >= *opts.count) {
            return;
        }
        ++received;
        std::string line;
        if (opts.verbose) {
            line += m.topic;
            line += ' ';
        }
        line += m.payload;
        if (!opts.no_newline) {
            line += '\n';
        }
        if (opts.properties) {
            if (m.content_type) line += "  content-type: " + printable(*m.content_type) + '\n';
            if (m.response_topic) line += "  response-topic: " + printable(*m.response_topic) + '\n';
            if (m.correlation_data) line += "  correlation-data: " + printable(*m.correlation_data) + '\n';
            if (m.message_expiry_seconds) line += "  message-expiry: " + std::to_string(*m.message_expiry_seconds) + '\n';
            if (m.payload_format_indicator) {
                line += "  payload-format: " + std::to_string(*m.payload_format_indicator) + '\n';
            }
            for (const auto& up : m.user_properties) {
                line += "  user-property: " + printable(up.key) + " = " + printable(up.value) + '\n';
            }
            if (m.retain) line += "  retain: true\n";
        }
        if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fflush(stdout) != 0) {
            finish(exit_ok);  // stdout closed (| head): nothing more to do
            return;
        }
        if (opts.count && received == *opts.count) {
            finish(exit_ok);
        }
    };
    for (const auto& t : opts.topics) {
        auto f = c.subscribe(t, opts.qos, handler);
        if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
            complain("sub") << "no answer to the subscription to \"" << t << "\" within 30 s\n";
            return exit_timeout;
        }
        const auto r = f.get();
        if (!r.ok()) {
            return report_failure("sub", "\"" + t + "\" refused", r);
        }
    }

    pollfd fds[2] = {{stop.signal_fd, POLLIN, 0}, {stop.done_fd, POLLIN, 0}};
    const auto deadline = opts.timeout_s ? std::chrono::steady_clock::now() + to_ms(*opts.timeout_s)
                                         : std::chrono::steady_clock::time_point::max();
    while (true) {
        int wait_ms = -1;
        if (opts.timeout_s) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                c.close();
                complain("sub") << "timed out after " << *opts.timeout_s << " s";
                if (opts.count) {
                    std::cerr << " with " << received << " of " << *opts.count << " messages";
                }
                std::cerr << '\n';
                return exit_timeout;
            }
            wait_ms = static_cast<int>(std::min<std::int64_t>(left.count() + 1, 1'000'000'000));
        }
        const int n = ::poll(fds, 2, wait_ms);
        if (n < 0 && errno != EINTR) {
            return exit_unavailable;
        }
        if (fds[0].revents != 0) {
            c.close();
            return exit_ok;  // interrupted by the user, like mosquitto_sub
        }
        if (fds[1].revents != 0) {
            c.close();  // no handler runs after this, so `outcome` and stdout are final
            return outcome.load();
        }
    }
}

namespace {

// "3f2a…c9d1 expires 2027-12-05 10:00 UTC (in 364 days)", "being provisioned", …
std::string describe_certificate(const thing_identity& id) {
    std::string text;
    if (id.state == "provisioning") return "none yet: thingmuxd is provisioning the Thing (fleet provisioning)";
    if (!id.certificate_id.empty())
        text = id.certificate_id.size() > 16 ? id.certificate_id.substr(0, 8) + "…" + id.certificate_id.substr(id.certificate_id.size() - 8)
                                            : id.certificate_id;
    if (id.not_after_usec != 0) {
        // Not through time_t: 32 bits on armhf, too few for AWS IoT's 2049 certificates.
        const std::chrono::system_clock::time_point not_after{
            std::chrono::microseconds{static_cast<std::int64_t>(id.not_after_usec)}};
        const auto left = std::chrono::duration_cast<std::chrono::seconds>(not_after - std::chrono::system_clock::now()).count();
        text += (text.empty() ? "" : " ") + std::string(left > 0 ? "expires " : "EXPIRED ") + utc_text(not_after);
        text += left > 0 ? " (in " + std::to_string(left / 86'400) + " days)" : "";
    }
    if (id.state == "rotating") text += (text.empty() ? "" : "; ") + std::string("being rotated");
    if (text.empty()) text = "not known to thingmuxd (in a token, or not a file it reads)";
    return text;
}

}  // namespace

int run_rotate_certificate(const common_options& common, int timeout_s) {
    std::string thing = common.thing;
    if (thing.empty()) {
        // The daemon's default Thing, as a client learns it.
        client c(client_options(common, false));
        c.start();
        if (const int rc = connect_or_report("rotate-certificate", c, common); rc != exit_ok) return rc;
        const auto info = c.daemon();
        if (!info) {
            complain("rotate-certificate") << "lost thingmuxd\n";
            return exit_unavailable;
        }
        thing = info->thing;
    }
    return run_rotate_certificate(thing, std::chrono::seconds(timeout_s));
}

int run_status(const common_options& common) {
    client c(client_options(common, false));
    c.start();
    if (const int rc = connect_or_report("status", c, common); rc != exit_ok) {
        return rc;
    }
    const auto info = c.daemon();
    const auto st = c.current_state();
    if (!info) {
        complain("status") << (st.daemon_reason.empty() ? "lost thingmuxd" : st.daemon_reason) << '\n';
        return exit_unavailable;
    }
    std::ostringstream out;
    out << "daemon:            thingmuxd " << info->daemon_version << " (IPC protocol " << info->protocol_version
        << ") on " << c.socket_path() << '\n'
        << "thing:             " << info->thing << '\n'
        << "client id:         " << info->client_id << '\n'
        << "uplink:            " << to_string(st.uplink);
    if (st.uplink_fatal) out << " (retrying cannot help until a setting, a file or the broker's side changes)";
    if ((st.uplink == uplink_state::backing_off || st.uplink == uplink_state::failed) && st.uplink_retry_in.count() > 0) {
        out << " (next attempt in " << st.uplink_retry_in.count() << " ms)";
    }
    out << '\n';
    if (!st.uplink_reason.empty()) {
        out << "uplink reason:     " << st.uplink_reason << '\n';
    }
    // The daemon's counters and the Thing's route are on D-Bus only (docs/dbus.md).
    out << "endpoint:          ";
    const auto route = read_route(info->thing);
    if (const auto* r = std::get_if<thing_route>(&route)) {
        out << r->endpoint << (r->transport == "websocket" ? " over WebSocket (wss)" : "")
            << (r->proxy.empty() ? ", directly" : ", through proxy " + r->proxy) << '\n'
            << "auth:              " << r->auth << '\n';
    } else {
        out << "not shown (" << std::get<std::string>(route) << ")\n";
    }
    out << "certificate:       ";
    const auto identity = read_identity(info->thing);
    if (const auto* id = std::get_if<thing_identity>(&identity)) {
        out << describe_certificate(*id) << '\n';
        if (!id->error.empty()) out << "identity error:    " << id->error << '\n';
    } else {
        out << "not shown (" << std::get<std::string>(identity) << ")\n";
    }
    out << "retained cache:    ";
    const auto retained = read_retained_cache(info->thing);
    if (const auto* f = std::get_if<retained_cache_figures>(&retained)) {
        out << f->messages << " messages, " << f->bytes << " bytes; " << f->dropped
            << " dropped by its limits (limits.retained_messages, limits.retained_bytes)\n";
    } else {
        out << "not shown (" << std::get<std::string>(retained) << ")\n";
    }
    out << "limits:\n"
        << "  max_frame:         " << info->limits.max_frame << " bytes\n"
        << "  max_payload:       " << info->limits.max_payload << " bytes\n"
        << "  max_topic_length:  " << info->limits.max_topic_length << " bytes\n"
        << "  max_subscriptions: " << info->limits.max_subscriptions << '\n'
        << "  max_inflight:      " << info->limits.max_inflight << '\n'
        << "  max_queue_bytes:   " << info->limits.max_queue_bytes << " bytes\n";
    std::cout << out.str();
    return exit_ok;
}

}  // namespace thingmux::ctl
