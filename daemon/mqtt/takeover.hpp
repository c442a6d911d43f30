// Tells a client-ID takeover (another connection using our client ID) apart from the other ways
// a session ends early. Pure: the owner reports attempts, sessions and how they ended, with the
// current time.
//
// A takeover is what the broker says it is (MQTT 5 DISCONNECT 0x8E, "session taken over"), or,
// where the broker cannot say so (MQTT 3.1.1 just closes the connection), `threshold` sessions in
// a row that the broker closed within `stable_after` of accepting them, each followed by a
// reconnect that succeeded at its first attempt. An end with a cause of its own (an error of
// ours, a DISCONNECT with another reason, a dead link, a TLS error, a publish the broker keeps
// refusing) is no takeover and breaks the row; so does a reconnect that needed several attempts
// (the broker was away: restarting, or out of reach).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace thingmux::mqtt {

class takeover_detector {
public:
    using time_point = std::chrono::steady_clock::time_point;

    struct config {
        unsigned threshold = 3;                        // sessions in a row
        std::chrono::milliseconds stable_after{10'000};  // a session this old ends any row
    };

    enum class end_kind : std::uint8_t {
        taken_over,  // the broker said so (DISCONNECT 0x8E)
        closed,      // the broker closed the connection and gave no reason
        explained,   // anything with a cause of its own (see above)
    };

    explicit takeover_detector(config cfg) : cfg_(cfg) {}

    // A connection attempt starts.
    void on_attempt() noexcept { ++attempts_; }
    // The broker accepted the session (CONNACK success).
    void on_connected(time_point now) noexcept;
    // The session ended (an attempt that never got a session is not reported here). True when
    // this end makes a takeover.
    [[nodiscard]] bool on_end(time_point now, end_kind kind) noexcept;
    // Sessions in the current row (for the report).
    [[nodiscard]] unsigned row() const noexcept { return row_; }
    // Forget the row (the settings changed).
    void reset() noexcept { row_ = 0; }
    void reconfigure(config cfg) noexcept { cfg_ = cfg; }
    [[nodiscard]] const config& settings() const noexcept { return cfg_; }

private:
    config cfg_;
    std::optional<time_point> connected_at_;
    unsigned attempts_ = 0;  // since the last session ended
    unsigned row_ = 0;
};

}  // namespace thingmux::mqtt
