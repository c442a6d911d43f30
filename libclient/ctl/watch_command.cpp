// `thingmuxctl status --watch`: the Thing's link state, one line per change with its reason, for
// people (text) and scripts (--json: one JSON object per line), until interrupted.
#include "commands.hpp"

#include <thingmux/client.hpp>

#include <boost/json.hpp>

#include <poll.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
#include <string>

namespace thingmux::ctl {
namespace {

// "2026-12-06T05:01:02.345Z": UTC, so lines from gateways in several time zones compare.
std::string utc_now() {
    const auto now = std::chrono::system_clock::now();
    const auto secs = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    std::array<char, 32> text{};
    std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%S", &tm);
    std::array<char, 16> fraction{};
    std::snprintf(fraction.data(), fraction.size(), ".%03dZ", static_cast<int>(ms));
    return std::string(text.data()) + fraction.data();
}

// What makes a line: a state frame that repeats the last one (the library reports every change
// of the daemon connection too) prints nothing.
struct link_view {
    uplink_state state = uplink_state::unknown;
    std::string reason;
    bool fatal = false;
    std::chrono::milliseconds retry_in{0};
    bool operator==(const link_view&) const = default;
};

std::string text_line(const std::string& when, const std::string& thing, const link_view& v) {
    std::string line = when + ' ' + printable(thing) + ' ' + to_string(v.state);
    if (v.fatal) line += " (retrying cannot help until a setting, a file or the broker's side changes)";
    if ((v.state == uplink_state::backing_off || v.state == uplink_state::failed) && v.retry_in.count() > 0)
        line += " (next attempt in " + std::to_string(v.retry_in.count()) + " ms)";
    if (!v.reason.empty()) line += ": " + printable(v.reason);
    return line + '\n';
}

std::string json_line(const std::string& when, const std::string& thing, const link_view& v) {
    // Boost.JSON escapes what the reason holds (control characters included): one object, one line.
    const boost::json::object o{{"time", when},
                                {"thing", thing},
                                {"state", to_string(v.state)},
                                {"reason", v.reason},
                                {"fatal", v.fatal},
                                {"retry_in_ms", v.retry_in.count()}};
    return boost::json::serialize(o) + '\n';
}

}  // namespace

int run_status_watch(const common_options& common, bool json) {
    // Signals are read from a signalfd in this thread; the library thread blocks them anyway.
    const auto stop = block_stop_signals();
    if (!stop.ok()) {
        complain("status") << "cannot set up signal handling\n";
        return exit_unavailable;
    }
    std::atomic<int> outcome{exit_ok};
    const auto finish = [&](int code) {
        outcome = code;
        stop.done();
    };

    std::mutex lock;  // the handler runs on the library thread, `thing` is set on this one
    std::string thing;
    std::optional<link_view> printed;
    bool was_connected = false;
    bool ready = false;  // the first line waits until `thing` is known
    std::optional<link_view> pending;  // a state that came before that
    const auto print = [&](const link_view& v) {
        if (printed && *printed == v) return;
        printed = v;
        const auto when = utc_now();
        const auto line = json ? json_line(when, thing, v) : text_line(when, thing, v);
        if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fflush(stdout) != 0)
            finish(exit_ok);  // stdout closed (| head): nothing more to do
    };
    // After what its handler uses, so that it is destroyed (and its thread joined) first. No
    // reconnect: a watch that outlives its daemon says so by exiting (exit_unavailable).
    client c(client_options(common, false));
    c.on_state([&](const state& s) {
        const std::lock_guard guard(lock);
        if (s.daemon == daemon_state::connected) was_connected = true;
        if (s.daemon == daemon_state::unavailable && was_connected) {
            complain("status") << "lost thingmuxd" << (s.daemon_reason.empty() ? "" : " (" + s.daemon_reason + ")") << '\n';
            return finish(exit_unavailable);
        }
        if (s.daemon != daemon_state::connected || s.uplink == uplink_state::unknown) return;
        const link_view v{s.uplink, s.uplink_reason, s.uplink_fatal, s.uplink_retry_in};
        if (!ready) {
            pending = v;
            return;
        }
        print(v);
    });
    c.start();
    if (const int rc = connect_or_report("status", c, common); rc != exit_ok) return rc;
    const auto info = c.daemon();
    if (!info) {
        complain("status") << "lost thingmuxd\n";
        return exit_unavailable;
    }
    {
        // The current state first: the one the handler kept, or the client's snapshot when the
        // state frame came with the welcome. (The snapshot is taken outside `lock`, which the
        // handler takes on the library's thread.)
        const auto snapshot = c.current_state();
        const std::lock_guard guard(lock);
        thing = info->thing;
        ready = true;
        if (!pending && snapshot.uplink != uplink_state::unknown)
            pending = link_view{snapshot.uplink, snapshot.uplink_reason, snapshot.uplink_fatal, snapshot.uplink_retry_in};
        // The welcome carries the state without its reason; while the link is down the daemon
        // sends the state with its reason right after it: that one is the first line then.
        const bool reason_follows = pending && pending->reason.empty() &&
                                    (pending->state == uplink_state::backing_off || pending->state == uplink_state::failed);
        if (pending && !reason_follows) print(*pending);
    }

    pollfd fds[2] = {{stop.signal_fd, POLLIN, 0}, {stop.done_fd, POLLIN, 0}};
    for (;;) {
        const int n = ::poll(fds, 2, -1);
        if (n < 0 && errno != EINTR) return exit_unavailable;
        if (fds[0].revents != 0) {
            c.close();
            return exit_ok;  // interrupted: the normal way to end a watch
        }
        if (fds[1].revents != 0) {
            c.close();  // no handler runs after this, so `outcome` and stdout are final
            return outcome.load();
        }
    }
}

}  // namespace thingmux::ctl
