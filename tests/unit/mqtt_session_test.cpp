// Sans-I/O MQTT session driven by a scripted broker: broker packets are built with the codec's
// encode(), what the session sends is decoded with decode() (the codec has its own spec-vector
// tests). Time is a parameter: no sleeps.
#include "daemon/mqtt/codec.hpp"
#include "daemon/mqtt/session.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace thingmux::mqtt {
namespace {

using namespace std::chrono_literals;

session_config make_config(protocol_version v = protocol_version::v5) {
    session_config c;
    c.client_id = "gateway-01";
    c.version = v;
    return c;
}

session_config with_window(std::uint16_t max_inflight) {
    auto c = make_config();
    c.max_inflight = max_inflight;
    return c;
}

std::vector<subscription> subs_of(const std::vector<std::string>& filters) {
    std::vector<subscription> out;
    for (const auto& f : filters) out.push_back(subscription{f, qos::at_least_once, false, false, 0});
    return out;
}

std::vector<std::string> numbered(const std::string& prefix, int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
    return out;
}

// A scripted broker around one session.
class broker {
public:
    explicit broker(session_config cfg = make_config()) : s(std::move(cfg)) {}

    session s;
    time_point now = time_point{} + 1000h;
    std::vector<packet> sent;            // decoded packets the session sent, oldest first
    std::vector<session_action> events;  // every other action, in order

    [[nodiscard]] protocol_version version() const { return s.config().version; }

    void collect() {
        for (auto& a : s.drain_actions()) {
            auto* out = std::get_if<action::send>(&a);
            if (out == nullptr) {
                events.push_back(std::move(a));
                continue;
            }
            std::span<const std::uint8_t> rest{out->bytes};
            while (!rest.empty()) {
                auto r = decode(rest, version());
                auto* d = std::get_if<decoded>(&r);
                if (d == nullptr) {
                    ADD_FAILURE() << "session sent bytes that do not decode";
                    return;
                }
                sent.push_back(std::move(d->packet));
                rest = rest.subspan(d->consumed);
            }
        }
    }

    void open() {
        s.on_transport_open(now);
        collect();
    }
    void feed(const packet& p) { feed_bytes(encode(p, version())); }
    void feed_bytes(const std::vector<std::uint8_t>& bytes) {
        s.on_bytes(bytes, now);
        collect();
    }
    void closed(std::string reason = "connection reset by peer") {
        s.on_transport_closed(now, std::move(reason));
        collect();
    }
    void advance(std::chrono::milliseconds d) {
        now += d;
        s.on_tick(now);
        collect();
    }
    // Transport up, CONNECT consumed, CONNACK success; returns the actions the CONNACK caused
    // (connected first), leaving what it sent in `sent`.
    std::vector<session_action> connect(bool session_present = false, properties props = {}) {
        open();
        sent.clear();
        events.clear();
        feed(connack{session_present, reason::success, std::move(props)});
        return take_events();
    }

    op_id publish(std::string topic, qos q, std::string payload = "x") {
        mqtt::publish p;
        p.topic = std::move(topic);
        p.qos = q;
        p.payload = std::move(payload);
        const op_id id = s.publish(std::move(p), now);
        collect();
        return id;
    }
    op_id subscribe(const std::vector<std::string>& filters) {
        const op_id id = s.subscribe(subs_of(filters), now);
        collect();
        return id;
    }
    op_id unsubscribe(std::vector<std::string> filters) {
        const op_id id = s.unsubscribe(std::move(filters), now);
        collect();
        return id;
    }

    std::vector<packet> take_sent() { return std::exchange(sent, {}); }
    // Sent packets of type T; fails if anything else was sent.
    template <class T>
    std::vector<T> take_sent_only() {
        std::vector<T> out;
        for (auto& p : take_sent()) {
            if (auto* v = std::get_if<T>(&p))
                out.push_back(std::move(*v));
            else
                ADD_FAILURE() << "unexpected " << to_string(type_of(p));
        }
        return out;
    }
    std::vector<session_action> take_events() { return std::exchange(events, {}); }
    // The first action of type A among the events (which are all taken).
    template <class A>
    std::optional<A> take_first() {
        for (auto& e : take_events())
            if (auto* v = std::get_if<A>(&e)) return std::move(*v);
        return std::nullopt;
    }
    template <class A>
    std::vector<A> take_events_only() {
        std::vector<A> out;
        for (auto& e : take_events()) {
            if (auto* v = std::get_if<A>(&e))
                out.push_back(std::move(*v));
            else
                ADD_FAILURE() << "unexpected action index " << e.index();
        }
        return out;
    }
};

// --- CONNECT / CONNACK ---

TEST(MqttSession, ConnectCarriesV5SessionSettings) {
    auto cfg = make_config();
    cfg.username = "user";
    cfg.password = std::string("p\0w", 3);
    broker b{cfg};
    EXPECT_EQ(b.s.state(), session_state::offline);
    EXPECT_EQ(b.s.next_deadline(), std::nullopt);
    b.open();
    auto c = b.take_sent_only<connect>();
    ASSERT_EQ(c.size(), 1U);
    EXPECT_EQ(c[0].version, protocol_version::v5);
    EXPECT_EQ(c[0].client_id, "gateway-01");
    EXPECT_FALSE(c[0].clean_start);
    EXPECT_EQ(c[0].keep_alive, 60);
    EXPECT_EQ(c[0].username, "user");
    EXPECT_EQ(c[0].password, std::string("p\0w", 3));
    EXPECT_EQ(c[0].props.session_expiry_interval, 3600U);
    EXPECT_EQ(c[0].props.receive_maximum, 90);
    EXPECT_EQ(c[0].props.maximum_packet_size, 256U * 1024U);
    EXPECT_FALSE(c[0].props.topic_alias_maximum.has_value());
    EXPECT_EQ(b.s.state(), session_state::awaiting_connack);
    EXPECT_EQ(b.s.next_deadline(), b.now + 10s);
    EXPECT_TRUE(b.take_events().empty());
}

TEST(MqttSession, ConnectV311UsesCleanSessionFlag) {
    auto cfg = make_config(protocol_version::v311);
    cfg.clean_start = true;
    cfg.keep_alive = 30s;
    broker b{cfg};
    b.open();
    auto c = b.take_sent_only<connect>();
    ASSERT_EQ(c.size(), 1U);
    EXPECT_EQ(c[0].version, protocol_version::v311);
    EXPECT_TRUE(c[0].clean_start);
    EXPECT_EQ(c[0].keep_alive, 30);
    EXPECT_EQ(c[0].props, properties{});
}

TEST(MqttSession, ConnackSuccessGoesOnline) {
    broker b;
    properties props;
    props.receive_maximum = 20;
    auto ev = b.connect(true, props);
    ASSERT_EQ(ev.size(), 1U);
    const auto& c = std::get<action::connected>(ev[0]);
    EXPECT_TRUE(c.session_present);
    EXPECT_EQ(c.connack_props.receive_maximum, 20);
    EXPECT_EQ(b.s.state(), session_state::online);
    EXPECT_EQ(b.s.broker_properties().receive_maximum, 20);
    EXPECT_TRUE(b.take_sent().empty());
}

TEST(MqttSession, ConnackTimeoutCloses) {
    broker b;
    b.open();
    b.advance(9999ms);
    EXPECT_TRUE(b.take_events().empty());
    b.advance(1ms);
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 2U);
    EXPECT_EQ(std::get<action::disconnected>(ev[0]).reason, "no CONNACK within 10 s");
    EXPECT_EQ(std::get<action::close>(ev[1]).reason, "no CONNACK within 10 s");
    EXPECT_EQ(b.s.state(), session_state::offline);
    EXPECT_EQ(b.s.next_deadline(), std::nullopt);
    b.closed();  // already reported: no second disconnected
    EXPECT_TRUE(b.take_events().empty());
}

