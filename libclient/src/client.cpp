#include "thingmux/client.hpp"

#include "core.hpp"
#include "service_engine.hpp"

#include <utility>

namespace thingmux {

class client::impl final : public detail::core {
public:
    explicit impl(options opts) : core(opts), services(std::make_shared<detail::service_engine>(*this, opts.thing)) {}

    // Shadows and jobs: one per client, since a filter has one handler (the answer subscriptions).
    const std::shared_ptr<detail::service_engine> services;
};

namespace {

// A completion handler that fulfils a promise: the future-returning calls are the callback
// ones with this handler.
std::pair<std::future<result>, completion_handler> promise_handler() {
    auto p = std::make_shared<std::promise<result>>();
    auto f = p->get_future();
    return {std::move(f), [p](const result& r) { p->set_value(r); }};
}

template <typename Reply>
std::pair<std::future<Reply>, std::function<void(const Reply&)>> reply_promise() {
    auto p = std::make_shared<std::promise<Reply>>();
    auto f = p->get_future();
    return {std::move(f), [p](const Reply& r) { p->set_value(r); }};
}

}  // namespace

client::client(options opts) : impl_(std::make_shared<impl>(std::move(opts))) {}

client::~client() { impl_->shutdown_from_owner(); }

void client::on_state(state_handler h) { impl_->set_state_handler(std::move(h)); }

void client::on_subscription_lost(subscription_lost_handler h) {
    impl_->set_subscription_lost_handler(std::move(h));
}

listener_id client::add_state_listener(state_handler h) { return impl_->add_state_listener(std::move(h)); }

bool client::remove_state_listener(listener_id id) { return impl_->remove_state_listener(id); }

listener_id client::add_message_listener(message_handler h, message_scope scope) {
    return impl_->add_message_listener(std::move(h), scope);
}

bool client::remove_message_listener(listener_id id) { return impl_->remove_message_listener(id); }

void client::start_consuming(consume_options o) { impl_->start_consuming(o); }

void client::stop_consuming() { impl_->stop_consuming(); }

std::optional<message> client::consume(std::chrono::milliseconds timeout) { return impl_->consume(timeout); }

client_counters client::counters() const { return impl_->counters(); }

void client::start() { impl_->start(); }

int client::fd() const noexcept { return impl_->epoll_fd(); }

void client::process() { impl_->process(); }

std::future<result> client::connect() {
    auto [f, done] = promise_handler();
    connect(std::move(done));
    return std::move(f);
}

void client::connect(completion_handler done) { impl_->submit(detail::connect_cmd{std::move(done)}); }

std::future<result> client::publish(message m) {
    auto [f, done] = promise_handler();
    publish(std::move(m), std::move(done));
    return std::move(f);
}

void client::publish(message m, completion_handler done) {
    impl_->submit(detail::publish_cmd{std::move(m), std::move(done)});
}

std::future<result> client::subscribe(std::string filter, int qos, message_handler handler) {
    auto [f, done] = promise_handler();
    subscribe(std::move(filter), qos, std::move(handler), std::move(done));
    return std::move(f);
}

void client::subscribe(std::string filter, int qos, message_handler handler, completion_handler done) {
    impl_->submit(detail::subscribe_cmd{std::move(filter), qos, std::move(handler), std::move(done)});
}

std::future<result> client::unsubscribe(std::string filter) {
    auto [f, done] = promise_handler();
    unsubscribe(std::move(filter), std::move(done));
    return std::move(f);
}

void client::unsubscribe(std::string filter, completion_handler done) {
    impl_->submit(detail::unsubscribe_cmd{std::move(filter), std::move(done)});
}

std::future<result> client::publish(message m, request_options o) {
    auto [f, done] = promise_handler();
    static_cast<void>(publish(std::move(m), std::move(o), std::move(done)));
    return std::move(f);
}

request_handle client::publish(message m, request_options o, completion_handler done) {
    auto gate = impl_->make_gate(done, o);
    impl_->submit(detail::publish_cmd{std::move(m), std::move(done), gate});
    detail::core::watch(gate, o);
    return request_handle(std::move(gate));
}

std::future<result> client::subscribe(std::string filter, int qos, message_handler handler, request_options o) {
    auto [f, done] = promise_handler();
    static_cast<void>(subscribe(std::move(filter), qos, std::move(handler), std::move(o), std::move(done)));
    return std::move(f);
}

request_handle client::subscribe(std::string filter, int qos, message_handler handler, request_options o,
                                 completion_handler done) {
    auto gate = impl_->make_gate(done, o);
    const bool at_registration = o.complete_at == subscribe_completion::registered;
    impl_->submit(detail::subscribe_cmd{std::move(filter), qos, std::move(handler), std::move(done), gate, at_registration});
    detail::core::watch(gate, o);
    return request_handle(std::move(gate));
}

std::future<result> client::unsubscribe(std::string filter, request_options o) {
    auto [f, done] = promise_handler();
    static_cast<void>(unsubscribe(std::move(filter), std::move(o), std::move(done)));
    return std::move(f);
}

request_handle client::unsubscribe(std::string filter, request_options o, completion_handler done) {
    auto gate = impl_->make_gate(done, o);
    impl_->submit(detail::unsubscribe_cmd{std::move(filter), std::move(done), gate});
    detail::core::watch(gate, o);
    return request_handle(std::move(gate));
}

request_handle::request_handle(std::shared_ptr<detail::request_gate> gate) noexcept : gate_(std::move(gate)) {}

void request_handle::cancel() const {
    if (gate_ && !gate_->finished.load() && gate_->cancel) {
        gate_->cancel(gate_);
    }
}

bool request_handle::done() const noexcept { return !gate_ || gate_->finished.load(); }

std::future<shadow_reply> client::shadow_get(std::string shadow_name) {
    auto [f, done] = reply_promise<shadow_reply>();
    shadow_get(std::move(shadow_name), std::move(done));
    return std::move(f);
}

void client::shadow_get(std::string shadow_name, service_handler done) {
    impl_->services->shadow(std::move(shadow_name), "get", {}, std::move(done));
}

std::future<shadow_reply> client::shadow_update(std::string shadow_name, std::string document) {
    auto [f, done] = reply_promise<shadow_reply>();
    shadow_update(std::move(shadow_name), std::move(document), std::move(done));
    return std::move(f);
}

void client::shadow_update(std::string shadow_name, std::string document, service_handler done) {
    impl_->services->shadow(std::move(shadow_name), "update", std::move(document), std::move(done));
}

std::future<shadow_reply> client::shadow_delete(std::string shadow_name) {
    auto [f, done] = reply_promise<shadow_reply>();
    shadow_delete(std::move(shadow_name), std::move(done));
    return std::move(f);
}

void client::shadow_delete(std::string shadow_name, service_handler done) {
    impl_->services->shadow(std::move(shadow_name), "delete", {}, std::move(done));
}

std::future<result> client::on_job(std::string operation, job_handler handler) {
    auto [f, done] = promise_handler();
    on_job(std::move(operation), std::move(handler), std::move(done));
    return std::move(f);
}

void client::on_job(std::string operation, job_handler handler, completion_handler done) {
    impl_->services->on_job(std::move(operation), std::move(handler), std::move(done));
}

std::future<job_update_reply> client::update_job(std::string job_id, std::string status,
                                                 std::map<std::string, std::string> details,
                                                 std::optional<std::int64_t> expected_version) {
    auto [f, done] = reply_promise<job_update_reply>();
    update_job(std::move(job_id), std::move(status), std::move(details), expected_version, std::move(done));
    return std::move(f);
}

void client::update_job(std::string job_id, std::string status, std::map<std::string, std::string> details,
                        std::optional<std::int64_t> expected_version, service_handler done) {
    impl_->services->update_job(std::move(job_id), std::move(status), std::move(details), expected_version,
                                std::move(done));
}

std::future<jobs_list_reply> client::jobs_get() {
    auto [f, done] = reply_promise<jobs_list_reply>();
    jobs_get(std::move(done));
    return std::move(f);
}

void client::jobs_get(jobs_list_handler done) { impl_->services->jobs_get(std::move(done)); }

void client::set_service_timeout(std::chrono::milliseconds timeout) { impl_->services->set_timeout(timeout); }

void client::close() { impl_->close(); }

state client::current_state() const { return impl_->current_state(); }

std::optional<daemon_info> client::daemon() const { return impl_->daemon(); }

std::string client::socket_path() const { return impl_->socket_path(); }

}  // namespace thingmux
