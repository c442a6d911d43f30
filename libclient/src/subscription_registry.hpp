// The app's subscriptions as the library holds them: filter -> handler and QoS, which of them the
// daemon accepted (and so are subscribed again after a reconnect), and which handlers a message
// goes to.
//
// Pure: no socket, no thread, no lock. The core's loop owns it and calls the handlers itself.
#pragma once

#include "thingmux/client.hpp"

#include "request_table.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::detail {

class subscription_registry {
public:
    using handler_ptr = std::shared_ptr<const message_handler>;

    // Registers `handler` and `qos` for `filter`, replacing what the filter had. The entry is
    // not active until settle() says the daemon accepted it. The returned reference names this
    // entry, not a later one for the same filter.
    [[nodiscard]] subscription_ref add(std::string filter, std::uint8_t qos, message_handler handler);
    // Removes the filter's entry, whichever request made it: no dispatch to its handler from now on.
    void remove(std::string_view filter);
    // Removes the entry `ref` names if it is still the filter's current one (its subscribe failed
    // or was refused before it was sent). True if it was removed.
    bool forget(const subscription_ref& ref);
    // The daemon's answer for `ref`: accepted makes the entry active; refused removes it, since
    // the daemon does not hold a refused filter (IPC-29). True if `ref` is still the current
    // entry (otherwise nothing changes: a newer subscribe or an unsubscribe came since).
    bool settle(const subscription_ref& ref, bool accepted);
    void clear() noexcept { entries_.clear(); }

    // The handlers of every filter matching `topic`, in filter order (IPC-31: one frame per
    // message, each matching handler gets it).
    [[nodiscard]] std::vector<handler_ptr> handlers_for(std::string_view topic) const;
    // Requests that subscribe again to every active filter after a reconnect, in as few frames
    // of at most `max_frame` bytes as fit.
    [[nodiscard]] std::vector<request> resubscribe_requests(std::size_t max_frame) const;

    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
    [[nodiscard]] bool holds(std::string_view filter) const { return entries_.find(filter) != entries_.end(); }
    [[nodiscard]] bool active(std::string_view filter) const;

private:
    struct entry {
        handler_ptr handler;
        std::uint8_t qos = 0;
        std::uint64_t generation = 0;  // new for every add(), so a late answer finds the entry replaced
        bool active = false;           // the daemon accepted it on this or an earlier connection
    };
    [[nodiscard]] std::map<std::string, entry, std::less<>>::iterator find_current(const subscription_ref& ref);

    std::map<std::string, entry, std::less<>> entries_;  // ordered: dispatch and resubscribe in filter order
    std::uint64_t next_generation_ = 1;
};

}  // namespace thingmux::detail
