#include "daemon/hub/mqtt_client.hpp"

#include "daemon/hub/mqtt_session.hpp"
#include "daemon/hub/read_scratch.hpp"

#include "daemon/thing/outcome.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <utility>

namespace thingmux::hub {

namespace asio = boost::asio;

namespace {
constexpr std::size_t max_read_turn = 1024 * 1024;  // bytes read from one client before others get a turn
// Unwritten bytes at which the client is no longer read: answers pile up only when it does not
// read them.
constexpr std::size_t max_unwritten_answers = 256 * 1024;
constexpr auto final_write_grace = std::chrono::seconds(1);

}  // namespace

mqtt_client::mqtt_client(socket s, thing::session_id id, peer_credentials peer, mqtt::server_settings settings,
                         mqtt_events& events)
    : socket_(std::move(s)), id_(id), peer_(std::make_shared<peer_credentials>(std::move(peer))),
      max_queue_bytes_(settings.max_queued_bytes),
      events_(events), server_(settings, std::chrono::steady_clock::now()), timer_(socket_.get_executor()) {}

mqtt_client::~mqtt_client() = default;

std::chrono::steady_clock::time_point mqtt_client::now() const { return std::chrono::steady_clock::now(); }

std::size_t mqtt_client::pause_mark() const noexcept { return std::min(max_queue_bytes_ / 2, max_unwritten_answers); }

std::size_t mqtt_client::queued_bytes() const noexcept { return server_.queued_bytes() + out_.size() + writing_size_; }

std::string mqtt_client::describe() const {
    return "MQTT client " + std::to_string(id_.value) + " ('" + server_.client_id() + "', " + peer_->describe() + ")";
}

void mqtt_client::start() {
    boost::system::error_code ignored;
    socket_.non_blocking(true, ignored);
    arm_timer();
    read();
}

// Like the IPC clients: wait for readability, then read into one scratch buffer shared by all
// clients, so an idle client holds no read buffer.
void mqtt_client::read() {
    if (reading_ || closed_ || ended_) return;
    reading_ = true;
    socket_.async_wait(socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
        self->reading_ = false;
        if (self->closed_ || self->ended_) return;
        if (ec) {
            self->server_.on_transport_closed(self->now());
            return self->run();
        }
        self->read_ready();
    });
}

void mqtt_client::read_ready() {
    const auto scratch = read_scratch();
    for (std::size_t turn = 0; turn < max_read_turn; turn += read_chunk) {
        if (write_backlog() || server_.reading_paused()) {
            paused_ = true;  // resumed by the write that brings it down, or the answer that frees a slot
            return;
        }
        boost::system::error_code ec;
        const std::size_t n = socket_.read_some(asio::buffer(scratch), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) return read();
        if (ec) {
            server_.on_transport_closed(now());
            return run();
        }
        server_.on_bytes(std::span<const std::uint8_t>(scratch.data(), n), now());
        run();
        if (closed_ || ended_) return;
        if (n < scratch.size() && !write_backlog() && !server_.reading_paused()) return read();
    }
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        if (!self->closed_ && !self->ended_) self->read_ready();
    });
}

void mqtt_client::run() {
    if (running_) {
        run_again_ = true;
        return;
    }
    running_ = true;
    do {
        run_again_ = false;
        // The list is ours while we go through it: an answer given from inside a call below
        // lands in the session's next list, which the loop drains next. The session gets the
        // spare list in exchange (an empty one while shedding).
        auto actions = std::exchange(spare_actions_, {});
        server_.drain_actions(actions);
        for (auto& a : actions) {
            std::visit(
                [this](auto& act) {
                    using T = std::decay_t<decltype(act)>;
                    namespace sa = mqtt::server_action;
                    if constexpr (std::is_same_v<T, sa::send>) {
                        if (closed_) return;
                        if (out_.empty())
                            out_.swap(act.bytes);  // act.bytes now holds out_'s empty buffer
                        else
                            out_.insert(out_.end(), act.bytes.begin(), act.bytes.end());
                        // The session encodes its next packets into it: no buffer per write.
                        server_.give_back(std::move(act.bytes));
                        schedule_write();
                    } else if constexpr (std::is_same_v<T, sa::close>) {
                        close_after_write_ = true;
                        if (!writing_now_ && out_.empty()) close_socket();
                    } else if constexpr (std::is_same_v<T, sa::connect_request>) {
                        if (act.packet.will) will = std::make_unique<mqtt::will_message>(std::move(*act.packet.will));
                        act.packet.will.reset();
                        events_.on_connect(*this, act.packet);
                    } else if constexpr (std::is_same_v<T, sa::publish_request>) {
                        ++messages_in_;
                        events_.on_publish(*this, std::move(act.msg));
                    } else if constexpr (std::is_same_v<T, sa::subscribe_request>) {
                        events_.on_subscribe(*this, std::move(act.packet));
                    } else if constexpr (std::is_same_v<T, sa::unsubscribe_request>) {
                        events_.on_unsubscribe(*this, std::move(act.packet));
                    } else if constexpr (std::is_same_v<T, sa::delivered>) {
                        if (session_) session_->acknowledged(act.tag);
                    } else if constexpr (std::is_same_v<T, sa::ended>) {
                        if (ended_) return;
                        ended_ = true;
                        // The last packet (CONNACK, DISCONNECT) gets a moment to be written; a
                        // client that does not read is closed regardless.
                        timer_.expires_after(final_write_grace);
                        timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
                            if (!ec) self->close_socket();
                        });
                        events_.on_ended(*this, act);
                    }
                },
                a);
        }
        if (!shedding_) {
            actions.clear();
            spare_actions_ = std::move(actions);
        }
    } while (run_again_);
    running_ = false;
    if (ended_) return;
    // Nothing to write: the connection may stay idle from here, so its lists go now.
    if (!shedding_ && !writing_now_ && !write_posted_ && out_.empty()) return shed_lists();
    arm_timer();
    maybe_resume();
}

