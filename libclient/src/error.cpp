#include "thingmux/error.hpp"
#include "thingmux/state.hpp"

#include "common/link_state.hpp"
#include "ipc/messages.hpp"

namespace thingmux {

namespace {

constexpr std::uint16_t first_library_code = 1000;

}  // namespace

const char* to_string(error_code code) noexcept {
    switch (code) {
        case error_code::daemon_unavailable: return "daemon_unavailable";
        case error_code::closed: return "closed";
        case error_code::backlog_full: return "backlog_full";
        case error_code::invalid_argument: return "invalid_argument";
        case error_code::timed_out: return "timed_out";
        case error_code::cancelled: return "cancelled";
        default: break;
    }
    const auto raw = static_cast<std::uint16_t>(code);
    if (raw >= first_library_code) {
        return "unknown";
    }
    // The protocol's values have the same numbers (error.hpp), so the codec's names apply.
    return ipc::to_string(static_cast<ipc::errc>(raw));
}

const char* describe(error_code code) noexcept {
    switch (code) {
        case error_code::not_connected: return "no connection to thingmuxd or to the broker";
        case error_code::daemon_unavailable: return "thingmuxd is not reachable";
        case error_code::closed: return "the client was closed";
        case error_code::backlog_full: return "too many requests waiting to be sent";
        case error_code::invalid_argument: return "invalid argument";
        case error_code::timed_out: return "timed out";
        case error_code::cancelled: return "cancelled";
        default: break;
    }
    const auto raw = static_cast<std::uint16_t>(code);
    if (raw >= first_library_code) {
        return "unknown error code";
    }
    return ipc::describe(static_cast<ipc::errc>(raw));
}

const char* to_string(daemon_state s) noexcept {
    switch (s) {
        case daemon_state::idle: return "idle";
        case daemon_state::connecting: return "connecting";
        case daemon_state::connected: return "connected";
        case daemon_state::unavailable: return "unavailable";
        case daemon_state::closed: return "closed";
    }
    return "unknown";
}

const char* to_string(uplink_state s) noexcept {
    // The same numbers as link_state (checked below); `unknown` and anything else is past its last.
    return link_state_name(static_cast<link_state>(s));
}

// The numbering promise of error.hpp, checked where both enums are visible.
static_assert(static_cast<int>(error_code::spooled) == static_cast<int>(ipc::errc::spooled));
static_assert(static_cast<int>(error_code::session_taken_over) == static_cast<int>(ipc::errc::session_taken_over));
static_assert(static_cast<int>(error_code::invalid_payload) == static_cast<int>(ipc::errc::invalid_payload));
static_assert(static_cast<int>(error_code::session_closed) == static_cast<int>(ipc::errc::session_closed));
static_assert(static_cast<int>(error_code::internal_error) == static_cast<int>(ipc::errc::internal_error));
static_assert(static_cast<int>(uplink_state::connecting) == static_cast<int>(link_state::connecting));
static_assert(static_cast<int>(uplink_state::connected) == static_cast<int>(link_state::connected));
static_assert(static_cast<int>(uplink_state::backing_off) == static_cast<int>(link_state::backing_off));
static_assert(static_cast<int>(uplink_state::failed) == static_cast<int>(link_state::failed));
static_assert(static_cast<int>(uplink_state::stopped) == static_cast<int>(link_state::stopped));
static_assert(static_cast<int>(uplink_state::unknown) > static_cast<int>(last_link_state));

}  // namespace thingmux
