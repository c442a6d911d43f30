#include "daemon/identity/enrollment_runner.hpp"

#include "common/fleet_provisioning.hpp"
#include "common/printable.hpp"

#include <boost/asio/post.hpp>

namespace thingmux::identity {

std::shared_ptr<enrollment_runner> enrollment_runner::create(boost::asio::any_io_executor executor, channel& session,
                                                             enrollment_options options, completion done) {
    return std::shared_ptr<enrollment_runner>(
        new enrollment_runner(std::move(executor), session, std::move(options), std::move(done)));
}

enrollment_runner::enrollment_runner(boost::asio::any_io_executor executor, channel& session,
                                     enrollment_options options, completion done)
    : executor_(std::move(executor)),
      session_(session),
      options_(std::move(options)),
      done_(std::move(done)),
      machine_(options_.request),
      timer_(executor_) {}

enrollment_runner::~enrollment_runner() = default;

template <class Step>
void enrollment_runner::later(Step step) {
    // Channel callbacks and messages are handled from the executor, never inside the call that
    // made them: the machine is then never entered twice at once.
    boost::asio::post(executor_, [weak = weak_from_this(), step = std::move(step)]() mutable {
        if (auto self = weak.lock(); self && !self->finished_) self->run(step(self->machine_));
    });
}

void enrollment_runner::start() {
    if (started_) return;
    started_ = true;
    auto csr = prepare_key_and_csr();
    if (!csr)
        return finish(enrollment_error{
            enrollment_step::key, std::string(step_name(enrollment_step::key)) + ": " + csr.error().message, false});
    run(machine_.start(*csr));
}

result<std::string> enrollment_runner::prepare_key_and_csr() {
    // An earlier attempt's key is reused, so that its certificate (if AWS issued one that never
    // arrived) and this attempt's are for the same key.
    auto pending = read_pending_key(options_.paths);
    if (!pending) return pending.error();
    if (*pending) {
        key_ = std::move(**pending);
    } else {
        auto fresh = generate_key(options_.key, options_.paths.tpm2_tcti);
        if (!fresh) return fresh.error();
        if (auto written = write_pending_key(options_.paths, *fresh); !written) return written.error();
        key_ = std::move(*fresh);
    }
    return make_csr(key_.view(), options_.common_name, options_.paths.tpm2_tcti);
}

void enrollment_runner::on_message(std::string_view topic, std::string_view payload) {
    if (finished_ || !machine_.wants(topic)) return;
    // One byte more than the reader accepts is enough for it to refuse an oversized answer.
    const auto kept = payload.substr(0, aws::fleet_provisioning::max_payload_bytes + 1);
    later([topic = std::string(topic), kept = std::string(kept)](enrollment& m) { return m.message(topic, kept); });
}

bool enrollment_runner::wants(std::string_view topic) const {
    return !finished_ && machine_.wants(topic);
}

void enrollment_runner::stop(std::string_view why) {
    if (!finished_) run(machine_.stop(why));
}

void enrollment_runner::run(enrollment_actions actions) {
    for (auto& action : actions) {
        if (auto* s = std::get_if<subscribe_action>(&action)) {
            arm_timer();
            session_.subscribe(std::move(s->filters), [weak = weak_from_this()](std::vector<std::uint8_t> codes) {
                if (auto self = weak.lock())
                    self->later([codes = std::move(codes)](enrollment& m) { return m.subscribed(codes); });
            });
        } else if (auto* p = std::get_if<publish_action>(&action)) {
            arm_timer();
            session_.publish(
                std::move(p->topic), std::move(p->payload),
                [weak = weak_from_this()](std::error_code ec, std::string why) {
                    auto self = weak.lock();
                    if (!self) return;
                    if (ec && why.empty()) why = ec.message();
                    self->later([failure = ec ? why : std::string()](enrollment& m) { return m.published(failure); });
                });
        } else if (auto* u = std::get_if<unsubscribe_action>(&action)) {
            session_.unsubscribe(std::move(u->filters));
        } else if (auto* d = std::get_if<done_action>(&action)) {
            on_done(std::move(d->result));
        } else if (auto* f = std::get_if<failed_action>(&action)) {
            finish(std::move(f->error));
        }
    }
}

void enrollment_runner::arm_timer() {
    timer_.expires_after(options_.request.answer_timeout);
    timer_.async_wait([weak = weak_from_this(), generation = ++timer_generation_](boost::system::error_code ec) {
        auto self = weak.lock();
        if (ec || !self || self->finished_ || generation != self->timer_generation_) return;
        self->run(self->machine_.timeout());
    });
}

void enrollment_runner::on_done(enrollment_result result) {
    // A certificate registered for another Thing would log in under a name the configuration
    // and the IoT policy's variables do not expect: it is not installed.
    if (!options_.expected_thing.empty() && !result.thing_name.empty() && result.thing_name != options_.expected_thing)
        return finish(enrollment_error{
            enrollment_step::register_thing,
            std::string(step_name(enrollment_step::register_thing)) + ": the template registered Thing '" +
                text::printable(result.thing_name) + "', but this Thing is configured as '" + options_.expected_thing +
                "' (set name: to the Thing name the template gives, or change the template's parameters)",
            false});
    if (auto committed = commit(options_.paths, result.certificate_pem); !committed)
        return finish(
            enrollment_error{enrollment_step::store,
                             std::string(step_name(enrollment_step::store)) + ": " + committed.error().message, false});
    finish(std::move(result));
}

void enrollment_runner::finish(enrollment_outcome outcome) {
    if (finished_) return;
    finished_ = true;
    ++timer_generation_;
    timer_.cancel();
    key_ = secret_pem();
    boost::asio::post(executor_,
                      [done = std::move(done_), outcome = std::move(outcome)]() mutable { done(std::move(outcome)); });
}

}  // namespace thingmux::identity
