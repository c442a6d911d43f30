#include "daemon/hub/local_client.hpp"

#include <boost/asio/write.hpp>


namespace thingmux::hub {

namespace asio = boost::asio;

namespace {
constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::size_t max_frames_per_write = 64;  // one gathered write, bounded iovec count
constexpr auto error_linger = std::chrono::seconds(1);
}  // namespace

local_client::local_client(socket s, client_id id, peer_credentials peer, const client_limits& limits,
                           client_events& events)
    : socket_(std::move(s)), id_(id), peer_(std::move(peer)), limits_(limits), events_(events),
      linger_(socket_.get_executor()) {}

void local_client::start(std::chrono::milliseconds hello_timeout) {
    // A connection that never says hello would hold a slot forever (IPC-8).
    linger_.expires_after(hello_timeout);
    linger_.async_wait([self = shared_from_this(), hello_timeout](boost::system::error_code ec) {
        if (ec || self->greeted) return;
        self->close_with_error(ipc::errc::protocol_violation,
                               "no hello within " + std::to_string(hello_timeout.count()) + " ms");
    });
    read();
}

void local_client::read() {
    if (in_.size() - in_used_ < read_chunk) in_.resize(in_used_ + read_chunk);
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(in_.data() + in_used_, in_.size() - in_used_),
                            [self](boost::system::error_code ec, std::size_t n) {
        if (self->closed_ || self->closing_) return;
        if (ec) return self->finish(ec == asio::error::eof ? "client closed the connection" : ec.message());
        self->in_used_ += n;
        std::size_t offset = 0;
        while (!self->closed_ && !self->closing_) {
            auto r = ipc::decode_client_message(std::span<const std::uint8_t>(self->in_.data() + offset,
                                                                              self->in_used_ - offset),
                                                self->limits_.max_frame);
            if (auto* bad = std::get_if<ipc::malformed>(&r)) {
                return self->close_with_error(bad->code, bad->reason);
            }
            auto* ok = std::get_if<ipc::decoded<ipc::client_message>>(&r);
            if (ok == nullptr) break;  // need more bytes
            offset += ok->consumed;
            ++self->messages_in;
            self->events_.on_message(*self, std::move(ok->message));
        }
        if (self->closed_ || self->closing_) return;
        // Keep the undecoded tail at the front; the buffer never grows past one frame + a chunk.
        if (offset > 0) {
            std::copy(self->in_.begin() + static_cast<std::ptrdiff_t>(offset),
                      self->in_.begin() + static_cast<std::ptrdiff_t>(self->in_used_), self->in_.begin());
            self->in_used_ -= offset;
        }
        self->read();
    });
}

bool local_client::send(frame_ptr frame) {
    if (closed_ || closing_) return false;
    if (queued_bytes_ + frame->size() > limits_.max_queue_bytes) {
        close_with_error(ipc::errc::queue_full,
                         "client is not reading: " + std::to_string(queued_bytes_) + " bytes queued, limit " +
                             std::to_string(limits_.max_queue_bytes));
        return false;
    }
    queued_bytes_ += frame->size();
    queue_.push_back(std::move(frame));
    write();
    return true;
}

void local_client::write() {
    if (closed_ || writing_ > 0 || queue_.empty()) return;
    writing_ = std::min(queue_.size(), max_frames_per_write);
    // The buffer sequence must outlive the operation: it is a member, not a local.
    write_bufs_.clear();
    for (std::size_t i = 0; i < writing_; ++i) write_bufs_.push_back(asio::buffer(*queue_[i]));
    auto self = shared_from_this();
    asio::async_write(socket_, write_bufs_, [self](boost::system::error_code ec, std::size_t) {
        if (self->closed_) return;
        if (ec) return self->finish("write to client failed: " + ec.message());
        for (std::size_t i = 0; i < self->writing_; ++i) {
            self->queued_bytes_ -= self->queue_.front()->size();
            self->queue_.pop_front();
        }
        self->writing_ = 0;
        if (self->closing_ && self->queue_.empty()) return self->finish(self->close_reason_);
        self->write();
    });
}

void local_client::close_with_error(ipc::errc code, std::string message) {
    if (closed_ || closing_) return;
    closing_ = true;
    close_reason_ = std::string(ipc::to_string(code)) + ": " + message;
    // Frames not yet being written are dropped: the error must not wait behind them.
    while (queue_.size() > writing_) {
        queued_bytes_ -= queue_.back()->size();
        queue_.pop_back();
    }
    auto bytes = std::make_shared<std::vector<std::uint8_t>>();
    ipc::encode(ipc::daemon_message{ipc::error{.code = code, .message = std::move(message)}}, *bytes);
    queued_bytes_ += bytes->size();
    queue_.push_back(std::move(bytes));
    write();
    // A client that does not read gets closed anyway after a grace period.
    linger_.expires_after(error_linger);
    auto self = shared_from_this();
    linger_.async_wait([self](boost::system::error_code ec) {
        if (!ec) self->finish(self->close_reason_);
    });
}

void local_client::close(const std::string& reason) { finish(reason); }

void local_client::finish(const std::string& reason) {
    if (closed_) return;
    closed_ = true;
    linger_.cancel();
    boost::system::error_code ignored;
    socket_.shutdown(socket::shutdown_both, ignored);
    socket_.close(ignored);
    queue_.clear();
    queued_bytes_ = 0;
    events_.on_closed(*this, reason);
}

}  // namespace thingmux::hub
