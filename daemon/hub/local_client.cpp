#include "daemon/hub/local_client.hpp"

#include "daemon/hub/read_scratch.hpp"
#include "daemon/thing/outcome.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <utility>

#if defined(__GLIBC__)
#include <malloc.h>
#endif


namespace thingmux::hub {

namespace asio = boost::asio;

namespace {
constexpr std::size_t max_read_turn = 1024 * 1024;  // bytes read from one client before others get a turn
constexpr std::size_t max_write_bytes = 256 * 1024;  // one write's worth (at least one frame)
// Queued bytes at which a client is no longer read: one write's worth, over 2000 results, more
// than libthingmux ever has outstanding, so a pipelining client that reads is never held up; a
// client that does not read blocks soon after.
constexpr std::size_t max_unread_answers = max_write_bytes;
constexpr auto error_linger = std::chrono::seconds(1);
// Queued bytes dropped unsent (clients cut off or gone) after which the heap is trimmed.
constexpr std::size_t trim_after_dropped = 1024 * 1024;
// Answers appended to one frame at most: a frame's bytes are charged and freed together.
constexpr std::size_t max_answers_frame = 16 * 1024;

// One heap allocation of `n` bytes as glibc's malloc takes it: an 8-byte header, 16-byte
// granules, 32 bytes at least.
constexpr std::size_t allocation(std::size_t n) {
    return std::max<std::size_t>(32, (n + 8 + 15) & ~std::size_t{15});
}
// Empties a container and gives its memory back (`c = {}` would keep the capacity: it assigns
// an empty initializer list).
template <class Container>
void release(Container& c) {
    Container{}.swap(c);
}
}  // namespace

std::size_t local_client::cost_of(std::size_t capacity) noexcept {
    // The bytes; the frame with its shared_ptr control block (one allocation by make_shared:
    // vtable pointer and two counts); the queue's shared_ptr.
    return allocation(capacity) + allocation(sizeof(shared_frame) + 2 * sizeof(void*)) + sizeof(frame_ptr);
}

// A client's queue is charged every frame in full; the total of all queues counts a frame
// shared by several queues once, plus the queues' pointers to it.
void local_client::push_frame(frame_ptr frame) noexcept {
    const std::size_t cost = cost_of(frame->capacity());
    queued_bytes_ += cost;
    totals_.bytes += frame->queues++ == 0 ? cost : sizeof(frame_ptr);
    queue_.push_back(std::move(frame));
}

std::size_t local_client::pop_frame() noexcept {
    const shared_frame& frame = *queue_.front();
    const std::size_t cost = cost_of(frame.capacity());
    queued_bytes_ -= cost;
    totals_.bytes -= --frame.queues == 0 ? cost : sizeof(frame_ptr);
    queue_.pop_front();
    return cost;
}

local_client::local_client(socket s, client_id id, peer_credentials peer, const client_limits& limits,
                           queue_totals& totals, client_events& events)
    : socket_(std::move(s)), id_(id), peer_(std::move(peer)), limits_(limits), totals_(totals), events_(events),
      linger_(socket_.get_executor()) {
    ++totals_.clients;
}

// glibc keeps freed small blocks for reuse and returns little of a fragmented heap by itself: the
// queues of clients that stopped reading would leave the daemon at their high-water mark for
// good. Trimmed after the buffers of this client are gone too; never touches the hub, which may
// be gone at exit.
local_client::~local_client() {
#if defined(__GLIBC__)
    if (!trim_heap_) return;
    release(queue_);
    release(write_buf_);
    release(in_);
    ::malloc_trim(0);
#endif
}

void local_client::drop_queue() noexcept {
    while (!queue_.empty()) totals_.dropped += pop_frame();
    answers_tail_.reset();
}

void local_client::charge(std::size_t bytes) noexcept {
    queued_bytes_ += bytes;
    totals_.bytes += bytes;
}

void local_client::discharge(std::size_t bytes) noexcept {
    queued_bytes_ -= bytes;
    totals_.bytes -= bytes;
}

std::size_t local_client::pause_mark() const noexcept {
    return std::min(limits_.max_queue_bytes / 2, max_unread_answers);
}

bool local_client::answers_pending() const noexcept { return queued_bytes_ >= pause_mark(); }

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
// (and, while reading is paused, at most one read's worth not yet handled) are kept per client.
// A busy client is read at most `max_read_turn` bytes per turn, then the others get their turn.
void local_client::read() {
    socket_.async_wait(socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
        if (self->closed_ || self->closing_) return;
        if (ec) return self->finish(ec.message());
        self->read_ready();
    });
}