TEST(MqttSession, ConnackNotAuthorizedV5IsFatal) {
    broker b;
    b.open();
    b.feed(connack{false, reason::not_authorized, {}});
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 2U);
    const auto& f = std::get<action::connect_failed>(ev[0]);
    EXPECT_EQ(f.reason_code, reason::not_authorized);
    EXPECT_TRUE(f.fatal);
    EXPECT_EQ(f.reason, "not authorized (reason 0x87)");
    EXPECT_TRUE(std::holds_alternative<action::close>(ev[1]));
    EXPECT_EQ(b.s.state(), session_state::offline);
    b.closed();
    EXPECT_TRUE(b.take_events().empty());
}

TEST(MqttSession, ConnackNotAuthorizedV311IsMappedAndFatal) {
    broker b{make_config(protocol_version::v311)};
    b.open();
    b.feed(connack{false, 5, {}});
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 2U);
    const auto& f = std::get<action::connect_failed>(ev[0]);
    EXPECT_EQ(f.reason_code, reason::not_authorized);
    EXPECT_TRUE(f.fatal);
    EXPECT_EQ(f.reason, "not authorized (reason 0x87)");
}

TEST(MqttSession, ConnackServerUnavailableIsTransient) {
    broker b{make_config(protocol_version::v311)};
    b.open();
    b.feed(connack{false, 3, {}});
    auto ev = b.take_events();
    ASSERT_FALSE(ev.empty());
    const auto& f = std::get<action::connect_failed>(ev[0]);
    EXPECT_EQ(f.reason_code, reason::server_unavailable);
    EXPECT_FALSE(f.fatal);
}

TEST(MqttSession, SessionPresentAfterCleanStartIsProtocolError) {
    auto cfg = make_config();
    cfg.clean_start = true;
    broker b{cfg};
    b.connect(true);
    auto d = b.take_sent_only<mqtt::disconnect>();
    ASSERT_EQ(d.size(), 1U);
    EXPECT_EQ(d[0].reason_code, reason::protocol_error);
    EXPECT_EQ(b.s.state(), session_state::offline);
}

TEST(MqttSession, ServerKeepAliveOverridesConfig) {
    broker b;
    properties props;
    props.server_keep_alive = 20;
    b.connect(true, props);
    EXPECT_EQ(b.s.next_deadline(), b.now + 20s);
}

// --- subscriptions ---

TEST(MqttSession, ResubscribesLiveFiltersInPacketsOfEightWithoutSession) {
    broker b;
    b.connect(true);
    const auto filters = numbered("cmd/", 20);
    const op_id id = b.subscribe(filters);
    auto first = b.take_sent_only<mqtt::subscribe>();
    ASSERT_EQ(first.size(), 3U);
    for (const auto& p : first) b.feed(suback{p.packet_id, std::vector<std::uint8_t>(p.subscriptions.size(), 1), {}});
    auto done = b.take_events_only<action::subscribe_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, id);
    EXPECT_EQ(b.s.live_subscriptions().size(), 20U);

    b.closed();
    auto events = b.connect(false);
    ASSERT_EQ(events.size(), 1U);  // connected only: re-subscribing completes no op
    auto again = b.take_sent_only<mqtt::subscribe>();
    ASSERT_EQ(again.size(), 3U);
    EXPECT_EQ(again[0].subscriptions.size(), 8U);
    EXPECT_EQ(again[1].subscriptions.size(), 8U);
    EXPECT_EQ(again[2].subscriptions.size(), 4U);
    std::set<std::string> seen;
    for (const auto& p : again)
        for (const auto& s : p.subscriptions) seen.insert(s.filter);
    EXPECT_EQ(seen, std::set<std::string>(filters.begin(), filters.end()));
    for (const auto& p : again) b.feed(suback{p.packet_id, std::vector<std::uint8_t>(p.subscriptions.size(), 1), {}});
    EXPECT_TRUE(b.take_events().empty());
    EXPECT_TRUE(b.take_sent().empty());

    b.closed();
    b.take_events();
    b.connect(true);  // broker kept the session: nothing to send
    EXPECT_TRUE(b.take_sent().empty());
}

TEST(MqttSession, SubscribeCompletesWithCodesInRequestOrder) {
    broker b;
    b.connect(true);
    const op_id id = b.subscribe(numbered("a/", 10));
    auto p = b.take_sent_only<mqtt::subscribe>();
    ASSERT_EQ(p.size(), 2U);
    std::vector<std::uint8_t> second(2, reason::granted_qos_1);
    second[1] = reason::not_authorized;
    b.feed(suback{p[1].packet_id, second, {}});  // answers may come in any order
    EXPECT_TRUE(b.take_events().empty());
    b.feed(suback{p[0].packet_id, std::vector<std::uint8_t>(8, 0), {}});
    auto done = b.take_events_only<action::subscribe_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, id);
    std::vector<std::uint8_t> expected(10, 0);
    expected[8] = reason::granted_qos_1;
    expected[9] = reason::not_authorized;
    EXPECT_EQ(done[0].reason_codes, expected);
    EXPECT_EQ(b.s.live_subscriptions().size(), 9U);
    EXPECT_FALSE(b.s.live_subscriptions().contains("a/9"));
}

TEST(MqttSession, SubscribeInvalidFilterRefusedLocally) {
    broker b;
    b.connect(true);
    const op_id id = b.subscribe({"a/#/b"});
    EXPECT_TRUE(b.take_sent().empty());
    auto done = b.take_events_only<action::subscribe_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, id);
    EXPECT_EQ(done[0].reason_codes, std::vector<std::uint8_t>{reason::topic_filter_invalid});
    EXPECT_TRUE(b.s.live_subscriptions().empty());
}

TEST(MqttSession, SubackWithWrongCodeCountIsProtocolError) {
    broker b;
    b.connect(true);
    b.subscribe({"a", "b"});
    auto p = b.take_sent_only<mqtt::subscribe>();
    ASSERT_EQ(p.size(), 1U);
    b.feed(suback{p[0].packet_id, {0}, {}});
    auto d = b.take_sent_only<mqtt::disconnect>();
    ASSERT_EQ(d.size(), 1U);
    EXPECT_EQ(d[0].reason_code, reason::protocol_error);
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 2U);
    EXPECT_TRUE(std::holds_alternative<action::disconnected>(ev[0]));
    EXPECT_TRUE(std::holds_alternative<action::close>(ev[1]));
}

TEST(MqttSession, SubscribeOfflineIsSentAfterConnack) {
    broker b;
    const op_id id = b.subscribe({"a", "b"});
    EXPECT_TRUE(b.take_sent().empty());
    EXPECT_EQ(b.s.live_subscriptions().size(), 2U);
    b.connect(false);  // the pending op sends them; no second SUBSCRIBE from the live set
    auto p = b.take_sent_only<mqtt::subscribe>();
    ASSERT_EQ(p.size(), 1U);
    EXPECT_EQ(p[0].subscriptions.size(), 2U);
    b.feed(suback{p[0].packet_id, {1, 1}, {}});
    auto done = b.take_events_only<action::subscribe_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, id);
}

TEST(MqttSession, PendingSubscribeIsSentAgainAfterReconnect) {
    broker b;
    b.connect(true);
    const op_id id = b.subscribe({"a"});
    ASSERT_EQ(b.take_sent_only<mqtt::subscribe>().size(), 1U);
    b.closed();
    b.connect(true);
    auto p = b.take_sent_only<mqtt::subscribe>();
    ASSERT_EQ(p.size(), 1U);
    b.feed(suback{p[0].packet_id, {1}, {}});
    auto ev = b.take_events();
    ASSERT_FALSE(ev.empty());
    const auto& done = std::get<action::subscribe_done>(ev.back());
    EXPECT_EQ(done.id, id);
}

