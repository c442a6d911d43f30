#include "daemon/accept_loop.hpp"

#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>

namespace thingmux {

namespace asio = boost::asio;

namespace {

constexpr auto first_backoff = std::chrono::milliseconds(10);
constexpr auto max_backoff = std::chrono::milliseconds(1000);

// Whether `ec` is the system error `err`. Compared by category and value: no error_condition
// round trip through the categories' virtual equivalent().
bool is_errno(const boost::system::error_code& ec, int err) noexcept {
    return ec.category() == boost::system::system_category() && ec.value() == err;
}

}  // namespace

accept_loop::accept_loop(const asio::any_io_executor& executor, std::string name, std::string section)
    : name_(std::move(name)), section_(std::move(section)), retry_(executor) {}

void accept_loop::stop() {
    stopped_ = true;
    retry_.cancel();
}

void accept_loop::accepted() {
    if (failed_attempts_ > 0 && pause_logged_)
        spdlog::info("accepting {} clients again, after {} failed attempt(s)", name_, failed_attempts_);
    failed_attempts_ = 0;
    pause_logged_ = false;
    backoff_ = {};
}

bool accept_loop::must_pause(const boost::system::error_code& ec) noexcept {
    // Out of descriptors or memory, or something unexpected: retrying at once would fail the
    // same way, in a loop that starves everything else.
    return ec != asio::error::connection_aborted && ec != asio::error::interrupted && !is_errno(ec, EPROTO);
}

void accept_loop::pause(const boost::system::error_code& ec, std::function<void()> retry) {
    backoff_ = backoff_.count() == 0 ? first_backoff : std::min(backoff_ * 2, max_backoff);
    if (failed_attempts_++ == 0) {
        if (auto note = pause_log_.admit()) {
            pause_logged_ = true;
            std::string why = ec.message();
            if (ec == asio::error::no_descriptors) {
                rlimit l{};
                ::getrlimit(RLIMIT_NOFILE, &l);
                why += " (the open-file limit is " + std::to_string(l.rlim_cur) +
                       ": raise LimitNOFILE= in thingmuxd.service, or lower " + section_ + ".max_clients)";
            } else if (is_errno(ec, ENFILE)) {
                why += " (the system's open-file table is full: fs.file-max)";
            }
            spdlog::warn("cannot accept {} clients: {}; pausing, then retrying with a back-off of up to {} ms{}", name_,
                         why, max_backoff.count(), *note);
        }
    }
    retry_.expires_after(backoff_);
    retry_.async_wait([this, retry = std::move(retry)](const boost::system::error_code& wait_ec) {
        if (!wait_ec && !stopped_) retry();
    });
}

}  // namespace thingmux
