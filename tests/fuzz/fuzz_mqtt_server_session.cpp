// libFuzzer target for the MQTT server session (daemon/mqtt/server_session.hpp): arbitrary bytes
// from a local client, with an owner that answers every request at once.
//
// Input: one selector byte, then the byte stream of the client.
//   bits 0-1: chunk size the stream is fed in (all at once, 1, 7, 61 bytes)
//   bit 2:    small limits, and nothing optional offered (retain, wildcards, shared subscriptions,
//             subscription identifiers), instead of the defaults with everything offered
//   bit 3:    the owner refuses the CONNECT (not authorized) instead of accepting it
//   bit 4:    the owner refuses QoS 1/2 publishes with odd packet identifiers
//   bit 5:    a delivery (QoS 0, 1, 2 in turn, on one of three topics in turn) after each chunk
//   bits 6-7: time passing after each chunk (0, 1 s, 10 s, 100 s), then on_tick()
// Besides the sanitizers' findings, the target aborts when a property of the session breaks:
//   - what it sends decodes, whole, as packets a server sends, in the connection's version;
//   - a Topic Alias it sends is within the client's Topic Alias Maximum and the server's, and
//     one sent with an empty topic name was set on this connection before;
//   - a publish request carries a valid topic name, never a topic alias;
//   - the state it holds stays within the limits (Receive Maximum, Topic Alias Maximum, the
//     delivery window, the queue's bytes);
//   - `ended` comes once, followed by nothing but `close`, and nothing comes after it.
// Seeds: tests/fuzz/corpus/mqtt_server_session/.
#include "daemon/mqtt/codec.hpp"
#include "daemon/mqtt/server_session.hpp"
#include "daemon/mqtt/topic.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace {

using namespace thingmux::mqtt;
using namespace std::chrono_literals;

void require(bool condition) {
    if (!condition) std::abort();
}

constexpr std::array<std::size_t, 4> chunk_sizes{0, 1, 7, 61};  // 0: all at once
constexpr std::array<std::chrono::seconds, 4> steps{0s, 1s, 10s, 100s};
// Three topics in turn for two aliases (small limits): aliases are set, used and reused.
const std::array<std::string, 3> topics{"cmd/gw", "cmd/gw/b", "cmd/gw/c"};

server_settings settings_for(bool small) {
    server_settings s;
    if (small) {
        s.max_packet_size = 256;
        s.receive_maximum = 4;
        s.topic_alias_maximum = 2;
        s.max_outbound_topic_aliases = 2;
        s.max_inflight_deliveries = 2;
        s.max_queued_bytes = 512;
        s.max_client_id_length = 8;
        s.max_keep_alive = 5;
        s.connect_timeout = 3s;
        s.retain_available = false;
        s.wildcard_subscriptions_available = false;
    } else {
        s.shared_subscriptions_available = true;
        s.subscription_identifiers_available = true;
    }
    return s;
}

bool sent_by_a_server(const packet& p) {
    switch (type_of(p)) {
        case packet_type::connack:
        case packet_type::publish:
        case packet_type::puback:
        case packet_type::pubrec:
        case packet_type::pubcomp:
        case packet_type::suback:
        case packet_type::unsuback:
        case packet_type::pingresp:
        case packet_type::disconnect:
            return true;
        default:
            return false;
    }
}

class owner {
public:
    owner(std::uint8_t selector, time_point start)
        : settings_(settings_for((selector & 0x04U) != 0)),
          refuse_connect_((selector & 0x08U) != 0),
          refuse_odd_publishes_((selector & 0x10U) != 0),
          session_(settings_, start) {}

    server_session& session() { return session_; }