TEST(MqttSession, PartlyAnsweredSubscribeAfterReconnectWithoutSession) {
    broker b;
    b.connect(true);
    const auto filters = numbered("p/", 10);
    const op_id id = b.subscribe(filters);
    auto p = b.take_sent_only<mqtt::subscribe>();
    ASSERT_EQ(p.size(), 2U);
    b.feed(suback{p[0].packet_id, std::vector<std::uint8_t>(8, 1), {}});  // the 2-filter packet is lost
    b.closed();
    b.connect(false);
    auto again = b.take_sent_only<mqtt::subscribe>();
    // The op re-sends its unanswered packet; the answered filters come back with the live set.
    ASSERT_EQ(again.size(), 2U);
    ASSERT_EQ(again[0].subscriptions.size(), 2U);
    EXPECT_EQ(again[0].subscriptions[0].filter, "p/8");
    EXPECT_EQ(again[1].subscriptions.size(), 8U);
    b.feed(suback{again[0].packet_id, {1, 0}, {}});
    b.feed(suback{again[1].packet_id, std::vector<std::uint8_t>(8, 1), {}});
    auto done = b.take_events_only<action::subscribe_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, id);
    std::vector<std::uint8_t> expected(10, 1);
    expected[9] = 0;
    EXPECT_EQ(done[0].reason_codes, expected);
    EXPECT_EQ(b.s.live_subscriptions().size(), 10U);
}

TEST(MqttSession, SubscribeQos2RefusedLocally) {
    broker b;
    b.connect(true);
    std::vector<subscription> subs = subs_of({"a", "b"});
    subs[1].max_qos = qos::exactly_once;
    const op_id id = b.s.subscribe(subs, b.now);
    b.collect();
    auto p = b.take_sent_only<mqtt::subscribe>();
    ASSERT_EQ(p.size(), 1U);
    ASSERT_EQ(p[0].subscriptions.size(), 1U);
    EXPECT_EQ(p[0].subscriptions[0].filter, "a");
    b.feed(suback{p[0].packet_id, {1}, {}});
    auto done = b.take_events_only<action::subscribe_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, id);
    EXPECT_EQ(done[0].reason_codes, (std::vector<std::uint8_t>{1, reason::qos_not_supported}));
}

TEST(MqttSession, RefusedResubscribeReportsLostSubscription) {
    broker b;
    b.connect(true);
    b.subscribe({"a", "b"});
    auto p = b.take_sent_only<mqtt::subscribe>();
    b.feed(suback{p[0].packet_id, {1, 1}, {}});
    b.closed();
    b.take_events();
    b.connect(false);
    b.take_events();
    p = b.take_sent_only<mqtt::subscribe>();
    ASSERT_EQ(p.size(), 1U);
    b.feed(suback{p[0].packet_id, {1, reason::quota_exceeded}, {}});
    auto lost = b.take_events_only<action::subscription_lost>();
    ASSERT_EQ(lost.size(), 1U);
    EXPECT_EQ(lost[0].filter, "b");
    EXPECT_EQ(lost[0].reason_code, reason::quota_exceeded);
    EXPECT_EQ(b.s.live_subscriptions().size(), 1U);
}

TEST(MqttSession, UnsubscribeOnlineV5) {
    broker b;
    b.connect(true);
    b.subscribe({"a", "b"});
    b.take_sent();
    const op_id id = b.unsubscribe({"a", "b"});
    EXPECT_TRUE(b.s.live_subscriptions().empty());
    auto u = b.take_sent_only<mqtt::unsubscribe>();
    ASSERT_EQ(u.size(), 1U);
    EXPECT_EQ(u[0].filters, (std::vector<std::string>{"a", "b"}));
    b.feed(unsuback{u[0].packet_id, {reason::success, reason::no_subscription_existed}, {}});
    auto done = b.take_events_only<action::unsubscribe_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, id);
    EXPECT_EQ(done[0].reason_codes, (std::vector<std::uint8_t>{reason::success, reason::no_subscription_existed}));
}

TEST(MqttSession, UnsubscribeOnlineV311ReportsSuccessPerFilter) {
    broker b{make_config(protocol_version::v311)};
    b.connect(true);
    const op_id id = b.unsubscribe(numbered("x/", 9));
    auto u = b.take_sent_only<mqtt::unsubscribe>();
    ASSERT_EQ(u.size(), 2U);
    EXPECT_EQ(u[0].filters.size(), 8U);
    EXPECT_EQ(u[1].filters.size(), 1U);
    b.feed(unsuback{u[0].packet_id, {}, {}});
    b.feed(unsuback{u[1].packet_id, {}, {}});
    auto done = b.take_events_only<action::unsubscribe_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, id);
    EXPECT_EQ(done[0].reason_codes, std::vector<std::uint8_t>(9, reason::success));
}

TEST(MqttSession, UnsubscribeOfflinePersistentIsSentAfterConnack) {
    broker b;
    b.connect(true);
    b.subscribe({"a"});
    b.feed(suback{std::get<mqtt::subscribe>(b.take_sent().at(0)).packet_id, {1}, {}});
    b.closed();
    b.take_events();
    const op_id id = b.unsubscribe({"a"});
    EXPECT_TRUE(b.take_events().empty());  // the broker may still hold it: wait for a connection
    b.connect(true);
    b.take_events();
    auto u = b.take_sent_only<mqtt::unsubscribe>();
    ASSERT_EQ(u.size(), 1U);
    b.feed(unsuback{u[0].packet_id, {reason::success}, {}});
    auto done = b.take_events_only<action::unsubscribe_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, id);
}

TEST(MqttSession, UnsubscribeOfflineCleanStartCompletesAtOnce) {
    auto cfg = make_config();
    cfg.clean_start = true;
    broker b{cfg};
    const op_id id = b.unsubscribe({"a"});
    auto done = b.take_events_only<action::unsubscribe_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, id);
    EXPECT_EQ(done[0].reason_codes, std::vector<std::uint8_t>{reason::success});
}

TEST(MqttSession, UnsubscribeThenResubscribeOfflineKeepsOrder) {
    broker b;
    b.connect(true);
    b.subscribe({"a", "b"});
    b.feed(suback{std::get<mqtt::subscribe>(b.take_sent().at(0)).packet_id, {1, 1}, {}});
    b.closed();
    b.take_events();
    const op_id unsub = b.unsubscribe({"a"});
    const op_id sub = b.subscribe({"a"});
    b.connect(false);
    b.take_events();
    auto sent = b.take_sent();
    // The ops in request order, then the live filters they do not cover ("b" only).
    ASSERT_EQ(sent.size(), 3U);
    const auto& u = std::get<mqtt::unsubscribe>(sent[0]);
    const auto& s1 = std::get<mqtt::subscribe>(sent[1]);
    const auto& s2 = std::get<mqtt::subscribe>(sent[2]);
    EXPECT_EQ(u.filters, std::vector<std::string>{"a"});
    ASSERT_EQ(s1.subscriptions.size(), 1U);
    EXPECT_EQ(s1.subscriptions[0].filter, "a");
    ASSERT_EQ(s2.subscriptions.size(), 1U);
    EXPECT_EQ(s2.subscriptions[0].filter, "b");
    b.feed(unsuback{u.packet_id, {reason::no_subscription_existed}, {}});
    b.feed(suback{s1.packet_id, {1}, {}});
    b.feed(suback{s2.packet_id, {1}, {}});
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 2U);
    EXPECT_EQ(std::get<action::unsubscribe_done>(ev[0]).id, unsub);
    EXPECT_EQ(std::get<action::subscribe_done>(ev[1]).id, sub);
    EXPECT_EQ(b.s.live_subscriptions().size(), 2U);
}

