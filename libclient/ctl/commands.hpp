// The subcommands of thingmuxctl. Each returns the process exit code.
#pragma once

#include <thingmux/client.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace thingmux::ctl {

// Exit codes, stable for scripts (and shown by --help).
enum exit_code : int {
    exit_ok = 0,
    exit_refused = 1,      // the daemon or broker refused the publish/subscribe (code name printed)
    exit_usage = 2,        // bad command line
    exit_unavailable = 3,  // thingmuxd not reachable (the message says how to start it)
    exit_timeout = 4,      // no result / not enough messages within the time limit
    exit_rejected = 5,     // AWS IoT answered a shadow or jobs request on .../rejected (code and message printed)
};

struct common_options {
    std::string socket;  // empty: $THINGMUX_SOCKET or the default path (the library decides)
    std::string app_name = "thingmuxctl";
    std::string thing;
    double connect_timeout_s = 10;
};

struct pub_options {
    std::string topic;
    std::optional<std::string> message;
    std::optional<std::string> file;
    bool stdin_payload = false;
    bool null_message = false;
    int qos = 0;
    bool retain = false;
    std::vector<std::pair<std::string, std::string>> user_properties;
    std::optional<std::string> content_type;
    std::optional<std::string> response_topic;
    std::optional<std::string> correlation_data;
    std::optional<std::uint32_t> message_expiry;
    double timeout_s = 30;
    bool quiet = false;
};

struct sub_options {
    std::vector<std::string> topics;
    int qos = 0;
    std::optional<std::uint64_t> count;
    bool verbose = false;
    std::optional<double> timeout_s;
    bool no_newline = false;
    bool properties = false;
};

// Starts a message on stderr that names the program and the subcommand once: "thingmuxctl pub: ".
std::ostream& complain(std::string_view command);

// What a command that runs until stopped (sub, status --watch) waits on: SIGINT, SIGTERM, SIGHUP
// and SIGPIPE, blocked and read from `signal_fd`, and `done_fd`, an eventfd that done() makes
// readable (from the library's thread). ok() is false when either could not be made.
struct stop_fds {
    int signal_fd = -1;
    int done_fd = -1;
    [[nodiscard]] bool ok() const noexcept { return signal_fd >= 0 && done_fd >= 0; }
    void done() const noexcept;
};
[[nodiscard]] stop_fds block_stop_signals();

// Shared by the subcommands.
[[nodiscard]] std::chrono::milliseconds to_ms(double seconds);
[[nodiscard]] options client_options(const common_options& common, bool reconnect);
// Connects (one attempt, fail fast). Returns exit_ok or the code to exit with.
[[nodiscard]] int connect_or_report(std::string_view command, client& c, const common_options& common);
// Prints `what: CODE: message` (or only the message when the daemon is gone); the exit code.
[[nodiscard]] int report_failure(std::string_view command, const std::string& what, const result& r);
// Text from the broker or the command line, shown whole but unable to steer the terminal.
[[nodiscard]] std::string printable(const std::string& s);

struct shadow_options {
    std::string action;                   // get, update, delete, watch
    std::string name;                     // empty: the classic shadow
    std::optional<std::string> document;  // update: JSON, or "-" for stdin
    std::vector<std::string> desired;     // update: KEY=VALUE
    std::vector<std::string> reported;    // update: KEY=VALUE
    std::optional<std::int64_t> version;  // update: expected version
    double timeout_s = 15;
    // watch
    bool documents = false;
    bool verbose = false;
    std::optional<std::uint64_t> count;
    std::optional<double> watch_timeout_s;
};

struct jobs_options {
    std::string action;  // list, run
    std::string operation;
    std::vector<std::string> command;
    std::optional<std::uint64_t> count;
    double timeout_s = 15;
};

[[nodiscard]] int run_shadow(const common_options& common, const shadow_options& opts);
[[nodiscard]] int run_jobs(const common_options& common, const jobs_options& opts);

[[nodiscard]] int run_pub(const common_options& common, const pub_options& opts);
[[nodiscard]] int run_sub(const common_options& common, const sub_options& opts);
[[nodiscard]] int run_status(const common_options& common);
// `thingmuxctl status --watch [--json]`: the current link state, then one line per change with
// its reason, until SIGINT/SIGTERM (exit_ok) or the daemon goes away (exit_unavailable).
[[nodiscard]] int run_status_watch(const common_options& common, bool json);
// `thingmuxctl rotate-certificate`: D-Bus RotateCertificate of --thing (default: the daemon's
// Thing, asked over the socket), waiting up to `timeout_s` for the outcome.
[[nodiscard]] int run_rotate_certificate(const common_options& common, int timeout_s);

}  // namespace thingmux::ctl