void local_client::read_ready() {
    const auto scratch = read_scratch();
    for (std::size_t turn = 0; turn < max_read_turn; turn += read_chunk) {
        if (answers_pending()) {
            paused_ = true;  // resumed by the write that brings the queue down
            return;
        }
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
        if (in_.empty() && in_.capacity() > read_chunk) release(in_);  // a large frame passed: give it back
        // A short read emptied the socket: reading again would only return EAGAIN. The wait
        // re-arms the descriptor (EPOLL_CTL_MOD), which reports data that arrived meanwhile.
        if (n < scratch.size() && !answers_pending()) return read();
    }
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        if (!self->closed_ && !self->closing_) self->read_ready();
    });
}

void local_client::resume_reading() {
    paused_ = false;
    if (!in_.empty()) {
        const std::size_t used = decode(in_);
        if (closed_ || closing_) return;
        in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(used));
        if (answers_pending()) {
            paused_ = true;
            return;
        }
    }
    read();
}

std::size_t local_client::decode(std::span<const std::uint8_t> bytes) {
    std::size_t offset = 0;
    // Stops at a frame boundary when the answers pile up: the rest waits in in_.
    while (!closed_ && !closing_ && !answers_pending()) {
        auto r = ipc::decode_client_message(bytes.subspan(offset), limits_.max_frame, version_);
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
    const std::size_t cost = cost_of(frame->capacity());
    const auto n = [](std::size_t v) { return std::to_string(v); };
    if (queued_bytes_ + cost > limits_.max_queue_bytes) {
        close_with_error(ipc::errc::queue_full, "client is not reading: " + n(queued_bytes_) + " bytes queued, limit " +
                                                    n(limits_.max_queue_bytes) + " (ipc.client_queue)");
        return false;
    }
    // All queues together at their limit: the client holding more than its share gives way.
    const std::size_t share = limits_.max_total_queue_bytes / std::max<std::size_t>(totals_.clients, 1);
    const std::size_t more = frame->queues == 0 ? cost : sizeof(frame_ptr);
    if (totals_.bytes + more > limits_.max_total_queue_bytes && queued_bytes_ + cost > share) {
        close_with_error(ipc::errc::queue_full,
                         "client is not reading: " + n(queued_bytes_) + " bytes queued, more than its share (" + n(share) +
                             ") while the queues of all " + n(totals_.clients) + " clients hold " + n(totals_.bytes) +
                             " bytes, limit " + n(limits_.max_total_queue_bytes) + " (ipc.client_queue_total)");
        return false;
    }
    push_frame(std::move(frame));
    schedule_write();
    return true;
}

void local_client::schedule_write() {
    // Frames queued during one event-loop turn (the results of a read's worth of publishes, the
    // deliveries of one broker read) leave in one gathered write at the end of the turn.
    if (closed_ || writing_ || write_posted_) return;
    write_posted_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        self->write_posted_ = false;
        self->write();
    });
}

void local_client::write() {
    if (closed_ || writing_ || queue_.empty()) return;
    // Frames are mostly small (results, deliveries of short payloads): copying them into one
    // contiguous buffer costs far less than a system call, and one write takes them all. Copied
    // frames leave the queue at once (a shared one may then be freed), and the copy is charged
    // in their place.
    write_buf_.clear();
    while (!queue_.empty() && (write_buf_.empty() || write_buf_.size() + queue_.front()->size() <= max_write_bytes)) {
        write_buf_.insert(write_buf_.end(), queue_.front()->begin(), queue_.front()->end());
        pop_frame();
    }
    if (queue_.empty()) answers_tail_.reset();
    write_charge_ = write_buf_.size();
    charge(write_charge_);
    writing_ = true;
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(write_buf_), [self](boost::system::error_code ec, std::size_t) {
        if (self->closed_) return;
        if (ec) return self->finish("write to client failed: " + ec.message());
        self->writing_ = false;
        self->discharge(std::exchange(self->write_charge_, 0));
        if (self->queue_.empty() && self->write_buf_.capacity() > read_chunk) release(self->write_buf_);  // idle clients hold no buffer
        if (self->closing_ && self->queue_.empty()) return self->finish(self->close_reason_);
        // Below half the pause mark, so that a client reading slowly is not paused and resumed per frame.
        if (self->paused_ && !self->closing_ && self->queued_bytes_ < self->pause_mark() / 2) self->resume_reading();
        self->write();
    });
}