void mqtt_client::shed_lists() {
    if (running_) return;  // the running loop keeps them; the next idle moment sheds them
    std::vector<mqtt::server_session_action>().swap(spare_actions_);
    shedding_ = true;
    run();  // performs what the session's list holds, if anything, and leaves it an empty one
    shedding_ = false;
}

void mqtt_client::maybe_resume() {
    if (!paused_ || closed_ || write_backlog() || server_.reading_paused()) return;
    paused_ = false;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        if (!self->closed_ && !self->ended_) self->read_ready();
    });
}

void mqtt_client::arm_timer() {
    const auto next = server_.next_deadline();
    if (next == armed_) return;
    armed_ = next;
    if (!next) {
        timer_.cancel();
        return;
    }
    timer_.expires_at(*next);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (ec || self->ended_) return;
        self->armed_.reset();
        self->server_.on_tick(self->now());
        self->run();
    });
}

void mqtt_client::schedule_write() {
    if (closed_ || writing_now_ || write_posted_) return;
    write_posted_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        self->write_posted_ = false;
        self->write();
    });
}

void mqtt_client::write() {
    if (closed_ || writing_now_) return;
    if (out_.empty()) {
        if (close_after_write_) close_socket();
        return;
    }
    std::swap(writing_, out_);
    out_.clear();
    writing_size_ = writing_.size();
    writing_now_ = true;
    asio::async_write(socket_, asio::buffer(writing_), [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
        self->writing_now_ = false;
        self->writing_size_ = 0;
        if (self->closed_) return;
        if (ec) {
            self->out_.clear();
            self->server_.on_transport_closed(self->now());
            self->run();
            return self->close_socket();
        }
        if (self->out_.empty()) {  // idle clients hold no buffer (`= {}` would keep the capacity)
            self->writing_.clear();
            self->writing_.shrink_to_fit();
            self->server_.give_back({});
            self->shed_lists();
        }
        self->maybe_resume();
        self->write();
    });
}

void mqtt_client::close_socket() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.shutdown(socket::shutdown_both, ignored);
    socket_.close(ignored);
    out_.clear();
    out_.shrink_to_fit();
    if (!ended_) {
        // Closed before the session ended it (a write failed): the session hears of it now.
        server_.on_transport_closed(now());
        run();
    }
}

void mqtt_client::cut_off(std::string reason) {
    disconnect(mqtt::reason::quota_exceeded, std::move(reason));
}

void mqtt_client::accept(std::shared_ptr<mqtt_session> session, bool session_present,
                         std::optional<std::string> assigned_client_id, std::chrono::seconds session_expiry) {
    session_ = std::move(session);
    session_expiry_ = session_expiry;
    server_.accept(session_present, std::move(assigned_client_id), now(), static_cast<std::uint32_t>(session_expiry.count()));
    run();
}

void mqtt_client::refuse(std::uint8_t reason_code, std::string reason) {
    server_.refuse(reason_code, std::move(reason), now());
    run();
}

void mqtt_client::disconnect(std::uint8_t reason_code, std::string reason) {
    if (ended_) return;
    server_.disconnect(reason_code, std::move(reason), now());
    run();
}

void mqtt_client::publish_done(std::uint16_t packet_id, const ipc::result& outcome) {
    if (ended_) return;
    server_.publish_done(packet_id, thing::mqtt_reason_for(outcome, mqtt::packet_type::puback), outcome.message, now());
    run();
}

void mqtt_client::subscribe_done(std::uint16_t packet_id, const std::vector<ipc::result>& outcomes) {
    if (ended_) return;
    std::vector<std::uint8_t> codes;
    codes.reserve(outcomes.size());
    for (const auto& r : outcomes) codes.push_back(thing::mqtt_reason_for(r, mqtt::packet_type::suback));
    server_.subscribe_done(packet_id, std::move(codes), now());
    run();
}

void mqtt_client::unsubscribe_done(std::uint16_t packet_id, const std::vector<ipc::result>& outcomes) {
    if (ended_) return;
    std::vector<std::uint8_t> codes;
    codes.reserve(outcomes.size());
    for (const auto& r : outcomes) codes.push_back(thing::mqtt_reason_for(r, mqtt::packet_type::unsuback));
    server_.unsubscribe_done(packet_id, std::move(codes), now());
    run();
}

mqtt::delivery mqtt_client::deliver(const mqtt::publish& msg, std::uint8_t qos, std::uint64_t tag) {
    if (ended_ || closed_) return mqtt::delivery::not_online;
    if (queued_bytes() > max_queue_bytes_) {
        cut_off("client is not reading: " + std::to_string(queued_bytes()) + " bytes queued, limit " +
                std::to_string(max_queue_bytes_) + " (mqtt.client_queue)");
        return mqtt::delivery::queue_full;
    }
    const auto result = server_.deliver(msg, qos, tag, now());
    switch (result) {
    case mqtt::delivery::sent:
    case mqtt::delivery::queued:
        ++messages_out_;
        run();
        break;
    case mqtt::delivery::queue_full:
        cut_off("client is not reading: its deliveries exceed mqtt.client_queue (" + std::to_string(max_queue_bytes_) +
                " bytes)");
        break;
    case mqtt::delivery::too_large:
    case mqtt::delivery::not_online: break;
    }
    return result;
}

}  // namespace thingmux::hub
