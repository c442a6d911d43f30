// Helpers of the tests of IPC sessions (docs/ipc-protocol.md, section 8): version 2 hellos, what
// a raw client received, and a libthingmux app with a session in a process of its own, which a
// test can kill with SIGKILL. Used by ipc_session_test.cpp and ipc_session_restart_test.cpp.
#pragma once

#include "tests/support/daemon_fixture.hpp"
#include "tests/support/measure.hpp"

#include <thingmux/client.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace thingmux::test {

inline const std::string command_filter = "cmd/gateway-01/#";
inline const std::string command_topic = "cmd/gateway-01/valve";

// A version 2 hello asking for the session `name`, kept `expiry` seconds beyond the connection.
inline ipc::hello session_hello(const std::string& name, std::uint32_t expiry, const std::string& app) {
    return {.version = 2, .app_name = app, .thing = "", .session_name = name, .session_expiry = expiry};
}

// Greets with `h`, waits for the Thing's link, subscribes to command_filter at QoS 1: from the
// result on, the filter is active upstream (IPC-29).
inline ipc::welcome greet_and_subscribe(ipc_client& c, const ipc::hello& h) {
    const auto w = c.hello(h);
    if (w.link != ipc::link_state::connected) {
        EXPECT_TRUE(c.wait_state(ipc::link_state::connected));
    }
    const auto r = c.subscribe({command_filter});
    EXPECT_TRUE(!r.empty() && r.at(0).code == ipc::errc::ok);
    return w;
}

// Payloads of `ms` in the order they arrived, duplicates kept.
inline std::vector<std::string> payloads_of(const std::vector<ipc::message>& ms) {
    std::vector<std::string> out;
    for (const auto& m : ms) out.push_back(m.payload);
    return out;
}

// Acknowledges every delivery with an id among c.messages[from..] (IPC-44); returns the index
// after the last, for the next call.
inline std::size_t ack_all(ipc_client& c, std::size_t from = 0) {
    for (; from < c.messages.size(); ++from)
        if (c.messages[from].delivery_id != 0) c.ack(c.messages[from].delivery_id);
    return from;
}

// Whether a client waiting for messages acknowledges the deliveries that arrive while it waits, as
// an app does; one that does not may get no more than the daemon lets await acknowledgement
// (IPC-46).
enum class acking { no, as_they_come };

// Waits until `c` received every one of `expected` (payloads) at least once; returns how many
// are still missing.
inline std::size_t wait_for_payloads(ipc_client& c, const std::vector<std::string>& expected, acking ack = acking::no,
                                     int timeout_ms = 30'000) {
    std::size_t left = expected.size();
    std::size_t acked = c.messages.size();
    eventually(
        [&] {
            c.drain();
            if (ack == acking::as_they_come) acked = ack_all(c, acked);
            left = missing_from(payloads_of(c.messages), expected);
            return left == 0 || c.closed();
        },
        timeout_ms);
    return left;
}

// Waits until the daemon logged that the client named `app` disconnected: from then on its
// session, if it has one, has no connection. Give each connection its own name.
inline bool wait_gone(const daemon_fixture& d, const std::string& app) {
    return eventually(
        [&] { return count_of(lines_with(read_file(d.log_file()), "('" + app + "', "), " disconnected: ") >= 1; });
}

// A connection greets with `h`, subscribes to command_filter and closes; returns its welcome once
// the daemon logged the end of the connection: from then on the session is away.
inline ipc::welcome subscribe_and_leave(const daemon_fixture& d, const ipc::hello& h) {
    ipc::welcome w;
    {
        ipc_client c(d.socket_path());
        w = greet_and_subscribe(c, h);
    }
    EXPECT_TRUE(wait_gone(d, h.app_name)) << h.app_name << " did not leave";
    return w;
}

// The cloud publishes `n` numbered QoS 1 commands "PREFIX1".."PREFIXn" to command_topic; returns
// their payloads.
inline std::vector<std::string> cloud_sends(const broker_fixture& broker, int n, const std::string& prefix) {
    auto payloads = numbered(n, prefix);
    publish_from_cloud(broker, command_topic, payloads);
    return payloads;
}

// A libthingmux app with a session in a process of its own (forked: fork it while the test
// process runs no other thread). It subscribes to command_filter before it connects (with
// wait_for_daemon), so that its handler is there for what the daemon sends right after the
// welcome of a resumed session, and its handler appends "topic payload" to messages_file()
// before it returns, i.e. before the library acknowledges the message. The status file gets
// "welcome VERSION PRESENT EXPIRY" and then "subscribed CODE".
class session_app {
public:
    session_app(const std::filesystem::path& socket, const std::string& session, const std::filesystem::path& dir,
                const std::string& name)
        : messages_(dir / (name + ".messages")), status_(dir / (name + ".status")) {
        pid_ = ::fork();
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            run(socket.string(), session, name);
        }
    }
    ~session_app() { kill(); }
    session_app(const session_app&) = delete;
    session_app& operator=(const session_app&) = delete;

    // SIGKILL: the app dies without closing its connection; reaped.
    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
    }
    // "topic payload" of every message the app handled so far.
    [[nodiscard]] std::vector<std::string> messages() const { return complete_lines(read_file(messages_)); }
    // The status line starting with `prefix`, once it was written; empty after `timeout_ms`.
    [[nodiscard]] std::string wait_status(const std::string& prefix, int timeout_ms = 20'000) const {
        std::string found;
        eventually(
            [&] {
                for (const auto& line : complete_lines(read_file(status_)))
                    if (line.starts_with(prefix)) found = line;
                return !found.empty();
            },
            timeout_ms);
        return found;
    }

private:
    [[noreturn]] void run(const std::string& socket, const std::string& session, const std::string& name) const {
        try {
            const int out = ::open(messages_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            const int status = ::open(status_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            const auto say = [](int fd, const std::string& line) { (void)!::write(fd, line.data(), line.size()); };
            options o;
            o.socket_path = socket;
            o.app_name = name;
            o.session_name = session;
            o.session_expiry = std::chrono::hours(1);
            o.wait_for_daemon = true;
            client app(o);
            app.start();
            auto subscribed = app.subscribe(
                command_filter, 1, [out, say](const message& m) { say(out, m.topic + " " + m.payload + "\n"); });
            const auto connected = app.connect().get();
            const auto info = app.daemon().value_or(daemon_info{});
            say(status, "welcome " + std::to_string(info.protocol_version) + " " + (info.session_present ? "1" : "0") +
                            " " + std::to_string(info.session_expiry.count()) +
                            (connected.ok() ? "" : " " + connected.message) + "\n");
            say(status, std::string("subscribed ") + to_string(subscribed.get().code) + "\n");
            for (;;) ::pause();
        } catch (...) {
        }
        ::_exit(1);
    }

    std::filesystem::path messages_;
    std::filesystem::path status_;
    pid_t pid_ = -1;
};

// Lines of `lines` that are commands, without their topic: "cmd-17".
inline std::vector<std::string> payloads_on(const std::vector<std::string>& lines, const std::string& topic) {
    std::vector<std::string> out;
    for (const auto& l : lines)
        if (l.starts_with(topic + " ")) out.push_back(l.substr(topic.size() + 1));
    return out;
}

}  // namespace thingmux::test
