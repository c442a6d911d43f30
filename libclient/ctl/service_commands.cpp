// thingmuxctl shadow ... and thingmuxctl jobs ...: AWS IoT Device Shadows and Jobs through
// libthingmux (client::shadow_*, on_job, update_job, jobs_get).
#include "commands.hpp"

#include <thingmux/client.hpp>

#include <boost/json.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <iostream>
#include <iterator>
#include <mutex>
#include <string>

extern char** environ;  // NOLINT: POSIX

namespace thingmux::ctl {

namespace json = boost::json;

namespace {

// The payload without the library's clientToken (it means nothing to people), or as it came when
// it is not a JSON object.
std::string without_token(const std::string& payload) {
    boost::system::error_code ec;
    json::parse_options po;
    po.max_depth = 64;
    auto v = json::parse(payload, ec, {}, po);
    if (ec || !v.is_object()) {
        return payload;
    }
    v.as_object().erase("clientToken");
    return json::serialize(v);
}

// A VALUE of --desired/--reported KEY=VALUE: JSON when it parses (21, true, "x", {...}), else
// the text as a string.
json::value loose_value(const std::string& text) {
    boost::system::error_code ec;
    json::parse_options po;
    po.max_depth = 32;
    auto v = json::parse(text, ec, {}, po);
    return ec ? json::value(json::string(text)) : v;
}

// Signals are read from a signalfd, and handlers end a wait through an eventfd.
class waiter {
public:
    waiter() {
        ::sigemptyset(&sigs_);
        for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) {
            ::sigaddset(&sigs_, s);
        }
        ::pthread_sigmask(SIG_BLOCK, &sigs_, &old_);
        sig_fd_ = ::signalfd(-1, &sigs_, SFD_CLOEXEC);
        done_fd_ = ::eventfd(0, EFD_CLOEXEC);
    }
    ~waiter() {
        if (sig_fd_ >= 0) ::close(sig_fd_);
        if (done_fd_ >= 0) ::close(done_fd_);
    }
    waiter(const waiter&) = delete;
    waiter& operator=(const waiter&) = delete;
    [[nodiscard]] bool ok() const { return sig_fd_ >= 0 && done_fd_ >= 0; }
    [[nodiscard]] const sigset_t& old_mask() const { return old_; }
    void wake() const {
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(done_fd_, &one, sizeof one);
    }
    enum class outcome { woken, signalled, timed_out };
    // Waits for wake(), a signal or `timeout_ms` (-1: none). Consumes the wake-up.
    outcome wait(int timeout_ms) const {
        pollfd fds[2] = {{sig_fd_, POLLIN, 0}, {done_fd_, POLLIN, 0}};
        for (;;) {
            const int n = ::poll(fds, 2, timeout_ms);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return outcome::timed_out;
            if (fds[0].revents != 0) return outcome::signalled;
            std::uint64_t v = 0;
            [[maybe_unused]] const auto r = ::read(done_fd_, &v, sizeof v);
            return outcome::woken;
        }
    }

private:
    sigset_t sigs_{};
    sigset_t old_{};
    int sig_fd_ = -1;
    int done_fd_ = -1;
};

// Waits for a reply future; prints and returns the exit code of a failed one (exit_ok: answered).
template <typename Reply>
int await(std::string_view command, std::future<Reply>& f, double timeout_s, Reply& out) {
    // The library's own service timeout comes first; this is a safety margin.
    if (f.wait_for(to_ms(timeout_s) + std::chrono::seconds(5)) != std::future_status::ready) {
        complain(command) << "no answer within " << timeout_s << " s\n";
        return exit_timeout;
    }
    out = f.get();
    return exit_ok;
}

// The exit code of a service reply that is not an accepted answer, after saying why.
int report_reply(std::string_view command, const service_reply& r) {
    if (!r.outcome.ok()) {
        if (r.outcome.code == error_code::timed_out) {
            complain(command) << "timed out: " << r.outcome.message << '\n';
            return exit_timeout;
        }
        return report_failure(command, "refused", r.outcome);
    }
    complain(command) << "rejected by AWS IoT: " << r.code;
    if (!r.error_code.empty()) {
        std::cerr << ' ' << printable(r.error_code);
    }
    if (!r.error_message.empty()) {
        std::cerr << ": " << printable(r.error_message);
    }
    std::cerr << '\n';
    // thingmuxd answers 504 itself when AWS IoT did not answer in time.
    return r.code == 504 ? exit_timeout : exit_rejected;
}

// The update document from the command line, or the exit code of a usage error.
std::variant<std::string, int> update_document(const shadow_options& opts) {
    if (opts.document && (!opts.desired.empty() || !opts.reported.empty())) {
        complain("shadow update") << "give either a JSON document or --desired/--reported, not both\n";
        return exit_usage;
    }
    if (opts.document) {
        std::string doc = *opts.document;
        if (doc == "-") {
            doc.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
        }
        boost::system::error_code ec;
        auto v = json::parse(doc, ec);
        if (ec || !v.is_object()) {
            complain("shadow update")
                << "the document is not a JSON object, e.g. '{\"state\":{\"desired\":{\"on\":true}}}'\n";
            return exit_usage;
        }
        if (opts.version) {
            v.as_object()["version"] = *opts.version;
        }
        return json::serialize(v);
    }
    if (opts.desired.empty() && opts.reported.empty()) {
        complain("shadow update") << "give a JSON document, or --desired/--reported KEY=VALUE\n";
        return exit_usage;
    }
    json::object state;
    for (const auto& [section, pairs] : {std::pair{"desired", &opts.desired}, std::pair{"reported", &opts.reported}}) {
        if (pairs->empty()) continue;
        json::object o;
        for (const auto& kv : *pairs) {
            const auto eq = kv.find('=');
            if (eq == std::string::npos || eq == 0) {
                complain("shadow update") << "\"" << printable(kv) << "\" is not KEY=VALUE\n";
                return exit_usage;
            }
            // KEY= with nothing after it deletes the key (null), as in AWS's documents.
            const std::string value = kv.substr(eq + 1);
            o[kv.substr(0, eq)] = value.empty() ? json::value(nullptr) : loose_value(value);
        }
        state[section] = std::move(o);
    }
    json::object doc{{"state", std::move(state)}};
    if (opts.version) {
        doc["version"] = *opts.version;
    }
    return json::serialize(doc);
}

int shadow_request(client& c, const shadow_options& opts, std::string document) {
    const std::string command = "shadow " + opts.action;
    std::future<shadow_reply> f;
    if (opts.action == "get") {
        f = c.shadow_get(opts.name);
    } else if (opts.action == "delete") {
        f = c.shadow_delete(opts.name);
    } else {
        f = c.shadow_update(opts.name, std::move(document));
    }
    shadow_reply r;
    if (const int rc = await(command, f, opts.timeout_s, r); rc != exit_ok) {
        return rc;
    }
    if (!r.ok()) {
        return report_reply(command, r);
    }
    if (r.cached) {
        complain(command) << "the Thing is offline: this is thingmuxd's cached copy (version " << r.version << ")\n";
    }
    std::cout << without_token(r.document) << '\n' << std::flush;
    return exit_ok;
}

int shadow_watch(client& c, const shadow_options& opts) {
    waiter w;
    if (!w.ok()) {
        complain("shadow watch") << "cannot set up signal handling\n";
        return exit_unavailable;
    }
    const auto info = c.daemon();
    if (!info) {
        complain("shadow watch") << "lost thingmuxd\n";
        return exit_unavailable;
    }
    const std::string topic =
        shadow_topic(info->thing, opts.name, opts.documents ? "update/documents" : "update/delta");
    std::mutex m;
    std::uint64_t received = 0;
    bool ended = false;
    const auto handler = [&](const message& msg) {
        std::lock_guard lk(m);
        if (ended) return;
        ++received;
        std::string line = opts.verbose ? msg.topic + ' ' : std::string();
        line += msg.payload;
        line += '\n';
        if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fflush(stdout) != 0 ||
            (opts.count && received >= *opts.count)) {
            ended = true;
            w.wake();
        }
    };
    auto f = c.subscribe(topic, 1, handler);
    // The handler refers to this frame's variables: the client closes before they go.
    if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
        c.close();
        complain("shadow watch") << "no answer to the subscription to " << topic << " within 30 s\n";
        return exit_timeout;
    }
    if (const auto r = f.get(); !r.ok()) {
        c.close();
        return report_failure("shadow watch", "subscribing to " + topic, r);
    }
    const int timeout_ms = opts.watch_timeout_s ? static_cast<int>(to_ms(*opts.watch_timeout_s).count()) : -1;
    const auto o = w.wait(timeout_ms);
    c.close();
    if (o == waiter::outcome::timed_out) {
        complain("shadow watch") << "timed out after " << *opts.watch_timeout_s << " s";
        if (opts.count) std::cerr << " with " << received << " of " << *opts.count << " messages";
        std::cerr << '\n';
        return exit_timeout;
    }
    return exit_ok;
}

