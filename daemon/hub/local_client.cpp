#include "daemon/hub/local_client.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>


namespace thingmux::hub {

namespace asio = boost::asio;

namespace {
constexpr std::size_t read_chunk = 64 * 1024;      // one read() into the shared scratch buffer
constexpr std::size_t max_read_turn = 1024 * 1024;  // bytes read from one client before others get a turn
constexpr std::size_t max_write_bytes = 256 * 1024;  // one write's worth (at least one frame)
constexpr auto error_linger = std::chrono::seconds(1);
}  // namespace

local_client::local_client(socket s, client_id id, peer_credentials peer, const client_limits& limits,
                           client_events& events)
    : socket_(std::move(s)), id_(id), peer_(std::move(peer)), limits_(limits), events_(events),
      linger_(socket_.get_executor()) {}

void local_client::start(std::chrono::milliseconds hello_timeout) {
    boost::system::error_code ignored;
    socket_.non_blocking(true, ignored);  // read_ready() reads until the socket is drained
    // A connection that never says hello would hold a slot forever (IPC-8).
    linger_.expires_after(hello_timeout);
    linger_.async_wait([self = shared_from_this(), hello_timeout](boost::system::error_code ec) {
        if (ec || self->greeted) return;
        self->close_with_error(ipc::errc::protocol_violation,
                               "no hello within " + std::to_string(hello_timeout.count()) + " ms");
    });
    read();
}

// Reads wait for readability and then read into one scratch buffer shared by all clients, so an
// idle client holds no read buffer at all: only the bytes of a frame that has not fully arrived
// are kept per client. A busy client is read at most `max_read_turn` bytes per turn, then the
// others get their turn.
void local_client::read() {
    socket_.async_wait(socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
        if (self->closed_ || self->closing_) return;
        if (ec) return self->finish(ec.message());
        self->read_ready();
    });
}

void local_client::read_ready() {
    static thread_local std::vector<std::uint8_t> scratch(read_chunk);
    for (std::size_t turn = 0; turn < max_read_turn; turn += read_chunk) {
        boost::system::error_code ec;
        const std::size_t n = socket_.read_some(asio::buffer(scratch), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) return read();
        if (ec) return finish(ec == asio::error::eof ? "client closed the connection" : ec.message());
        if (in_.empty()) {
            // The common case: whole frames straight from the scratch buffer.
            const std::size_t used = decode(std::span<const std::uint8_t>(scratch.data(), n));
            if (closed_ || closing_) return;
            in_.assign(scratch.begin() + static_cast<std::ptrdiff_t>(used), scratch.begin() + static_cast<std::ptrdiff_t>(n));
        } else {
            in_.insert(in_.end(), scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(n));
            const std::size_t used = decode(in_);
            if (closed_ || closing_) return;
            in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(used));
        }
        if (in_.empty() && in_.capacity() > read_chunk) in_ = {};  // a large frame passed: give it back
        // A short read emptied the socket: reading again would only return EAGAIN. The wait
        // re-arms the descriptor (EPOLL_CTL_MOD), which reports data that arrived meanwhile.
        if (n < scratch.size()) return read();
    }
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        if (!self->closed_ && !self->closing_) self->read_ready();
    });
}

std::size_t local_client::decode(std::span<const std::uint8_t> bytes) {
    std::size_t offset = 0;
    while (!closed_ && !closing_) {
        auto r = ipc::decode_client_message(bytes.subspan(offset), limits_.max_frame);
        if (auto* bad = std::get_if<ipc::malformed>(&r)) {
            close_with_error(bad->code, bad->reason);
            break;
        }
        auto* ok = std::get_if<ipc::decoded<ipc::client_message>>(&r);
        if (ok == nullptr) break;  // need more bytes
        offset += ok->consumed;
        ++messages_in;
        events_.on_message(*this, std::move(ok->message));
    }
    return offset;
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
    schedule_write();
    return true;
}

void local_client::schedule_write() {
    // Frames queued during one event-loop turn (the results of a read's worth of publishes, the
    // deliveries of one broker read) leave in one gathered write at the end of the turn.
    if (closed_ || writing_ > 0 || write_posted_) return;
    write_posted_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        self->write_posted_ = false;
        self->write();
    });
}

void local_client::write() {
    if (closed_ || writing_ > 0 || queue_.empty()) return;
    // Frames are mostly small (results, deliveries of short payloads): copying them into one
    // contiguous buffer costs far less than a system call, and one write takes them all.
    write_buf_.clear();
    writing_ = 0;
    while (writing_ < queue_.size() && (writing_ == 0 || write_buf_.size() + queue_[writing_]->size() <= max_write_bytes)) {
        write_buf_.insert(write_buf_.end(), queue_[writing_]->begin(), queue_[writing_]->end());
        ++writing_;
    }
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(write_buf_), [self](boost::system::error_code ec, std::size_t) {
        if (self->closed_) return;
        if (ec) return self->finish("write to client failed: " + ec.message());
        for (std::size_t i = 0; i < self->writing_; ++i) {
            self->queued_bytes_ -= self->queue_.front()->size();
            self->queue_.pop_front();
        }
        self->writing_ = 0;
        if (self->queue_.empty() && self->write_buf_.capacity() > read_chunk) self->write_buf_ = {};  // idle clients hold no buffer
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
