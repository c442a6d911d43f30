// Request/response routing for AWS IoT's Device Shadow and Jobs topics (docs/services.md).
//
// Several apps share one MQTT session, so AWS's answers on `…/accepted` and `…/rejected` reach
// every app that subscribed to them, and two apps choosing the same clientToken cannot tell their
// answers apart. The pipeline therefore replaces the clientToken of every request with a token of
// its own ("tmx-" and 16 hex digits, unguessable per daemon run), remembers who asked, and puts
// the app's token back (or removes the field) in whatever AWS sends carrying it.
//
// This file holds the pure parts: which topics are requests and answers, the bounded checks of a
// request's payload, the text edits of a clientToken (the rest of the payload is kept byte for
// byte: nothing is re-serialized), and the table of requests awaiting their answer. No I/O, no
// logging, no clock of its own.
#pragma once

#include "daemon/thing/subscription_table.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace thingmux::thing::services {

using time_point = std::chrono::steady_clock::time_point;

inline constexpr std::size_t max_request_payload = 64 * 1024;  // a request's payload, bytes
inline constexpr std::size_t max_json_depth = 32;              // nesting of a request's payload
inline constexpr std::size_t max_client_token = 64;            // bytes of an app's clientToken (AWS's limit)
inline constexpr std::string_view token_prefix = "tmx-";
inline constexpr std::size_t token_size = 20;  // "tmx-" + 16 hex digits

enum class request_kind : std::uint8_t {
    shadow_get,
    shadow_update,
    shadow_delete,
    jobs_get,         // $aws/things/T/jobs/get
    jobs_start_next,  // $aws/things/T/jobs/start-next
    job_get,          // $aws/things/T/jobs/J/get
    job_update,       // $aws/things/T/jobs/J/update
};
[[nodiscard]] const char* to_string(request_kind k) noexcept;

struct request_topic {
    request_kind kind = request_kind::shadow_get;
    std::string_view shadow;  // a named shadow's name; empty for the classic shadow and for jobs
    bool named = false;       // a named shadow ($aws/things/T/shadow/name/N/…)
};

// Whether `topic` is one of Thing `thing`'s request topics:
//   $aws/things/T/shadow/{get,update,delete}, $aws/things/T/shadow/name/N/{get,update,delete},
//   $aws/things/T/jobs/{get,start-next}, $aws/things/T/jobs/J/{get,update}
[[nodiscard]] std::optional<request_topic> classify_request(std::string_view thing, std::string_view topic) noexcept;

struct response_topic {
    std::string_view request;  // the request topic it answers (a prefix of the topic)
    request_topic what;
    bool accepted = false;  // …/accepted; false: …/rejected
};
// Whether `topic` is a request topic of `thing` followed by /accepted or /rejected.
[[nodiscard]] std::optional<response_topic> classify_response(std::string_view thing, std::string_view topic) noexcept;

// The shadow whose `…/update/documents` topic `topic` is (classic or named), if it is one.
[[nodiscard]] std::optional<request_topic> classify_documents(std::string_view thing, std::string_view topic) noexcept;

// One top-level member of a JSON object's text: offsets into it.
struct member {
    std::size_t begin = 0;        // the key's opening quote
    std::size_t value_begin = 0;  // the value's first byte
    std::size_t value_end = 0;    // one past the value's last byte
};

// The top-level member whose key is written exactly `key` (no escapes) in `text`. Bounded and
// safe on any input (no recursion, every index checked); nullopt when `text` is not an object
// this scanner can read, or has no such member, or has it twice.
[[nodiscard]] std::optional<member> find_member(std::string_view text, std::string_view key) noexcept;

// `text` without member `m`, commas kept right.
[[nodiscard]] std::string without_member(std::string_view text, const member& m);
// `text` (a JSON object, or empty for {}) with `"key":raw_value` as its first member.
[[nodiscard]] std::string with_first_member(std::string_view text, std::string_view key, std::string_view raw_value);

