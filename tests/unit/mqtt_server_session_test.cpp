// Sans-I/O MQTT server session driven by a scripted local client: CONNECT packets are written
// byte by byte from the specifications (MQTT 3.1.1 section 3.1, MQTT 5 section 3.1), later
// packets with the codec's encode(); what the session sends is decoded with decode() (the codec
// has its own spec-vector tests) and its reason codes and properties compared. Time is a
// parameter: no sleeps.
#include "daemon/mqtt/codec.hpp"
#include "daemon/mqtt/server_session.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace thingmux::mqtt {
namespace {

using namespace std::chrono_literals;
using bytes = std::vector<std::uint8_t>;

constexpr auto v5 = protocol_version::v5;
constexpr auto v311 = protocol_version::v311;

bytes operator+(bytes a, const bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// An MQTT string: two length bytes, then the bytes (spec 1.5.4 / 1.5.3).
bytes str(std::string_view s) {
    bytes out{static_cast<std::uint8_t>(s.size() >> 8U), static_cast<std::uint8_t>(s.size() & 0xFFU)};
    for (const char c : s) out.push_back(static_cast<std::uint8_t>(c));
    return out;
}

bytes u16(std::uint16_t v) {
    return {static_cast<std::uint8_t>(v >> 8U), static_cast<std::uint8_t>(v & 0xFFU)};
}

// Variable byte integer (spec 1.5.5 / 2.2.3).
bytes vbi(std::size_t v) {
    bytes out;
    do {
        auto b = static_cast<std::uint8_t>(v % 128);
        v /= 128;
        if (v > 0) b |= 0x80U;
        out.push_back(b);
    } while (v > 0);
    return out;
}

bytes with_header(std::uint8_t first, const bytes& body) {
    return bytes{first} + vbi(body.size()) + body;
}

// Connect flags (spec 3.1.2.3): bit 1 clean session / clean start, 2 will, 3-4 will QoS, 5 will retain.
constexpr std::uint8_t clean = 0x02;
constexpr std::uint8_t will_flag = 0x04;
constexpr std::uint8_t will_qos1 = 0x08;
constexpr std::uint8_t will_retain = 0x20;

// MQTT 3.1.1 CONNECT (spec 3.1): "MQTT", level 4, flags, keep alive, client id, then `rest`.
bytes connect_v311(std::string_view id, std::uint8_t flags = clean, std::uint16_t keep_alive = 60,
                   const bytes& rest = {}) {
    return with_header(0x10, str("MQTT") + bytes{4, flags} + u16(keep_alive) + str(id) + rest);
}

// MQTT 5 CONNECT (spec 3.1): "MQTT", level 5, flags, keep alive, properties, client id, `rest`.
bytes connect_v5(std::string_view id, std::uint8_t flags = clean, std::uint16_t keep_alive = 60,
                 const bytes& props = {}, const bytes& rest = {}) {
    return with_header(0x10,
                       str("MQTT") + bytes{5, flags} + u16(keep_alive) + vbi(props.size()) + props + str(id) + rest);
}

// The will part of a CONNECT payload (after the client id): [will properties], topic, payload.
bytes will_v311() {
    return str("gw/status") + str("offline");
}
bytes will_v5() {
    return bytes{0} + will_v311();
}

mqtt::publish make_publish(std::string topic, qos q, std::uint16_t id = 0, std::string payload = "x") {
    mqtt::publish p;
    p.topic = std::move(topic);
    p.qos = q;
    p.packet_id = id;
    p.payload = std::move(payload);
    return p;
}

// One server session and the local client in front of it.
class harness {
public:
    explicit harness(server_settings settings = {}, protocol_version version = v5)
        : v(version), s(std::move(settings), now) {}

    time_point now = time_point{} + 1000h;
    protocol_version v;  // how the client decodes what it receives
    server_session s;
    std::vector<bytes> wire;                    // each send action's bytes
    std::vector<packet> sent;                   // decoded packets the session sent, oldest first
    std::vector<server_session_action> events;  // every other action, in order

    void collect() {
        for (auto& a : s.drain_actions()) {
            auto* out = std::get_if<server_action::send>(&a);
            if (out == nullptr) {
                events.push_back(std::move(a));
                continue;
            }
            wire.push_back(out->bytes);
            std::span<const std::uint8_t> rest{out->bytes};
            while (!rest.empty()) {
                auto r = decode(rest, v);
                auto* d = std::get_if<decoded>(&r);
                if (d == nullptr) {
                    ADD_FAILURE() << "the session sent bytes that do not decode";
                    return;
                }
                sent.push_back(std::move(d->packet));
                rest = rest.subspan(d->consumed);
            }
        }
    }

    void in(const bytes& b) {
        s.on_bytes(b, now);
        collect();
    }
    void feed(const packet& p) { in(encode(p, v)); }
    void advance(std::chrono::milliseconds d) {
        now += d;
        s.on_tick(now);
        collect();
    }
    void transport_closed() {
        s.on_transport_closed(now);
        collect();
    }

    std::vector<packet> take_sent() {
        wire.clear();
        return std::exchange(sent, {});
    }
    // The one packet sent since the last take, of type T.
    template <class T>
    T only_sent() {
        auto p = take_sent();
        if (p.size() != 1 || !std::holds_alternative<T>(p[0])) {
            ADD_FAILURE() << "expected exactly one " << typeid(T).name() << ", got " << p.size() << " packets"
                          << (p.empty() ? "" : std::string{", the first "} + to_string(type_of(p[0])));
            return T{};
        }
        return std::get<T>(p[0]);
    }
    std::vector<server_session_action> take_events() { return std::exchange(events, {}); }
    template <class A>
    std::vector<A> take_events_of() {
        std::vector<A> out;
        for (auto& e : take_events()) {
            if (auto* a = std::get_if<A>(&e))
                out.push_back(std::move(*a));
            else
                ADD_FAILURE() << "unexpected action index " << e.index();
        }
        return out;
    }
    // The one request raised since the last take.
    template <class A>
    A only_event() {
        auto all = take_events_of<A>();
        if (all.size() != 1) {
            ADD_FAILURE() << "expected one action, got " << all.size();
            return A{};
        }
        return std::move(all[0]);
    }
    // The connection ended: `ended`, then close unless the transport closed.
    server_action::ended ending(bool close_expected = true) {
        auto ev = take_events();
        EXPECT_EQ(ev.size(), close_expected ? 2U : 1U);
        if (ev.empty() || !std::holds_alternative<server_action::ended>(ev[0])) {
            ADD_FAILURE() << "no ended action";
            return {};
        }
        if (close_expected) {
            EXPECT_TRUE(ev.size() == 2 && std::holds_alternative<server_action::close>(ev[1]));
        }
        EXPECT_EQ(s.state(), server_state::ended);
        return std::get<server_action::ended>(ev[0]);
    }

    // ending(), and its cause is `cause`.
    server_action::ended ended_with(server_end cause, bool close_expected = true) {
        auto e = ending(close_expected);
        EXPECT_EQ(e.cause, cause);
        return e;
    }

    // CONNECT in, connect_request out, accepted: returns the CONNACK.
    connack connect(const bytes& connect_packet, bool session_present = false,
                    std::optional<std::string> assigned = std::nullopt) {
        in(connect_packet);
        static_cast<void>(only_event<server_action::connect_request>());
        s.accept(session_present, std::move(assigned), now);
        collect();
        return only_sent<connack>();
    }
    connack connect() { return connect(v == v5 ? connect_v5("app-1") : connect_v311("app-1")); }
    connack connect_with_will() {
        return connect(v == v5 ? connect_v5("app-1", clean | will_flag, 60, {}, will_v5())
                               : connect_v311("app-1", clean | will_flag, 60, will_v311()));
    }

    // The owner's answer to a publish request.
    void publish_done(std::uint16_t packet_id, std::uint8_t code, std::string text) {
        s.publish_done(packet_id, code, std::move(text), now);
        collect();
    }

    // A QoS 1/2 publish from the client, raised: returns the request.
    mqtt::publish publish(const mqtt::publish& p) {
        feed(p);
        return only_event<server_action::publish_request>().msg;
    }
};

// --- CONNECT and CONNACK ---

TEST(MqttServerSession, Connect311HandWrittenIsRaisedAndAcceptedWithReturnCode0) {
    harness h{{}, v311};
    EXPECT_EQ(h.s.state(), server_state::awaiting_connect);
    // User Name and Password flags set (spec 3.1.2.8, 3.1.2.9): both follow the client id.
    h.in(connect_v311("sensor-7", clean | 0xC0, 30, str("user") + str("pw")));
    auto req = h.only_event<server_action::connect_request>();
    EXPECT_EQ(req.packet.version, v311);
    EXPECT_EQ(req.packet.client_id, "sensor-7");
    EXPECT_TRUE(req.packet.clean_start);
    EXPECT_EQ(req.packet.keep_alive, 30);
    EXPECT_EQ(req.packet.username, "user");
    EXPECT_EQ(req.packet.password, "pw");
    EXPECT_EQ(h.s.state(), server_state::awaiting_decision);
    EXPECT_TRUE(h.sent.empty());

    h.s.accept(true, std::nullopt, h.now);  // clean session: session present must be 0
    h.collect();
    EXPECT_EQ(h.wire, (std::vector<bytes>{{0x20, 0x02, 0x00, 0x00}}));  // spec 3.2: flags 0, return code 0
    EXPECT_EQ(h.s.state(), server_state::online);
    EXPECT_EQ(h.s.version(), v311);
    EXPECT_EQ(h.s.client_id(), "sensor-7");
    EXPECT_EQ(h.s.keep_alive(), 30s);
}

TEST(MqttServerSession, Connack311KeepsSessionPresentWithoutCleanSession) {
    harness h{{}, v311};
    const auto ack = h.connect(connect_v311("sensor-7", 0), true);
    EXPECT_TRUE(ack.session_present);
    EXPECT_EQ(ack.reason_code, 0);
}

TEST(MqttServerSession, Connack5CarriesTheServerProperties) {
    harness h;
    // Session Expiry Interval 10 (0x11), Receive Maximum 20 (0x21), Maximum Packet Size 1000 (0x27).
    const auto ack =
        h.connect(connect_v5("app-1", clean, 60, bytes{0x11, 0, 0, 0, 10, 0x21, 0, 20, 0x27, 0, 0, 0x03, 0xE8}));
    EXPECT_EQ(ack.reason_code, reason::success);
    EXPECT_FALSE(ack.session_present);
    EXPECT_EQ(ack.props.receive_maximum, 100);
    EXPECT_EQ(ack.props.maximum_packet_size, 266'240U);
    EXPECT_EQ(ack.props.topic_alias_maximum, 32);
    EXPECT_FALSE(ack.props.retain_available.has_value());  // absent = available
    EXPECT_FALSE(ack.props.wildcard_subscription_available.has_value());
    EXPECT_EQ(ack.props.subscription_identifier_available, 0);
    EXPECT_FALSE(ack.props.shared_subscription_available.has_value());
    EXPECT_FALSE(ack.props.maximum_qos.has_value());  // QoS 2 is taken
    EXPECT_FALSE(ack.props.server_keep_alive.has_value());
    EXPECT_FALSE(ack.props.assigned_client_identifier.has_value());
    EXPECT_FALSE(ack.props.reason_string.has_value());
    EXPECT_EQ(h.s.keep_alive(), 60s);
}

TEST(MqttServerSession, Connack5AnnouncesOnlyWhatIsNotOffered) {
    server_settings cfg;
    cfg.retain_available = false;
    cfg.wildcard_subscriptions_available = false;
    cfg.shared_subscriptions_available = false;
    cfg.subscription_identifiers_available = true;
    cfg.topic_alias_maximum = 0;
    cfg.max_packet_size = max_mqtt_packet_size;
    harness h{cfg};
    const auto ack = h.connect();
    EXPECT_EQ(ack.props.retain_available, 0);
    EXPECT_EQ(ack.props.wildcard_subscription_available, 0);
    EXPECT_EQ(ack.props.shared_subscription_available, 0);
    EXPECT_FALSE(ack.props.subscription_identifier_available.has_value());
    EXPECT_FALSE(ack.props.topic_alias_maximum.has_value());  // absent = 0
    EXPECT_FALSE(ack.props.maximum_packet_size.has_value());  // absent = no limit
}

TEST(MqttServerSession, ServerKeepAliveCapsTheClientsKeepAlive) {
    server_settings cfg;
    cfg.max_keep_alive = 30;
    for (const auto& [asked, enforced, announced] :
         {std::tuple{60, 30, std::optional<std::uint16_t>{30}}, std::tuple{0, 30, std::optional<std::uint16_t>{30}},
          std::tuple{20, 20, std::optional<std::uint16_t>{}}, std::tuple{30, 30, std::optional<std::uint16_t>{}}}) {
        harness h{cfg};
        const auto ack = h.connect(connect_v5("app-1", clean, static_cast<std::uint16_t>(asked)));
        EXPECT_EQ(ack.props.server_keep_alive, announced) << "client asked " << asked;
        EXPECT_EQ(h.s.keep_alive(), std::chrono::seconds{enforced}) << "client asked " << asked;
    }
}

TEST(MqttServerSession, KeepAliveOf311ClientIsItsOwn) {
    server_settings cfg;
    cfg.max_keep_alive = 30;
    harness h{cfg, v311};
    h.connect(connect_v311("app-1", clean, 60));
    EXPECT_EQ(h.s.keep_alive(), 60s);  // 3.1.1 cannot be told another one
}

TEST(MqttServerSession, EmptyClientIdGetsAssignedIdentifier) {
    harness h;
    const auto ack = h.connect(connect_v5("", 0), true, "thingmux-3f2a");
    EXPECT_EQ(ack.props.assigned_client_identifier, "thingmux-3f2a");
    EXPECT_TRUE(ack.session_present);  // clean start 0: the owner's answer stands
    EXPECT_EQ(h.s.client_id(), "thingmux-3f2a");
}

TEST(MqttServerSession, AssignedIdentifierIsIgnoredWhenTheClientSentOne) {
    harness h;
    const auto ack = h.connect(connect_v5("app-1"), false, "thingmux-3f2a");
    EXPECT_FALSE(ack.props.assigned_client_identifier.has_value());
    EXPECT_EQ(h.s.client_id(), "app-1");
}

TEST(MqttServerSession, EmptyClientIdWithCleanSessionIsRaisedOn311) {
    harness h{{}, v311};
    h.in(connect_v311("", clean));
    EXPECT_EQ(h.only_event<server_action::connect_request>().packet.client_id, "");
}

TEST(MqttServerSession, FirstPacketNotConnectClosesWithoutAnswer) {
    harness h;
    h.in({0xC0, 0x00});  // PINGREQ
    EXPECT_TRUE(h.sent.empty());
    const auto e = h.ended_with(server_end::protocol_error);
    EXPECT_FALSE(e.reason_code.has_value());
    EXPECT_EQ(e.reason, "the first packet is PINGREQ, not CONNECT");
    EXPECT_FALSE(e.publish_will);
}

TEST(MqttServerSession, MalformedConnectClosesWithoutAnswer) {
    harness h;
    // Reserved connect flag set (spec 3.1.2.3).
    h.in(with_header(0x10, str("MQTT") + bytes{5, 0x03, 0, 60, 0} + str("a")));
    EXPECT_TRUE(h.sent.empty());
    const auto e = h.ended_with(server_end::protocol_error);
    EXPECT_EQ(e.reason, "malformed first packet: CONNECT: reserved connect flag is set");
}

TEST(MqttServerSession, SecondConnectIsProtocolError) {
    harness h;
    h.connect_with_will();
    h.in(connect_v5("app-1"));
    EXPECT_EQ(h.only_sent<disconnect>().reason_code, reason::protocol_error);
    const auto e = h.ended_with(server_end::protocol_error);
    EXPECT_EQ(e.reason_code, reason::protocol_error);
    EXPECT_TRUE(e.publish_will);
}

TEST(MqttServerSession, NoConnectWithinTheTimeoutCloses) {
    server_settings cfg;
    cfg.connect_timeout = 5s;
    harness h{cfg};
    EXPECT_EQ(h.s.next_deadline(), h.now + 5s);
    h.in({0x10});  // a CONNECT started but never finished does not stop the clock
    h.advance(4999ms);
    EXPECT_TRUE(h.events.empty());
    h.advance(1ms);
    const auto e = h.ended_with(server_end::connect_timeout);
    EXPECT_EQ(e.reason, "no CONNECT within 5000 ms");
    EXPECT_TRUE(h.sent.empty());
    EXPECT_EQ(h.s.next_deadline(), std::nullopt);
}

TEST(MqttServerSession, UnsupportedProtocolLevelGetsConnackInTheClientsForm) {
    {  // MQTT 3.1 ("MQIsdp", level 3): the 3.1.1 return code 1 (spec 3.1.1 3.1.2.2)
        harness h{{}, v311};
        h.in(with_header(0x10, str("MQIsdp") + bytes{3, clean, 0, 60} + str("old")));
        EXPECT_EQ(h.wire, (std::vector<bytes>{{0x20, 0x02, 0x00, 0x01}}));
        const auto e = h.ended_with(server_end::refused);
        EXPECT_EQ(e.reason_code, reason::unsupported_protocol_version);
        EXPECT_EQ(e.reason, "unsupported protocol level 3");
    }
    {  // "MQTT" level 3 is not 3.1 either: still the 3.1.1 form
        harness h{{}, v311};
        h.in(with_header(0x10, str("MQTT") + bytes{3, clean, 0, 60} + str("x")));
        EXPECT_EQ(h.wire, (std::vector<bytes>{{0x20, 0x02, 0x00, 0x01}}));
    }
    {  // a level after 5: the MQTT 5 form, 0x84 (spec 3.1.2.2)
        harness h{{}, v5};
        h.in(with_header(0x10, str("MQTT") + bytes{6, clean, 0, 60, 0} + str("new")));
        const auto ack = h.only_sent<connack>();
        EXPECT_EQ(ack.reason_code, reason::unsupported_protocol_version);
        EXPECT_EQ(ack.props, properties{});
        static_cast<void>(h.ended_with(server_end::refused));
    }
}

TEST(MqttServerSession, ClientIdLongerThanTheLimitIsRefused) {
    server_settings cfg;
    cfg.max_client_id_length = 8;
    {
        harness h{cfg, v5};
        h.in(connect_v5("123456789"));
        const auto ack = h.only_sent<connack>();
        EXPECT_EQ(ack.reason_code, reason::client_identifier_not_valid);
        EXPECT_EQ(ack.props.reason_string, "client identifier of 9 bytes, the most taken is 8");
        const auto e = h.ended_with(server_end::refused);
        EXPECT_EQ(e.reason_code, reason::client_identifier_not_valid);
    }
    {
        harness h{cfg, v311};
        h.in(connect_v311("123456789"));
        EXPECT_EQ(h.wire, (std::vector<bytes>{{0x20, 0x02, 0x00, 0x02}}));
        static_cast<void>(h.ended_with(server_end::refused));
    }
    harness ok{cfg, v5};
    ok.connect(connect_v5("12345678"));
    EXPECT_EQ(ok.s.state(), server_state::online);
}

TEST(MqttServerSession, EmptyClientIdWithoutCleanSessionIsRefusedOn311) {
    harness h{{}, v311};
    h.in(connect_v311("", 0));
    EXPECT_EQ(h.wire, (std::vector<bytes>{{0x20, 0x02, 0x00, 0x02}}));  // spec 3.1.1 3.1.3-9
    EXPECT_EQ(h.ending().reason, "empty client identifier without clean session");
}

TEST(MqttServerSession, AuthenticationMethodIsRefusedWithBadAuthenticationMethod) {
    harness h;
    h.in(connect_v5("app-1", clean, 60, bytes{0x15} + str("SCRAM-SHA-1")));  // Authentication Method
    EXPECT_EQ(h.only_sent<connack>().reason_code, reason::bad_authentication_method);
    static_cast<void>(h.ended_with(server_end::refused));
}

TEST(MqttServerSession, WillRetainWithoutRetainAvailableIsRefused) {
    server_settings cfg;
    cfg.retain_available = false;
    {
        harness h{cfg, v5};
        h.in(connect_v5("app-1", clean | will_flag | will_retain, 60, {}, will_v5()));
        EXPECT_EQ(h.only_sent<connack>().reason_code, reason::retain_not_supported);
        EXPECT_FALSE(h.ending().publish_will);
    }
    {
        harness h{cfg, v311};
        h.in(connect_v311("app-1", clean | will_flag | will_retain, 60, will_v311()));
        EXPECT_EQ(h.wire, (std::vector<bytes>{{0x20, 0x02, 0x00, 0x03}}));  // server unavailable
    }
}

TEST(MqttServerSession, RefuseMapsReasonCodesTo311ReturnCodes) {
    for (const auto& [code, expected] : std::vector<std::pair<std::uint8_t, std::uint8_t>>{
             {0x84, 1}, {0x85, 2}, {0x88, 3}, {0x89, 3}, {0x86, 4}, {0x87, 5}, {0x97, 3}, {0x8A, 3}}) {
        harness h{{}, v311};
        h.in(connect_v311("app-1"));
        static_cast<void>(h.only_event<server_action::connect_request>());
        h.s.refuse(code, "no", h.now);
        h.collect();
        EXPECT_EQ(h.wire, (std::vector<bytes>{{0x20, 0x02, 0x00, expected}})) << int{code};
        const auto e = h.ended_with(server_end::refused);
        EXPECT_EQ(e.reason_code, code);
        EXPECT_EQ(e.reason, "no");
    }
}

TEST(MqttServerSession, RefuseSendsReasonStringUnlessTheClientAskedForNoProblemInformation) {
    {
        harness h;
        h.in(connect_v5("app-1"));
        static_cast<void>(h.only_event<server_action::connect_request>());
        h.s.refuse(reason::not_authorized, "app-1 may not connect", h.now);
        h.collect();
        const auto ack = h.only_sent<connack>();
        EXPECT_EQ(ack.reason_code, reason::not_authorized);
        EXPECT_EQ(ack.props.reason_string, "app-1 may not connect");
        EXPECT_FALSE(h.ending().publish_will);
    }
    {
        harness h;
        h.in(connect_v5("app-1", clean, 60, bytes{0x17, 0}));  // Request Problem Information 0
        static_cast<void>(h.only_event<server_action::connect_request>());
        h.s.refuse(reason::not_authorized, "app-1 may not connect", h.now);
        h.collect();
        const auto ack = h.only_sent<connack>();
        EXPECT_EQ(ack.reason_code, reason::not_authorized);
        EXPECT_FALSE(ack.props.reason_string.has_value());
    }
    {  // a code CONNACK cannot carry
        harness h;
        h.in(connect_v5("app-1"));
        static_cast<void>(h.only_event<server_action::connect_request>());
        h.s.refuse(reason::no_matching_subscribers, "", h.now);
        h.collect();
        EXPECT_EQ(h.only_sent<connack>().reason_code, reason::unspecified_error);
    }
}

TEST(MqttServerSession, PacketsBehindConnectWaitForTheDecision) {
    harness h;
    h.in(connect_v5("app-1") + encode(make_publish("a/b", qos::at_most_once), v5) + bytes{0xC0, 0x00});
    EXPECT_EQ(h.take_events_of<server_action::connect_request>().size(), 1U);  // nothing else yet
    EXPECT_TRUE(h.sent.empty());
    h.s.accept(false, std::nullopt, h.now);
    h.collect();
    auto sent = h.take_sent();
    ASSERT_EQ(sent.size(), 2U);
    EXPECT_TRUE(std::holds_alternative<connack>(sent[0]));  // CONNACK first, then PINGRESP
    EXPECT_TRUE(std::holds_alternative<pingresp>(sent[1]));
    EXPECT_EQ(h.only_event<server_action::publish_request>().msg.topic, "a/b");
}

TEST(MqttServerSession, TooManyBytesBeforeTheDecisionEndTheConnection) {
    server_settings cfg;
    cfg.max_packet_size = 1000;
    harness h{cfg};
    h.in(connect_v5("app-1"));
    static_cast<void>(h.only_event<server_action::connect_request>());
    EXPECT_TRUE(h.s.reading_paused());
    h.in(bytes(2000, 0xC0));
    EXPECT_TRUE(h.events.empty());
    h.in(bytes{0xC0});
    EXPECT_TRUE(h.sent.empty());  // no CONNACK was sent: no DISCONNECT either
    const auto e = h.ended_with(server_end::protocol_error);
    EXPECT_EQ(e.reason, "more than 2000 bytes sent while the server was not reading");
    h.s.accept(false, std::nullopt, h.now);
    h.collect();
    EXPECT_TRUE(h.sent.empty() && h.events.empty());

    harness together{cfg};  // the same in the CONNECT's own chunk
    together.in(connect_v5("app-1") + bytes(2001, 0xC0));
    auto ev = together.take_events();
    ASSERT_EQ(ev.size(), 3U);
    EXPECT_TRUE(std::holds_alternative<server_action::connect_request>(ev[0]));
    EXPECT_EQ(std::get<server_action::ended>(ev[1]).reason,
              "more than 2000 bytes sent while the server was not reading");
}

// --- keep-alive ---

TEST(MqttServerSession, PingreqIsAnsweredWithPingresp) {
    harness h{{}, v311};
    h.connect();
    h.take_sent();
    h.in({0xC0, 0x00});
    EXPECT_EQ(h.wire, (std::vector<bytes>{{0xD0, 0x00}}));
}

TEST(MqttServerSession, NothingForOneAndAHalfKeepAlivesEndsTheConnection) {
    harness h;
    h.connect_with_will();
    EXPECT_EQ(h.s.next_deadline(), h.now + 90s);
    h.advance(80s);
    h.in({0xC0, 0x00});  // any packet resets the clock
    h.take_sent();
    EXPECT_EQ(h.s.next_deadline(), h.now + 90s);
    h.advance(89999ms);
    EXPECT_TRUE(h.sent.empty() && h.events.empty());
    h.advance(1ms);
    const auto d = h.only_sent<disconnect>();
    EXPECT_EQ(d.reason_code, reason::keep_alive_timeout);
    const auto e = h.ended_with(server_end::keep_alive_timeout);
    EXPECT_EQ(e.reason_code, reason::keep_alive_timeout);
    EXPECT_EQ(e.reason, "no packet for 90000 ms (keep-alive 60 s)");
    EXPECT_TRUE(e.publish_will);
}

TEST(MqttServerSession, KeepAliveTimeoutOn311JustCloses) {
    harness h{{}, v311};
    h.connect(connect_v311("app-1", clean, 10));
    h.advance(15s);
    EXPECT_TRUE(h.sent.empty());
    static_cast<void>(h.ended_with(server_end::keep_alive_timeout));
}

TEST(MqttServerSession, KeepAliveZeroHasNoDeadline) {
    harness h;
    h.connect(connect_v5("app-1", clean, 0));
    EXPECT_EQ(h.s.next_deadline(), std::nullopt);
    h.advance(100h);
    EXPECT_EQ(h.s.state(), server_state::online);
}

// --- inbound PUBLISH ---

TEST(MqttServerSession, Qos0PublishIsRaisedAndNotAnswered) {
    harness h;
    h.connect();
    auto p = make_publish("sensors/t", qos::at_most_once, 0, "21.5");
    p.props.user_properties.push_back({"unit", "C"});
    h.feed(p);
    const auto req = h.only_event<server_action::publish_request>();
    EXPECT_EQ(req.msg, p);
    EXPECT_TRUE(h.sent.empty());
    EXPECT_EQ(h.s.pending_publishes(), 0U);
}

TEST(MqttServerSession, Qos1RepeatWhilePendingIsNotRaisedTwice) {
    harness h;
    h.connect();
    EXPECT_EQ(h.publish(make_publish("a", qos::at_least_once, 7)).packet_id, 7);
    auto again = make_publish("a", qos::at_least_once, 7);
    again.dup = true;
    h.feed(again);
    EXPECT_TRUE(h.events.empty());
    EXPECT_EQ(h.s.pending_publishes(), 1U);
    h.publish_done(7, reason::success, "");
    const auto ack = h.only_sent<puback>();
    EXPECT_EQ(ack.packet_id, 7);
    EXPECT_EQ(ack.reason_code, reason::success);
    EXPECT_EQ(h.s.pending_publishes(), 0U);
    // Once answered, the id is free: the next publish with it is a new message.
    EXPECT_EQ(h.publish(make_publish("b", qos::at_least_once, 7)).topic, "b");
    // A late or unknown answer does nothing.
    h.publish_done(8, reason::success, "");
    EXPECT_TRUE(h.sent.empty());
}

TEST(MqttServerSession, Qos1RefusedOn5GetsPubackWithReasonCodeAndStays) {
    harness h;
    h.connect();
    h.publish(make_publish("a", qos::at_least_once, 1));
    h.publish_done(1, reason::not_authorized, "publish to a is not allowed");
    const auto ack = h.only_sent<puback>();
    EXPECT_EQ(ack.reason_code, reason::not_authorized);
    EXPECT_EQ(ack.props.reason_string, "publish to a is not allowed");
    EXPECT_EQ(h.s.state(), server_state::online);
    EXPECT_TRUE(h.events.empty());
}

// Spec 3.1.2.11.7 (Request Problem Information 0) and 3.4.2.2.2 (not over the client's Maximum
// Packet Size, 30 here): the PUBACK goes without its Reason String.
TEST(MqttServerSession, Qos1ReasonStringIsLeftOutWhenTheClientCannotHaveIt) {
    for (const auto& props : {bytes{0x17, 0}, bytes{0x27, 0, 0, 0, 30}}) {
        harness h;
        h.connect(connect_v5("app-1", clean, 60, props));
        h.publish(make_publish("a", qos::at_least_once, 1));
        h.publish_done(1, reason::quota_exceeded, "a reason string far longer than thirty bytes");
        const auto ack = h.only_sent<puback>();
        EXPECT_EQ(ack.reason_code, reason::quota_exceeded);
        EXPECT_FALSE(ack.props.reason_string.has_value());
    }
}

TEST(MqttServerSession, Qos1RefusedOn311ClosesWithoutPuback) {
    harness h{{}, v311};
    h.connect_with_will();
    h.publish(make_publish("a", qos::at_least_once, 1));
    h.publish_done(1, reason::not_authorized, "publish to a is not allowed");
    EXPECT_TRUE(h.sent.empty());  // never a PUBACK that would claim success
    const auto e = h.ended_with(server_end::publish_refused);
    EXPECT_EQ(e.reason, "publish to a is not allowed");
    EXPECT_TRUE(e.publish_will);
}

TEST(MqttServerSession, Qos1SuccessCodesOn311AreAPlainPuback) {
    harness h{{}, v311};
    h.connect();
    h.publish(make_publish("a", qos::at_least_once, 3));
    h.publish_done(3, reason::no_matching_subscribers, "");
    EXPECT_EQ(h.wire, (std::vector<bytes>{{0x40, 0x02, 0x00, 0x03}}));
}

TEST(MqttServerSession, Qos2IsExactlyOnce) {
    harness h;
    h.connect();
    const auto req = h.publish(make_publish("a", qos::exactly_once, 9));
    EXPECT_EQ(req.qos, qos::exactly_once);            // as the client sent it
    h.feed(make_publish("a", qos::exactly_once, 9));  // repeat before the decision
    EXPECT_TRUE(h.events.empty() && h.sent.empty());
    h.publish_done(9, reason::success, "");
    EXPECT_EQ(h.only_sent<pubrec>().packet_id, 9);
    EXPECT_EQ(h.s.pending_publishes(), 0U);
    EXPECT_EQ(h.s.awaiting_release(), 1U);
    auto repeat = make_publish("a", qos::exactly_once, 9);
    repeat.dup = true;
    h.feed(repeat);  // repeat before PUBREL: PUBREC again, no new request (spec 4.3.3)
    EXPECT_EQ(h.only_sent<pubrec>().packet_id, 9);
    EXPECT_TRUE(h.events.empty());
    h.feed(pubrel{9, reason::success, {}});
    const auto comp = h.only_sent<pubcomp>();
    EXPECT_EQ(comp.packet_id, 9);
    EXPECT_EQ(comp.reason_code, reason::success);
    EXPECT_EQ(h.s.awaiting_release(), 0U);
    // After PUBCOMP the id is free: a new message.
    EXPECT_EQ(h.publish(make_publish("b", qos::exactly_once, 9)).topic, "b");
}

TEST(MqttServerSession, PubrelOfUnknownIdIsAnsweredWithPacketIdentifierNotFound) {
    {
        harness h;
        h.connect();
        h.feed(pubrel{44, reason::success, {}});
        const auto comp = h.only_sent<pubcomp>();
        EXPECT_EQ(comp.packet_id, 44);
        EXPECT_EQ(comp.reason_code, reason::packet_identifier_not_found);
    }
    {
        harness h{{}, v311};
        h.connect();
        h.take_sent();
        h.feed(pubrel{44, reason::success, {}});
        EXPECT_EQ(h.wire, (std::vector<bytes>{{0x70, 0x02, 0x00, 44}}));
    }
}

TEST(MqttServerSession, PubrelBeforePubrecIsProtocolError) {
    harness h;
    h.connect();
    h.publish(make_publish("a", qos::exactly_once, 5));
    h.feed(pubrel{5, reason::success, {}});
    EXPECT_EQ(h.only_sent<disconnect>().reason_code, reason::protocol_error);
    static_cast<void>(h.ended_with(server_end::protocol_error));
}

TEST(MqttServerSession, Qos2RefusedOn5GetsPubrecWithReasonAndEndsTheFlow) {
    harness h;
    h.connect();
    h.publish(make_publish("a", qos::exactly_once, 5));
    h.publish_done(5, reason::topic_name_invalid, "");
    EXPECT_EQ(h.only_sent<pubrec>().reason_code, reason::topic_name_invalid);
    EXPECT_EQ(h.s.awaiting_release(), 0U);
    h.feed(pubrel{5, reason::success, {}});
    EXPECT_EQ(h.only_sent<pubcomp>().reason_code, reason::packet_identifier_not_found);
}

TEST(MqttServerSession, Qos2RefusedOn311Closes) {
    harness h{{}, v311};
    h.connect();
    h.publish(make_publish("a", qos::exactly_once, 5));
    h.publish_done(5, reason::not_authorized, "");
    EXPECT_TRUE(h.sent.empty());
    const auto e = h.ended_with(server_end::publish_refused);
    EXPECT_EQ(e.reason, "Not authorized");
}

TEST(MqttServerSession, AnswerCodesPubackCannotCarryAreMapped) {
    harness h;
    h.connect();
    h.publish(make_publish("a", qos::at_least_once, 1));
    h.s.publish_done(1, reason::server_busy, "", h.now);  // not a PUBACK reason code
    h.collect();
    EXPECT_EQ(h.only_sent<puback>().reason_code, reason::unspecified_error);
}

TEST(MqttServerSession, PacketIdOfPendingPublishReusedAtAnotherQosIsProtocolError) {
    harness h;
    h.connect();
    h.publish(make_publish("a", qos::at_least_once, 1));
    h.feed(make_publish("a", qos::exactly_once, 1));
    EXPECT_EQ(h.only_sent<disconnect>().reason_code, reason::protocol_error);
}

TEST(MqttServerSession, ReceiveMaximumExceededEndsTheConnection) {
    server_settings cfg;
    cfg.receive_maximum = 3;
    harness h{cfg};
    h.connect();
    h.publish(make_publish("a", qos::at_least_once, 1));
    h.publish(make_publish("a", qos::exactly_once, 2));
    h.s.publish_done(2, reason::success, "", h.now);  // awaiting PUBREL still counts (spec 3.3.4)
    h.collect();
    h.take_sent();
    h.publish(make_publish("a", qos::at_least_once, 3));
    h.feed(make_publish("a", qos::at_most_once));  // QoS 0 does not count
    EXPECT_EQ(h.take_events_of<server_action::publish_request>().size(), 1U);
    h.feed(make_publish("a", qos::at_least_once, 4));
    EXPECT_EQ(h.only_sent<disconnect>().reason_code, reason::receive_maximum_exceeded);
    const auto e = h.ended_with(server_end::protocol_error);
    EXPECT_EQ(e.reason_code, reason::receive_maximum_exceeded);
}

TEST(MqttServerSession, Mqtt311PublishBeyondReceiveMaximumWaitsForASlot) {
    server_settings cfg;
    cfg.receive_maximum = 2;
    harness h{cfg, v311};
    h.connect();
    h.take_sent();
    h.in(encode(make_publish("a", qos::at_least_once, 1), v311) +
         encode(make_publish("a", qos::exactly_once, 2), v311) +
         encode(make_publish("a", qos::at_least_once, 3), v311) + bytes{0xC0, 0x00});
    EXPECT_EQ(h.take_events_of<server_action::publish_request>().size(), 2U);
    EXPECT_TRUE(h.sent.empty());  // the PINGREQ behind the held publish waits too
    EXPECT_TRUE(h.s.reading_paused());
    EXPECT_EQ(h.s.next_deadline(), std::nullopt);  // the client is not to blame for the wait
    h.advance(1h);
    EXPECT_EQ(h.s.state(), server_state::online);

    h.publish_done(2, reason::success, "");  // PUBREC: the flow still counts until PUBREL
    EXPECT_EQ(h.only_sent<pubrec>().packet_id, 2);
    EXPECT_TRUE(h.events.empty());
    EXPECT_TRUE(h.s.reading_paused());
    h.publish_done(1, reason::success, "");  // PUBACK: a slot
    EXPECT_EQ(h.only_event<server_action::publish_request>().msg.packet_id, 3);
    auto sent = h.take_sent();
    ASSERT_EQ(sent.size(), 2U);
    EXPECT_TRUE(std::holds_alternative<puback>(sent[0]));
    EXPECT_TRUE(std::holds_alternative<pingresp>(sent[1]));
    EXPECT_FALSE(h.s.reading_paused());
    EXPECT_EQ(h.s.next_deadline(), h.now + 90s);
    EXPECT_EQ(h.s.pending_publishes() + h.s.awaiting_release(), 2U);
}

TEST(MqttServerSession, Mqtt311FlowsAwaitingPubrelThatFillReceiveMaximumClose) {
    server_settings cfg;
    cfg.receive_maximum = 2;
    harness h{cfg, v311};
    h.connect();
    for (std::uint16_t id = 1; id <= 2; ++id) {
        h.publish(make_publish("a", qos::exactly_once, id));
        h.publish_done(id, reason::success, "");
    }
    h.take_sent();
    h.feed(make_publish("a", qos::at_least_once, 3));
    EXPECT_TRUE(h.sent.empty());
    EXPECT_EQ(h.ended_with(server_end::protocol_error).reason_code, reason::receive_maximum_exceeded);
}

TEST(MqttServerSession, Mqtt311ClientReadOnWhilePausedIsEnded) {
    server_settings cfg;
    cfg.receive_maximum = 1;
    cfg.max_packet_size = 100;
    harness h{cfg, v311};
    h.connect();
    h.publish(make_publish("a", qos::at_least_once, 1));
    h.in(encode(make_publish("a", qos::at_least_once, 2), v311));
    EXPECT_TRUE(h.s.reading_paused());
    h.in(bytes(200, 0xC0));
    EXPECT_EQ(h.ended_with(server_end::protocol_error).reason,
              "more than 200 bytes sent while the server was not reading");
}

TEST(MqttServerSession, TopicAliasIsSetAndResolved) {
    harness h;
    h.connect();
    auto set = make_publish("factory/line-1/temperature", qos::at_most_once);
    set.props.topic_alias = 4;
    h.feed(set);
    auto req = h.only_event<server_action::publish_request>();
    EXPECT_EQ(req.msg.topic, "factory/line-1/temperature");
    EXPECT_FALSE(req.msg.props.topic_alias.has_value());
    auto use = make_publish("", qos::at_least_once, 2, "22");
    use.props.topic_alias = 4;
    h.feed(use);
    req = h.only_event<server_action::publish_request>();
    EXPECT_EQ(req.msg.topic, "factory/line-1/temperature");
    EXPECT_EQ(req.msg.payload, "22");
    EXPECT_FALSE(req.msg.props.topic_alias.has_value());
    EXPECT_EQ(h.s.topic_aliases(), 1U);
    auto reset = make_publish("other", qos::at_most_once);  // an alias may be set again
    reset.props.topic_alias = 4;
    h.feed(reset);
    h.take_events();
    use.packet_id = 3;
    h.feed(use);
    EXPECT_EQ(h.only_event<server_action::publish_request>().msg.topic, "other");
}

// --- malformed packets ---

TEST(MqttServerSession, MalformedPacketIsDisconnectMalformedPacket) {
    harness h;
    h.connect_with_will();
    h.in({0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01});  // QoS 3 in the fixed header
    const auto d = h.only_sent<disconnect>();
    EXPECT_EQ(d.reason_code, reason::malformed_packet);
    EXPECT_EQ(d.props.reason_string, "malformed packet: PUBLISH: QoS 3 in the fixed header");
    const auto e = h.ended_with(server_end::protocol_error);
    EXPECT_EQ(e.reason_code, reason::malformed_packet);
    EXPECT_TRUE(e.publish_will);
    h.in({0xC0, 0x00});  // bytes after the end are not looked at
    EXPECT_TRUE(h.sent.empty() && h.events.empty());
}

TEST(MqttServerSession, PacketOverTheLimitIsPacketTooLarge) {
    server_settings cfg;
    cfg.max_packet_size = 64;
    harness h{cfg};
    h.connect();
    h.in({0x30, 0x7F});  // the fixed header alone says 129 bytes
    EXPECT_EQ(h.only_sent<disconnect>().reason_code, reason::packet_too_large);
    EXPECT_EQ(h.ending().reason_code, reason::packet_too_large);
}

TEST(MqttServerSession, MalformedPacketOn311JustCloses) {
    harness h{{}, v311};
    h.connect();
    h.take_sent();
    h.in({0x62, 0x02, 0x00, 0x00});  // PUBREL with packet identifier 0
    EXPECT_TRUE(h.sent.empty());
    const auto e = h.ended_with(server_end::protocol_error);
    EXPECT_EQ(e.reason_code, reason::malformed_packet);
}

TEST(MqttServerSession, ReasonForTheLogQuotesNothingTheClientSent) {
    harness h;
    h.connect();
    // A topic with a wildcard and a newline, and a secret in it.
    h.in(with_header(0x30, str("secret-token/+\ninjected") + bytes{0}));
    const auto e = h.ending();
    EXPECT_EQ(e.reason_code, reason::malformed_packet);
    EXPECT_EQ(e.reason.find("secret"), std::string::npos) << e.reason;
    EXPECT_EQ(e.reason.find('\n'), std::string::npos);
    EXPECT_EQ(e.reason, "malformed packet: PUBLISH: topic name contains wildcard '+'");
}

// --- SUBSCRIBE / UNSUBSCRIBE ---

subscribe subscribe_of(std::uint16_t id, const std::vector<std::string>& filters, qos q = qos::at_least_once) {
    subscribe s{id, {}, {}};
    for (const auto& f : filters) s.subscriptions.push_back(subscription{f, q, false, false, 0});
    return s;
}

// --- protocol violations of a connected client ---

struct violation_case {
    const char* name;
    packet sent;
    std::uint8_t expected;  // the DISCONNECT's reason code
    server_settings settings = {};
};

mqtt::publish with_alias(std::string topic, std::uint16_t alias) {
    auto p = make_publish(std::move(topic), qos::at_most_once);
    p.props.topic_alias = alias;
    return p;
}

std::vector<violation_case> violation_cases() {
    server_settings no_retain;
    no_retain.retain_available = false;
    server_settings no_aliases;
    no_aliases.topic_alias_maximum = 0;
    auto retained = make_publish("a", qos::at_most_once);
    retained.retain = true;
    auto with_subscription_id = make_publish("a", qos::at_most_once);
    with_subscription_id.props.subscription_identifiers = {1};
    auto subscribe_with_id = subscribe_of(1, {"a"});
    subscribe_with_id.props.subscription_identifiers = {5};
    auto shared_no_local = subscribe_of(1, {"a", "$share/g/a"});
    shared_no_local.subscriptions[1].no_local = true;
    return {
        // Spec 3.8.3.1 [MQTT-3.8.3-4]: No Local on a shared subscription.
        {"NoLocalOnASharedSubscription", shared_no_local, reason::protocol_error},
        // Spec 4.8.2 [MQTT-4.8.2-1], [MQTT-4.8.2-2]: a share name of at least one character, no
        // wildcard in it, a '/' and a topic filter after it.
        {"EmptyShareName", subscribe_of(1, {"$share//a"}), reason::protocol_error},
        {"WildcardShareName", subscribe_of(1, {"$share/+/a"}), reason::protocol_error},
        {"WildcardInsideShareName", subscribe_of(1, {"$share/g#/a"}), reason::protocol_error},
        {"ShareNameWithoutFilter", subscribe_of(1, {"$share/g"}), reason::protocol_error},
        {"ShareNameWithEmptyFilter", subscribe_of(1, {"$share/g/"}), reason::protocol_error},
        {"UnsubscribeShareNameWithoutFilter", unsubscribe{1, {"$share/g"}, {}}, reason::protocol_error},
        // Spec 3.3.2.3.4: 0 and above Topic Alias Maximum are Topic Alias invalid.
        {"TopicAliasAboveTheMaximum", with_alias("a", 33), reason::topic_alias_invalid},
        {"TopicAlias0", with_alias("a", 0), reason::topic_alias_invalid},
        {"TopicAliasWhenNoneAreTaken", with_alias("a", 1), reason::topic_alias_invalid, no_aliases},
        {"TopicAliasUsedBeforeItWasSet", with_alias("", 2), reason::protocol_error},
        // Spec 3.3.1.3: RETAIN while Retain Available is 0.
        {"RetainWhileNotAvailable", retained, reason::retain_not_supported, no_retain},
        // Spec 3.3.4-6: a client sends no Subscription Identifier in PUBLISH.
        {"SubscriptionIdentifierInPublish", with_subscription_id, reason::protocol_error},
        // Spec 3.8.2.1.2: not while Subscription Identifier Available is 0.
        {"SubscriptionIdentifierInSubscribe", subscribe_with_id, reason::subscription_identifiers_not_supported},
        // Packets only a server sends; PUBREC and PUBCOMP answer QoS 2, which is never sent to a
        // client; AUTH without enhanced authentication (spec 4.12).
        {"Connack", connack{}, reason::protocol_error},
        {"Suback", suback{1, {0}, {}}, reason::protocol_error},
        {"Unsuback", unsuback{1, {0}, {}}, reason::protocol_error},
        {"Pingresp", pingresp{}, reason::protocol_error},
        {"Pubrec", pubrec{1, 0, {}}, reason::protocol_error},
        {"Pubcomp", pubcomp{1, 0, {}}, reason::protocol_error},
        {"Auth", auth{}, reason::protocol_error},
    };
}

TEST(MqttServerSession, ProtocolViolationsEndTheConnectionWithTheirReasonCode) {
    for (const auto& c : violation_cases()) {
        SCOPED_TRACE(c.name);
        harness h{c.settings};
        h.connect();
        h.feed(c.sent);
        EXPECT_EQ(h.only_sent<disconnect>().reason_code, c.expected);
        const auto e = h.ending();  // no request raised before it
        EXPECT_EQ(e.cause, server_end::protocol_error);
        EXPECT_EQ(e.reason_code, c.expected);
        EXPECT_FALSE(e.reason.empty());
    }
}

TEST(MqttServerSession, SubscribeIsRaisedAndAnsweredWithSuback) {
    harness h;
    h.connect();
    const auto sub = subscribe_of(10, {"cmd/#", "cfg/+"}, qos::exactly_once);
    h.feed(sub);
    EXPECT_EQ(h.only_event<server_action::subscribe_request>().packet, sub);
    EXPECT_EQ(h.s.pending_filter_requests(), 1U);
    h.s.subscribe_done(10, {reason::granted_qos_2, reason::not_authorized}, h.now);
    h.collect();
    const auto ack = h.only_sent<suback>();
    EXPECT_EQ(ack.packet_id, 10);
    EXPECT_EQ(ack.reason_codes, (std::vector<std::uint8_t>{0x02, 0x87}));
    EXPECT_EQ(h.s.pending_filter_requests(), 0U);
    h.s.subscribe_done(10, {0}, h.now);  // answered already
    h.collect();
    EXPECT_TRUE(h.sent.empty());
}

TEST(MqttServerSession, Suback311HasOnlyGrantedQosOrFailure) {
    harness h{{}, v311};
    h.connect();
    h.take_sent();
    h.feed(subscribe_of(1, {"a", "b", "c"}));
    h.take_events();
    h.s.subscribe_done(1, {reason::granted_qos_1, reason::not_authorized, reason::topic_filter_invalid}, h.now);
    h.collect();
    EXPECT_EQ(h.wire, (std::vector<bytes>{{0x90, 0x05, 0x00, 0x01, 0x01, 0x80, 0x80}}));
}

TEST(MqttServerSession, FiltersNotOfferedAreAnsweredHereAndLeftOutOfTheRequest) {
    server_settings cfg;
    cfg.wildcard_subscriptions_available = false;
    cfg.shared_subscriptions_available = false;
    harness h{cfg};
    h.connect();
    h.feed(subscribe_of(3, {"$share/g/a", "a/+", "a/b"}));
    const auto req = h.only_event<server_action::subscribe_request>();
    ASSERT_EQ(req.packet.subscriptions.size(), 1U);
    EXPECT_EQ(req.packet.subscriptions[0].filter, "a/b");
    h.s.subscribe_done(3, {reason::granted_qos_1}, h.now);
    h.collect();
    EXPECT_EQ(h.only_sent<suback>().reason_codes,
              (std::vector<std::uint8_t>{reason::shared_subscriptions_not_supported,
                                         reason::wildcard_subscriptions_not_supported, reason::granted_qos_1}));
    // Nothing left to ask: answered at once.
    h.feed(subscribe_of(4, {"#"}));
    EXPECT_TRUE(h.events.empty());
    EXPECT_EQ(h.only_sent<suback>().reason_codes,
              (std::vector<std::uint8_t>{reason::wildcard_subscriptions_not_supported}));
    EXPECT_EQ(h.s.pending_filter_requests(), 0U);
}

// Shared subscriptions are offered (CONNACK leaves Shared Subscription Available out): they are
// raised as the client wrote them, for the owner to balance; MQTT 3.1.1 clients use the same form.
TEST(MqttServerSession, SharedSubscriptionsAreRaisedAsWritten) {
    for (const auto version : {v5, v311}) {
        harness h{{}, version};
        h.connect();
        h.take_sent();
        const auto sub = subscribe_of(7, {"$share/workers/cmd/#", "cmd/#"});
        h.feed(sub);
        EXPECT_EQ(h.only_event<server_action::subscribe_request>().packet, sub);
        h.s.subscribe_done(7, {reason::granted_qos_1, reason::granted_qos_1}, h.now);
        h.collect();
        EXPECT_EQ(h.only_sent<suback>().reason_codes, (std::vector<std::uint8_t>{1, 1}));
        h.feed(unsubscribe{8, {"$share/workers/cmd/#"}, {}});
        EXPECT_EQ(h.only_event<server_action::unsubscribe_request>().packet.filters,
                  std::vector<std::string>{"$share/workers/cmd/#"});
    }
}

TEST(MqttServerSession, PacketIdOfAnUnansweredSubscribeReusedIsProtocolError) {
    harness h;
    h.connect();
    h.feed(subscribe_of(1, {"a"}));
    h.take_events();
    h.feed(mqtt::unsubscribe{1, {"a"}, {}});
    EXPECT_EQ(h.only_sent<disconnect>().reason_code, reason::protocol_error);
    EXPECT_EQ(h.ending().reason, "packet identifier 1 of an unanswered request is reused");
}

TEST(MqttServerSession, UnsubscribeIsRaisedAndAnswered) {
    {
        harness h;
        h.connect();
        const mqtt::unsubscribe u{2, {"a", "b"}, {}};
        h.feed(u);
        EXPECT_EQ(h.only_event<server_action::unsubscribe_request>().packet, u);
        h.s.subscribe_done(2, {0, 0}, h.now);  // the wrong answer for an UNSUBSCRIBE: ignored
        h.s.unsubscribe_done(2, {reason::success, reason::no_subscription_existed}, h.now);
        h.collect();
        const auto ack = h.only_sent<unsuback>();
        EXPECT_EQ(ack.packet_id, 2);
        EXPECT_EQ(ack.reason_codes, (std::vector<std::uint8_t>{0x00, 0x11}));
    }
    {
        harness h{{}, v311};
        h.connect();
        h.take_sent();
        h.feed(mqtt::unsubscribe{2, {"a", "b"}, {}});
        h.take_events();
        h.s.unsubscribe_done(2, {}, h.now);  // 3.1.1: no codes
        h.collect();
        EXPECT_EQ(h.wire, (std::vector<bytes>{{0xB0, 0x02, 0x00, 0x02}}));
    }
}

#ifdef NDEBUG
TEST(MqttServerSession, WrongCodeCountIsClampedInReleaseBuilds) {
    harness h;
    h.connect();
    h.feed(subscribe_of(1, {"a", "b"}));
    h.feed(subscribe_of(2, {"a"}));
    h.take_events();
    h.s.subscribe_done(1, {reason::granted_qos_1}, h.now);                   // one missing: failure
    h.s.subscribe_done(2, {reason::success, reason::granted_qos_1}, h.now);  // one extra: dropped
    h.collect();
    auto sent = h.take_sent();
    ASSERT_EQ(sent.size(), 2U);
    EXPECT_EQ(std::get<suback>(sent[0]).reason_codes, (std::vector<std::uint8_t>{0x01, 0x80}));
    EXPECT_EQ(std::get<suback>(sent[1]).reason_codes, (std::vector<std::uint8_t>{0x00}));
}
#else
TEST(MqttServerSessionDeathTest, WrongCodeCountAssertsInDebugBuilds) {
    harness h;
    h.connect();
    h.feed(subscribe_of(1, {"a", "b"}));
    EXPECT_DEATH(h.s.subscribe_done(1, {reason::granted_qos_1}, h.now), "");
}
#endif

// --- DISCONNECT and the end ---

TEST(MqttServerSession, NormalDisconnectDiscardsTheWill) {
    harness h;
    h.connect_with_will();
    h.feed(disconnect{reason::success, {}});
    EXPECT_TRUE(h.sent.empty());
    const auto e = h.ended_with(server_end::client_disconnect);
    EXPECT_EQ(e.reason_code, reason::success);
    EXPECT_EQ(e.reason, "DISCONNECT from the client: normal disconnection");
    EXPECT_FALSE(e.publish_will);
}

TEST(MqttServerSession, DisconnectWithWillMessagePublishesIt) {
    harness h;
    h.connect_with_will();
    properties props;
    props.reason_string = "bye\nnow";
    h.feed(disconnect{reason::disconnect_with_will, props});
    const auto e = h.ended_with(server_end::client_disconnect);
    EXPECT_EQ(e.reason_code, reason::disconnect_with_will);
    EXPECT_TRUE(e.publish_will);
    EXPECT_EQ(e.reason, "DISCONNECT from the client: Disconnect with Will Message; its reason: 'bye\\nnow'");
}

TEST(MqttServerSession, Disconnect311DiscardsTheWill) {
    harness h{{}, v311};
    h.connect_with_will();
    h.in({0xE0, 0x00});
    const auto e = h.ended_with(server_end::client_disconnect);
    EXPECT_FALSE(e.publish_will);
}

TEST(MqttServerSession, TransportClosedWithoutDisconnectPublishesTheWill) {
    harness h;
    h.connect_with_will();
    h.transport_closed();
    const auto e = h.ending(false);  // no close action: the transport is gone
    EXPECT_EQ(e.cause, server_end::closed);
    EXPECT_FALSE(e.reason_code.has_value());
    EXPECT_TRUE(e.publish_will);
    h.transport_closed();
    EXPECT_TRUE(h.events.empty());
}

TEST(MqttServerSession, NoWillWithoutAcceptedConnect) {
    harness h;
    h.in(connect_v5("app-1", clean | will_flag | will_qos1, 60, {}, will_v5()));
    EXPECT_TRUE(h.only_event<server_action::connect_request>().packet.will.has_value());
    h.transport_closed();
    EXPECT_FALSE(h.ending(false).publish_will);
}

TEST(MqttServerSession, DisconnectSettingSessionExpiryAfterZeroIsProtocolError) {
    harness h;
    h.connect();
    properties props;
    props.session_expiry_interval = 60;
    h.feed(disconnect{reason::success, props});
    EXPECT_EQ(h.only_sent<disconnect>().reason_code, reason::protocol_error);
    EXPECT_TRUE(h.ending().publish_will == false);  // no will in this CONNECT
}

// Spec 3.14.2.2.2: the DISCONNECT's Session Expiry Interval replaces the CONNECT's; the owner
// reads it from `ended` (0 here: the client wants its session gone now).
TEST(MqttServerSession, DisconnectSessionExpiryReplacesTheConnectsForTheOwner) {
    harness h;
    h.connect(connect_v5("app-1", 0, 60, {0x11, 0x00, 0x00, 0x02, 0x58}));  // Clean Start 0, expiry 600 s
    properties props;
    props.session_expiry_interval = 0;
    h.feed(disconnect{reason::success, props});
    EXPECT_TRUE(h.sent.empty());
    EXPECT_EQ(h.ended_with(server_end::client_disconnect).session_expiry, std::optional<std::uint32_t>{0});
}

TEST(MqttServerSession, DisconnectWithoutSessionExpiryLeavesTheConnectsInForce) {
    harness h;
    h.connect(connect_v5("app-1", 0, 60, {0x11, 0x00, 0x00, 0x02, 0x58}));
    h.feed(disconnect{reason::success, {}});
    EXPECT_FALSE(h.ended_with(server_end::client_disconnect).session_expiry.has_value());
}

// Spec 3.2.2.3.2: a server that keeps the session for another time than asked says so.
TEST(MqttServerSession, ConnackAnnouncesTheSessionExpiryOnlyWhenItDiffersFromTheAsked) {
    for (const auto& [granted, announced] : std::vector<std::pair<std::optional<std::uint32_t>, std::optional<std::uint32_t>>>{
             {std::nullopt, std::nullopt}, {600, std::nullopt}, {300, 300}, {0, 0}}) {
        harness h;
        h.in(connect_v5("app-1", 0, 60, {0x11, 0x00, 0x00, 0x02, 0x58}));
        static_cast<void>(h.only_event<server_action::connect_request>());
        h.s.accept(false, std::nullopt, h.now, granted);
        h.collect();
        EXPECT_EQ(h.only_sent<connack>().props.session_expiry_interval, announced)
            << "granted " << (granted ? std::to_string(*granted) : "as asked");
    }
}

TEST(MqttServerSession, ServerDisconnectSendsReasonAndPublishesTheWill) {
    harness h;
    h.connect_with_will();
    h.s.disconnect(reason::session_taken_over, "another connection took the session over", h.now);
    h.collect();
    const auto d = h.only_sent<disconnect>();
    EXPECT_EQ(d.reason_code, reason::session_taken_over);
    EXPECT_EQ(d.props.reason_string, "another connection took the session over");
    const auto e = h.ended_with(server_end::server);
    EXPECT_EQ(e.reason_code, reason::session_taken_over);
    EXPECT_TRUE(e.publish_will);
}

TEST(MqttServerSession, NothingHappensAfterTheEnd) {
    harness h;
    h.connect();
    h.feed(subscribe_of(1, {"a"}));
    h.take_events();
    h.publish(make_publish("a", qos::at_least_once, 2));
    h.s.disconnect(reason::server_shutting_down, "", h.now);
    h.collect();
    h.take_sent();
    h.take_events();
    h.in({0xC0, 0x00});
    h.s.publish_done(2, reason::success, "", h.now);
    h.s.subscribe_done(1, {1}, h.now);
    h.s.accept(false, std::nullopt, h.now);
    h.s.refuse(reason::not_authorized, "", h.now);
    h.s.disconnect(reason::server_shutting_down, "", h.now);
    h.advance(1000h);
    h.transport_closed();
    EXPECT_EQ(h.s.deliver(make_publish("a", qos::at_most_once), 0, 1, h.now), delivery::not_online);
    h.collect();
    EXPECT_TRUE(h.sent.empty());
    EXPECT_TRUE(h.events.empty());
    EXPECT_EQ(h.s.next_deadline(), std::nullopt);
}

// --- deliveries ---

TEST(MqttServerSession, DeliveryBeforeConnackIsNotOnline) {
    harness h;
    EXPECT_EQ(h.s.deliver(make_publish("a", qos::at_most_once), 0, 1, h.now), delivery::not_online);
    h.in(connect_v5("app-1"));
    EXPECT_EQ(h.s.deliver(make_publish("a", qos::at_most_once), 0, 1, h.now), delivery::not_online);
}

TEST(MqttServerSession, Qos1DeliveriesUseTheWindowAndPacketIdsOfTheirOwn) {
    server_settings cfg;
    cfg.max_inflight_deliveries = 3;
    harness h{cfg};
    h.connect(connect_v5("app-1", clean, 60, bytes{0x21, 0, 2}));  // client Receive Maximum 2
    auto msg = make_publish("cmd/x", qos::at_least_once, 999);
    msg.dup = true;
    EXPECT_EQ(h.s.deliver(msg, 1, 101, h.now), delivery::sent);
    EXPECT_EQ(h.s.deliver(msg, 1, 102, h.now), delivery::sent);
    EXPECT_EQ(h.s.deliver(msg, 1, 103, h.now), delivery::queued);  // window = min(3, 2)
    EXPECT_EQ(h.s.deliver(make_publish("cmd/x", qos::at_most_once), 0, 104, h.now), delivery::queued);
    h.collect();
    auto sent = h.take_sent();
    ASSERT_EQ(sent.size(), 2U);
    EXPECT_EQ(h.s.inflight_deliveries(), 2U);
    EXPECT_EQ(h.s.queued_deliveries(), 2U);
    const auto& first = std::get<mqtt::publish>(sent[0]);
    EXPECT_EQ(first.packet_id, 1);
    EXPECT_FALSE(first.dup);
    EXPECT_EQ(std::get<mqtt::publish>(sent[1]).packet_id, 2);

    h.feed(puback{2, reason::success, {}});
    EXPECT_EQ(h.only_event<server_action::delivered>().tag, 102U);
    sent = h.take_sent();  // the queued QoS 1, then the QoS 0 behind it
    ASSERT_EQ(sent.size(), 2U);
    EXPECT_EQ(std::get<mqtt::publish>(sent[0]).packet_id, 3);
    EXPECT_EQ(std::get<mqtt::publish>(sent[0]).qos, qos::at_least_once);
    EXPECT_EQ(std::get<mqtt::publish>(sent[1]).qos, qos::at_most_once);
    EXPECT_EQ(h.s.queued_deliveries(), 0U);
    EXPECT_EQ(h.s.queued_bytes(), 0U);

    h.feed(puback{77, reason::success, {}});  // unknown: ignored, counted
    EXPECT_TRUE(h.events.empty() && h.sent.empty());
    EXPECT_EQ(h.s.unknown_acknowledgements(), 1U);
}

TEST(MqttServerSession, Qos0GoesAtOnceWhenNothingIsQueued) {
    harness h{{}, v311};
    h.connect();
    h.take_sent();
    EXPECT_EQ(h.s.deliver(make_publish("a", qos::at_most_once), 0, 1, h.now), delivery::sent);
    h.collect();
    EXPECT_EQ(h.wire, (std::vector<bytes>{{0x30, 0x04, 0x00, 0x01, 'a', 'x'}}));
}

TEST(MqttServerSession, Qos2DeliveryIsSentAsQos1) {
    harness h;
    h.connect();
    EXPECT_EQ(h.s.deliver(make_publish("a", qos::exactly_once), 2, 1, h.now), delivery::sent);
    h.collect();
    EXPECT_EQ(h.only_sent<mqtt::publish>().qos, qos::at_least_once);
}

TEST(MqttServerSession, DeliveryPropertiesGoAsGivenExceptTopicAlias) {
    harness h;
    h.connect();
    auto msg = make_publish("a", qos::at_most_once);
    msg.props.message_expiry_interval = 30;
    msg.props.response_topic = "reply/1";
    msg.props.user_properties.push_back({"k", "v"});
    msg.props.subscription_identifiers = {7};
    msg.props.topic_alias = 3;
    msg.retain = true;
    static_cast<void>(h.s.deliver(msg, 0, 1, h.now));
    h.collect();
    auto expected = msg;
    expected.props.topic_alias.reset();
    EXPECT_EQ(h.only_sent<mqtt::publish>(), expected);
}

TEST(MqttServerSession, DeliveryOverTheClientsMaximumPacketSizeIsNotSent) {
    harness h;
    h.connect(connect_v5("app-1", clean, 60, bytes{0x27, 0, 0, 0, 20}));  // Maximum Packet Size 20
    EXPECT_EQ(h.s.deliver(make_publish("a", qos::at_most_once, 0, std::string(14, 'x')), 0, 1, h.now),
              delivery::sent);  // 2 + 3 + 1 + 14 = 20 bytes
    EXPECT_EQ(h.s.deliver(make_publish("a", qos::at_most_once, 0, std::string(15, 'x')), 0, 2, h.now),
              delivery::too_large);
    EXPECT_EQ(h.s.deliver(make_publish("a", qos::at_least_once, 0, std::string(13, 'x')), 1, 3, h.now),
              delivery::too_large);  // the packet id counts
    h.collect();
    EXPECT_EQ(h.take_sent().size(), 1U);
}

TEST(MqttServerSession, QueueIsBoundedByBytes) {
    server_settings cfg;
    cfg.max_inflight_deliveries = 1;
    cfg.max_queued_bytes = 100;
    harness h{cfg};
    h.connect();
    const auto msg = make_publish("a", qos::at_least_once, 0, std::string(40, 'x'));  // 48 bytes with id
    EXPECT_EQ(h.s.deliver(msg, 1, 1, h.now), delivery::sent);
    EXPECT_EQ(h.s.deliver(msg, 1, 2, h.now), delivery::queued);
    EXPECT_EQ(h.s.deliver(msg, 1, 3, h.now), delivery::queued);
    EXPECT_EQ(h.s.queued_bytes(), 96U);
    EXPECT_EQ(h.s.deliver(msg, 1, 4, h.now), delivery::queue_full);
    EXPECT_EQ(h.s.queued_deliveries(), 2U);
}

TEST(MqttServerSession, EndListsUnacknowledgedDeliveriesOldestFirst) {
    server_settings cfg;
    cfg.max_inflight_deliveries = 3;
    harness h{cfg};
    h.connect();
    for (std::uint64_t tag = 1; tag <= 5; ++tag)
        static_cast<void>(h.s.deliver(make_publish("a", qos::at_least_once), 1, tag, h.now));
    static_cast<void>(h.s.deliver(make_publish("a", qos::at_most_once), 0, 99, h.now));  // QoS 0: not listed
    h.collect();
    h.take_sent();
    h.feed(puback{1, reason::success, {}});  // tag 1 done; tag 4 sent with packet id 4
    h.take_events();
    h.transport_closed();
    EXPECT_EQ(h.ending(false).unacknowledged, (std::vector<std::uint64_t>{2, 3, 4, 5}));
}

TEST(MqttServerSession, PacketIdsWrapAndSkipThoseInFlight) {
    harness h;
    h.connect();
    EXPECT_EQ(h.s.deliver(make_publish("a", qos::at_least_once), 1, 0, h.now), delivery::sent);  // id 1, kept
    for (std::uint32_t id = 2; id <= 65535; ++id) {
        static_cast<void>(h.s.deliver(make_publish("a", qos::at_least_once), 1, id, h.now));
        h.s.on_bytes(encode(puback{static_cast<std::uint16_t>(id), reason::success, {}}, v5), h.now);
        static_cast<void>(h.s.drain_actions());
    }
    EXPECT_EQ(h.s.inflight_deliveries(), 1U);
    static_cast<void>(h.s.deliver(make_publish("a", qos::at_least_once), 1, 1, h.now));
    h.collect();
    EXPECT_EQ(h.only_sent<mqtt::publish>().packet_id, 2);  // 1 is still in flight
}

// --- outbound topic aliases (spec 3.3.2.3.4; 3.1.2.11.5) ---

// The topic and Topic Alias of each PUBLISH the session sent, oldest first.
using aliased = std::pair<std::string, std::optional<std::uint16_t>>;
std::vector<aliased> topics_and_aliases(const std::vector<packet>& sent) {
    std::vector<aliased> out;
    for (const auto& p : sent)
        if (const auto* m = std::get_if<mqtt::publish>(&p)) out.emplace_back(m->topic, m->props.topic_alias);
    return out;
}

// Topic Alias Maximum (property 0x22) in an MQTT 5 CONNECT.
bytes topic_alias_maximum(std::uint16_t n) {
    return bytes{0x22} + u16(n);
}

TEST(MqttServerSession, NoTopicAliasToAClientWithoutTopicAliasMaximum) {  // MQTT-3.1.2-27
    for (const auto& props : {bytes{}, topic_alias_maximum(0)}) {
        harness h;
        h.connect(connect_v5("app-1", clean, 60, props));
        for (int i = 0; i < 3; ++i)
            static_cast<void>(h.s.deliver(make_publish("cmd/a", qos::at_most_once), 0, 1, h.now));
        h.collect();
        EXPECT_EQ(topics_and_aliases(h.take_sent()), (std::vector<aliased>(3, {"cmd/a", std::nullopt})));
        EXPECT_EQ(h.s.server_topic_aliases(), 0U);
    }
    harness h{{}, v311};  // MQTT 3.1.1 has none
    h.connect();
    static_cast<void>(h.s.deliver(make_publish("cmd/a", qos::at_most_once), 0, 1, h.now));
    h.collect();
    EXPECT_EQ(h.wire, (std::vector<bytes>{with_header(0x30, str("cmd/a") + bytes{'x'})}));
}

// The first PUBLISH on a topic carries the topic name and the alias, the next ones an empty
// topic name (a zero-length string) and the alias, byte for byte.
TEST(MqttServerSession, TopicAliasIsSentWithTheTopicFirstThenAlone) {
    harness h;
    h.connect(connect_v5("app-1", clean, 60, topic_alias_maximum(4)));
    static_cast<void>(h.s.deliver(make_publish("cmd/a", qos::at_most_once), 0, 1, h.now));
    h.collect();
    static_cast<void>(h.s.deliver(make_publish("cmd/a", qos::at_most_once), 0, 2, h.now));
    h.collect();
    const bytes alias_1 = bytes{3, 0x23} + u16(1);  // property length 3: Topic Alias 1
    EXPECT_EQ(h.wire, (std::vector<bytes>{with_header(0x30, str("cmd/a") + alias_1 + bytes{'x'}),
                                          with_header(0x30, str("") + alias_1 + bytes{'x'})}));
    EXPECT_EQ(h.s.server_topic_aliases(), 1U);
}

// Free aliases first, lowest first; then the least recently used topic gives up its alias, and
// the PUBLISH that reuses it carries the new topic name (the client's mapping changes).
TEST(MqttServerSession, TopicAliasesAreBoundedByTheClientsMaximumAndReusedLeastRecentlyUsedFirst) {
    harness h;
    h.connect(connect_v5("app-1", clean, 60, topic_alias_maximum(2)));
    for (const char* topic : {"a/1", "b/2", "a/1", "c/3", "b/2", "c/3", "a/1"})
        static_cast<void>(h.s.deliver(make_publish(topic, qos::at_most_once), 0, 1, h.now));
    h.collect();
    EXPECT_EQ(topics_and_aliases(h.take_sent()), (std::vector<aliased>{{"a/1", 1},
                                                                       {"b/2", 2},
                                                                       {"", 1},        // a/1
                                                                       {"c/3", 2},     // b/2 was least recently used
                                                                       {"b/2", 1},     // a/1 was
                                                                       {"", 2},        // c/3
                                                                       {"a/1", 1}}));  // b/2 was
    EXPECT_EQ(h.s.server_topic_aliases(), 2U);
}

TEST(MqttServerSession, OutboundTopicAliasesAreBoundedByTheServersMaximumToo) {
    server_settings cfg;
    cfg.max_outbound_topic_aliases = 1;
    harness h{cfg};
    h.connect(connect_v5("app-1", clean, 60, topic_alias_maximum(65535)));
    for (int i = 0; i < 1000; ++i)
        static_cast<void>(h.s.deliver(make_publish("t/" + std::to_string(i % 3), qos::at_most_once), 0, 1, h.now));
    h.collect();
    for (const auto& [topic, alias] : topics_and_aliases(h.take_sent())) {
        ASSERT_EQ(alias, std::optional<std::uint16_t>{1}) << topic;
        ASSERT_FALSE(topic.empty());  // three topics take turns at one alias
    }
    cfg.max_outbound_topic_aliases = 0;
    harness none{cfg};
    none.connect(connect_v5("app-1", clean, 60, topic_alias_maximum(10)));
    static_cast<void>(none.s.deliver(make_publish("t/0", qos::at_most_once), 0, 1, none.now));
    none.collect();
    EXPECT_EQ(topics_and_aliases(none.take_sent()), (std::vector<aliased>{{"t/0", std::nullopt}}));
}

// A delivery waiting for a window slot gets its alias when it is sent, so the client reads the
// mapping before its first use whatever the order of queueing.
TEST(MqttServerSession, QueuedDeliveriesGetTheirAliasWhenSent) {
    server_settings cfg;
    cfg.max_inflight_deliveries = 1;
    harness h{cfg};
    h.connect(connect_v5("app-1", clean, 60, topic_alias_maximum(8)));
    EXPECT_EQ(h.s.deliver(make_publish("q/a", qos::at_least_once), 1, 1, h.now), delivery::sent);
    EXPECT_EQ(h.s.deliver(make_publish("q/b", qos::at_least_once), 1, 2, h.now), delivery::queued);
    EXPECT_EQ(h.s.deliver(make_publish("q/a", qos::at_most_once), 0, 3, h.now), delivery::queued);
    EXPECT_EQ(h.s.deliver(make_publish("q/b", qos::at_most_once), 0, 4, h.now), delivery::queued);
    h.collect();
    EXPECT_EQ(topics_and_aliases(h.take_sent()), (std::vector<aliased>{{"q/a", 1}}));
    h.feed(puback{1, reason::success, {}});
    EXPECT_EQ(topics_and_aliases(h.take_sent()), (std::vector<aliased>{{"q/b", 2}, {"", 1}, {"", 2}}));
}

// Aliases live as long as the network connection (MQTT-3.3.2-7): what a connection ended with
// unacknowledged goes to the next connection as a new PUBLISH with its topic name, whatever alias
// the previous connection or the caller had for it.
TEST(MqttServerSession, ANewConnectionStartsWithoutTheAliasesOfThePreviousOne) {
    const auto connect_with_aliases = connect_v5("app-1", 0, 60, bytes{0x11, 0, 0, 0, 60} + topic_alias_maximum(4));
    harness first;
    first.connect(connect_with_aliases);
    auto msg = make_publish("cmd/keep", qos::at_least_once);
    EXPECT_EQ(first.s.deliver(msg, 1, 7, first.now), delivery::sent);
    EXPECT_EQ(first.s.deliver(msg, 1, 8, first.now), delivery::sent);
    first.collect();
    EXPECT_EQ(topics_and_aliases(first.take_sent()), (std::vector<aliased>{{"cmd/keep", 1}, {"", 1}}));
    first.transport_closed();
    EXPECT_EQ(first.ending(false).unacknowledged, (std::vector<std::uint64_t>{7, 8}));
    EXPECT_EQ(first.s.server_topic_aliases(), 0U);

    harness next;
    next.connect(connect_with_aliases, true);
    msg.props.topic_alias = 1;  // even a caller that kept the old alias does not make it go out
    EXPECT_EQ(next.s.deliver(msg, 1, 7, next.now), delivery::sent);
    EXPECT_EQ(next.s.deliver(msg, 1, 8, next.now), delivery::sent);
    next.collect();
    EXPECT_EQ(topics_and_aliases(next.take_sent()), (std::vector<aliased>{{"cmd/keep", 1}, {"", 1}}));
}

// The alias's 3 bytes must not push a packet past the client's Maximum Packet Size: such a
// packet goes with its topic name and without an alias, whether the topic had one or not.
TEST(MqttServerSession, TopicAliasIsLeftOutWhenItWouldExceedTheClientsMaximumPacketSize) {
    harness h;
    h.connect(connect_v5("app-1", clean, 60, bytes{0x27, 0, 0, 0, 20} + topic_alias_maximum(4)));
    // Sizes: fixed header 2, topic 2 + 1 (or 2 when empty), properties 1 (+ 3 with the alias), payload.
    const auto deliver = [&](std::size_t payload) {
        return h.s.deliver(make_publish("a", qos::at_most_once, 0, std::string(payload, 'x')), 0, 1, h.now);
    };
    EXPECT_EQ(deliver(14), delivery::sent);  // 20 bytes; 23 with an alias
    EXPECT_EQ(deliver(11), delivery::sent);  // 20 bytes with the alias, which it gets
    EXPECT_EQ(deliver(14), delivery::sent);  // 22 bytes with the alias alone, 20 with the topic alone
    EXPECT_EQ(deliver(12), delivery::sent);  // 20 bytes with the alias alone
    h.collect();
    EXPECT_EQ(topics_and_aliases(h.take_sent()),
              (std::vector<aliased>{{"a", std::nullopt}, {"a", 1}, {"a", std::nullopt}, {"", 1}}));
}

// --- hostile clients ---

TEST(MqttServerSession, HostileClientOpeningQos2FlowsIsBoundedByReceiveMaximum) {
    harness h;  // receive_maximum 100
    h.connect();
    std::size_t answered = 0;
    for (std::uint32_t id = 1; id <= 65535 && h.s.state() == server_state::online; ++id) {
        h.s.on_bytes(encode(make_publish("a", qos::exactly_once, static_cast<std::uint16_t>(id)), v5), h.now);
        for (auto& a : h.s.drain_actions()) {
            if (const auto* r = std::get_if<server_action::publish_request>(&a)) {
                h.s.publish_done(r->msg.packet_id, reason::success, "", h.now);  // PUBREL never comes
                ++answered;
            }
            if (std::holds_alternative<server_action::ended>(a)) h.events.push_back(a);
        }
        ASSERT_LE(h.s.awaiting_release() + h.s.pending_publishes(), 100U);
    }
    EXPECT_EQ(answered, 100U);
    EXPECT_EQ(h.s.state(), server_state::ended);
    ASSERT_EQ(h.events.size(), 1U);
    EXPECT_EQ(std::get<server_action::ended>(h.events[0]).reason_code, reason::receive_maximum_exceeded);
}

TEST(MqttServerSession, ClientCompletingEveryQos2FlowKeepsNoState) {
    harness h;
    h.connect();
    for (std::uint32_t id = 1; id <= 65535; ++id) {
        const auto pid = static_cast<std::uint16_t>(id);
        h.s.on_bytes(encode(make_publish("a", qos::exactly_once, pid), v5), h.now);
        h.s.publish_done(pid, reason::success, "", h.now);
        h.s.on_bytes(encode(pubrel{pid, reason::success, {}}, v5), h.now);
        static_cast<void>(h.s.drain_actions());
    }
    EXPECT_EQ(h.s.state(), server_state::online);
    EXPECT_EQ(h.s.awaiting_release(), 0U);
    EXPECT_EQ(h.s.pending_publishes(), 0U);
}

TEST(MqttServerSession, HostileStreamOfTopicAliasesIsBoundedByTopicAliasMaximum) {
    harness h;  // topic_alias_maximum 32
    h.connect();
    std::size_t raised = 0;
    for (std::uint32_t i = 0; i < 100'000; ++i) {
        auto p = make_publish("t/" + std::to_string(i), qos::at_most_once);
        p.props.topic_alias = static_cast<std::uint16_t>(1 + i % 32);
        h.s.on_bytes(encode(p, v5), h.now);
        for (const auto& a : h.s.drain_actions()) raised += std::holds_alternative<server_action::publish_request>(a);
        ASSERT_LE(h.s.topic_aliases(), 32U);
    }
    EXPECT_EQ(raised, 100'000U);
    auto p = make_publish("t/x", qos::at_most_once);
    p.props.topic_alias = 33;
    h.feed(p);
    EXPECT_EQ(h.only_sent<disconnect>().reason_code, reason::topic_alias_invalid);
    EXPECT_EQ(h.s.topic_aliases(), 0U);
}

TEST(MqttServerSession, HostileClientPilingUpSubscribesIsBounded) {
    server_settings cfg;
    cfg.receive_maximum = 10;
    harness h{cfg};
    h.connect();
    for (std::uint16_t id = 1; id <= 10; ++id) h.feed(subscribe_of(id, {"a"}));
    EXPECT_EQ(h.take_events_of<server_action::subscribe_request>().size(), 10U);
    EXPECT_EQ(h.s.pending_filter_requests(), 10U);
    h.feed(subscribe_of(11, {"a"}));
    EXPECT_EQ(h.only_sent<disconnect>().reason_code, reason::quota_exceeded);
    EXPECT_EQ(h.ending().reason_code, reason::quota_exceeded);
}

TEST(MqttServerSession, ConsecutivePacketsShareOneSendAction) {
    harness h;
    h.connect();
    h.in(bytes{0xC0, 0x00, 0xC0, 0x00, 0xC0, 0x00});
    ASSERT_EQ(h.wire.size(), 1U);
    EXPECT_EQ(h.wire[0], (bytes{0xD0, 0x00, 0xD0, 0x00, 0xD0, 0x00}));
}

TEST(MqttServerSession, BytesSplitAnywhereGiveTheSameResult) {
    const bytes stream = connect_v5("app-1") + encode(make_publish("a/b", qos::at_least_once, 1), v5) +
                         bytes{0xC0, 0x00} + encode(subscribe_of(2, {"x/#"}), v5);
    for (std::size_t cut = 1; cut < stream.size(); ++cut) {
        harness h;
        const auto accept_once_raised = [&h] {
            if (h.s.state() == server_state::awaiting_decision) h.s.accept(false, std::nullopt, h.now);
            h.collect();
        };
        h.in(bytes(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(cut)));
        accept_once_raised();
        h.in(bytes(stream.begin() + static_cast<std::ptrdiff_t>(cut), stream.end()));
        accept_once_raised();
        auto ev = h.take_events();
        ASSERT_EQ(ev.size(), 3U) << cut;
        EXPECT_TRUE(std::holds_alternative<server_action::connect_request>(ev[0]));
        EXPECT_TRUE(std::holds_alternative<server_action::publish_request>(ev[1]));
        EXPECT_TRUE(std::holds_alternative<server_action::subscribe_request>(ev[2]));
        EXPECT_EQ(h.take_sent().size(), 2U) << cut;  // CONNACK, PINGRESP
    }
}

TEST(MqttServerSession, EndCausesHaveNames) {
    EXPECT_STREQ(to_string(server_end::keep_alive_timeout), "keep-alive timeout");
    EXPECT_STREQ(to_string(server_end::publish_refused), "publish refused");
}

}  // namespace
}  // namespace thingmux::mqtt
