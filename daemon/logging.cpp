#include "daemon/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <utility>
#include <sys/stat.h>

namespace thingmux::logging {

namespace {

bool journal = false;

// systemd sets JOURNAL_STREAM=DEV:INODE when stderr goes to the journal; comparing it with
// stderr itself tells a service from a shell that merely inherited the variable.
bool stderr_is_journal() {
    const char* env = std::getenv("JOURNAL_STREAM");
    if (env == nullptr) return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
    return dev == st.st_dev && ino == st.st_ino;
}

void install(bool to_journal) {
    const auto level = spdlog::get_level();
    std::shared_ptr<spdlog::logger> logger;
    if (to_journal) {
        // The journal stamps time and priority itself; the message is enough.
        logger = std::make_shared<spdlog::logger>("thingmuxd", std::make_shared<spdlog::sinks::systemd_sink_st>("thingmuxd"));
    } else {
        logger = std::make_shared<spdlog::logger>("thingmuxd", std::make_shared<spdlog::sinks::stderr_color_sink_st>());
        logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    }
    logger->set_level(level);
    spdlog::set_default_logger(std::move(logger));
    spdlog::set_level(level);
    journal = to_journal;
}

}  // namespace

void setup(config::log_target t) {
    install(t == config::log_target::journal || (t == config::log_target::automatic && stderr_is_journal()));
}

std::string target() { return journal ? "journal" : "console"; }

std::string set_target(const std::string& name) {
    if (name == "console") install(false);
    else if (name == "journal") install(true);
    else if (name == "auto") install(stderr_is_journal());
    else return "log target '" + name + "' is not supported (console, journal, auto)";
    return {};
}

std::optional<std::string> rate_limiter::admit(clock::time_point now) {
    if (written_ == 0 || now - window_start_ >= interval_) {
        window_start_ = now;
        written_ = 0;
    }
    if (written_ >= burst_) {
        ++suppressed_;
        return std::nullopt;
    }
    ++written_;
    if (suppressed_ == 0) return std::string{};
    return " (\u2026 " + std::to_string(std::exchange(suppressed_, 0)) + " more suppressed)";
}

}  // namespace thingmux::logging
