// The requests of one client that have not completed yet: first in the backlog (waiting to be
// sent), then in flight under the request id they were sent with, until the daemon's result.
//
// Pure: no socket, no thread, no lock. The core's loop owns it; completion handlers are never
// called from here, failed requests are handed to the caller, who decides when they run.
#pragma once

#include "thingmux/client.hpp"

#include "ipc/messages.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <memory_resource>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::detail {

enum class request_kind : std::uint8_t {
    publish,
    subscribe,
    unsubscribe,
    resubscribe,  // the library's own, after a reconnect: no completion handler
};
inline constexpr std::size_t request_kind_count = 4;

// A filter as a request refers to it: the registry entry's generation tells whether the entry
// the request was made for is still the current one (see subscription_registry).
struct subscription_ref {
    std::string filter;
    std::uint64_t generation = 0;
    friend bool operator==(const subscription_ref&, const subscription_ref&) = default;
};

// The one completion of a request made with request_options (client.hpp): the result, the
// timeout, the app's cancel and the close() race for it, and the first one wins. Every
// completion of the request goes through the gate; whoever loses is dropped.
struct request_gate {
    // Set by the winner, on the loop (or on the calling thread when the request is refused at once).
    std::atomic<bool> finished{false};
    completion_handler done;  // the app's; moved out by the winner
    std::optional<std::chrono::steady_clock::time_point> deadline;
    // Where cancel() sends its command; the core outlives no request, so weak.
    std::function<void(std::shared_ptr<request_gate>)> cancel;
    // Keeps request_options::cancel's callback registered for the request's life.
    std::optional<std::stop_callback<std::function<void()>>> on_stop;
};

struct request {
    request_kind kind = request_kind::publish;
    ipc::client_message frame;  // request_id set when it is sent
    std::size_t size = 0;       // encoded frame size
    completion_handler done;    // empty for resubscribe
    // subscribe and unsubscribe: the one filter; resubscribe: one per filter of the frame.
    std::vector<subscription_ref> filters;
    // With request_options; `done` then goes through it.
    std::shared_ptr<request_gate> gate;
    // A subscribe sent with subscribe_answer_at_registration (IPC-61): its first answer is the
    // registration, then it stays in flight, as a resubscribe, for the final one.
    bool awaits_registration = false;
};

// Which pending requests a fail() takes, and the result each kind completes with: a kind
// without an outcome is left where it is.
class failure_plan {
public:
    // Every kind fails with `r`.
    [[nodiscard]] static failure_plan all(const result& r);
    failure_plan& fail(request_kind kind, result r);
    [[nodiscard]] const result* outcome(request_kind kind) const noexcept;

private:
    std::optional<result> outcomes_[request_kind_count];
};

// Where fail() looks: the backlog, the requests in flight, or both (in flight first: those were
// sent earlier).
enum class pending_in : std::uint8_t { backlog = 1, in_flight = 2, anywhere = 3 };

class request_table {
public:
    // A request taken out of the table with the result it completes with.
    using failed_sink = std::function<void(request&&, const result&)>;

    // Backlog.
    void push_back(request&& r);
    // Ahead of everything waiting, keeping their order (the resubscribes after a welcome).
    void push_front(std::vector<request>&& rs);
    // The newest request waiting, removed (a backlog over its bounds refuses it).
    [[nodiscard]] request pop_newest();
    // The next request to send, or nullptr when none may go: the backlog is empty, or it is a
    // publish and `publish_window` publishes are already in flight (IPC-25).
    [[nodiscard]] const request* next_to_send(std::size_t publish_window) const noexcept;
    // Removes the request next_to_send() returned.
    [[nodiscard]] request pop_next();
    [[nodiscard]] bool waiting_subscribe(std::string_view filter) const noexcept;
    // The publish or subscribe of `gate` if it still waits in the backlog, removed: its wait
    // ended (timeout, cancel) before it was sent. Unsubscribes are always sent.
    [[nodiscard]] std::optional<request> withdraw(const request_gate* gate);

    // In flight: gives `r` a request id unused by any request in flight, writes it into the
    // frame and keeps it under that id; the stored request is returned for encoding.
    const request& send(request&& r);
    // The request in flight under `id` if it is one of `kinds`, removed; nothing otherwise (a
    // result for a request that is not ours).
    [[nodiscard]] std::optional<request> complete(std::uint32_t id, std::initializer_list<request_kind> kinds);
    // The request in flight under `id`, left there; nullptr if none.
    [[nodiscard]] request* in_flight(std::uint32_t id);

    // The one way to fail pending requests: every request in `where` whose kind has an outcome
    // in `plan` is removed and passed to `sink` with that outcome, in the order they were sent
    // (in flight by id, then the backlog in order). Each is passed exactly once.
    void fail(pending_in where, const failure_plan& plan, const failed_sink& sink);
    // Moves the requests in flight of `kind` back to the front of the backlog, in the order
    // they were sent, to be sent again on the next connection.
    void requeue_in_flight(request_kind kind);

    [[nodiscard]] std::size_t backlog_count() const noexcept { return backlog_.size(); }
    [[nodiscard]] std::size_t backlog_bytes() const noexcept { return backlog_bytes_; }
    [[nodiscard]] std::size_t in_flight_count() const noexcept { return in_flight_.size(); }
    [[nodiscard]] std::size_t in_flight_publishes() const noexcept { return in_flight_publishes_; }
    [[nodiscard]] bool empty() const noexcept { return backlog_.empty() && in_flight_.empty(); }

private:
    // Every publish passes through both containers: into the backlog, out of it, into flight,
    // out again. A request is too large for std::deque to hold two per block, so each would cost
    // a heap allocation there and another for its map node; both come from this pool instead,
    // which keeps the blocks of the largest backlog and window seen for reuse.
    std::pmr::unsynchronized_pool_resource pool_;
    std::pmr::deque<request> backlog_{&pool_};
    std::size_t backlog_bytes_ = 0;
    std::pmr::map<std::uint32_t, request> in_flight_{&pool_};  // ordered by id: failed in the order they were sent
    std::size_t in_flight_publishes_ = 0;
    std::uint32_t next_request_id_ = 1;
};

}  // namespace thingmux::detail
