#include "daemon/mqtt/server_session.hpp"

#include <algorithm>
#include <cassert>
#include <string_view>
#include <utility>

// The server session's connection: CONNECT and its answer, time, the end, sending. Its other
// parts: server_session_inbound.cpp (packets from a connected client), server_session_outbound.cpp
// (deliveries).

namespace thingmux::mqtt {
namespace {

// The protocol level of a CONNECT the decoder refused because of that level: the packet names
// the protocol "MQTT" (3.1.1, 5) or "MQIsdp" (3.1) and carries a level other than 4 and 5.
// `bytes` hold the whole packet (the decoder looks at a CONNECT only once all of it is there).
std::optional<std::uint8_t> unsupported_protocol_level(std::span<const std::uint8_t> bytes) {
    if (bytes.empty() || bytes[0] != 0x10) return std::nullopt;
    std::size_t pos = 1;  // past the remaining length, which the decoder checked
    while (pos < bytes.size() && pos < 4 && (bytes[pos] & 0x80U) != 0) ++pos;
    const auto body = bytes.subspan(std::min(pos + 1, bytes.size()));
    for (const std::string_view name : {std::string_view{"MQTT"}, std::string_view{"MQIsdp"}}) {
        if (body.size() < 3 + name.size() || body[0] != 0 || body[1] != name.size() ||
            !std::equal(name.begin(), name.end(), body.begin() + 2))
            continue;
        const std::uint8_t level = body[2 + name.size()];
        if (level != 4 && level != 5) return level;
    }
    return std::nullopt;
}

std::string milliseconds_text(std::chrono::milliseconds d) {
    return std::to_string(d.count()) + " ms";
}

std::chrono::milliseconds dead_after(std::chrono::seconds keep_alive) {
    return std::chrono::milliseconds{keep_alive} * 3 / 2;
}

}  // namespace

const char* to_string(server_end e) noexcept {
    switch (e) {
        case server_end::client_disconnect:
            return "client disconnected";
        case server_end::closed:
            return "connection closed";
        case server_end::protocol_error:
            return "protocol error";
        case server_end::keep_alive_timeout:
            return "keep-alive timeout";
        case server_end::connect_timeout:
            return "no CONNECT in time";
        case server_end::refused:
            return "CONNECT refused";
        case server_end::publish_refused:
            return "publish refused";
        case server_end::server:
            return "ended by the server";
    }
    return "unknown";
}

server_session::server_session(server_settings settings, time_point now) : settings_(std::move(settings)), now_(now) {
    // Zero would refuse every QoS 1/2 publish or stall every delivery; the Maximum Packet Size
    // announced is at most what MQTT can express.
    settings_.receive_maximum = std::max<std::uint16_t>(settings_.receive_maximum, 1);
    settings_.max_inflight_deliveries = std::max<std::uint16_t>(settings_.max_inflight_deliveries, 1);
    settings_.max_packet_size = std::clamp<std::size_t>(settings_.max_packet_size, 2, max_mqtt_packet_size);
    connect_deadline_ = now + settings_.connect_timeout;
}

// --- transport events ---

void server_session::on_bytes(std::span<const std::uint8_t> bytes, time_point now) {
    now_ = now;
    if (state_ == server_state::ended) return;
    rx_.insert(rx_.end(), bytes.begin(), bytes.end());
    if (!reading_paused()) process_received();
    // What follows CONNECT waits for the owner's decision (spec 3.1.4), what follows a held
    // publish for a slot: the owner was asked to stop reading.
    if (reading_paused() && rx_.size() > 2 * settings_.max_packet_size)
        violation(reason::protocol_error, "more than " + std::to_string(2 * settings_.max_packet_size) +
                                              " bytes sent while the server was not reading");
}

void server_session::on_transport_closed(time_point now) {
    now_ = now;
    if (state_ == server_state::ended) return;
    transport_closed_ = true;
    end(server_end::closed, std::nullopt, "the client closed the connection without DISCONNECT", true);
}

void server_session::on_tick(time_point now) {
    now_ = now;
    if (state_ == server_state::awaiting_connect && now >= connect_deadline_)
        return end(server_end::connect_timeout, std::nullopt,
                   "no CONNECT within " + milliseconds_text(settings_.connect_timeout), false);
    if (state_ == server_state::online && !holding_ && keep_alive_.count() != 0 &&
        now >= last_received_ + dead_after(keep_alive_))
        return violation(reason::keep_alive_timeout,
                         "no packet for " + milliseconds_text(dead_after(keep_alive_)) + " (keep-alive " +
                             std::to_string(keep_alive_.count()) + " s)",
                         server_end::keep_alive_timeout);
}

std::optional<time_point> server_session::next_deadline() const {
    if (state_ == server_state::awaiting_connect) return connect_deadline_;
    if (state_ == server_state::online && !holding_ && keep_alive_.count() != 0)
        return last_received_ + dead_after(keep_alive_);
    return std::nullopt;
}

// Decodes and handles what arrived, as long as the connection takes packets: before CONNECT and
// once it was accepted.
void server_session::process_received() {
    holding_ = false;
    std::size_t used = 0;
    while (state_ == server_state::awaiting_connect || state_ == server_state::online) {
        const auto rest = std::span<const std::uint8_t>{rx_}.subspan(used);
        auto result = decode(rest, version_, settings_.max_packet_size);
        if (std::holds_alternative<need_more>(result)) break;
        if (const auto* bad = std::get_if<malformed>(&result)) {
            if (state_ == server_state::online) {
                violation(bad->disconnect_reason, "malformed packet: " + bad->reason);
            } else if (const auto level = bad->code == decode_error::protocol_violation
                                              ? unsupported_protocol_level(rest)
                                              : std::nullopt) {
                // The answer in the form the client's level reads: 3.1.1 for older ones (spec 3.1.2.2).
                refuse_connect(*level < 5 ? protocol_version::v311 : protocol_version::v5,
                               reason::unsupported_protocol_version,
                               "unsupported protocol level " + std::to_string(*level), false);
            } else {
                end(server_end::protocol_error, std::nullopt, "malformed first packet: " + bad->reason, false);
            }
            break;
        }
        auto& d = std::get<decoded>(result);
        last_received_ = now_;
        if (state_ == server_state::online && must_hold(d.packet)) {
            holding_ = true;  // decoded again once publish_done() frees a slot
            break;
        }
        used += d.consumed;
        if (state_ == server_state::awaiting_connect)
            on_first_packet(d.packet);
        else
            handle(d.packet);
    }
    if (state_ != server_state::ended && used < rx_.size()) {
        rx_.erase(rx_.begin(), rx_.begin() + static_cast<std::ptrdiff_t>(used));
    } else {
        rx_.clear();  // (`rx_ = {}` would keep the capacity: it assigns an empty initializer list)
        rx_.shrink_to_fit();
    }
}

void server_session::on_first_packet(packet& p) {
    auto* c = std::get_if<mqtt::connect>(&p);
    if (c == nullptr)  // spec 3.1.0-1: close, no answer
        return end(server_end::protocol_error, std::nullopt,
                   std::string{"the first packet is "} + to_string(type_of(p)) + ", not CONNECT", false);
    check_connect(*c);
}

// The checks the session makes itself (spec 3.1.2, 3.1.3); a CONNECT that passes them goes to the owner.
void server_session::check_connect(mqtt::connect& c) {
    version_ = c.version;
    client_props_ = {c.props.session_expiry_interval, c.props.maximum_packet_size, c.props.receive_maximum,
                     c.props.topic_alias_maximum, c.props.request_problem_information};
    const bool v5 = c.version == protocol_version::v5;
    if (c.client_id.size() > settings_.max_client_id_length)
        return refuse_connect(c.version, reason::client_identifier_not_valid,
                              "client identifier of " + std::to_string(c.client_id.size()) +
                                  " bytes, the most taken is " + std::to_string(settings_.max_client_id_length));
    if (!v5 && c.client_id.empty() && !c.clean_start)  // spec 3.1.1 3.1.3-8
        return refuse_connect(c.version, reason::client_identifier_not_valid,
                              "empty client identifier without clean session");
    if (v5 && c.props.authentication_method)  // spec 4.12: enhanced authentication is not offered
        return refuse_connect(c.version, reason::bad_authentication_method,
                              "enhanced authentication (Authentication Method) is not supported");
    if (c.will && c.will->retain && !settings_.retain_available)  // spec 3.1.2.7
        return refuse_connect(c.version, reason::retain_not_supported,
                              "will retain is set and retained messages are not available");
    state_ = server_state::awaiting_decision;
    client_id_ = c.client_id;
    clean_start_ = c.clean_start;
    will_ = c.will.has_value();
    keep_alive_ = std::chrono::seconds{c.keep_alive};
    emit(server_action::connect_request{std::move(c)});
}

void server_session::refuse_connect(protocol_version v, std::uint8_t reason_code, std::string reason,
                                    bool reason_to_client) {
    version_ = v;
    connack ack;
    if (v == protocol_version::v5) {
        ack.reason_code = reason_code;
        if (reason_to_client && problem_information() && !reason.empty()) ack.props.reason_string = reason;
    } else {
        ack.reason_code = connack_return_code_v311(reason_code);
    }
    send(ack);
    end(server_end::refused, reason_code, std::move(reason), false);
}

// --- answers to requests ---

void server_session::accept(bool session_present, std::optional<std::string> assigned_client_id, time_point now,
                            std::optional<std::uint32_t> session_expiry) {
    now_ = now;
    if (state_ != server_state::awaiting_decision) return;
    connack ack;
    ack.session_present = session_present && !clean_start_;
    if (version_ == protocol_version::v5) {
        auto& p = ack.props;
        p.receive_maximum = settings_.receive_maximum;
        if (settings_.max_packet_size < max_mqtt_packet_size)
            p.maximum_packet_size = static_cast<std::uint32_t>(settings_.max_packet_size);
        if (settings_.topic_alias_maximum != 0) p.topic_alias_maximum = settings_.topic_alias_maximum;
        // Absent means available (spec 3.2.2.3): only what is not offered is announced. Maximum
        // QoS is never sent: QoS 2 is taken.
        if (!settings_.retain_available) p.retain_available = 0;
        if (!settings_.wildcard_subscriptions_available) p.wildcard_subscription_available = 0;
        if (!settings_.subscription_identifiers_available) p.subscription_identifier_available = 0;
        if (!settings_.shared_subscriptions_available) p.shared_subscription_available = 0;
        const auto cap = std::chrono::seconds{settings_.max_keep_alive};
        if (cap.count() != 0 && (keep_alive_.count() == 0 || keep_alive_ > cap)) {
            keep_alive_ = cap;
            p.server_keep_alive = settings_.max_keep_alive;
        }
        if (client_id_.empty()) p.assigned_client_identifier = assigned_client_id;
        if (session_expiry && *session_expiry != client_props_.session_expiry_interval.value_or(0))
            p.session_expiry_interval = session_expiry;
    }
    // MQTT 3.1.1 has no topic aliases; an MQTT 5 client without a Topic Alias Maximum gets none.
    outbound_aliases_.reset(version_ == protocol_version::v5 ? std::min(client_props_.topic_alias_maximum.value_or(0),
                                                                        settings_.max_outbound_topic_aliases)
                                                             : std::uint16_t{0});
    // MQTT 3.1.1 cannot announce a keep-alive: the client's own is enforced.
    if (assigned_client_id && client_id_.empty()) client_id_ = std::move(*assigned_client_id);
    state_ = server_state::online;
    last_received_ = now;
    send(ack);
    process_received();  // what the client sent behind its CONNECT
}

void server_session::refuse(std::uint8_t reason_code, std::string reason_string, time_point now) {
    now_ = now;
    if (state_ != server_state::awaiting_decision) return;
    if (reason_code < 0x80 || !reason_code_allowed(packet_type::connack, reason_code))
        reason_code = reason::unspecified_error;
    refuse_connect(version_, reason_code, std::move(reason_string));
}

// --- commands ---

void server_session::disconnect(std::uint8_t reason_code, std::string reason, time_point now) {
    now_ = now;
    if (state_ == server_state::ended) return;
    if (!reason_code_allowed(packet_type::disconnect, reason_code)) reason_code = reason::unspecified_error;
    if (state_ == server_state::online && version_ == protocol_version::v5) {
        mqtt::disconnect d{reason_code, {}};
        if (!reason.empty()) d.props.reason_string = reason;
        send(d);
    }
    end(server_end::server, reason_code, std::move(reason), true);
}

std::vector<server_session_action> server_session::drain_actions() {
    return std::exchange(actions_, {});
}

void server_session::drain_actions(std::vector<server_session_action>& out) {
    out.clear();
    out.swap(actions_);
}

void server_session::give_back(std::vector<std::uint8_t>&& bytes) noexcept {
    spare_send_ = std::move(bytes);
    spare_send_.clear();
}

// --- the end ---

void server_session::violation(std::uint8_t reason_code, std::string reason, server_end cause) {
    assert(reason_code_allowed(packet_type::disconnect, reason_code));
    if (state_ == server_state::online && version_ == protocol_version::v5) {
        mqtt::disconnect d{reason_code, {}};
        d.props.reason_string = reason;  // DISCONNECT may carry it whatever Request Problem Information says
        send(d);
    }
    end(cause, reason_code, std::move(reason), true);
}

void server_session::end(server_end cause, std::optional<std::uint8_t> reason_code, std::string reason,
                         bool publish_will) {
    if (state_ == server_state::ended) return;
    // Only an accepted connection has a will (spec 3.1.2.5: stored once CONNECT is accepted).
    const bool will = publish_will && will_ && state_ == server_state::online;
    server_action::ended e{cause, reason_code, std::move(reason), will, unacknowledged(), disconnect_session_expiry_};
    state_ = server_state::ended;
    rx_.clear();
    rx_.shrink_to_fit();
    topic_aliases_.clear();
    inbound_pending_.clear();
    awaiting_pubrel_.clear();
    filter_requests_.clear();
    outbound_queue_.clear();
    outbound_inflight_.clear();
    outbound_aliases_.reset(0);
    queued_bytes_ = 0;
    emit(std::move(e));
    if (!transport_closed_) emit(server_action::close{});
}

// --- sending ---

void server_session::emit(server_session_action a) {
    actions_.push_back(std::move(a));
}

std::vector<std::uint8_t>& server_session::send_buffer() {
    // Consecutive packets share one send action: one write for a burst.
    if (actions_.empty() || !std::holds_alternative<server_action::send>(actions_.back()))
        actions_.emplace_back(server_action::send{std::exchange(spare_send_, {})});
    return std::get<server_action::send>(actions_.back()).bytes;
}

void server_session::send(const packet& p) {
    if (!client_props_.maximum_packet_size || encoded_size(p, version_) <= client_packet_limit())
        return encode(p, version_, send_buffer());
    // Over the client's Maximum Packet Size: Reason String and User Properties are the first to
    // go (spec 3.1.2.25); a packet still too large is not sent at all.
    packet trimmed = p;
    std::visit(
        [](auto& v) {
            if constexpr (requires { v.props; }) {
                v.props.reason_string.reset();
                v.props.user_properties.clear();
            }
        },
        trimmed);
    if (encoded_size(trimmed, version_) <= client_packet_limit()) encode(trimmed, version_, send_buffer());
}

void server_session::send(const mqtt::publish& p) {
    encode(p, version_, send_buffer());
}

bool server_session::problem_information() const noexcept {
    return client_props_.request_problem_information.value_or(1) != 0;
}

}  // namespace thingmux::mqtt