// --- outbound publishes ---

TEST(MqttSession, Qos1PublishCompletesOnPuback) {
    broker b;
    b.connect(true);
    b.take_events();
    const op_id ok = b.publish("t/1", qos::at_least_once);
    const op_id refused = b.publish("t/2", qos::at_least_once);
    auto p = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(p.size(), 2U);
    EXPECT_EQ(p[0].topic, "t/1");
    EXPECT_EQ(p[0].qos, qos::at_least_once);
    EXPECT_FALSE(p[0].dup);
    EXPECT_NE(p[0].packet_id, p[1].packet_id);
    EXPECT_EQ(b.s.inflight_count(), 2U);
    properties why;
    why.reason_string = "policy denies t/2";
    b.feed(puback{p[1].packet_id, reason::not_authorized, why});
    b.feed(puback{p[0].packet_id, reason::success, {}});
    auto done = b.take_events_only<action::publish_done>();
    ASSERT_EQ(done.size(), 2U);
    EXPECT_EQ(done[0].id, refused);
    EXPECT_EQ(done[0].reason_code, reason::not_authorized);
    EXPECT_EQ(done[0].error, local_error::none);
    EXPECT_EQ(done[0].reason_string, "policy denies t/2");
    EXPECT_EQ(done[1].id, ok);
    EXPECT_EQ(done[1].reason_code, reason::success);
    EXPECT_EQ(b.s.inflight_count(), 0U);
}

TEST(MqttSession, Qos1PublishV311) {
    broker b{make_config(protocol_version::v311)};
    b.connect(true);
    b.take_events();
    const op_id id = b.publish("t", qos::at_least_once);
    auto p = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(p.size(), 1U);
    b.feed(puback{p[0].packet_id, reason::success, {}});
    auto done = b.take_events_only<action::publish_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, id);
    EXPECT_EQ(done[0].reason_code, reason::success);
}

TEST(MqttSession, UnknownPubackIsCountedAndIgnored) {
    broker b;
    b.connect(true);
    b.take_events();
    b.feed(puback{4242, reason::success, {}});
    b.feed(suback{4243, {0}, {}});
    EXPECT_EQ(b.s.unknown_ack_count(), 2U);
    EXPECT_TRUE(b.take_events().empty());
    EXPECT_EQ(b.s.state(), session_state::online);
}

TEST(MqttSession, Qos0OnlineCompletesAtOnceOfflineFails) {
    broker b;
    const op_id offline = b.publish("t", qos::at_most_once);
    auto done = b.take_events_only<action::publish_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, offline);
    EXPECT_EQ(done[0].error, local_error::not_connected);
    EXPECT_TRUE(b.take_sent().empty());

    b.connect(true);
    b.take_events();
    const op_id online = b.publish("t", qos::at_most_once);
    ASSERT_EQ(b.take_sent_only<mqtt::publish>().size(), 1U);
    done = b.take_events_only<action::publish_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].id, online);
    EXPECT_EQ(done[0].error, local_error::none);
}

// A caller finds its state for a result by the tag it gave publish(), whatever the outcome.
TEST(MqttSession, PublishDoneCarriesTheCallersTag) {
    broker b;
    const auto publish = [&](std::string topic, qos q, std::uint64_t tag) {
        mqtt::publish p;
        p.topic = std::move(topic);
        p.qos = q;
        static_cast<void>(b.s.publish(std::move(p), b.now, tag));
        b.collect();
    };
    std::vector<std::uint64_t> tags;
    const auto harvest = [&] {
        for (auto& e : b.take_events())
            if (const auto* d = std::get_if<action::publish_done>(&e)) tags.push_back(d->tag);
    };
    publish("t", qos::at_most_once, 1);   // offline: not connected
    publish("t", qos::at_least_once, 2);  // queued until online
    harvest();
    b.connect(true);
    publish("t", qos::at_most_once, 3);   // sent, done at once
    publish("a/#", qos::at_least_once, 4);  // invalid topic
    auto p = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(p.size(), 2U);
    b.feed(puback{p[0].packet_id, reason::success, {}});
    publish("t", qos::at_least_once, 5);
    b.s.abandon();
    b.collect();
    harvest();
    EXPECT_EQ(tags, (std::vector<std::uint64_t>{1, 3, 4, 2, 5}));
}

// In-flight entries are reused after their PUBACK: each publish still goes out with its own
// topic, payload and packet id, and completes under its own id.
TEST(MqttSession, SteadyFlowThroughTheWindowKeepsEachMessage) {
    broker b{with_window(2)};
    b.connect(true);
    b.take_events();
    std::vector<op_id> ids;
    for (int i = 0; i < 8; ++i) ids.push_back(b.publish("t/" + std::to_string(i), qos::at_least_once, "p" + std::to_string(i)));
    std::vector<mqtt::publish> seen;
    while (seen.size() < 8) {
        auto p = b.take_sent_only<mqtt::publish>();
        ASSERT_FALSE(p.empty());
        for (auto& m : p) {
            b.feed(puback{m.packet_id, reason::success, {}});
            seen.push_back(std::move(m));
        }
    }
    std::set<std::uint16_t> packet_ids;
    for (std::size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(seen[i].topic, "t/" + std::to_string(i));
        EXPECT_EQ(seen[i].payload, "p" + std::to_string(i));
        packet_ids.insert(seen[i].packet_id);
    }
    EXPECT_EQ(packet_ids.size(), 8U);
    auto done = b.take_events_only<action::publish_done>();
    ASSERT_EQ(done.size(), 8U);
    for (std::size_t i = 0; i < done.size(); ++i) EXPECT_EQ(done[i].id, ids[i]);
    EXPECT_EQ(b.s.inflight_count(), 0U);
}

// A send buffer handed back is where the next packets are encoded: nothing of its old bytes stays.
TEST(MqttSession, RecycledSendBufferCarriesTheNextPackets) {
    broker b;
    b.connect(true);
    b.take_events();
    std::vector<std::uint8_t> old(100, 0xEE);
    old.reserve(4096);
    b.s.recycle(std::move(old));
    mqtt::publish m;
    m.topic = "t";
    m.payload = "x";
    static_cast<void>(b.s.publish(std::move(m), b.now));
    auto actions = b.s.drain_actions();
    ASSERT_FALSE(actions.empty());
    auto* out = std::get_if<action::send>(&actions.front());
    ASSERT_NE(out, nullptr);
    EXPECT_GE(out->bytes.capacity(), 4096U);
    auto r = decode(out->bytes, protocol_version::v5);
    auto* d = std::get_if<decoded>(&r);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->consumed, out->bytes.size());
    EXPECT_EQ(std::get<mqtt::publish>(d->packet).topic, "t");
}

TEST(MqttSession, InvalidTopicAndQos2RefusedLocally) {
    broker b;
    b.connect(true);
    b.take_events();
    b.publish("a/+", qos::at_least_once);
    b.publish("", qos::at_most_once);
    b.publish("a", qos::exactly_once);
    EXPECT_TRUE(b.take_sent().empty());
    auto done = b.take_events_only<action::publish_done>();
    ASSERT_EQ(done.size(), 3U);
    EXPECT_EQ(done[0].error, local_error::invalid_topic);
    EXPECT_EQ(done[1].error, local_error::invalid_topic);
    EXPECT_EQ(done[2].error, local_error::qos_not_supported);
    EXPECT_STREQ(to_string(done[0].error), "invalid topic");
}