// A request's payload, checked: a JSON object (empty counts as {}) of at most
// max_request_payload bytes and max_json_depth levels, with an optional clientToken that is a
// string of at most max_client_token bytes, written once, without escapes in its key.
struct request_check {
    std::string problem;          // empty: fine; else why not, for the app
    std::optional<member> token;  // the app's clientToken member
};
[[nodiscard]] request_check check_request(std::string_view payload);

// The request's payload as sent upstream: `token` (the daemon's) in place of the app's, or added.
[[nodiscard]] std::string with_token(std::string_view payload, const request_check& checked, std::string_view token);

// The daemon's token carried by an inbound payload: the value of its top-level clientToken when
// it has the daemon's form. Cheap on payloads without one.
struct token_in_payload {
    std::string_view token;  // "tmx-…" (a view into the payload)
    member where;
};
[[nodiscard]] std::optional<token_in_payload> find_daemon_token(std::string_view payload) noexcept;

// The payload with the app's clientToken (its JSON text as the app wrote it) put back in place of
// the daemon's, or the member removed when the app gave none.
[[nodiscard]] std::string restore_token(std::string_view payload, const member& where, const std::optional<std::string>& original);

// Makes the daemon's tokens: a keyed pseudo-random function (SipHash-2-4) of a counter, so they
// are unique (the table still checks) and, with a key from the OS's CSPRNG, unguessable.
class token_source {
public:
    using key_type = std::array<std::uint64_t, 2>;
    explicit token_source(key_type key) noexcept : key_(key) {}
    [[nodiscard]] std::string next();
    // 128 bits from std::random_device (getrandom(2) on Linux).
    [[nodiscard]] static key_type random_key();

private:
    key_type key_;
    std::uint64_t counter_ = 0;
};

// A request awaiting its answer.
struct pending_request {
    session_id session;
    std::optional<std::string> original;  // the app's clientToken as JSON text ("\"abc\""); none: it gave none
    std::string request_topic;
    time_point deadline;
};

// The requests awaiting their answer, by the daemon's token; and the tokens that ended lately
// (answered, timed out, cancelled, their session gone), so that a late or second message carrying
// one still has the app's token put back (and a late answer is known as ours).
class request_table {
public:
    static constexpr std::size_t remembered_ended = 4096;

    explicit request_table(token_source::key_type key = token_source::random_key()) : tokens_(key) {}

    // Registers a request; returns its token.
    std::string add(pending_request r);
    // Ends a request (answered, or its publish failed).
    std::optional<pending_request> take(std::string_view token);
    // The requests whose deadline is at or before `now`, ended, earliest first.
    struct expired {
        std::string token;
        pending_request request;
    };
    [[nodiscard]] std::vector<expired> expire(time_point now);
    // Ends the requests of a session that went away; returns how many.
    std::size_t forget(session_id s);

    [[nodiscard]] const pending_request* find(std::string_view token) const;
    // The app's token of a request that ended lately; null when unknown (or forgotten since).
    [[nodiscard]] const std::optional<std::string>* ended(std::string_view token) const;
    [[nodiscard]] std::size_t pending(session_id s) const;
    [[nodiscard]] std::size_t size() const noexcept { return pending_.size(); }
    [[nodiscard]] std::optional<time_point> next_deadline() const;

private:
    void remember(const std::string& token, std::optional<std::string> original);

    token_source tokens_;
    std::map<std::string, pending_request, std::less<>> pending_;
    std::multimap<time_point, std::string> deadlines_;
    std::map<session_id, std::size_t> per_session_;
    std::unordered_map<std::string, std::optional<std::string>> ended_;
    std::deque<std::string> ended_order_;  // oldest first
};

// The payload of the rejected answer the daemon makes for a request AWS did not answer in time.
[[nodiscard]] std::string timeout_payload(std::chrono::milliseconds waited, std::int64_t unix_seconds,
                                          const std::optional<std::string>& original);

}  // namespace thingmux::thing::services
