#include "admin_commands.hpp"

#include "bus_commands.hpp"

#include "ipc/admin_clients.hpp"
#include "ipc/codec.hpp"

#include <thingmux/client.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace thingmux::ctl {

namespace {

// Like sd-bus's default method call timeout: a reload reads every file of the configuration.
constexpr auto answer_timeout = std::chrono::seconds(25);

std::string socket_path(const common_options& common) {
    if (!common.socket.empty()) return common.socket;
    if (const char* env = std::getenv("THINGMUX_SOCKET"); env != nullptr && *env != '\0') return env;
    return std::string(ipc::default_socket_path);
}

// The outcome of one admin request over the socket: the daemon's answer, or why there is none
// (printed as is) with the exit code.
struct no_answer {
    int code = exit_unavailable;
    std::string why;
};

class connection {
public:
    explicit connection(int fd) noexcept : fd_(fd) {}
    ~connection() {
        if (fd_ >= 0) ::close(fd_);
    }
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    [[nodiscard]] int fd() const noexcept { return fd_; }

private:
    int fd_;
};

// Sends one admin request without a hello (IPC-47) and waits for its admin_result.
std::variant<ipc::admin_result, no_answer> ask(const std::string& path, ipc::admin_command command) {
    const auto unavailable = [&](const std::string& what, int err) {
        std::string why = "cannot " + what + " thingmuxd's socket " + path + ": " + std::strerror(err);
        if (err == ENOENT || err == ECONNREFUSED) why += " (is thingmuxd running?)";
        if (err == EACCES || err == EPERM) why += " (is this user in group thingmux?)";
        return no_answer{exit_unavailable, std::move(why)};
    };
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) return no_answer{exit_usage, "socket path " + path + " is too long"};
    std::memcpy(addr.sun_path, path.data(), path.size());
    connection c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (c.fd() < 0) return unavailable("create a socket for", errno);
    if (::connect(c.fd(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) return unavailable("connect to", errno);

    constexpr std::uint32_t request_id = 1;
    const auto frame = ipc::encode(ipc::client_message{ipc::admin{.request_id = request_id, .command = command}});
    for (std::size_t sent = 0; sent < frame.size();) {
        const auto n = ::send(c.fd(), frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return unavailable("write to", errno);
        sent += static_cast<std::size_t>(n);
    }

    const auto deadline = std::chrono::steady_clock::now() + answer_timeout;
    std::vector<std::uint8_t> in;
    std::vector<std::uint8_t> chunk(64 * 1024);
    for (;;) {
        auto r = ipc::decode_daemon_message(in, ipc::default_max_frame);
        if (auto* bad = std::get_if<ipc::malformed>(&r))
            return no_answer{exit_refused, "thingmuxd sent a frame this thingmuxctl cannot read: " + bad->reason};
        if (auto* ok = std::get_if<ipc::decoded<ipc::daemon_message>>(&r)) {
            if (auto* answer = std::get_if<ipc::admin_result>(&ok->message); answer && answer->request_id == request_id)
                return std::move(*answer);
            if (auto* e = std::get_if<ipc::error>(&ok->message)) {
                // A daemon from before section 9 refuses the type itself (IPC-4).
                if (e->code == ipc::errc::malformed_frame && e->message.starts_with("unknown message type 0x07"))
                    return no_answer{exit_unavailable, "this thingmuxd is too old for management over IPC; use D-Bus"};
                return no_answer{exit_refused, std::string(ipc::to_string(e->code)) + ": " + printable(e->message)};
            }
            in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(ok->consumed));  // nothing else is asked for
            continue;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            return no_answer{exit_timeout, "no answer from thingmuxd within " + std::to_string(answer_timeout.count()) + " s"};
        pollfd p{.fd = c.fd(), .events = POLLIN, .revents = 0};
        if (const int n = ::poll(&p, 1, static_cast<int>(left.count())); n < 0 && errno != EINTR) return unavailable("wait on", errno);
        const auto n = ::recv(c.fd(), chunk.data(), chunk.size(), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (n < 0) return unavailable("read from", errno);
        if (n == 0) return no_answer{exit_unavailable, "thingmuxd closed the connection without an answer"};
        in.insert(in.end(), chunk.begin(), chunk.begin() + n);
    }
}

// Which path to take: D-Bus or IPC, and for --verbose and failures a description of it.
struct path_choice {
    bool dbus = false;
    std::string description;
};

path_choice choose(const common_options& common, const admin_options& opts) {
    const auto over_ipc = [&] { return "over the IPC socket " + socket_path(common); };
    switch (opts.way) {
    case via::dbus: return {true, "over D-Bus (--via dbus)"};
    case via::ipc: return {false, over_ipc() + " (--via ipc)"};
    case via::automatic: break;
    }
    std::string why;
    if (management_on_bus(why)) return {true, "over D-Bus (org.thingmux.Thingmux1 on the system bus)"};
    return {false, over_ipc() + " (" + why + ")"};
}

// Text of several lines (a refused file's problems), each line made printable on its own.
std::string printable_lines(const std::string& text) {
    std::string out;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto end = std::min(text.find('\n', start), text.size());
        if (start > 0) out += '\n';
        out += printable(text.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

void print_clients(const std::vector<ipc::client_entry>& clients) {
    std::cout << std::left << std::setw(5) << "ID" << std::setw(8) << "PID" << std::setw(14) << "USER" << std::setw(24) << "UNIT"
              << std::setw(20) << "APP" << std::setw(14) << "THING" << std::setw(10) << "QUEUED" << std::setw(10) << "IN"
              << std::setw(10) << "OUT" << "SUBSCRIPTIONS\n";
    for (const auto& c : clients) {
        const std::string who = !c.user.empty() ? c.user : "uid " + std::to_string(c.uid);
        std::string joined;
        for (const auto& f : c.subscriptions) joined += (joined.empty() ? "" : " ") + f;
        std::cout << std::setw(5) << c.id << std::setw(8) << c.pid << std::setw(14) << printable(who) << std::setw(24)
                  << (c.unit.empty() ? "-" : printable(c.unit)) << std::setw(20)
                  << (c.app_name.empty() ? "-" : printable(c.app_name)) << std::setw(14) << printable(c.thing) << std::setw(10)
                  << c.queued_bytes << std::setw(10) << c.messages_in << std::setw(10) << c.messages_out
                  << (joined.empty() ? "-" : printable(joined)) << '\n';
    }
}

}  // namespace

int run_clients(const common_options& common, const admin_options& opts) {
    const auto path = choose(common, opts);
    if (opts.verbose) complain("clients") << "asking thingmuxd " << path.description << '\n';
    std::vector<ipc::client_entry> clients;
    if (path.dbus) {
        if (const int rc = bus_list_clients(clients); rc != exit_ok) {
            if (!opts.verbose) complain("clients") << "asked thingmuxd " << path.description << '\n';
            return rc;
        }
        print_clients(clients);
        return exit_ok;
    }
    auto r = ask(socket_path(common), ipc::admin_command::list_clients);
    if (auto* failed = std::get_if<no_answer>(&r)) {
        complain("clients") << failed->why << " (asked " << path.description << ")\n";
        return failed->code;
    }
    const auto& answer = std::get<ipc::admin_result>(r);
    if (!ipc::accepted(answer.outcome.code)) {
        complain("clients") << "ListClients failed: " << ipc::to_string(answer.outcome.code) << ": "
                            << printable(answer.outcome.message) << " (asked " << path.description << ")\n";
        return exit_refused;
    }
    std::string why;
    auto list = ipc::read_clients_json(answer.body, why);
    if (!list) {
        complain("clients") << "unexpected list_clients answer: " << why << " (asked " << path.description << ")\n";
        return exit_refused;
    }
    print_clients(*list);
    if (answer.truncated) complain("clients") << printable(answer.outcome.message) << '\n';
    return exit_ok;
}

int run_reload(const common_options& common, const admin_options& opts) {
    const auto path = choose(common, opts);
    if (opts.verbose) complain("reload") << "asking thingmuxd " << path.description << '\n';
    if (path.dbus) {
        const int rc = bus_reload();
        if (rc != exit_ok) {
            if (!opts.verbose) complain("reload") << "asked thingmuxd " << path.description << '\n';
            return rc;
        }
    } else {
        auto r = ask(socket_path(common), ipc::admin_command::reload);
        if (auto* failed = std::get_if<no_answer>(&r)) {
            complain("reload") << failed->why << " (asked " << path.description << ")\n";
            return failed->code;
        }
        const auto& answer = std::get<ipc::admin_result>(r);
        if (!ipc::accepted(answer.outcome.code)) {
            // The same words as D-Bus: a refused file's problems, else the refusal's code and text.
            auto& err = complain("reload") << "Reload failed: ";
            if (answer.outcome.code == ipc::errc::invalid_configuration)
                err << printable_lines(answer.body);
            else
                err << ipc::to_string(answer.outcome.code) << ": " << printable(answer.outcome.message);
            err << '\n';
            complain("reload") << "asked thingmuxd " << path.description << '\n';
            return exit_refused;
        }
    }
    std::cout << "thingmuxd reloaded its configuration\n";
    return exit_ok;
}

}  // namespace thingmux::ctl