// ---- jobs -------------------------------------------------------------------------------------

int jobs_list(client& c, const jobs_options& opts) {
    auto f = c.jobs_get();
    jobs_list_reply r;
    if (const int rc = await("jobs list", f, opts.timeout_s, r); rc != exit_ok) {
        return rc;
    }
    if (!r.reply.ok()) {
        return report_reply("jobs list", r.reply);
    }
    const auto print = [](const char* state, const job_summary& j) {
        std::cout << state << "  " << printable(j.id) << "  version " << j.version << "  execution "
                  << j.execution_number;
        if (j.queued_at != 0) std::cout << "  queued at " << j.queued_at;
        std::cout << '\n';
    };
    for (const auto& j : r.in_progress) print("IN_PROGRESS", j);
    for (const auto& j : r.queued) print("QUEUED     ", j);
    std::cout << std::flush;
    return exit_ok;
}

// Runs `argv` with `input` on its stdin and the job in its environment; the wait status, or the
// errno of a failed start (negative).
int run_command(const std::vector<std::string>& argv, const job& j, const sigset_t& mask) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        return -errno;
    }
    std::vector<std::string> env_store = {"JOB_ID=" + j.id, "JOB_OPERATION=" + j.operation,
                                          "JOB_EXECUTION_NUMBER=" + std::to_string(j.execution_number)};
    std::vector<char*> envp;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string_view v(*e);
        if (!v.starts_with("JOB_ID=") && !v.starts_with("JOB_OPERATION=") && !v.starts_with("JOB_EXECUTION_NUMBER=")) {
            envp.push_back(*e);
        }
    }
    for (auto& s : env_store) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));  // NOLINT: posix_spawn's signature
    args.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    ::posix_spawn_file_actions_init(&fa);
    ::posix_spawn_file_actions_adddup2(&fa, pipe_fds[0], STDIN_FILENO);
    ::posix_spawnattr_init(&attr);
    sigset_t defaults;
    ::sigemptyset(&defaults);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::sigaddset(&defaults, s);
    ::posix_spawnattr_setsigmask(&attr, &mask);
    ::posix_spawnattr_setsigdefault(&attr, &defaults);
    ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    const int e = ::posix_spawnp(&pid, args[0], &fa, &attr, args.data(), envp.data());
    ::posix_spawn_file_actions_destroy(&fa);
    ::posix_spawnattr_destroy(&attr);
    ::close(pipe_fds[0]);
    if (e != 0) {
        ::close(pipe_fds[1]);
        return -e;
    }
    // AWS job documents are at most 32 KiB: they fit the pipe, so a command that does not read
    // its stdin cannot block us. Whatever does not fit is cut (never happens with AWS).
    ::fcntl(pipe_fds[1], F_SETFL, O_NONBLOCK);
    std::string_view rest = j.document;
    while (!rest.empty()) {
        const auto n = ::write(pipe_fds[1], rest.data(), rest.size());
        if (n <= 0) break;
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
    ::close(pipe_fds[1]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

int jobs_run(client& c, const jobs_options& opts) {
    if (opts.command.empty()) {
        complain("jobs run")
            << "give the command after --, e.g. thingmuxctl jobs run reboot -- /usr/local/bin/do-reboot\n";
        return exit_usage;
    }
    waiter w;
    if (!w.ok()) {
        complain("jobs run") << "cannot set up signal handling\n";
        return exit_unavailable;
    }
    std::mutex m;
    std::deque<job> jobs;
    auto registered = c.on_job(opts.operation, [&](const job& j) {
        {
            std::lock_guard lk(m);
            jobs.push_back(j);
        }
        w.wake();
    });
    // The handler refers to this frame's variables: the client closes before they go.
    if (registered.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
        c.close();
        complain("jobs run") << "no answer to the registration for " << opts.operation << " within 30 s\n";
        return exit_timeout;
    }
    if (const auto r = registered.get(); !r.ok()) {
        c.close();
        return report_failure("jobs run", "registering for operation " + opts.operation, r);
    }
    std::uint64_t done = 0;
    int worst = exit_ok;
    const auto report = [&](const job& j, const std::string& status, std::map<std::string, std::string> details) {
        auto f = c.update_job(j.id, status, std::move(details));
        job_update_reply r;
        int rc = await("jobs run", f, opts.timeout_s, r);
        if (rc == exit_ok && !r.ok()) {
            rc = report_reply("jobs run", r);
        }
        if (rc != exit_ok) {
            complain("jobs run") << "could not report " << status << " for job " << printable(j.id) << '\n';
            worst = rc;
        }
        return rc == exit_ok;
    };
    while (!opts.count || done < *opts.count) {
        std::optional<job> next;
        {
            std::lock_guard lk(m);
            if (!jobs.empty()) {
                next = std::move(jobs.front());
                jobs.pop_front();
            }
        }
        if (!next) {
            if (w.wait(-1) == waiter::outcome::signalled) {
                break;
            }
            continue;
        }
        std::cerr << "thingmuxctl jobs run: job " << printable(next->id) << " (" << printable(next->operation)
                  << "): running " << printable(opts.command.front()) << '\n';
        if (!report(*next, "IN_PROGRESS", {})) {
            ++done;
            continue;
        }
        const int status = run_command(opts.command, *next, w.old_mask());
        std::map<std::string, std::string> details;
        std::string outcome;
        if (status < 0) {
            outcome = "FAILED";
            details["reason"] = "cannot start " + opts.command.front() + ": " + std::strerror(-status);
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            outcome = "SUCCEEDED";
        } else if (WIFEXITED(status)) {
            outcome = "FAILED";
            details["exit_status"] = std::to_string(WEXITSTATUS(status));
        } else {
            outcome = "FAILED";
            details["signal"] = std::to_string(WTERMSIG(status));
        }
        std::cerr << "thingmuxctl jobs run: job " << printable(next->id) << ": " << outcome;
        for (const auto& [k, v] : details) std::cerr << ' ' << k << '=' << printable(v);
        std::cerr << '\n';
        report(*next, outcome, std::move(details));
        ++done;
    }
    c.close();
    return worst;
}

}  // namespace

int run_shadow(const common_options& common, const shadow_options& opts) {
    if (!opts.name.empty() && !valid_shadow_name(opts.name)) {
        complain("shadow") << "\"" << printable(opts.name)
                           << "\" is not a shadow name (1 to 64 of A-Z a-z 0-9 : _ -)\n";
        return exit_usage;
    }
    // Mistakes in the document are usage errors, found before connecting.
    std::string document;
    if (opts.action == "update") {
        auto doc = update_document(opts);
        if (const int* rc = std::get_if<int>(&doc)) {
            return *rc;
        }
        document = std::get<std::string>(std::move(doc));
    }
    const bool watch = opts.action == "watch";
    client c(client_options(common, watch));
    c.set_service_timeout(to_ms(opts.timeout_s));
    c.start();
    if (const int rc = connect_or_report("shadow " + opts.action, c, common); rc != exit_ok) {
        return rc;
    }
    return watch ? shadow_watch(c, opts) : shadow_request(c, opts, std::move(document));
}

int run_jobs(const common_options& common, const jobs_options& opts) {
    if (opts.action == "run" && !valid_job_operation(opts.operation)) {
        complain("jobs run") << "\"" << printable(opts.operation)
                             << "\" is not a job operation (1 to 64 of A-Z a-z 0-9 _ . -)\n";
        return exit_usage;
    }
    client c(client_options(common, opts.action == "run"));
    c.set_service_timeout(to_ms(opts.timeout_s));
    c.start();
    if (const int rc = connect_or_report("jobs " + opts.action, c, common); rc != exit_ok) {
        return rc;
    }
    return opts.action == "run" ? jobs_run(c, opts) : jobs_list(c, opts);
}

}  // namespace thingmux::ctl