void local_client::close_with_error(ipc::errc code, std::string message) {
    if (closed_ || closing_) return;
    closing_ = true;
    close_error_ = code;
    close_reason_ = std::string(ipc::to_string(code)) + ": " + message;
    // Frames not yet being written are dropped: the error must not wait behind them.
    drop_queue();
    auto bytes = std::make_shared<shared_frame>();
    ipc::encode(ipc::daemon_message{ipc::error{.code = code, .message = std::move(message)}}, *bytes, version_);
    push_frame(std::move(bytes));
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
    drop_queue();
    totals_.dropped += write_charge_;
    discharge(std::exchange(write_charge_, 0));
    --totals_.clients;
    if (totals_.dropped >= trim_after_dropped) {
        trim_heap_ = true;
        totals_.dropped = 0;
    }
    events_.on_closed(*this, reason);
}

std::string local_client::describe() const {
    return "client " + std::to_string(id_.value) + " ('" + app_name + "', " + peer_.describe() + ")";
}

void local_client::send(const ipc::daemon_message& m) {
    // Answers come in runs (the results of a read's worth of publishes): while the frame of the
    // last ones is still waiting at the end of the queue, the next is appended to it rather than
    // given a frame, and two allocations, of its own. That frame is this client's alone, so its
    // growth is charged in full to the queue and to the total, as push_frame() charged it; its
    // write is already scheduled.
    if (answers_tail_ && !closed_ && !closing_ && !queue_.empty() && queue_.back() == answers_tail_ &&
        answers_tail_->size() < max_answers_frame) {
        const std::size_t before = cost_of(answers_tail_->capacity());
        ipc::encode(m, *answers_tail_, version_);
        const std::size_t growth = cost_of(answers_tail_->capacity()) - before;
        queued_bytes_ += growth;
        totals_.bytes += growth;
        return;
    }
    auto bytes = std::make_shared<shared_frame>();
    ipc::encode(m, *bytes, version_);
    answers_tail_ = bytes;
    send(frame_ptr(std::move(bytes)));
}

void local_client::publish_done(std::uint32_t request_id, ipc::result outcome) {
    send(ipc::daemon_message{ipc::publish_result{.request_id = request_id, .outcome = std::move(outcome)}});
}

void local_client::subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) {
    send(ipc::daemon_message{ipc::subscribe_result{.request_id = request_id, .results = std::move(outcomes)}});
}

// IPC-61: the first of the two answers of a subscribe with subscribe_answer_at_registration.
void local_client::subscribe_registered(std::uint32_t request_id, std::vector<ipc::result> outcomes) {
    subscribe_done(request_id, std::move(outcomes));
}

void local_client::unsubscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) {
    send(ipc::daemon_message{ipc::unsubscribe_result{.request_id = request_id, .results = std::move(outcomes)}});
}

namespace {
// The frame of a delivery without a delivery id, encoded once per (version, QoS) and shared by
// the queues of every client of that version it goes to.
template <ipc::wire_version Version>
frame_ptr shared_delivery(thing::inbound_message& m, std::uint8_t qos) {
    return m.encoded<delivery_frame<Version>>(qos, [&] {
        auto bytes = std::make_shared<delivery_frame<Version>>();
        ipc::encode_message_frame(m.msg.topic, m.msg.payload, qos, m.msg.retain, thing::to_ipc(m.msg.props), *bytes,
                                  Version);
        return bytes;
    });
}
}  // namespace

bool local_client::deliver(thing::inbound_message& m, std::uint8_t qos) {
    auto frame = version_ == ipc::wire_version::v1 ? shared_delivery<ipc::wire_version::v1>(m, qos)
                                                   : shared_delivery<ipc::wire_version::v2>(m, qos);
    if (!send(std::move(frame))) return false;
    ++messages_out;
    return true;
}

bool local_client::deliver(const mqtt::publish& msg, std::uint32_t delivery_id) {
    auto bytes = std::make_shared<shared_frame>();
    ipc::encode_message_frame(msg.topic, msg.payload, 1, msg.retain, thing::to_ipc(msg.props), *bytes, version_,
                              delivery_id);
    if (!send(frame_ptr(std::move(bytes)))) return false;
    ++messages_out;
    return true;
}

}  // namespace thingmux::hub
