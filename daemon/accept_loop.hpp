// The loop that accepts clients on a listening socket (the Unix sockets of listener.hpp, the MQTT
// face's loopback TCP listeners of tcp_listener.hpp), and how it rides out a shortage: accepting
// pauses with a growing back-off when the process or the system is out of descriptors (EMFILE,
// ENFILE) or buffers (ENOBUFS, ENOMEM), since retrying at once would spin the only thread. The
// pause and the recovery are logged through a rate limiter.
#pragma once

#include "daemon/logging.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace thingmux {

class accept_loop {
public:
    // `name`: "IPC", "MQTT", "MQTT TCP" ("cannot accept MQTT clients"); `section`: where the
    // limits are ("lower mqtt.max_clients").
    accept_loop(const boost::asio::any_io_executor& executor, std::string name, std::string section);

    // Accepts on `acceptor` until stop(), handing each socket to `on_client` (which must outlive
    // the loop, like `acceptor`).
    template <class Acceptor, class OnClient>
    void run(Acceptor& acceptor, OnClient& on_client) {
        acceptor.async_accept([this, &acceptor, &on_client](const boost::system::error_code& ec,
                                                            typename Acceptor::protocol_type::socket s) {
            if (stopped_ || ec == boost::asio::error::operation_aborted) return;
            if (!ec) {
                accepted();
                on_client(std::move(s));
            } else if (must_pause(ec)) {
                return pause(ec, [this, &acceptor, &on_client] { run(acceptor, on_client); });
            }
            run(acceptor, on_client);
        });
    }
    // No more accepting: a pending retry is cancelled and `acceptor` closed. Idempotent.
    template <class Acceptor>
    void stop(Acceptor& acceptor) {
        stop();
        boost::system::error_code ignored;
        acceptor.close(ignored);
    }

private:
    void stop();
    void accepted();
    // False for the failures that only mean a client gave up while waiting in the backlog.
    [[nodiscard]] static bool must_pause(const boost::system::error_code& ec) noexcept;
    void pause(const boost::system::error_code& ec, std::function<void()> retry);

    std::string name_;
    std::string section_;
    boost::asio::steady_timer retry_;
    // While accepting fails: the current back-off, the attempts so far, and whether the pause
    // was logged (then its end is too).
    std::chrono::milliseconds backoff_{0};
    std::uint64_t failed_attempts_ = 0;
    bool pause_logged_ = false;
    logging::rate_limiter pause_log_{5, std::chrono::minutes(1)};
    bool stopped_ = false;
};

}  // namespace thingmux