TEST(MqttSession, WindowLimitedByMaxInflight) {
    broker b{with_window(3)};
    b.connect(true);
    b.take_events();
    for (int i = 0; i < 5; ++i) b.publish("t/" + std::to_string(i), qos::at_least_once);
    auto p = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(p.size(), 3U);
    EXPECT_EQ(b.s.inflight_count(), 3U);
    EXPECT_EQ(b.s.queued_count(), 2U);
    b.feed(puback{p[1].packet_id, reason::success, {}});
    auto next = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(next.size(), 1U);
    EXPECT_EQ(next[0].topic, "t/3");
    EXPECT_EQ(b.s.queued_count(), 1U);
}

TEST(MqttSession, FullWindowRefillsInBatchesOfAnEighth) {
    auto cfg = make_config();
    cfg.max_inflight = 16;  // batch: 16 / 8 = 2
    broker b{cfg};
    b.connect(true);
    b.take_events();
    for (int i = 0; i < 20; ++i) b.publish("t/" + std::to_string(i), qos::at_least_once);
    auto p = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(p.size(), 16U);
    b.feed(puback{p[0].packet_id, reason::success, {}});
    EXPECT_TRUE(b.take_sent_only<mqtt::publish>().empty()) << "one free slot is less than a batch";
    EXPECT_EQ(b.s.inflight_count(), 15U);
    b.feed(puback{p[1].packet_id, reason::success, {}});
    auto next = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(next.size(), 2U);
    EXPECT_EQ(next[0].topic, "t/16");
    EXPECT_EQ(next[1].topic, "t/17");
    // The last two follow as soon as two more slots are free.
    for (std::size_t i = 2; i < p.size(); ++i) b.feed(puback{p[i].packet_id, reason::success, {}});
    for (auto& n : next) b.feed(puback{n.packet_id, reason::success, {}});
    auto last = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(last.size(), 2U);
    EXPECT_EQ(last[1].topic, "t/19");
    EXPECT_EQ(b.s.queued_count(), 0U);
}

TEST(MqttSession, WindowLimitedByBrokerReceiveMaximum) {
    broker b;
    for (int i = 0; i < 4; ++i) b.publish("t/" + std::to_string(i), qos::at_least_once);
    EXPECT_EQ(b.s.queued_count(), 4U);
    properties props;
    props.receive_maximum = 2;
    b.connect(true, props);
    auto p = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(p.size(), 2U);
    EXPECT_EQ(p[0].topic, "t/0");
    EXPECT_EQ(p[1].topic, "t/1");
    b.feed(puback{p[0].packet_id, reason::success, {}});
    b.feed(puback{p[1].packet_id, reason::success, {}});
    p = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(p.size(), 2U);
    EXPECT_EQ(p[0].topic, "t/2");
    EXPECT_EQ(p[1].topic, "t/3");
}

TEST(MqttSession, RetransmitsInflightWithDupAndSameIdsInOrder) {
    broker b;
    b.connect(true);
    b.take_events();
    std::vector<op_id> ids;
    for (int i = 0; i < 3; ++i) ids.push_back(b.publish("t/" + std::to_string(i), qos::at_least_once));
    auto first = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(first.size(), 3U);
    // The broker says why it goes: no publish of ours is suspected, so all go again at once.
    b.feed(mqtt::disconnect{reason::server_shutting_down, {}});
    EXPECT_FALSE(b.take_first<action::disconnected>().value().suspect);
    b.closed();
    EXPECT_EQ(b.s.inflight_count(), 3U);
    const op_id later = b.publish("t/3", qos::at_least_once);  // queued behind the retransmissions

    b.connect(true);
    auto again = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(again.size(), 4U);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_TRUE(again[i].dup);
        EXPECT_EQ(again[i].packet_id, first[i].packet_id);
        EXPECT_EQ(again[i].topic, first[i].topic);
    }
    EXPECT_FALSE(again[3].dup);
    EXPECT_EQ(again[3].topic, "t/3");
    for (const auto& p : again) b.feed(puback{p.packet_id, reason::success, {}});
    auto done = b.take_events_only<action::publish_done>();
    ASSERT_EQ(done.size(), 4U);
    EXPECT_EQ(done[0].id, ids[0]);
    EXPECT_EQ(done[2].id, ids[2]);
    EXPECT_EQ(done[3].id, later);
}

TEST(MqttSession, SmallerReceiveMaximumOnReconnectRequeuesExcess) {
    broker b;
    b.connect(true);
    for (int i = 0; i < 3; ++i) b.publish("t/" + std::to_string(i), qos::at_least_once);
    auto first = b.take_sent_only<mqtt::publish>();
    b.feed(mqtt::disconnect{reason::server_shutting_down, {}});
    b.closed();
    properties props;
    props.receive_maximum = 1;
    b.connect(true, props);
    auto again = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(again.size(), 1U);
    EXPECT_TRUE(again[0].dup);
    EXPECT_EQ(again[0].packet_id, first[0].packet_id);
    EXPECT_EQ(b.s.inflight_count(), 1U);
    EXPECT_EQ(b.s.queued_count(), 2U);
    b.feed(puback{again[0].packet_id, reason::success, {}});
    auto next = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(next.size(), 1U);
    EXPECT_EQ(next[0].topic, "t/1");
}

TEST(MqttSession, BrokerMaximumPacketSizeEnforced) {
    broker b;
    properties props;
    props.maximum_packet_size = 100;
    b.connect(true, props);
    b.take_events();
    const op_id big = b.publish("t", qos::at_least_once, std::string(200, 'x'));
    const op_id big0 = b.publish("t", qos::at_most_once, std::string(200, 'x'));
    const op_id small = b.publish("t", qos::at_least_once, std::string(10, 'x'));
    auto p = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(p.size(), 1U);
    EXPECT_EQ(p[0].payload.size(), 10U);
    auto done = b.take_events_only<action::publish_done>();
    ASSERT_EQ(done.size(), 2U);
    EXPECT_EQ(done[0].id, big);
    EXPECT_EQ(done[0].error, local_error::packet_too_large);
    EXPECT_EQ(done[1].id, big0);
    EXPECT_EQ(done[1].error, local_error::packet_too_large);
    EXPECT_EQ(b.s.inflight_count(), 1U);
    static_cast<void>(small);
}

TEST(MqttSession, BrokerMaximumQosAndRetainEnforced) {
    broker b;
    properties props;
    props.maximum_qos = 0;
    props.retain_available = 0;
    b.connect(true, props);
    b.take_events();
    b.publish("t", qos::at_least_once);
    mqtt::publish retained;
    retained.topic = "t";
    retained.retain = true;
    static_cast<void>(b.s.publish(retained, b.now));
    b.collect();
    EXPECT_TRUE(b.take_sent().empty());
    auto done = b.take_events_only<action::publish_done>();
    ASSERT_EQ(done.size(), 2U);
    EXPECT_EQ(done[0].error, local_error::qos_not_supported);
    EXPECT_EQ(done[1].error, local_error::retain_not_supported);
}

