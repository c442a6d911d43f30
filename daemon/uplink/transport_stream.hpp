// A transport as an Asio stream (AsyncReadStream, AsyncWriteStream), so that Boost.Beast's
// WebSocket and HTTP code can run over the transport stack (socket -> [HTTP proxy] -> TLS)
// without a second TLS or proxy implementation.
//
// The transport's own contract holds: one read and one write outstanding at a time, handlers on
// the io_context, never inside the initiating call. A completed write_some has written the
// whole buffer sequence. The transport's "closed by the peer" (errc::closed_by_broker) reaches
// Beast as asio::error::eof, the end of stream it expects; every other error keeps its own
// category (boost::system::error_code carries a std::error_code through unchanged, and converts
// back to it).
#pragma once

#include "daemon/uplink/error.hpp"
#include "daemon/uplink/transport.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <memory>
#include <utility>
#include <vector>

namespace thingmux::uplink {

class transport_stream {
public:
    using executor_type = boost::asio::any_io_executor;

    transport_stream(boost::asio::io_context& io, std::shared_ptr<transport> link)
        : io_(&io), link_(std::move(link)) {}

    [[nodiscard]] executor_type get_executor() const noexcept { return io_->get_executor(); }
    [[nodiscard]] transport& link() const noexcept { return *link_; }

    // Until unlimit_reads(): the reads together may hand over at most `bytes`; the read that
    // passes the limit fails with `over` instead (bounds what a peer makes a reader buffer, e.g.
    // Beast's WebSocket handshake, which reads the whole HTTP answer).
    void limit_reads(std::size_t bytes, std::error_code over) {
        budget_ = std::make_shared<read_budget>(read_budget{.left = bytes, .over = over});
    }
    void unlimit_reads() { budget_.reset(); }

    template <typename MutableBufferSequence, typename ReadToken>
    auto async_read_some(const MutableBufferSequence& buffers, ReadToken&& token) {
        return boost::asio::async_initiate<ReadToken, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const MutableBufferSequence& target) {
                // The transport reads into one buffer: the first non-empty one of the sequence.
                boost::asio::mutable_buffer first;
                for (auto it = boost::asio::buffer_sequence_begin(target); it != boost::asio::buffer_sequence_end(target); ++it) {
                    const boost::asio::mutable_buffer piece = *it;
                    if (piece.size() != 0) {
                        first = piece;
                        break;
                    }
                }
                link_->async_read_some(first, completion(std::move(handler), nullptr, budget_));
            },
            token, buffers);
    }

    template <typename ConstBufferSequence, typename WriteToken>
    auto async_write_some(const ConstBufferSequence& buffers, WriteToken&& token) {
        return boost::asio::async_initiate<WriteToken, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, const ConstBufferSequence& source) {
                auto pieces = std::make_shared<std::vector<boost::asio::const_buffer>>(
                    boost::asio::buffer_sequence_begin(source), boost::asio::buffer_sequence_end(source));
                link_->async_write(*pieces, completion(std::move(handler), pieces, nullptr));
            },
            token, buffers);
    }

private:
    struct read_budget {
        std::size_t left;
        std::error_code over;
    };

    // The transport's handler (a copyable std::function) around Asio's handler (which may be
    // move-only); `keep` holds what must live until the operation completes; `budget` (reads
    // only, may be null) is charged with what the read handed over.
    template <typename Handler>
    transport::io_handler completion(Handler handler, std::shared_ptr<void> keep, std::shared_ptr<read_budget> budget) {
        auto held = std::make_shared<Handler>(std::move(handler));
        return [held, keep = std::move(keep), budget = std::move(budget), executor = get_executor()](std::error_code ec,
                                                                                                     std::size_t n) {
            boost::system::error_code result = ec;
            if (ec == make_error_code(errc::closed_by_broker)) result = boost::asio::error::eof;
            if (budget && !ec) {
                if (n > budget->left) {
                    result = budget->over;
                    n = 0;
                } else {
                    budget->left -= n;
                }
            }
            auto target = boost::asio::get_associated_executor(*held, executor);
            boost::asio::dispatch(target, [held, result, n]() { std::move(*held)(result, n); });
        };
    }

    boost::asio::io_context* io_;
    std::shared_ptr<transport> link_;
    std::shared_ptr<read_budget> budget_;  // null: reads are not limited
};

// Beast closes the stream below when one of its own timeouts fires (and Beast's WebSocket stream
// needs the function to exist): the transport is closed.
inline void beast_close_socket(transport_stream& stream) { stream.link().close(); }

// Beast's WebSocket closing handshake ends with a teardown of the stream below it: here the
// transport is closed at once (its TLS close_notify is not awaited, as everywhere in the uplink).
inline void teardown(boost::beast::role_type, transport_stream& stream, boost::system::error_code& ec) {
    stream.link().close();
    ec = {};
}

template <typename TeardownHandler>
void async_teardown(boost::beast::role_type, transport_stream& stream, TeardownHandler&& handler) {
    stream.link().close();
    auto executor = boost::asio::get_associated_executor(handler, stream.get_executor());
    boost::asio::post(executor, [h = std::forward<TeardownHandler>(handler)]() mutable { std::move(h)(boost::system::error_code{}); });
}

}  // namespace thingmux::uplink
