// The server session's inbound side: packets from a connected client and the owner's answers to
// the requests they raise (server_session.hpp).
#include "daemon/mqtt/server_session.hpp"

#include "common/printable.hpp"
#include "daemon/mqtt/topic.hpp"

#include <cassert>
#include <utility>

namespace thingmux::mqtt {
namespace {

// Bytes of the client's own DISCONNECT Reason String kept for the log.
constexpr std::size_t max_client_reason_bytes = 200;

std::string packet_id_text(std::uint16_t id) {
    return "packet identifier " + std::to_string(id);
}

}  // namespace

void server_session::handle(packet& p) {
    switch (type_of(p)) {
        case packet_type::publish:
            return on_publish(std::get<mqtt::publish>(p));
        case packet_type::puback:
            return on_puback(std::get<puback>(p));
        case packet_type::pubrel:
            return on_pubrel(std::get<pubrel>(p));
        case packet_type::subscribe:
            return on_subscribe(std::get<mqtt::subscribe>(p));
        case packet_type::unsubscribe:
            return on_unsubscribe(std::get<mqtt::unsubscribe>(p));
        case packet_type::pingreq:
            return send(pingresp{});
        case packet_type::disconnect:
            return on_disconnect(std::get<mqtt::disconnect>(p));
        case packet_type::connect:
            return violation(reason::protocol_error, "a second CONNECT");  // spec 3.1.0-2
        case packet_type::auth:  // enhanced authentication was not negotiated (spec 4.12)
            return violation(reason::protocol_error, "AUTH without enhanced authentication");
        default:  // CONNACK, SUBACK, UNSUBACK, PINGRESP; PUBREC and PUBCOMP: QoS 2 is never sent to a client
            return violation(reason::protocol_error, std::string{to_string(type_of(p))} + " from a client");
    }
}

// --- PUBLISH ---

void server_session::on_publish(mqtt::publish& p) {
    if (!p.props.subscription_identifiers.empty())  // spec 3.3.4-6
        return violation(reason::protocol_error, "PUBLISH from a client carries a Subscription Identifier");
    if (p.retain && !settings_.retain_available)  // spec 3.3.1.3
        return violation(reason::retain_not_supported, "retained PUBLISH while retained messages are not available");
    if (!resolve_topic_alias(p)) return;
    if (p.qos == qos::at_most_once) return emit(server_action::publish_request{std::move(p)});

    const auto id = p.packet_id;
    if (const auto it = inbound_pending_.find(id); it != inbound_pending_.end()) {
        // A repeat of a publish not decided yet: answered once, when it is.
        if (it->second == p.qos) return;
        return violation(reason::protocol_error, packet_id_text(id) + " of a pending PUBLISH is reused at another QoS");
    }
    if (awaiting_pubrel_.contains(id)) {
        // Spec 4.3.3: until PUBREL, a repeat gets PUBREC again and is not delivered twice.
        if (p.qos == qos::exactly_once) return send(pubrec{id, reason::success, {}});
        return violation(reason::protocol_error, packet_id_text(id) + " awaiting PUBREL is reused at QoS 1");
    }
    // Spec 3.3.4: QoS 1 and 2 publishes without PUBACK / PUBCOMP yet, at most Receive Maximum.
    if (inbound_pending_.size() + awaiting_pubrel_.size() >= settings_.receive_maximum)
        return violation(reason::receive_maximum_exceeded,
                         "more than " + std::to_string(settings_.receive_maximum) +
                             " QoS 1 and 2 publishes awaiting their answer (Receive Maximum)");
    inbound_pending_.emplace(id, p.qos);
    emit(server_action::publish_request{std::move(p)});
}

// MQTT 3.1.1 cannot be told Receive Maximum: a new QoS 1/2 publish that would exceed it waits
// until publish_done() frees a slot. Only while some of the flows await publish_done(): flows
// awaiting the client's PUBREL that fill Receive Maximum mean a client that keeps more QoS 2
// flows open than it could be allowed, and on_publish() ends the connection (its PUBRELs may be
// behind the held publish, so waiting could last forever). MQTT 5 clients know the limit.
bool server_session::must_hold(const packet& p) const noexcept {
    const auto* m = std::get_if<mqtt::publish>(&p);
    return version_ == protocol_version::v311 && m != nullptr && m->qos != qos::at_most_once &&
           !inbound_pending_.contains(m->packet_id) && !awaiting_pubrel_.contains(m->packet_id) &&
           awaiting_pubrel_.size() < settings_.receive_maximum &&
           inbound_pending_.size() + awaiting_pubrel_.size() >= settings_.receive_maximum;
}

// Spec 3.3.2.3.4: a topic alias is set by a PUBLISH with a topic and used by one without; the
// request always carries the topic, never the alias.
bool server_session::resolve_topic_alias(mqtt::publish& p) {
    if (!p.props.topic_alias) return true;
    const auto alias = *p.props.topic_alias;
    p.props.topic_alias.reset();
    if (alias > settings_.topic_alias_maximum) {  // 0 was refused by the decoder with the same code
        violation(reason::topic_alias_invalid, "Topic Alias " + std::to_string(alias) +
                                                   " is above the Topic Alias Maximum of " +
                                                   std::to_string(settings_.topic_alias_maximum));
        return false;
    }
    if (!p.topic.empty()) {
        topic_aliases_.insert_or_assign(alias, p.topic);
        return true;
    }
    const auto it = topic_aliases_.find(alias);
    if (it == topic_aliases_.end()) {
        violation(reason::protocol_error, "Topic Alias " + std::to_string(alias) + " is used before it was set");
        return false;
    }
    p.topic = it->second;
    return true;
}

void server_session::publish_done(std::uint16_t packet_id, std::uint8_t reason_code, std::string reason_string,
                                  time_point now) {
    now_ = now;
    const auto it = inbound_pending_.find(packet_id);
    if (state_ != server_state::online || it == inbound_pending_.end()) return;
    const qos q = it->second;
    inbound_pending_.erase(it);
    const auto type = q == qos::at_least_once ? packet_type::puback : packet_type::pubrec;
    properties props;
    if (version_ == protocol_version::v5) {
        if (!reason_code_allowed(type, reason_code))
            reason_code = reason_code >= 0x80 ? reason::unspecified_error : reason::success;
        if (problem_information() && !reason_string.empty()) props.reason_string = std::move(reason_string);
    } else if (reason_code >= 0x80) {
        // MQTT 3.1.1 has no negative PUBACK / PUBREC: closing is the only honest answer.
        return end(server_end::publish_refused, reason_code,
                   reason_string.empty() ? std::string{mqtt::reason_string(reason_code)} : std::move(reason_string),
                   true);
    }
    if (q == qos::at_least_once) {
        send(puback{packet_id, reason_code, std::move(props)});
    } else {
        if (reason_code < 0x80) awaiting_pubrel_.insert(packet_id);  // a refusal ends the flow (spec 4.3.3)
        send(pubrec{packet_id, reason_code, std::move(props)});
    }
    if (holding_) process_received();  // a slot may be free for the held publish
}

void server_session::on_pubrel(const pubrel& r) {
    if (awaiting_pubrel_.erase(r.packet_id) != 0) return send(pubcomp{r.packet_id, reason::success, {}});
    if (inbound_pending_.contains(r.packet_id))
        return violation(reason::protocol_error, "PUBREL for " + packet_id_text(r.packet_id) + " before its PUBREC");
    // Not known (e.g. a PUBREL sent again after its PUBCOMP): answered all the same (spec 4.3.3).
    const auto code = version_ == protocol_version::v5 ? reason::packet_identifier_not_found : reason::success;
    send(pubcomp{r.packet_id, code, {}});
}

// --- SUBSCRIBE / UNSUBSCRIBE ---

void server_session::on_subscribe(mqtt::subscribe& s) {
    if (!s.props.subscription_identifiers.empty() && !settings_.subscription_identifiers_available)
        return violation(reason::subscription_identifiers_not_supported,  // spec 3.8.2.1.2
                         "SUBSCRIBE carries a Subscription Identifier, which is not available");
    if (!start_filter_request(s.packet_id)) return;
    const bool v5 = version_ == protocol_version::v5;
    filter_request req{false, {}, 0};
    mqtt::subscribe raised{s.packet_id, {}, std::move(s.props)};
    for (auto& sub : s.subscriptions) {
        // What the CONNACK said is not offered is refused here, per filter (spec 3.8.4).
        if (topic::is_shared(sub.filter) && !settings_.shared_subscriptions_available) {
            req.codes.emplace_back(v5 ? reason::shared_subscriptions_not_supported : reason::suback_failure_v311);
        } else if (has_wildcard(sub.filter) && !settings_.wildcard_subscriptions_available) {
            req.codes.emplace_back(v5 ? reason::wildcard_subscriptions_not_supported : reason::suback_failure_v311);
        } else {
            req.codes.emplace_back(std::nullopt);
            raised.subscriptions.push_back(std::move(sub));
        }
    }
    req.raised = raised.subscriptions.size();
    filter_requests_.emplace(s.packet_id, std::move(req));
    if (raised.subscriptions.empty()) return answer_filter_request(s.packet_id, {}, false);
    emit(server_action::subscribe_request{std::move(raised)});
}

void server_session::on_unsubscribe(mqtt::unsubscribe& u) {
    if (!start_filter_request(u.packet_id)) return;
    filter_requests_.emplace(
        u.packet_id,
        filter_request{true, std::vector<std::optional<std::uint8_t>>(u.filters.size()), u.filters.size()});
    emit(server_action::unsubscribe_request{std::move(u)});
}

// Whether a SUBSCRIBE / UNSUBSCRIBE with `packet_id` may be raised; ends the connection if not.
bool server_session::start_filter_request(std::uint16_t packet_id) {
    if (filter_requests_.contains(packet_id)) {
        // Spec 2.2.1: an identifier is reused only once its answer came (0x91 is for acks only).
        violation(reason::protocol_error, packet_id_text(packet_id) + " of an unanswered request is reused");
        return false;
    }
    // Not bounded by the specification; bounded here like publishes, so a client that never
    // waits for SUBACK cannot pile up requests.
    if (filter_requests_.size() >= settings_.receive_maximum) {
        violation(reason::quota_exceeded, "more than " + std::to_string(settings_.receive_maximum) +
                                              " SUBSCRIBE and UNSUBSCRIBE requests awaiting their answer");
        return false;
    }
    return true;
}

void server_session::subscribe_done(std::uint16_t packet_id, std::vector<std::uint8_t> reason_codes, time_point now) {
    now_ = now;
    answer_filter_request(packet_id, std::move(reason_codes), false);
}

void server_session::unsubscribe_done(std::uint16_t packet_id, std::vector<std::uint8_t> reason_codes, time_point now) {
    now_ = now;
    answer_filter_request(packet_id, std::move(reason_codes), true);
}

void server_session::answer_filter_request(std::uint16_t packet_id, std::vector<std::uint8_t> reason_codes,
                                           bool unsubscribe) {
    const auto it = filter_requests_.find(packet_id);
    if (state_ != server_state::online || it == filter_requests_.end() || it->second.unsubscribe != unsubscribe) return;
    const bool v5 = version_ == protocol_version::v5;
    auto& req = it->second;
    // One code per raised filter is the owner's contract (MQTT 3.1.1 UNSUBACK has none to give).
    assert(reason_codes.size() == req.raised || (unsubscribe && !v5));
    reason_codes.resize(req.raised, reason::unspecified_error);
    const auto type = unsubscribe ? packet_type::unsuback : packet_type::suback;
    std::vector<std::uint8_t> codes;
    codes.reserve(req.codes.size());
    auto owners = reason_codes.begin();
    for (const auto& own : req.codes) {
        const std::uint8_t code = own ? *own : *owners++;
        const bool valid = v5 ? reason_code_allowed(type, code) : code <= reason::granted_qos_2;
        codes.push_back(valid ? code : reason::unspecified_error);  // 0x80 is also 3.1.1's failure
    }
    filter_requests_.erase(it);
    if (!unsubscribe) return send(suback{packet_id, std::move(codes), {}});
    if (!v5) codes.clear();  // MQTT 3.1.1 UNSUBACK has no payload
    send(unsuback{packet_id, std::move(codes), {}});
}

// --- DISCONNECT ---

void server_session::on_disconnect(const mqtt::disconnect& d) {
    if (client_props_.session_expiry_interval.value_or(0) == 0 && d.props.session_expiry_interval.value_or(0) != 0)
        return violation(reason::protocol_error,  // spec 3.14.2.2.2
                         "DISCONNECT sets a Session Expiry Interval after CONNECT set none");
    disconnect_session_expiry_ = d.props.session_expiry_interval;
    std::string text = std::string{"DISCONNECT from the client: "} +
                       (d.reason_code == reason::success ? "normal disconnection" : mqtt::reason_string(d.reason_code));
    if (d.props.reason_string)
        text += "; its reason: '" + text::printable(*d.props.reason_string, max_client_reason_bytes) + "'";
    // Spec 3.1.2.5, 3.14.4: only a normal disconnection (0x00) discards the will.
    end(server_end::client_disconnect, d.reason_code, std::move(text), d.reason_code != reason::success);
}

}  // namespace thingmux::mqtt