TEST(MqttSession, PacketIdsWrapAndSkipIdsInUse) {
    broker b;
    b.connect(true);
    b.take_events();
    b.publish("held", qos::at_least_once);  // id 1 stays in flight
    auto held = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(held.size(), 1U);
    EXPECT_EQ(held[0].packet_id, 1);
    b.subscribe({"sub"});  // id 2 stays pending
    auto sub = b.take_sent_only<mqtt::subscribe>();
    ASSERT_EQ(sub.size(), 1U);
    EXPECT_EQ(sub[0].packet_id, 2);
    for (std::uint32_t expected = 3; expected <= 65535; ++expected) {
        b.publish("t", qos::at_least_once);
        auto p = b.take_sent_only<mqtt::publish>();
        ASSERT_EQ(p.size(), 1U);
        ASSERT_EQ(p[0].packet_id, expected);
        b.feed(puback{p[0].packet_id, reason::success, {}});
    }
    b.publish("t", qos::at_least_once);
    auto wrapped = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(wrapped.size(), 1U);
    EXPECT_EQ(wrapped[0].packet_id, 3);  // 1 and 2 are still in use
    EXPECT_EQ(b.take_events_only<action::publish_done>().size(), 65533U);
}

// --- inbound publishes ---

TEST(MqttSession, InboundQos1GetsTicketAndAcknowledgeSendsPuback) {
    broker b;
    b.connect(true);
    b.take_events();
    mqtt::publish in;
    in.topic = "cmd/x";
    in.payload = "1";
    in.qos = qos::at_least_once;
    in.packet_id = 7;
    b.feed(in);
    auto msg = b.take_events_only<action::message>();
    ASSERT_EQ(msg.size(), 1U);
    EXPECT_EQ(msg[0].msg.topic, "cmd/x");
    ASSERT_TRUE(msg[0].ticket.has_value());
    EXPECT_EQ(msg[0].ticket->packet_id, 7);
    EXPECT_TRUE(b.take_sent().empty());  // not before the app has it
    b.s.acknowledge(*msg[0].ticket, b.now);
    b.collect();
    auto ack = b.take_sent_only<puback>();
    ASSERT_EQ(ack.size(), 1U);
    EXPECT_EQ(ack[0].packet_id, 7);

    in.packet_id = 8;
    b.feed(in);
    msg = b.take_events_only<action::message>();
    ASSERT_EQ(msg.size(), 1U);
    b.closed();
    b.connect(true);
    b.take_events();
    b.s.acknowledge(*msg[0].ticket, b.now);  // stale: the broker redelivers instead
    b.collect();
    EXPECT_TRUE(b.take_sent().empty());
}

TEST(MqttSession, InboundQos0HasNoTicket) {
    broker b;
    b.connect(true);
    b.take_events();
    mqtt::publish in;
    in.topic = "cmd/x";
    b.feed(in);
    auto msg = b.take_events_only<action::message>();
    ASSERT_EQ(msg.size(), 1U);
    EXPECT_FALSE(msg[0].ticket.has_value());
}

TEST(MqttSession, PartialPacketsAcrossReads) {
    broker b;
    b.connect(true);
    b.take_events();
    mqtt::publish in;
    in.topic = "cmd/partial";
    in.payload = std::string(300, 'p');  // two-byte remaining length
    in.qos = qos::at_least_once;
    in.packet_id = 9;
    auto bytes = encode(in, protocol_version::v5);
    encode(pingresp{}, protocol_version::v5, bytes);
    for (auto byte : bytes) b.feed_bytes({byte});
    auto msg = b.take_events_only<action::message>();
    ASSERT_EQ(msg.size(), 1U);
    EXPECT_EQ(msg[0].msg, in);

    // Two packets and the start of a third in one read.
    auto two = encode(in, protocol_version::v5);
    encode(in, protocol_version::v5, two);
    const auto third = encode(in, protocol_version::v5);
    two.insert(two.end(), third.begin(), third.begin() + 5);
    b.feed_bytes(two);
    EXPECT_EQ(b.take_events_only<action::message>().size(), 2U);
    b.feed_bytes(std::vector<std::uint8_t>(third.begin() + 5, third.end()));
    EXPECT_EQ(b.take_events_only<action::message>().size(), 1U);
}

TEST(MqttSession, InboundQos2IsProtocolError) {
    broker b;
    b.connect(true);
    b.take_events();
    mqtt::publish in;
    in.topic = "t";
    in.qos = qos::exactly_once;
    in.packet_id = 1;
    b.feed(in);
    auto d = b.take_sent_only<mqtt::disconnect>();
    ASSERT_EQ(d.size(), 1U);
    EXPECT_EQ(d[0].reason_code, reason::protocol_error);
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 2U);
    EXPECT_TRUE(std::holds_alternative<action::close>(ev[1]));
}

TEST(MqttSession, InboundTopicAliasIsProtocolError) {
    broker b;
    b.connect(true);
    b.take_events();
    mqtt::publish in;
    in.topic = "t";
    in.props.topic_alias = 1;
    b.feed(in);
    auto d = b.take_sent_only<mqtt::disconnect>();
    ASSERT_EQ(d.size(), 1U);
    EXPECT_EQ(d[0].reason_code, reason::topic_alias_invalid);
    EXPECT_EQ(b.s.state(), session_state::offline);
}

TEST(MqttSession, ClientOnlyPacketsFromBrokerAreProtocolErrors) {
    for (const packet& p : std::vector<packet>{subscribe{1, subs_of({"a"}), {}}, pingreq{}, pubrel{1, 0, {}}}) {
        broker b{make_config(protocol_version::v311)};
        b.connect(true);
        b.take_events();
        b.feed(p);
        EXPECT_TRUE(b.take_sent().empty());  // 3.1.1: no DISCONNECT from a client for errors
        auto ev = b.take_events();
        ASSERT_EQ(ev.size(), 2U);
        EXPECT_EQ(std::get<action::disconnected>(ev[0]).reason.rfind("protocol error", 0), 0U);
        EXPECT_TRUE(std::holds_alternative<action::close>(ev[1]));
    }
}

TEST(MqttSession, PacketBeforeConnackIsProtocolError) {
    broker b;
    b.open();
    b.take_sent();
    b.feed(pingresp{});
    EXPECT_EQ(b.take_sent_only<mqtt::disconnect>().size(), 1U);
    EXPECT_EQ(b.s.state(), session_state::offline);
}

// --- keep-alive ---

TEST(MqttSession, PingreqAfterKeepAliveIdle) {
    broker b;
    b.connect(true);
    EXPECT_EQ(b.s.next_deadline(), b.now + 60s);
    b.advance(59s);
    EXPECT_TRUE(b.take_sent().empty());
    b.advance(1s);
    EXPECT_EQ(b.take_sent_only<pingreq>().size(), 1U);
    // Ping outstanding: the next deadline is the dead link, 1.5 x keep-alive after the last input.
    EXPECT_EQ(b.s.next_deadline(), b.now + 30s);
}

TEST(MqttSession, SendingDoesNotHideSilentBroker) {
    broker b;
    b.connect(true);
    b.take_events();
    b.advance(30s);
    b.publish("t", qos::at_most_once);  // we keep sending, the broker says nothing
    b.take_sent();
    b.advance(30s);
    EXPECT_EQ(b.take_sent_only<pingreq>().size(), 1U);
}

TEST(MqttSession, DeadLinkAfterOneAndAHalfKeepAlive) {
    broker b;
    b.connect(true);
    b.take_events();
    b.advance(60s);
    EXPECT_EQ(b.take_sent_only<pingreq>().size(), 1U);
    b.advance(29s);
    EXPECT_TRUE(b.take_events().empty());
    b.advance(1s);
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 2U);
    const auto& d = std::get<action::disconnected>(ev[0]);
    EXPECT_EQ(d.reason, "no packet from broker for 90 s (keep-alive 60 s)");
    EXPECT_FALSE(d.reason_code.has_value());
    EXPECT_EQ(std::get<action::close>(ev[1]).reason, d.reason);
    EXPECT_EQ(b.s.state(), session_state::offline);
    EXPECT_EQ(b.s.next_deadline(), std::nullopt);
}