    // Drains and answers until the session has nothing more to say, checking each action.
    void settle(time_point now) {
        std::vector<server_session_action> actions;
        for (session_.drain_actions(actions); !actions.empty(); session_.drain_actions(actions)) {
            for (auto& a : actions) check_and_answer(a, now);
        }
        check_limits();
    }

private:
    void check_and_answer(server_session_action& a, time_point now) {
        if (ended_) {  // only the close that follows ended
            require(std::holds_alternative<server_action::close>(a) && !closed_);
            closed_ = true;
            return;
        }
        if (auto* out = std::get_if<server_action::send>(&a)) {
            require(!out->bytes.empty());
            std::span<const std::uint8_t> rest{out->bytes};
            while (!rest.empty()) {
                const auto r = decode(rest, session_.version());
                const auto* d = std::get_if<decoded>(&r);
                require(d != nullptr && sent_by_a_server(d->packet));
                if (const auto* m = std::get_if<publish>(&d->packet)) check_topic_alias(*m);
                rest = rest.subspan(d->consumed);
            }
        } else if (std::holds_alternative<server_action::close>(a)) {
            std::abort();  // close only ever follows ended
        } else if (const auto* c = std::get_if<server_action::connect_request>(&a)) {
            client_topic_alias_maximum_ = c->packet.props.topic_alias_maximum.value_or(0);
            if (refuse_connect_) {
                session_.refuse(reason::not_authorized, "refused", now);
            } else {
                session_.accept(
                    true, c->packet.client_id.empty() ? std::optional<std::string>{"assigned"} : std::nullopt, now);
            }
        } else if (const auto* p = std::get_if<server_action::publish_request>(&a)) {
            require(valid_topic_name(p->msg.topic) && !p->msg.props.topic_alias);
            if (p->msg.qos != qos::at_most_once) {
                const bool refuse = refuse_odd_publishes_ && p->msg.packet_id % 2 == 1;
                session_.publish_done(p->msg.packet_id, refuse ? reason::not_authorized : reason::success,
                                      refuse ? "odd" : "", now);
            }
        } else if (const auto* s = std::get_if<server_action::subscribe_request>(&a)) {
            std::vector<std::uint8_t> codes;
            for (const auto& sub : s->packet.subscriptions) codes.push_back(static_cast<std::uint8_t>(sub.max_qos));
            session_.subscribe_done(s->packet.packet_id, std::move(codes), now);
        } else if (const auto* u = std::get_if<server_action::unsubscribe_request>(&a)) {
            session_.unsubscribe_done(u->packet.packet_id,
                                      std::vector<std::uint8_t>(u->packet.filters.size(), reason::success), now);
        } else if (std::holds_alternative<server_action::ended>(a)) {
            ended_ = true;
            require(session_.state() == server_state::ended);
        }
    }

    // As the client sees it (spec 3.3.2.3.4).
    void check_topic_alias(const publish& m) {
        if (!m.props.topic_alias) return require(!m.topic.empty());
        const auto alias = *m.props.topic_alias;
        require(alias != 0 && alias <= client_topic_alias_maximum_ && alias <= settings_.max_outbound_topic_aliases);
        if (!m.topic.empty()) {
            client_aliases_.insert_or_assign(alias, m.topic);
            return;
        }
        require(client_aliases_.contains(alias));
    }

    void check_limits() const {
        require(session_.pending_publishes() + session_.awaiting_release() <= settings_.receive_maximum);
        require(session_.pending_filter_requests() <= settings_.receive_maximum);
        require(session_.topic_aliases() <= settings_.topic_alias_maximum);
        require(session_.server_topic_aliases() <=
                std::min(client_topic_alias_maximum_, settings_.max_outbound_topic_aliases));
        require(session_.inflight_deliveries() <= settings_.max_inflight_deliveries);
        require(session_.queued_bytes() <= settings_.max_queued_bytes);
        require(ended_ == (session_.state() == server_state::ended));
    }

    server_settings settings_;
    bool refuse_connect_;
    bool refuse_odd_publishes_;
    server_session session_;
    bool ended_ = false;
    bool closed_ = false;
    std::uint16_t client_topic_alias_maximum_ = 0;
    std::map<std::uint16_t, std::string> client_aliases_;  // the client's mapping
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t selector = data[0];
    std::span<const std::uint8_t> rest(data + 1, size - 1);
    const std::size_t chunk =
        chunk_sizes[selector & 3U] == 0 ? std::max<std::size_t>(rest.size(), 1) : chunk_sizes[selector & 3U];
    const bool deliver = (selector & 0x20U) != 0;
    const auto step = steps[(selector >> 6U) & 3U];

    time_point now{};
    owner o{selector, now};
    auto& s = o.session();
    std::uint64_t tag = 0;
    while (!rest.empty()) {
        const auto piece = rest.first(std::min(chunk, rest.size()));
        rest = rest.subspan(piece.size());
        s.on_bytes(piece, now);
        o.settle(now);
        if (deliver) {
            thingmux::mqtt::publish msg;
            msg.topic = topics[(tag / 2) % topics.size()];
            msg.payload = "x";
            static_cast<void>(s.deliver(msg, static_cast<std::uint8_t>(tag % 3), tag, now));
            ++tag;
            o.settle(now);
        }
        now += step;
        s.on_tick(now);
        o.settle(now);
    }
    s.on_transport_closed(now);
    o.settle(now);
    require(s.state() == server_state::ended && !s.next_deadline());
    return 0;
}
