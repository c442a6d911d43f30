#include "thingmux/client.hpp"

#include "core.hpp"

#include <utility>

namespace thingmux {

class client::impl final : public detail::core {
public:
    using core::core;
};

namespace {

// A completion handler that fulfils a promise: the future-returning calls are the callback
// ones with this handler.
std::pair<std::future<result>, completion_handler> promise_handler() {
    auto p = std::make_shared<std::promise<result>>();
    auto f = p->get_future();
    return {std::move(f), [p](const result& r) { p->set_value(r); }};
}

}  // namespace

client::client(options opts) : impl_(std::make_shared<impl>(std::move(opts))) {}

client::~client() { impl_->shutdown_from_owner(); }

void client::on_state(state_handler h) { impl_->set_state_handler(std::move(h)); }

void client::on_subscription_lost(subscription_lost_handler h) {
    impl_->set_subscription_lost_handler(std::move(h));
}

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

void client::close() { impl_->close(); }

state client::current_state() const { return impl_->current_state(); }

std::optional<daemon_info> client::daemon() const { return impl_->daemon(); }

std::string client::socket_path() const { return impl_->socket_path(); }

}  // namespace thingmux