TEST(MqttSession, PingrespKeepsLinkAlive) {
    broker b;
    b.connect(true);
    b.take_events();
    for (int round = 0; round < 5; ++round) {
        b.advance(60s);
        ASSERT_EQ(b.take_sent_only<pingreq>().size(), 1U);
        b.advance(1s);
        b.feed(pingresp{});
    }
    EXPECT_TRUE(b.take_events().empty());
    EXPECT_EQ(b.s.state(), session_state::online);
}

TEST(MqttSession, KeepAliveZeroDisablesTimers) {
    auto cfg = make_config();
    cfg.keep_alive = 0s;
    broker b{cfg};
    b.connect(true);
    EXPECT_EQ(b.s.next_deadline(), std::nullopt);
    b.advance(10h);
    EXPECT_TRUE(b.take_sent().empty());
    EXPECT_EQ(b.s.state(), session_state::online);
}

// --- connection end ---

TEST(MqttSession, BrokerDisconnectWithReason) {
    broker b;
    b.connect(true);
    b.take_events();
    properties why;
    why.reason_string = "another client\nconnected";
    b.feed(mqtt::disconnect{reason::session_taken_over, why});
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 2U);
    const auto& d = std::get<action::disconnected>(ev[0]);
    EXPECT_EQ(d.reason_code, reason::session_taken_over);
    EXPECT_NE(d.reason.find("(reason 0x8E)"), std::string::npos);
    EXPECT_NE(d.reason.find("another client\\nconnected"), std::string::npos) << d.reason;  // escaped, on one line
    EXPECT_TRUE(std::holds_alternative<action::close>(ev[1]));
    b.closed();
    EXPECT_TRUE(b.take_events().empty());
}

TEST(MqttSession, MalformedBytesV5SendDisconnectAndClose) {
    broker b;
    b.connect(true);
    b.take_events();
    b.feed_bytes({0x00, 0x00});  // packet type 0 is reserved
    auto d = b.take_sent_only<mqtt::disconnect>();
    ASSERT_EQ(d.size(), 1U);
    EXPECT_EQ(d[0].reason_code, reason::malformed_packet);
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 2U);
    EXPECT_EQ(std::get<action::close>(ev[1]).reason.rfind("malformed packet from broker: ", 0), 0U);
    b.feed(pingresp{});  // ignored once closing
    EXPECT_TRUE(b.take_events().empty());
}

TEST(MqttSession, MalformedBytesV311Close) {
    broker b{make_config(protocol_version::v311)};
    b.connect(true);
    b.take_events();
    b.feed_bytes({0xD0, 0x01, 0x00});  // PINGRESP with a body
    EXPECT_TRUE(b.take_sent().empty());
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 2U);
    EXPECT_TRUE(std::holds_alternative<action::close>(ev[1]));
}

TEST(MqttSession, OversizedInboundPacketIsRefused) {
    auto cfg = make_config();
    cfg.max_packet_size = 64;
    broker b{cfg};
    b.connect(true);
    b.take_events();
    mqtt::publish in;
    in.topic = "t";
    in.payload = std::string(100, 'x');
    b.feed(in);
    auto d = b.take_sent_only<mqtt::disconnect>();
    ASSERT_EQ(d.size(), 1U);
    EXPECT_EQ(d[0].reason_code, reason::packet_too_large);
}

TEST(MqttSession, TransportClosedReportsOnce) {
    broker b;
    b.connect(true);
    b.take_events();
    b.closed("EOF");
    auto d = b.take_events_only<action::disconnected>();
    ASSERT_EQ(d.size(), 1U);
    EXPECT_EQ(d[0].reason, "EOF");
    b.closed("EOF again");
    EXPECT_TRUE(b.take_events().empty());
}

TEST(MqttSession, GracefulDisconnect) {
    broker b;
    b.connect(true);
    b.take_events();
    b.s.disconnect(b.now);
    b.collect();
    auto d = b.take_sent_only<mqtt::disconnect>();
    ASSERT_EQ(d.size(), 1U);
    EXPECT_EQ(d[0].reason_code, reason::success);
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 2U);
    EXPECT_EQ(std::get<action::close>(ev[1]).reason, "shutting down");
}

TEST(MqttSession, AbandonCompletesEverything) {
    auto cfg = make_config();
    cfg.max_inflight = 1;
    broker b{cfg};
    b.connect(true);
    b.take_events();
    const op_id flying = b.publish("a", qos::at_least_once);
    const op_id queued = b.publish("b", qos::at_least_once);
    const op_id sub = b.subscribe({"s/1", "s/2"});
    const op_id unsub = b.unsubscribe({"u"});
    b.take_sent();
    b.s.abandon();
    b.collect();
    auto ev = b.take_events();
    ASSERT_EQ(ev.size(), 4U);
    const auto& p0 = std::get<action::publish_done>(ev[0]);
    const auto& p1 = std::get<action::publish_done>(ev[1]);
    EXPECT_EQ(p0.id, flying);
    EXPECT_EQ(p0.error, local_error::session_closed);
    EXPECT_EQ(p1.id, queued);
    EXPECT_EQ(p1.error, local_error::session_closed);
    const auto& s = std::get<action::subscribe_done>(ev[2]);
    EXPECT_EQ(s.id, sub);
    EXPECT_EQ(s.reason_codes, std::vector<std::uint8_t>(2, reason::unspecified_error));
    const auto& u = std::get<action::unsubscribe_done>(ev[3]);
    EXPECT_EQ(u.id, unsub);
    EXPECT_EQ(u.reason_codes, std::vector<std::uint8_t>(1, reason::unspecified_error));
    EXPECT_EQ(b.s.inflight_count(), 0U);
    EXPECT_EQ(b.s.queued_count(), 0U);
    EXPECT_TRUE(b.s.live_subscriptions().empty());
}


// --- a publish the broker will not take (MQTT 3.1.1 closes the connection instead) ---

// Publishes t/0..t/(n-1) at QoS 1 on a fresh 3.1.1 session; returns what went out.
std::vector<mqtt::publish> publish_some(broker& b, int n) {
    for (int i = 0; i < n; ++i) b.publish("t/" + std::to_string(i), qos::at_least_once, std::string(10, 'x'));
    return b.take_sent_only<mqtt::publish>();
}

TEST(MqttSession, AfterAnUnexplainedCloseTheOldestPublishGoesAloneThenTheRest) {
    broker b{make_config(protocol_version::v311)};
    b.connect(true);
    const auto first = publish_some(b, 3);
    ASSERT_EQ(first.size(), 3U);
    b.take_events();
    b.closed("broker closed the connection");
    auto d = b.take_events_only<action::disconnected>();
    ASSERT_EQ(d.size(), 1U);
    EXPECT_EQ(d[0].cause, action::end_cause::closed);
    EXPECT_FALSE(d[0].suspect) << "three were unacknowledged: none can be blamed yet";

    b.connect(true);
    auto alone = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(alone.size(), 1U) << "only the oldest goes until it is acknowledged";
    EXPECT_EQ(alone[0].topic, "t/0");
    EXPECT_TRUE(alone[0].dup);
    b.publish("t/new", qos::at_least_once);
    EXPECT_TRUE(b.take_sent().empty()) << "nothing joins the publish sent alone";

    b.feed(puback{alone[0].packet_id, reason::success, {}});
    auto rest = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(rest.size(), 3U);
    EXPECT_EQ(rest[0].topic, "t/1");
    EXPECT_EQ(rest[0].packet_id, first[1].packet_id);
    EXPECT_TRUE(rest[0].dup);
    EXPECT_EQ(rest[1].topic, "t/2");
    EXPECT_EQ(rest[2].topic, "t/new");
    EXPECT_FALSE(rest[2].dup);
    for (const auto& p : rest) b.feed(puback{p.packet_id, reason::success, {}});
    const auto done = b.take_events_only<action::publish_done>();
    ASSERT_EQ(done.size(), 4U);
    for (const auto& r : done) EXPECT_EQ(r.error, local_error::none);
}

