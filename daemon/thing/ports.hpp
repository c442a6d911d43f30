// What a Thing's pipeline talks to, as interfaces: the Thing's connection to the broker
// (`upstream`), the time and its wake-ups (`clock`), and the local sessions of apps
// (`local_session`: an IPC client, a D-Bus caller, the local MQTT face's clients).
//
// thingmuxd implements them over the uplink, Asio timers and its front ends; the pipeline's unit
// tests implement them with a scripted upstream, a hand-moved clock and recording sessions, so
// that every rule of the pipeline is tested with no broker and no socket.
#pragma once

#include "config/authorization.hpp"
#include "daemon/thing/subscription_table.hpp"
#include "daemon/logging.hpp"
#include "daemon/mqtt/packet.hpp"
#include "daemon/mqtt/session.hpp"
#include "ipc/messages.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeindex>
#include <vector>

#include <sys/types.h>

namespace thingmux::thing {


using clock_type = std::chrono::steady_clock;

// The Thing's MQTT connection as the pipeline uses it. A publish's result comes back through
// pipeline::on_published() with the publish's `tag` (publish_done::tag), from inside the call when
// it is refused at once; a subscribe's through its callback. Events the other way are the
// pipeline's on_…() methods too.
class upstream {
public:
    using subscribe_done = std::function<void(const std::vector<std::uint8_t>& reason_codes)>;
    virtual ~upstream() = default;
    virtual void publish(mqtt::publish&& msg, std::uint64_t tag) = 0;
    virtual void subscribe(std::vector<mqtt::subscription> filters, subscribe_done done) = 0;
    virtual void unsubscribe(std::vector<std::string> filters) = 0;
    // An inbound QoS 1 message every local recipient has: the broker may forget it.
    virtual void acknowledge(const mqtt::inbound_ticket& ticket) = 0;
};

// The time, and the pipeline's one wake-up: wake_at(t) asks for one call of pipeline::on_timer()
// at or after t (an earlier request wins; the pipeline asks again for what is still due).
class clock {
public:
    virtual ~clock() = default;
    [[nodiscard]] virtual clock_type::time_point now() const = 0;
    virtual void wake_at(clock_type::time_point when) = 0;
};

// One inbound message on its way to the local sessions it matched. A front end encodes it once
// per delivered QoS in its own format and shares the result between its sessions: encoded<T>()
// keeps one T per (type, QoS) for the life of this delivery.
class inbound_message {
public:
    explicit inbound_message(const mqtt::publish& m) noexcept : msg(m) {}
    const mqtt::publish& msg;
    // The shared subscription ("$share/NAME/FILTER") the session gets it for, while the pipeline
    // hands it to one member of that group; empty for a plain subscription.
    std::string_view share;

    template <class T, class Make>
    std::shared_ptr<const T> encoded(std::uint8_t qos, Make&& make) {
        for (const auto& e : cache_)
            if (e.qos == qos && e.type == std::type_index(typeid(T))) return std::static_pointer_cast<const T>(e.value);
        std::shared_ptr<const T> made = make();
        cache_.push_back({std::type_index(typeid(T)), qos, made});
        return made;
    }

private:
    struct entry {
        std::type_index type;
        std::uint8_t qos;
        std::shared_ptr<const void> value;
    };
    std::vector<entry> cache_;
};

// A message of a shared subscription that a session took and its app never acknowledged: when
// the session ends, it goes to another member of the group (MQTT 5 section 4.8.2).
struct shared_leftover {
    std::string share;  // "$share/NAME/FILTER"
    mqtt::publish msg;  // at the QoS it was delivered with
};

// Rate limit for logging one requester's denied requests: one line per second.
struct denial_log : logging::rate_limiter {
    denial_log() noexcept : rate_limiter(1, std::chrono::seconds(1)) {}
};

// Who is behind a session, as the metrics count it per app (daemon/metrics/app_counters.hpp):
// the kernel's word on its uid and systemd unit. Sessions of thingmuxd's own services have none.
struct session_owner {
    std::optional<uid_t> uid;
    std::string unit;
};

class local_session;

// Hears the outcome of every publish a session asked for, and of waits in the publish shaper,
// for the per-app metrics. Called on the pipeline's thread, inside the pipeline: it must not
// call back into it.
class publish_observer {
public:
    // `bytes`: the publish's topic + payload; `result`: what the session was answered.
    virtual void publish_result(std::string_view thing, const local_session& s, const ipc::result& result,
                                std::size_t bytes) = 0;
    // A publish of `s` had to wait in the shaper for the Thing's rate limits.
    virtual void throttled(std::string_view thing, const local_session& s) = 0;

protected:
    ~publish_observer() = default;
};

// One local party of a Thing: who it is, what it may do, and where its results and messages go.
// The pipeline holds a session (shared) while it owes it an answer, so a session that went away
// still gets its results; it just drops them.
class local_session {
public:
    virtual ~local_session() = default;
    // Its queue in the Thing's shapers; D-Bus callers share one.
    [[nodiscard]] virtual session_id flow() const = 0;
    // For log lines and refusals: "client 7 ('sensor', uid 1000 unit sensor.service)".
    [[nodiscard]] virtual std::string describe() const = 0;
    // The peer alone, as the app rules name it: "uid 1000 unit sensor.service".
    [[nodiscard]] virtual std::string peer_description() const = 0;
    [[nodiscard]] virtual const config::grants& rights() const = 0;
    [[nodiscard]] virtual denial_log& denials() = 0;
    // Its uid and unit for the per-app metrics; none for thingmuxd's own sessions.
    [[nodiscard]] virtual session_owner owner() const { return {}; }

    virtual void publish_done(std::uint32_t request_id, ipc::result outcome) = 0;
    virtual void subscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) = 0;
    // A subscribe that asked to be answered at registration (IPC-61): each filter's outcome once
    // the pipeline registered it, before subscribe_done() brings the final ones. Front ends
    // without that answer (MQTT, D-Bus) ignore it.
    virtual void subscribe_registered(std::uint32_t /*request_id*/, std::vector<ipc::result> /*outcomes*/) {}
    virtual void unsubscribe_done(std::uint32_t request_id, std::vector<ipc::result> outcomes) = 0;
    // An inbound message this session subscribed to (at `qos`). False when the session could not
    // take it (cut off, closed).
    virtual bool deliver(inbound_message& m, std::uint8_t qos) = 0;
    // The Thing's connection changed state.
    virtual void link_changed(const ipc::state& s) = 0;

    // Shared subscriptions ("$share/NAME/FILTER"): whether the front end can take them (it must
    // hand each delivery to the app as that subscription's, not by topic), whether its app is
    // there now (a session kept for an app that is away gets a group's message only when no
    // member that is there takes it), and what it took of them and its app never acknowledged
    // (taken out of it when it ends, for the other members).
    [[nodiscard]] virtual bool takes_shared_subscriptions() const { return false; }
    [[nodiscard]] virtual bool connected() const { return true; }
    [[nodiscard]] virtual std::vector<shared_leftover> take_shared_leftovers() { return {}; }
};

}  // namespace thingmux::thing
