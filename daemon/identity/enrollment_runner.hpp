// One enrollment (provisioning or rotation) run over an MQTT session on an Asio executor: the
// key (KEY.pending reused when an earlier attempt left one, else a new one written there first),
// its CSR, the exchange with AWS IoT (enrollment.hpp) with a timer per step, and on success the
// crash-safe commit of the new certificate and key (identity_files.hpp). Everything happens on
// the executor given; file work is synchronous (two small files, one key generation).
#pragma once

#include "daemon/identity/enrollment.hpp"
#include "daemon/identity/identity_files.hpp"
#include "daemon/identity/key_material.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace thingmux::identity {

// What an enrollment needs of an MQTT session: QoS 1 subscribe/publish on it, messages back.
class channel {
public:
    virtual ~channel() = default;
    virtual void subscribe(std::vector<std::string> filters,
                           std::function<void(std::vector<std::uint8_t> codes)> done) = 0;
    virtual void unsubscribe(std::vector<std::string> filters) = 0;
    virtual void publish(std::string topic, std::string payload,
                         std::function<void(std::error_code, std::string why)> done) = 0;
    // messages for the runner are handed to enrollment_runner::on_message(topic, payload) by the channel's owner
};

struct enrollment_options {
    identity_paths paths;     // the Thing's `cert:` and `key:` files: replaced on success
    std::string common_name;  // the CSR's subject CN (the Thing's name)
    key_type key = key_type::ec_p256;
    enrollment_request request;  // flow, template, parameters, answer_timeout (the timer's)
    // The Thing name RegisterThing must give (when it gives one); empty: any.
    std::string expected_thing;
};

// The certificate AWS IoT issued (already committed to the files), or why there is none (the
// files then hold what they held before, and KEY.pending stays for the next attempt).
using enrollment_outcome = boost::system::result<enrollment_result, enrollment_error>;

// For enrollment_outcome::value() on an error.
[[noreturn]] inline void throw_exception_from_error(const enrollment_error& e, const boost::source_location&) {
    throw std::runtime_error(e.message);
}

class enrollment_runner : public std::enable_shared_from_this<enrollment_runner> {
public:
    using completion = std::function<void(enrollment_outcome)>;

    // `session` must outlive the runner; `done` is called once, posted on `executor`, after the
    // files are committed (or not). Destroying the runner before that drops it silently (call
    // stop() first to unsubscribe and get the completion).
    [[nodiscard]] static std::shared_ptr<enrollment_runner> create(boost::asio::any_io_executor executor,
                                                                   channel& session, enrollment_options options,
                                                                   completion done);
    ~enrollment_runner();
    enrollment_runner(const enrollment_runner&) = delete;
    enrollment_runner& operator=(const enrollment_runner&) = delete;

    // Prepares the key and CSR and starts the exchange.
    void start();
    // A message of the session: the runner keeps the answers it waits for (see wants()).
    void on_message(std::string_view topic, std::string_view payload);
    // Whether a message on `topic` is for this runner (its accepted/rejected topics, while it runs).
    [[nodiscard]] bool wants(std::string_view topic) const;
    // Gives up (the session is gone, the daemon stops): completes with a transient error.
    void stop(std::string_view why);

private:
    enrollment_runner(boost::asio::any_io_executor executor, channel& session, enrollment_options options,
                      completion done);

    result<std::string> prepare_key_and_csr();
    void run(enrollment_actions actions);
    void arm_timer();
    void finish(enrollment_outcome outcome);
    void on_done(enrollment_result result);
    // Runs `step` on the machine from the executor later, if the runner still exists.
    template <class Step>
    void later(Step step);

    boost::asio::any_io_executor executor_;
    channel& session_;
    enrollment_options options_;
    completion done_;
    enrollment machine_;
    boost::asio::steady_timer timer_;
    std::uint64_t timer_generation_ = 0;  // a wait that fired just before it was re-armed is stale
    secret_pem key_;
    bool started_ = false;
    bool finished_ = false;
};

}  // namespace thingmux::identity