TEST(MqttSession, PublishTheBrokerDropsEveryTimeFailsAfterMaxAttemptsAndTheOthersFlow) {
    auto cfg = make_config(protocol_version::v311);
    cfg.max_publish_attempts = 3;
    broker b{cfg};
    b.connect(true);
    // t/0 is the message the broker will not take; t/1 and t/2 are innocent and sent with it.
    const auto first = publish_some(b, 3);
    b.take_events();
    b.closed("broker closed the connection");  // send 1, with the others: nobody to blame yet
    EXPECT_FALSE(b.take_first<action::disconnected>().value().suspect);

    for (unsigned attempt = 2; attempt <= 3; ++attempt) {
        b.connect(true);
        const auto alone = b.take_sent_only<mqtt::publish>();
        ASSERT_EQ(alone.size(), 1U);
        ASSERT_EQ(alone[0].topic, "t/0");
        b.closed("broker closed the connection");
        auto ev = b.take_events();
        const action::disconnected* d = nullptr;
        const action::publish_done* failed = nullptr;
        for (const auto& e : ev) {
            if (const auto* x = std::get_if<action::disconnected>(&e)) d = x;
            if (const auto* x = std::get_if<action::publish_done>(&e)) failed = x;
        }
        ASSERT_NE(d, nullptr);
        ASSERT_TRUE(d->suspect);
        EXPECT_EQ(d->suspect->topic, "t/0");
        EXPECT_EQ(d->suspect->attempt, attempt);
        EXPECT_EQ(d->suspect->max_attempts, 3U);
        EXPECT_NE(d->reason.find("PUBLISH to 't/0', sent alone (attempt " + std::to_string(attempt) + " of 3)"),
                  std::string::npos)
            << d->reason;
        if (attempt < 3) {
            EXPECT_EQ(failed, nullptr);
        } else {
            ASSERT_NE(failed, nullptr) << "the third send fails it";
            EXPECT_EQ(failed->error, local_error::refused_by_broker);
            EXPECT_NE(failed->reason_string.find("each of the 3 times"), std::string::npos) << failed->reason_string;
        }
    }
    EXPECT_EQ(b.s.inflight_count(), 2U);
    b.connect(true);
    const auto rest = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(rest.size(), 2U) << "the others go again together";
    EXPECT_EQ(rest[0].topic, "t/1");
    EXPECT_EQ(rest[1].topic, "t/2");
}

TEST(MqttSession, PublishSentAloneThatGetsThroughClearsTheSuspicion) {
    broker b{make_config(protocol_version::v311)};
    b.connect(true);
    publish_some(b, 2);
    b.closed();
    b.connect(true);
    auto alone = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(alone.size(), 1U);
    b.feed(puback{alone[0].packet_id, reason::success, {}});
    auto second = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(second.size(), 1U);
    EXPECT_EQ(second[0].topic, "t/1");
    b.take_events();
    // The next close has one publish in flight, but it was not sent alone: it is not blamed.
    b.closed();
    EXPECT_FALSE(b.take_first<action::disconnected>().value().suspect);
}

TEST(MqttSession, CloseWhileSubscribePendingBlamesNoPublish) {
    broker b{make_config(protocol_version::v311)};
    b.connect(true);
    publish_some(b, 2);
    b.closed();
    b.connect(true);
    ASSERT_EQ(b.take_sent_only<mqtt::publish>().size(), 1U);
    b.subscribe({"cmd/x"});  // the broker might object to this one instead
    b.take_sent();
    b.take_events();
    b.closed();
    EXPECT_FALSE(b.take_first<action::disconnected>().value().suspect);
}

TEST(MqttSession, BrokerShutdownOrTakeoverBlamesNoPublishButNotAuthorizedDoes) {
    for (const auto& [code, blamed] : std::vector<std::pair<std::uint8_t, bool>>{
             {reason::server_shutting_down, false}, {reason::session_taken_over, false}, {reason::not_authorized, true}}) {
        broker b;
        b.connect(true);
        publish_some(b, 1);
        b.closed();  // the publish is in flight alone from the next connection on
        b.connect(true);
        ASSERT_EQ(b.take_sent_only<mqtt::publish>().size(), 1U);
        b.take_events();
        b.feed(mqtt::disconnect{code, {}});
        const auto d = b.take_first<action::disconnected>();
        ASSERT_TRUE(d);
        EXPECT_EQ(d->cause, action::end_cause::broker_disconnect);
        EXPECT_EQ(d->suspect.has_value(), blamed) << "reason code " << int{code};
    }
}

TEST(MqttSession, ConfiguredPacketLimitRefusesLargerPublishLocally) {
    auto cfg = make_config(protocol_version::v311);
    cfg.broker_max_packet = 100;
    broker b{cfg};
    b.connect(true);
    b.take_events();
    b.publish("t/big", qos::at_least_once, std::string(200, 'x'));
    b.publish("t/small", qos::at_least_once, std::string(20, 'x'));
    const auto sent = b.take_sent_only<mqtt::publish>();
    ASSERT_EQ(sent.size(), 1U);
    EXPECT_EQ(sent[0].topic, "t/small");
    const auto done = b.take_events_only<action::publish_done>();
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].error, local_error::packet_too_large);
    EXPECT_NE(done[0].reason_string.find("the broker takes at most 100"), std::string::npos) << done[0].reason_string;
}

TEST(MqttSession, EndCausesAreReported) {
    broker b;
    b.connect(true);
    b.take_events();
    b.advance(100s);  // no packet from the broker for 1.5 x keep-alive
    EXPECT_EQ(b.take_first<action::disconnected>().value().cause, action::end_cause::dead_link);
    b.closed();
    b.connect(true);
    b.feed_bytes({0x00, 0x00});  // malformed
    auto ev = b.take_events();
    ASSERT_FALSE(ev.empty());
    EXPECT_EQ(std::get<action::disconnected>(ev[0]).cause, action::end_cause::protocol_error);
    b.closed();
    b.connect(true);
    b.take_events();
    b.s.disconnect(b.now);
    b.collect();
    EXPECT_EQ(b.take_first<action::disconnected>().value().cause, action::end_cause::local);
}

// A local outcome is an std::error_code of its own category: `none` is success, the others
// are errors whose message is what to_string() says.
TEST(MqttLocalError, EveryValueIsAnErrorCodeOfTheSessionCategoryWithAMessageInWords) {
    EXPECT_FALSE(std::error_code{local_error::none});
    EXPECT_EQ(make_error_code(local_error::none).message(), "no error");
    std::set<std::string> messages;
    for (const auto e : {local_error::not_connected, local_error::packet_too_large, local_error::qos_not_supported,
                         local_error::invalid_topic, local_error::session_closed, local_error::retain_not_supported,
                         local_error::refused_by_broker}) {
        const std::error_code ec = e;
        EXPECT_TRUE(ec);
        EXPECT_EQ(ec, e);
        EXPECT_STREQ(ec.category().name(), "mqtt.session");
        EXPECT_EQ(&ec.category(), &session_category());
        EXPECT_EQ(ec.message(), to_string(e));
        EXPECT_TRUE(messages.insert(ec.message()).second) << "said twice: " << ec.message();
    }
    EXPECT_EQ(std::error_code{local_error::qos_not_supported}.message(), "QoS not supported by the broker");
}

}  // namespace
}  // namespace thingmux::mqtt
