// MQTT 3.1.1 / 5.0 codec tests.
//
// The byte vectors are written by hand from the specifications (MQTT 3.1.1 chapters 2-3, MQTT 5.0
// chapters 2-3), never produced by the encoder under test: s("abc") is the spec's length-prefixed
// UTF-8 string, t("abc") raw bytes, and every remaining length is counted by hand in a comment.
#include "daemon/mqtt/codec.hpp"
#include "daemon/mqtt/codec_common.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <variant>
#include <vector>

namespace thingmux::mqtt {
namespace {

using namespace std::string_literals;
using bytes = std::vector<std::uint8_t>;
constexpr auto v311 = protocol_version::v311;
constexpr auto v5 = protocol_version::v5;

// A UTF-8 string or binary data as the spec lays it out: two-byte big-endian length, then bytes.
bytes s(std::string_view v) {
    bytes out(2 + v.size());
    out[0] = static_cast<std::uint8_t>(v.size() >> 8U);
    out[1] = static_cast<std::uint8_t>(v.size() & 0xFFU);
    std::copy(v.begin(), v.end(), out.begin() + 2);
    return out;
}

// Raw bytes of a text (payloads).
bytes t(std::string_view v) {
    return {v.begin(), v.end()};
}

bytes cat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const auto& p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

std::string describe(const decode_result& r) {
    if (const auto* m = std::get_if<malformed>(&r)) {
        return "malformed: " + m->reason;
    }
    if (const auto* n = std::get_if<need_more>(&r)) {
        return "need_more at_least " + std::to_string(n->at_least);
    }
    const auto& d = std::get<decoded>(r);
    return "decoded " + std::string(to_string(type_of(d.packet))) + " of " + std::to_string(d.consumed) + " bytes";
}

// Decodes `b`, expecting exactly one packet of type T filling the whole buffer.
template <class T>
T decode_as(const bytes& b, protocol_version v) {
    const auto r = decode(b, v);
    const auto* d = std::get_if<decoded>(&r);
    if (d == nullptr) {
        ADD_FAILURE() << describe(r);
        return T{};
    }
    EXPECT_EQ(d->consumed, b.size());
    const auto* p = std::get_if<T>(&d->packet);
    if (p == nullptr) {
        ADD_FAILURE() << describe(r);
        return T{};
    }
    return *p;
}

malformed decode_failure(const bytes& b, protocol_version v, std::size_t limit = max_mqtt_packet_size) {
    const auto r = decode(b, v, limit);
    if (const auto* m = std::get_if<malformed>(&r)) {
        return *m;
    }
    ADD_FAILURE() << "expected malformed, got " << describe(r);
    return {};
}

// =============================================================================================
// MQTT 3.1.1 hand-written packets

// CONNECT with every flag: user name, password, will retain, will QoS 1, will, clean session.
const bytes connect_v311_full = cat({
    {0x10, 36},  // 6 protocol name + 1 level + 1 flags + 2 keep alive + 10 + 5 + 5 + 3 + 3
    s("MQTT"),
    {0x04, 0xEE, 0x00, 0x3C},
    s("client-1"),
    s("w/t"),
    s("bye"),
    s("u"),
    s("p"),
});

connect connect_v311_full_value() {
    connect c;
    c.version = v311;
    c.client_id = "client-1";
    c.clean_start = true;
    c.keep_alive = 60;
    c.username = "u";
    c.password = "p";
    c.will = will_message{"w/t", "bye", qos::at_least_once, true, {}};
    return c;
}

TEST(MqttCodecV311, DecodesConnectWithAllFlags) {
    const auto c = decode_as<connect>(connect_v311_full, v311);
    EXPECT_EQ(c, connect_v311_full_value());
}

TEST(MqttCodecV311, EncodesConnectWithAllFlags) {
    EXPECT_EQ(encode(connect_v311_full_value(), v311), connect_v311_full);
}

TEST(MqttCodecV311, DecodesMinimalConnectWithEmptyClientId) {
    const bytes b = cat({{0x10, 12}, s("MQTT"), {0x04, 0x02, 0x00, 0x3C}, s("")});  // 6 + 1 + 1 + 2 + 2
    const auto c = decode_as<connect>(b, v311);
    EXPECT_EQ(c.version, v311);
    EXPECT_TRUE(c.client_id.empty());
    EXPECT_TRUE(c.clean_start);
    EXPECT_FALSE(c.will);
    EXPECT_FALSE(c.username);
    EXPECT_FALSE(c.password);
    EXPECT_EQ(encode(c, v311), b);
}

TEST(MqttCodecV311, DecodesConnackSessionPresent) {
    const auto c = decode_as<connack>({0x20, 0x02, 0x01, 0x00}, v311);
    EXPECT_TRUE(c.session_present);
    EXPECT_EQ(c.reason_code, 0);
    EXPECT_EQ(encode(c, v311), (bytes{0x20, 0x02, 0x01, 0x00}));
}

TEST(MqttCodecV311, DecodesConnackRefusalAndMapsItToMqtt5) {
    const auto c = decode_as<connack>({0x20, 0x02, 0x00, 0x05}, v311);
    EXPECT_FALSE(c.session_present);
    EXPECT_EQ(c.reason_code, 5);
    EXPECT_EQ(connack_reason_v5(v311, c.reason_code), reason::not_authorized);
}

TEST(MqttCodecV311, DecodesPublishQos1) {
    const bytes b = cat({{0x32, 9}, s("a/b"), {0x00, 0x0A}, t("hi")});  // 5 + 2 + 2
    const auto p = decode_as<publish>(b, v311);
    EXPECT_EQ(p.topic, "a/b");
    EXPECT_EQ(p.payload, "hi");
    EXPECT_EQ(p.qos, qos::at_least_once);
    EXPECT_EQ(p.packet_id, 10);
    EXPECT_FALSE(p.dup);
    EXPECT_FALSE(p.retain);
    EXPECT_EQ(encode(p, v311), b);
}

TEST(MqttCodecV311, DecodesPublishFlagsDupQos2Retain) {
    const bytes b = cat({{0x3D, 9}, s("a/b"), {0x00, 0x0A}, t("hi")});  // 0x3D = DUP | QoS 2 | RETAIN
    const auto p = decode_as<publish>(b, v311);
    EXPECT_TRUE(p.dup);
    EXPECT_EQ(p.qos, qos::exactly_once);
    EXPECT_TRUE(p.retain);
    EXPECT_EQ(encode(p, v311), b);
}

TEST(MqttCodecV311, DecodesPublishQos0WithoutPacketId) {
    const bytes b = cat({{0x30, 7}, s("a/b"), t("hi")});  // 5 + 2
    const auto p = decode_as<publish>(b, v311);
    EXPECT_EQ(p.qos, qos::at_most_once);
    EXPECT_EQ(p.packet_id, 0);
    EXPECT_EQ(p.payload, "hi");
    EXPECT_EQ(encode(p, v311), b);
}

TEST(MqttCodecV311, DecodesPublishWithEmptyPayload) {
    const bytes b = cat({{0x30, 5}, s("a/b")});
    EXPECT_EQ(decode_as<publish>(b, v311).payload, "");
}

TEST(MqttCodecV311, DecodesTheFourAcks) {
    EXPECT_EQ(decode_as<puback>({0x40, 0x02, 0x00, 0x0A}, v311).packet_id, 10);
    EXPECT_EQ(decode_as<pubrec>({0x50, 0x02, 0x00, 0x0A}, v311).packet_id, 10);
    EXPECT_EQ(decode_as<pubrel>({0x62, 0x02, 0x00, 0x0A}, v311).packet_id, 10);
    EXPECT_EQ(decode_as<pubcomp>({0x70, 0x02, 0x00, 0x0A}, v311).packet_id, 10);
}

TEST(MqttCodecV311, EncodesTheFourAcksWithTheirFixedHeaderFlags) {
    EXPECT_EQ(encode(puback{10, reason::success, {}}, v311), (bytes{0x40, 0x02, 0x00, 0x0A}));
    EXPECT_EQ(encode(pubrec{10, reason::success, {}}, v311), (bytes{0x50, 0x02, 0x00, 0x0A}));
    EXPECT_EQ(encode(pubrel{10, reason::success, {}}, v311), (bytes{0x62, 0x02, 0x00, 0x0A}));
    EXPECT_EQ(encode(pubcomp{10, reason::success, {}}, v311), (bytes{0x70, 0x02, 0x00, 0x0A}));
}

TEST(MqttCodecV311, DecodesSubscribeWithTwoFilters) {
    const bytes b = cat({{0x82, 12, 0x00, 0x01}, s("a/#"), {0x01}, s("+"), {0x00}});  // 2 + 5 + 1 + 3 + 1
    const auto sub = decode_as<subscribe>(b, v311);
    EXPECT_EQ(sub.packet_id, 1);
    ASSERT_EQ(sub.subscriptions.size(), 2U);
    EXPECT_EQ(sub.subscriptions[0].filter, "a/#");
    EXPECT_EQ(sub.subscriptions[0].max_qos, qos::at_least_once);
    EXPECT_EQ(sub.subscriptions[1].filter, "+");
    EXPECT_EQ(sub.subscriptions[1].max_qos, qos::at_most_once);
    EXPECT_EQ(encode(sub, v311), b);
}

TEST(MqttCodecV311, DecodesSubackReturnCodes) {
    const bytes b{0x90, 5, 0x00, 0x01, 0x01, 0x80, 0x02};
    const auto ack = decode_as<suback>(b, v311);
    EXPECT_EQ(ack.packet_id, 1);
    EXPECT_EQ(ack.reason_codes, (std::vector<std::uint8_t>{0x01, 0x80, 0x02}));
    EXPECT_EQ(encode(ack, v311), b);
}

TEST(MqttCodecV311, DecodesUnsubscribeAndUnsuback) {
    const bytes b = cat({{0xA2, 7, 0x00, 0x02}, s("a/b")});  // 2 + 5
    const auto u = decode_as<unsubscribe>(b, v311);
    EXPECT_EQ(u.packet_id, 2);
    EXPECT_EQ(u.filters, std::vector<std::string>{"a/b"});
    EXPECT_EQ(encode(u, v311), b);
    EXPECT_EQ(decode_as<unsuback>({0xB0, 0x02, 0x00, 0x02}, v311).packet_id, 2);
}

TEST(MqttCodecV311, DecodesPingAndDisconnect) {
    EXPECT_EQ(decode_as<pingreq>({0xC0, 0x00}, v311), pingreq{});
    EXPECT_EQ(decode_as<pingresp>({0xD0, 0x00}, v311), pingresp{});
    EXPECT_EQ(decode_as<disconnect>({0xE0, 0x00}, v311), disconnect{});
    EXPECT_EQ(encode(pingreq{}, v311), (bytes{0xC0, 0x00}));
    EXPECT_EQ(encode(pingresp{}, v311), (bytes{0xD0, 0x00}));
    EXPECT_EQ(encode(disconnect{}, v311), (bytes{0xE0, 0x00}));
}

TEST(MqttCodecV311, EncodeLeavesOutFieldsMqtt311DoesNotHave) {
    properties props;
    props.reason_string = "ignored";
    props.user_properties = {{"k", "v"}};
    EXPECT_EQ(encode(puback{7, reason::not_authorized, props}, v311), (bytes{0x40, 0x02, 0x00, 0x07}));
    EXPECT_EQ(encode(unsuback{7, {0x11, 0x87}, props}, v311), (bytes{0xB0, 0x02, 0x00, 0x07}));
    EXPECT_EQ(encode(disconnect{reason::disconnect_with_will, props}, v311), (bytes{0xE0, 0x00}));
    EXPECT_EQ(encode(suback{7, {0x00, 0x80}, props}, v311), (bytes{0x90, 0x04, 0x00, 0x07, 0x00, 0x80}));
    subscription sub{"a", qos::at_least_once, true, true, 2};
    EXPECT_EQ(encode(subscribe{7, {sub}, props}, v311), cat({{0x82, 6, 0x00, 0x07}, s("a"), {0x01}}));
    publish p;
    p.topic = "a";
    p.props = props;
    EXPECT_EQ(encode(p, v311), cat({{0x30, 3}, s("a")}));
}

// =============================================================================================
// MQTT 5.0 hand-written packets

const bytes connect_v5 = cat({
    {0x10, 29},  // 10 (name, level, flags, keep alive) + 1 + 13 properties + 5 client id
    s("MQTT"),
    {0x05, 0x02, 0x00, 0x3C},
    {13},
    {0x11, 0x00, 0x00, 0x0E, 0x10},  // Session Expiry Interval 3600
    {0x21, 0x00, 0x14},              // Receive Maximum 20
    {0x27, 0x00, 0x00, 0x10, 0x00},  // Maximum Packet Size 4096
    s("abc"),
});

TEST(MqttCodecV5, DecodesConnectWithSessionProperties) {
    const auto c = decode_as<connect>(connect_v5, v5);
    EXPECT_EQ(c.version, v5);
    EXPECT_EQ(c.client_id, "abc");
    EXPECT_TRUE(c.clean_start);
    EXPECT_EQ(c.keep_alive, 60);
    EXPECT_EQ(c.props.session_expiry_interval, 3600U);
    EXPECT_EQ(c.props.receive_maximum, 20);
    EXPECT_EQ(c.props.maximum_packet_size, 4096U);
    EXPECT_EQ(encode(c, v5), connect_v5);
}

TEST(MqttCodecV5, DecodesConnectByItsOwnProtocolLevel) {
    // A server-side reader does not know the version before CONNECT; neither does this call.
    EXPECT_EQ(decode_as<connect>(connect_v5, v311).props.receive_maximum, 20);
    EXPECT_EQ(decode_as<connect>(connect_v311_full, v5), connect_v311_full_value());
}

TEST(MqttCodecV5, DecodesConnectWithWillProperties) {
    const bytes b = cat({
        {0x10, 38},  // 10 + 1 + 3 client id + 1 + 14 will properties + 3 + 3 + 3
        s("MQTT"),
        {0x05, 0x8E, 0x00, 0x3C},  // user name, will QoS 1, will, clean start
        {0x00},
        s("c"),
        {14},
        {0x01, 0x01},                    // Payload Format Indicator 1
        {0x18, 0x00, 0x00, 0x00, 0x05},  // Will Delay Interval 5
        {0x26},
        s("k"),
        s("v"),  // User Property k=v
        s("w"),
        s("x"),
        s("u"),
    });
    const auto c = decode_as<connect>(b, v5);
    ASSERT_TRUE(c.will);
    EXPECT_EQ(c.will->topic, "w");
    EXPECT_EQ(c.will->payload, "x");
    EXPECT_EQ(c.will->qos, qos::at_least_once);
    EXPECT_FALSE(c.will->retain);
    EXPECT_EQ(c.will->props.payload_format_indicator, 1);
    EXPECT_EQ(c.will->props.will_delay_interval, 5U);
    EXPECT_EQ(c.will->props.user_properties, (std::vector<user_property>{{"k", "v"}}));
    EXPECT_EQ(c.username, "u");
    EXPECT_FALSE(c.password);
    EXPECT_EQ(encode(c, v5), b);
}

TEST(MqttCodecV5, AcceptsPasswordWithoutUserName) {
    // MQTT 5 dropped 3.1.1's rule that a password needs a user name.
    const bytes b = cat({{0x10, 16}, s("MQTT"), {0x05, 0x42, 0x00, 0x3C, 0x00}, s(""), s("p")});  // 10 + 1 + 2 + 3
    EXPECT_EQ(decode_as<connect>(b, v5).password, "p");
}

const bytes connack_v5 = cat({
    {0x20, 14, 0x00, 0x00},  // 2 + 1 + 11 properties
    {11},
    {0x12},
    s("id1"),            // Assigned Client Identifier
    {0x22, 0x00, 0x08},  // Topic Alias Maximum 8
    {0x24, 0x01},        // Maximum QoS 1
});

TEST(MqttCodecV5, DecodesConnackWithBrokerLimits) {
    const auto c = decode_as<connack>(connack_v5, v5);
    EXPECT_FALSE(c.session_present);
    EXPECT_EQ(c.reason_code, reason::success);
    EXPECT_EQ(c.props.assigned_client_identifier, "id1");
    EXPECT_EQ(c.props.topic_alias_maximum, 8);
    EXPECT_EQ(c.props.maximum_qos, 1);
    EXPECT_EQ(encode(c, v5), connack_v5);
}

TEST(MqttCodecV5, DecodesConnackRefusal) {
    const auto c = decode_as<connack>({0x20, 0x03, 0x00, 0x87, 0x00}, v5);
    EXPECT_EQ(c.reason_code, reason::not_authorized);
    EXPECT_STREQ(reason_string(c.reason_code), "Not authorized");
    EXPECT_EQ(connack_reason_v5(v5, c.reason_code), reason::not_authorized);
}

const bytes publish_v5 = cat({
    {0x32, 46},  // 5 topic + 2 packet id + 1 + 37 properties + 1 payload
    s("a/b"),
    {0x00, 0x01},
    {37},
    {0x01, 0x01},                    // Payload Format Indicator 1
    {0x02, 0x00, 0x00, 0x00, 0x3C},  // Message Expiry Interval 60
    {0x03},
    s("json"),  // Content Type
    {0x08},
    s("r/t"),                        // Response Topic
    {0x09, 0x00, 0x02, 0xCA, 0xFE},  // Correlation Data
    {0x0B, 0x07},                    // Subscription Identifier 7
    {0x23, 0x00, 0x05},              // Topic Alias 5
    {0x26},
    s("k"),
    s("v"),  // User Property
    t("x"),
});

TEST(MqttCodecV5, DecodesPublishWithMessageProperties) {
    const auto p = decode_as<publish>(publish_v5, v5);
    EXPECT_EQ(p.topic, "a/b");
    EXPECT_EQ(p.packet_id, 1);
    EXPECT_EQ(p.payload, "x");
    EXPECT_EQ(p.props.payload_format_indicator, 1);
    EXPECT_EQ(p.props.message_expiry_interval, 60U);
    EXPECT_EQ(p.props.content_type, "json");
    EXPECT_EQ(p.props.response_topic, "r/t");
    EXPECT_EQ(p.props.correlation_data, "\xCA\xFE"s);
    EXPECT_EQ(p.props.subscription_identifiers, std::vector<std::uint32_t>{7});
    EXPECT_EQ(p.props.topic_alias, 5);
    EXPECT_EQ(p.props.user_properties, (std::vector<user_property>{{"k", "v"}}));
    EXPECT_EQ(encode(p, v5), publish_v5);
}

TEST(MqttCodecV5, DecodesPublishWithTopicAliasAndEmptyTopic) {
    const bytes b = cat({{0x30, 7}, s(""), {0x03, 0x23, 0x00, 0x05}, t("x")});  // 2 + 1 + 3 + 1
    const auto p = decode_as<publish>(b, v5);
    EXPECT_EQ(p.topic, "");
    EXPECT_EQ(p.props.topic_alias, 5);
    EXPECT_EQ(encode(p, v5), b);
}

TEST(MqttCodecV5, DecodesPublishWithSeveralSubscriptionIdentifiers) {
    // 128 is the smallest two-byte variable byte integer: 0x80 0x01.
    const bytes b = cat({{0x30, 10}, s("t"), {0x05, 0x0B, 0x01, 0x0B, 0x80, 0x01}, t("x")});  // 3 + 1 + 5 + 1
    const auto p = decode_as<publish>(b, v5);
    EXPECT_EQ(p.props.subscription_identifiers, (std::vector<std::uint32_t>{1, 128}));
    EXPECT_EQ(encode(p, v5), b);
}

TEST(MqttCodecV5, DecodesPublishWithRepeatedUserPropertiesInOrder) {
    const bytes b = cat({{0x30, 18}, s("t"), {14, 0x26}, s("k"), s("1"), {0x26}, s("k"), s("2")});  // 3 + 1 + 14
    const auto p = decode_as<publish>(b, v5);
    EXPECT_EQ(p.props.user_properties, (std::vector<user_property>{{"k", "1"}, {"k", "2"}}));
    EXPECT_EQ(encode(p, v5), b);
}

TEST(MqttCodecV5, DecodesAckShortForms) {
    // Remaining length 2: success, no properties. 3: reason code, no properties.
    EXPECT_EQ(decode_as<puback>({0x40, 0x02, 0x00, 0x01}, v5), (puback{1, reason::success, {}}));
    EXPECT_EQ(decode_as<puback>({0x40, 0x03, 0x00, 0x01, 0x10}, v5), (puback{1, reason::no_matching_subscribers, {}}));
    EXPECT_EQ(decode_as<pubrel>({0x62, 0x03, 0x00, 0x01, 0x92}, v5),
              (pubrel{1, reason::packet_identifier_not_found, {}}));
    EXPECT_EQ(decode_as<pubcomp>({0x70, 0x04, 0x00, 0x01, 0x00, 0x00}, v5), (pubcomp{1, reason::success, {}}));
}

TEST(MqttCodecV5, EncodesAcksInTheirShortestForm) {
    EXPECT_EQ(encode(puback{1, reason::success, {}}, v5), (bytes{0x40, 0x02, 0x00, 0x01}));
    EXPECT_EQ(encode(pubrec{1, reason::no_matching_subscribers, {}}, v5), (bytes{0x50, 0x03, 0x00, 0x01, 0x10}));
}

TEST(MqttCodecV5, DecodesPubackWithReasonString) {
    const bytes b = cat({{0x40, 11, 0x00, 0x01, 0x87, 7, 0x1F}, s("deny")});  // 2 + 1 + 1 + 7
    const auto ack = decode_as<puback>(b, v5);
    EXPECT_EQ(ack.reason_code, reason::not_authorized);
    EXPECT_EQ(ack.props.reason_string, "deny");
    EXPECT_EQ(encode(ack, v5), b);
}

TEST(MqttCodecV5, DecodesSubscribeOptionsAndIdentifier) {
    // Options 0x2D: QoS 1, No Local, Retain As Published, Retain Handling 2.
    const bytes b = cat({{0x82, 11, 0x00, 0x01, 0x02, 0x0B, 0x2A}, s("a/+"), {0x2D}});  // 2 + 1 + 2 + 5 + 1
    const auto sub = decode_as<subscribe>(b, v5);
    EXPECT_EQ(sub.props.subscription_identifiers, std::vector<std::uint32_t>{42});
    ASSERT_EQ(sub.subscriptions.size(), 1U);
    EXPECT_EQ(sub.subscriptions[0], (subscription{"a/+", qos::at_least_once, true, true, 2}));
    EXPECT_EQ(encode(sub, v5), b);
}

TEST(MqttCodecV5, DecodesSharedSubscription) {
    const bytes b = cat({{0x82, 24, 0x00, 0x01, 0x00}, s("$share/group/cmd/#"), {0x01}});  // 2 + 1 + 20 + 1
    EXPECT_EQ(decode_as<subscribe>(b, v5).subscriptions.at(0).filter, "$share/group/cmd/#");
}

TEST(MqttCodecV5, DecodesSubackReasonCodes) {
    const bytes b{0x90, 5, 0x00, 0x01, 0x00, 0x01, 0x87};  // 2 + 1 + 2
    const auto ack = decode_as<suback>(b, v5);
    EXPECT_EQ(ack.reason_codes, (std::vector<std::uint8_t>{reason::granted_qos_1, reason::not_authorized}));
    EXPECT_EQ(encode(ack, v5), b);
}

TEST(MqttCodecV5, DecodesUnsubscribeAndUnsuback) {
    const bytes b = cat({{0xA2, 8, 0x00, 0x02, 0x00}, s("a/b")});  // 2 + 1 + 5
    EXPECT_EQ(decode_as<unsubscribe>(b, v5).filters, std::vector<std::string>{"a/b"});
    const bytes ack{0xB0, 5, 0x00, 0x02, 0x00, 0x00, 0x11};
    const auto u = decode_as<unsuback>(ack, v5);
    EXPECT_EQ(u.reason_codes, (std::vector<std::uint8_t>{reason::success, reason::no_subscription_existed}));
    EXPECT_EQ(encode(u, v5), ack);
}

TEST(MqttCodecV5, DecodesDisconnectForms) {
    EXPECT_EQ(decode_as<disconnect>({0xE0, 0x00}, v5), disconnect{});
    EXPECT_EQ(decode_as<disconnect>({0xE0, 0x01, 0x8E}, v5).reason_code, reason::session_taken_over);
    const bytes b{0xE0, 7, 0x04, 5, 0x11, 0x00, 0x00, 0x00, 0x00};  // 1 + 1 + 5
    const auto d = decode_as<disconnect>(b, v5);
    EXPECT_EQ(d.reason_code, reason::disconnect_with_will);
    EXPECT_EQ(d.props.session_expiry_interval, 0U);
    EXPECT_EQ(encode(d, v5), b);
    EXPECT_EQ(encode(disconnect{}, v5), (bytes{0xE0, 0x00}));
    EXPECT_EQ(encode(disconnect{reason::session_taken_over, {}}, v5), (bytes{0xE0, 0x01, 0x8E}));
}

TEST(MqttCodecV5, DecodesAuth) {
    EXPECT_EQ(decode_as<auth>({0xF0, 0x00}, v5), auth{});
    const bytes b = cat({{0xF0, 15, 0x18, 13, 0x15}, s("SCRAM"), {0x16, 0x00, 0x02, 0x01, 0x02}});  // 1 + 1 + 13
    const auto a = decode_as<auth>(b, v5);
    EXPECT_EQ(a.reason_code, 0x18);
    EXPECT_EQ(a.props.authentication_method, "SCRAM");
    EXPECT_EQ(a.props.authentication_data, "\x01\x02"s);
    EXPECT_EQ(encode(a, v5), b);
}

// =============================================================================================
// Remaining length (spec 1.5.5 / 2.2.3 table of variable byte integer sizes)

publish publish_with_payload(std::size_t size) {
    publish p;
    p.topic = "t";
    p.payload.assign(size, 'x');
    return p;
}

TEST(MqttCodecRemainingLength, UsesMinimalVariableByteIntegers) {
    // Remaining length = 3 (topic "t") + payload.
    const struct {
        std::size_t remaining;
        bytes header;
    } cases[] = {
        {3, {0x30, 0x03}},
        {127, {0x30, 0x7F}},
        {128, {0x30, 0x80, 0x01}},
        {16383, {0x30, 0xFF, 0x7F}},
        {16384, {0x30, 0x80, 0x80, 0x01}},
        {2097151, {0x30, 0xFF, 0xFF, 0x7F}},
        {2097152, {0x30, 0x80, 0x80, 0x80, 0x01}},
    };
    for (const auto& c : cases) {
        const auto p = publish_with_payload(c.remaining - 3);
        const auto out = encode(p, v311);
        ASSERT_GE(out.size(), c.header.size());
        const bytes header(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(c.header.size()));
        EXPECT_EQ(header, c.header) << c.remaining;
        EXPECT_EQ(out.size(), c.header.size() + c.remaining);
        EXPECT_EQ(encoded_size(p, v311), out.size());
        EXPECT_EQ(decode_as<publish>(out, v311), p);
    }
}

TEST(MqttCodecRemainingLength, LargestRemainingLengthNeedsTheWholeBody) {
    const auto r = decode(bytes{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, v311);
    ASSERT_TRUE(std::holds_alternative<need_more>(r)) << describe(r);
    EXPECT_EQ(std::get<need_more>(r).at_least, 5U + 268'435'455U);
}

// =============================================================================================
// Incremental decoding

TEST(MqttCodecIncremental, EmptyAndPartialHeadersAskForOneMoreByte) {
    const auto at_least = [](const bytes& b) {
        const auto r = decode(b, v5);
        EXPECT_TRUE(std::holds_alternative<need_more>(r)) << describe(r);
        return std::holds_alternative<need_more>(r) ? std::get<need_more>(r).at_least : 0;
    };
    EXPECT_EQ(at_least({}), 1U);
    EXPECT_EQ(at_least({0x30}), 2U);
    EXPECT_EQ(at_least({0x30, 0x80}), 3U);
    EXPECT_EQ(at_least({0x30, 0x80, 0x80}), 4U);
    EXPECT_EQ(at_least({0x30, 0x05, 0x00}), 7U);  // header known: the exact total
}

TEST(MqttCodecIncremental, EveryPrefixOfAPacketNeedsMore) {
    for (const auto* b : {&connect_v311_full, &connect_v5, &connack_v5, &publish_v5}) {
        const auto version = b == &connect_v311_full ? v311 : v5;
        for (std::size_t k = 0; k < b->size(); ++k) {
            const auto r = decode(std::span(*b).first(k), version);
            ASSERT_TRUE(std::holds_alternative<need_more>(r)) << k << ": " << describe(r);
            const auto at_least = std::get<need_more>(r).at_least;
            EXPECT_GT(at_least, k);
            EXPECT_LE(at_least, b->size());
        }
    }
}

TEST(MqttCodecIncremental, DecodesBackToBackPacketsOneAfterTheOther) {
    const bytes ack{0x40, 0x02, 0x00, 0x01};
    const auto stream = cat({publish_v5, ack, {0xD0, 0x00}, {0x30}});  // ends with a partial packet
    std::span<const std::uint8_t> rest(stream);

    auto r = decode(rest, v5);
    ASSERT_TRUE(std::holds_alternative<decoded>(r)) << describe(r);
    EXPECT_EQ(std::get<decoded>(r).consumed, publish_v5.size());
    EXPECT_TRUE(std::holds_alternative<publish>(std::get<decoded>(r).packet));
    rest = rest.subspan(std::get<decoded>(r).consumed);

    r = decode(rest, v5);
    ASSERT_TRUE(std::holds_alternative<decoded>(r)) << describe(r);
    EXPECT_EQ(std::get<decoded>(r).consumed, 4U);
    EXPECT_EQ(std::get<decoded>(r).packet, packet(puback{1, reason::success, {}}));
    rest = rest.subspan(4);

    r = decode(rest, v5);
    ASSERT_TRUE(std::holds_alternative<decoded>(r)) << describe(r);
    EXPECT_EQ(std::get<decoded>(r).consumed, 2U);
    EXPECT_EQ(std::get<decoded>(r).packet, packet{pingresp{}});
    rest = rest.subspan(2);

    r = decode(rest, v5);
    ASSERT_TRUE(std::holds_alternative<need_more>(r)) << describe(r);
    EXPECT_EQ(std::get<need_more>(r).at_least, 2U);
}

// =============================================================================================
// Size limit

TEST(MqttCodecLimit, RefusesTooLargePacketFromItsHeaderAlone) {
    // Four bytes announce a 2 MB PUBLISH; the limit is 1 KiB. No body has arrived.
    const auto m = decode_failure({0x30, 0xFF, 0xFF, 0x7F}, v5, 1024);
    EXPECT_EQ(m.code, decode_error::packet_too_large);
    EXPECT_EQ(m.reason, "PUBLISH: packet of 2097155 bytes exceeds the limit of 1024 bytes");
}

TEST(MqttCodecLimit, CountsTheFixedHeaderInTheLimit) {
    const bytes b = cat({{0x30, 7}, s("a/b"), t("hi")});  // 9 bytes in all
    EXPECT_TRUE(std::holds_alternative<decoded>(decode(b, v311, 9)));
    EXPECT_EQ(decode_failure(b, v311, 8).code, decode_error::packet_too_large);
    EXPECT_EQ(decode_failure({0x30, 7}, v311, 8).code, decode_error::packet_too_large);
}

// =============================================================================================
// Malformed input: one case per check, each with the error it must produce.

struct malformed_case {
    const char* name;
    protocol_version version;
    bytes input;
    decode_error code;
};

void PrintTo(const malformed_case& c, std::ostream* os) {
    *os << c.name;
}

std::vector<malformed_case> malformed_cases() {
    using enum decode_error;
    // Helpers for CONNECT: protocol name + level + flags + keep alive 60.
    const auto connect_start = [](std::uint8_t level, std::uint8_t flags) {
        return cat({s("MQTT"), {level, flags, 0x00, 0x3C}});
    };
    return {
        // --- fixed header
        {"ReservedPacketType0", v311, {0x00, 0x00}, bad_fixed_header},
        {"AuthInMqtt311", v311, {0xF0, 0x00}, bad_fixed_header},
        {"PubrelFlagsNot0010", v311, {0x60, 0x02, 0x00, 0x01}, bad_fixed_header},
        {"SubscribeFlagsNot0010", v311, cat({{0x80, 6, 0x00, 0x01}, s("a"), {0x00}}), bad_fixed_header},
        {"UnsubscribeFlagsNot0010", v311, cat({{0xA0, 5, 0x00, 0x01}, s("a")}), bad_fixed_header},
        {"PubackFlagsNotZero", v311, {0x41, 0x02, 0x00, 0x01}, bad_fixed_header},
        {"PingreqFlagsNotZero", v311, {0xC8, 0x00}, bad_fixed_header},
        {"ConnectFlagsNotZero", v311, {0x12, 0x00}, bad_fixed_header},
        {"DisconnectFlagsNotZero", v5, {0xE1, 0x00}, bad_fixed_header},
        {"PublishQos3", v311, cat({{0x36, 5}, s("t"), {0x00, 0x01}}), protocol_violation},
        {"PublishQos0WithDup", v311, cat({{0x38, 3}, s("t")}), protocol_violation},
        // --- remaining length
        {"RemainingLengthLongerThan4Bytes", v311, {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, bad_remaining_length},
        {"RemainingLengthNotMinimal", v311, {0xC0, 0x80, 0x00}, bad_remaining_length},
        // --- bounds
        {"PubackTooShort", v311, {0x40, 0x01, 0x00}, truncated},
        {"PublishTopicLengthPastEnd", v311, {0x30, 0x03, 0x00, 0x05, 'a'}, truncated},
        {"PublishQos1WithoutPacketId", v311, cat({{0x32, 3}, s("t")}), truncated},
        {"ConnectStopsAfterFlags", v311, cat({{0x10, 8}, s("MQTT"), {0x04, 0x02}}), truncated},
        {"ConnackTooShort", v5, {0x20, 0x02, 0x00, 0x00}, truncated},  // MQTT 5 needs the property length
        {"PropertyLengthPastEnd", v5, {0x40, 0x04, 0x00, 0x01, 0x00, 0x05}, truncated},
        {"PropertyValuePastPropertyLength", v5, {0x40, 0x06, 0x00, 0x01, 0x00, 0x02, 0x1F, 0x00}, truncated},
        {"WillPayloadPastEnd", v311, cat({{0x10, 17}, connect_start(4, 0x06), s(""), s("w"), {0x00, 0x09}}), truncated},
        // --- trailing bytes
        {"PubackV311WithReasonCode", v311, {0x40, 0x03, 0x00, 0x01, 0x00}, trailing_bytes},
        {"PingreqWithBody", v311, {0xC0, 0x01, 0x00}, trailing_bytes},
        {"PingrespWithBody", v5, {0xD0, 0x01, 0x00}, trailing_bytes},
        {"DisconnectV311WithBody", v311, {0xE0, 0x01, 0x00}, trailing_bytes},
        {"UnsubackV311WithReasonCodes", v311, {0xB0, 0x03, 0x00, 0x01, 0x00}, trailing_bytes},
        {"ConnackV311WithExtraByte", v311, {0x20, 0x03, 0x00, 0x00, 0x00}, trailing_bytes},
        {"ConnectWithExtraByte", v311, cat({{0x10, 13}, connect_start(4, 0x02), s(""), {0x00}}), trailing_bytes},
        // --- UTF-8
        {"PublishTopicOverlong", v311, cat({{0x30, 4}, s("\xC0\xAF")}), bad_utf8},
        {"PublishTopicWithNul", v311, cat({{0x30, 5}, s("a\0b"s)}), bad_utf8},
        {"PublishTopicSurrogate", v5, cat({{0x30, 6}, s("\xED\xA0\x80"), {0x00}}), bad_utf8},
        {"ConnectClientIdInvalidUtf8", v311, cat({{0x10, 13}, connect_start(4, 0x02), s("\xFF")}), bad_utf8},
        {"UserPropertyInvalidUtf8", v5, cat({{0x40, 10, 0x00, 0x01, 0x00, 6, 0x26}, s("\x80"), s("")}), bad_utf8},
        {"UserNameInvalidUtf8", v311, cat({{0x10, 16}, connect_start(4, 0x82), s("c"), s("\xC3")}), bad_utf8},
        // --- topics
        {"PublishTopicWithPlus", v311, cat({{0x30, 5}, s("a/+")}), bad_topic},
        {"PublishTopicWithHash", v5, cat({{0x30, 6}, s("a/#"), {0x00}}), bad_topic},
        {"PublishEmptyTopicV311", v311, cat({{0x30, 2}, s("")}), bad_topic},
        {"PublishEmptyTopicWithoutAlias", v5, cat({{0x30, 3}, s(""), {0x00}}), bad_topic},
        {"WillTopicWithWildcard", v311, cat({{0x10, 19}, connect_start(4, 0x06), s(""), s("w/#"), s("")}), bad_topic},
        {"SubscribeHashNotLast", v311, cat({{0x82, 10, 0x00, 0x01}, s("a/#/b"), {0x00}}), bad_topic},
        {"SubscribeEmptyFilter", v311, cat({{0x82, 5, 0x00, 0x01}, s(""), {0x00}}), bad_topic},
        {"SubscribeBadSharedFilter", v5, cat({{0x82, 15, 0x00, 0x01, 0x00}, s("$share//a"), {0x00}}), bad_topic},
        {"UnsubscribeEmptyFilter", v311, cat({{0xA2, 4, 0x00, 0x01}, s("")}), bad_topic},
        {"UnsubscribePlusInsideLevel", v5, cat({{0xA2, 7, 0x00, 0x01, 0x00}, s("a+")}), bad_topic},
        // --- properties
        {"UnknownPropertyId", v5, {0x40, 0x05, 0x00, 0x01, 0x00, 0x01, 0x05}, bad_property},
        {"TopicAliasInPuback", v5, {0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01}, bad_property},
        {"WillDelayInPublish", v5, cat({{0x30, 9}, s("t"), {5, 0x18, 0, 0, 0, 1}}), bad_property},
        {"MaximumQosInConnect", v5, cat({{0x10, 15}, connect_start(5, 0x02), {2, 0x24, 0x01}, s("")}), bad_property},
        {"ServerKeepAliveInWillProperties", v5,
         cat({{0x10, 22}, connect_start(5, 0x06), {0}, s(""), {3, 0x13, 0, 1}, s("w"), s("")}), bad_property},
        {"DuplicateTopicAlias", v5, cat({{0x30, 10}, s("t"), {6, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02}}), bad_property},
        {"DuplicateSubscriptionIdInSubscribe", v5,
         cat({{0x82, 11, 0x00, 0x01, 4, 0x0B, 0x01, 0x0B, 0x02}, s("t"), {0x00}}), bad_property},
        {"DuplicateReasonString", v5, cat({{0x40, 10, 0x00, 0x01, 0x00, 6, 0x1F}, s(""), {0x1F}, s("")}), bad_property},
        {"PayloadFormatIndicator2", v5, cat({{0x30, 6}, s("t"), {2, 0x01, 0x02}}), bad_property},
        {"MaximumQos2", v5, {0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02}, bad_property},
        {"RetainAvailable2", v5, {0x20, 0x05, 0x00, 0x00, 0x02, 0x25, 0x02}, bad_property},
        {"ReceiveMaximum0", v5, {0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00}, bad_property},
        {"MaximumPacketSize0", v5, cat({{0x10, 18}, connect_start(5, 0x02), {5, 0x27, 0, 0, 0, 0}, s("")}),
         bad_property},
        {"SubscriptionIdentifier0", v5, cat({{0x82, 9, 0x00, 0x01, 2, 0x0B, 0x00}, s("t"), {0x00}}), bad_property},
        {"TopicAlias0", v5, cat({{0x30, 7}, s("t"), {3, 0x23, 0x00, 0x00}}), bad_property},
        {"PropertyLengthNotMinimal", v5, {0x40, 0x05, 0x00, 0x01, 0x00, 0x80, 0x00}, bad_property},
        {"SubscriptionIdentifierLongerThan4Bytes", v5,
         cat({{0x30, 10}, s("t"), {6, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}}), bad_property},
        {"ResponseTopicWithWildcard", v5, cat({{0x30, 10}, s("t"), {6, 0x08}, s("a/#")}), bad_property},
        {"AuthenticationDataWithoutMethod", v5, {0xF0, 0x07, 0x00, 0x05, 0x16, 0x00, 0x02, 0x01, 0x02}, bad_property},
        // --- protocol rules
        {"PublishQos1PacketId0", v311, cat({{0x32, 5}, s("t"), {0x00, 0x00}}), protocol_violation},
        {"PubackPacketId0", v311, {0x40, 0x02, 0x00, 0x00}, protocol_violation},
        {"SubscribePacketId0", v311, cat({{0x82, 6, 0x00, 0x00}, s("t"), {0x00}}), protocol_violation},
        {"SubscribeWithoutFilters", v311, {0x82, 0x02, 0x00, 0x01}, protocol_violation},
        {"SubscribeV5WithoutFilters", v5, {0x82, 0x03, 0x00, 0x01, 0x00}, protocol_violation},
        {"SubscribeV311ReservedOptionBits", v311, cat({{0x82, 6, 0x00, 0x01}, s("t"), {0x04}}), protocol_violation},
        {"SubscribeV5ReservedOptionBits", v5, cat({{0x82, 7, 0x00, 0x01, 0x00}, s("t"), {0x40}}), protocol_violation},
        {"SubscribeQos3", v311, cat({{0x82, 6, 0x00, 0x01}, s("t"), {0x03}}), protocol_violation},
        {"SubscribeRetainHandling3", v5, cat({{0x82, 7, 0x00, 0x01, 0x00}, s("t"), {0x30}}), protocol_violation},
        {"SubscribeNoLocalOnSharedSubscription", v5, cat({{0x82, 16, 0x00, 0x01, 0x00}, s("$share/g/t"), {0x04}}),
         protocol_violation},
        {"UnsubscribeWithoutFilters", v311, {0xA2, 0x02, 0x00, 0x01}, protocol_violation},
        {"SubackWithoutReturnCodes", v311, {0x90, 0x02, 0x00, 0x01}, protocol_violation},
        {"SubackV311ReservedReturnCode", v311, {0x90, 0x03, 0x00, 0x01, 0x03}, protocol_violation},
        {"SubackV5ReasonCodeNotForSuback", v5, {0x90, 0x04, 0x00, 0x01, 0x00, 0x10}, protocol_violation},
        {"UnsubackV5WithoutReasonCodes", v5, {0xB0, 0x03, 0x00, 0x01, 0x00}, protocol_violation},
        {"PubackReasonCodeNotForPuback", v5, {0x40, 0x03, 0x00, 0x01, 0x11}, protocol_violation},
        {"DisconnectReasonCodeNotForDisconnect", v5, {0xE0, 0x01, 0x01}, protocol_violation},
        {"AuthReasonCodeNotForAuth", v5, {0xF0, 0x01, 0x87}, protocol_violation},
        {"ConnackReservedFlags", v311, {0x20, 0x02, 0x02, 0x00}, protocol_violation},
        {"ConnackV311ReturnCode6", v311, {0x20, 0x02, 0x00, 0x06}, protocol_violation},
        {"ConnackSessionPresentOnRefusal", v311, {0x20, 0x02, 0x01, 0x05}, protocol_violation},
        {"ConnackV5ReasonCodeNotForConnack", v5, {0x20, 0x03, 0x00, 0x8E, 0x00}, protocol_violation},
        {"ConnectProtocolNameMQIsdp", v311, cat({{0x10, 14}, s("MQIsdp"), {0x03, 0x02, 0x00, 0x3C}, s("")}),
         protocol_violation},
        {"ConnectProtocolLevel6", v5, cat({{0x10, 12}, connect_start(6, 0x02), s("")}), protocol_violation},
        {"ConnectProtocolLevel3", v311, cat({{0x10, 12}, connect_start(3, 0x02), s("")}), protocol_violation},
        {"ConnectReservedFlag", v311, cat({{0x10, 12}, connect_start(4, 0x03), s("")}), protocol_violation},
        {"ConnectWillQosWithoutWill", v311, cat({{0x10, 12}, connect_start(4, 0x0A), s("")}), protocol_violation},
        {"ConnectWillRetainWithoutWill", v311, cat({{0x10, 12}, connect_start(4, 0x22), s("")}), protocol_violation},
        {"ConnectWillQos3", v311, cat({{0x10, 18}, connect_start(4, 0x1E), s(""), s("w"), s("x")}), protocol_violation},
        {"ConnectV311PasswordWithoutUserName", v311, cat({{0x10, 15}, connect_start(4, 0x42), s(""), s("p")}),
         protocol_violation},
    };
}

class MqttCodecMalformed : public testing::TestWithParam<malformed_case> {};

TEST_P(MqttCodecMalformed, IsRefusedWithTheRightError) {
    const auto& c = GetParam();
    const auto m = decode_failure(c.input, c.version);
    EXPECT_EQ(m.code, c.code) << m.reason;
    EXPECT_FALSE(m.reason.empty());
}

INSTANTIATE_TEST_SUITE_P(EachCheck, MqttCodecMalformed, testing::ValuesIn(malformed_cases()),
                         [](const testing::TestParamInfo<malformed_case>& param) { return param.param.name; });

// MQTT 5 ends a connection over these with their own reason codes (spec 3.3.2.3.4, 3.1.2.24).
TEST(MqttCodec, MalformedCarriesTheDisconnectReasonCode) {
    using enum decode_error;
    const auto alias0 = decode_failure(cat({{0x30, 7}, s("t"), {3, 0x23, 0x00, 0x00}}), protocol_version::v5);
    EXPECT_EQ(alias0.code, bad_property);
    EXPECT_EQ(alias0.reason, "PUBLISH: Topic Alias is 0");
    EXPECT_EQ(alias0.disconnect_reason, reason::topic_alias_invalid);
    const auto too_large = decode_failure({0x30, 0x7F}, protocol_version::v5, 64);
    EXPECT_EQ(too_large.code, packet_too_large);
    EXPECT_EQ(too_large.disconnect_reason, reason::packet_too_large);
    const auto other = decode_failure({0x40, 0x02, 0x00, 0x00}, protocol_version::v5);
    EXPECT_EQ(other.disconnect_reason, reason::malformed_packet);
}

TEST(MqttCodecMalformedReason, NamesThePacketAndTheProblem) {
    EXPECT_EQ(decode_failure(cat({{0x30, 5}, s("a/+")}), v311).reason, "PUBLISH: topic name contains wildcard '+'");
    EXPECT_EQ(decode_failure({0x60, 0x02, 0x00, 0x01}, v311).reason,
              "PUBREL: fixed header flags are 0x00, must be 0x02");
    EXPECT_EQ(decode_failure({0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01}, v5).reason,
              "PUBACK: property Topic Alias (0x23) is not allowed in this packet");
    EXPECT_EQ(decode_failure({0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02}, v5).reason,
              "CONNACK: Maximum QoS is 2, not 0 or 1");
    EXPECT_EQ(decode_failure({0x40, 0x03, 0x00, 0x01, 0x00}, v311).reason, "PUBACK: 1 byte left after the last field");
    EXPECT_EQ(decode_failure({0xC0, 0x80, 0x00}, v311).reason, "PINGREQ: remaining length is not minimally encoded");
}

// =============================================================================================
// Round trips: encode -> decode gives the same value, for every packet type in both versions.

struct round_trip_case {
    std::string name;
    protocol_version version;
    packet value;
};

void PrintTo(const round_trip_case& c, std::ostream* os) {
    *os << c.name;
}

properties message_properties() {
    properties p;
    p.payload_format_indicator = 1;
    p.message_expiry_interval = 86400;
    p.content_type = "application/json";
    p.response_topic = "things/thing-01/reply";
    p.correlation_data = "\x00\x01\xFE\xFF"s;
    p.user_properties = {{"trace-id", "abc123"}, {"trace-id", "def456"}, {"", ""}};
    return p;
}

std::vector<round_trip_case> round_trip_cases() {
    std::vector<round_trip_case> cases;
    for (const auto v : {v311, v5}) {
        const bool is5 = v == v5;
        const std::string prefix = is5 ? "V5_" : "V311_";
        const auto add = [&](const std::string& name, packet p) { cases.push_back({prefix + name, v, std::move(p)}); };
        const auto props = [&](properties p) { return is5 ? p : properties{}; };
        const auto code = [&](std::uint8_t c) { return is5 ? c : std::uint8_t{0}; };

        connect c;
        c.version = v;
        c.client_id = "thing-01";
        c.keep_alive = 1200;
        c.username = "user";
        c.password = "\x00pass\xFF"s;
        will_message will{"things/thing-01/lwt", "offline\0"s, qos::at_least_once, true, {}};
        if (is5) {
            will.props = message_properties();
            will.props.will_delay_interval = 30;
            c.props.session_expiry_interval = 3600;
            c.props.receive_maximum = 100;
            c.props.maximum_packet_size = 131072;
            c.props.topic_alias_maximum = 10;
            c.props.request_problem_information = 1;
            c.props.request_response_information = 0;
            c.props.authentication_method = "SCRAM-SHA-1";
            c.props.authentication_data = "\x01\x02\x00"s;
            c.props.user_properties = {{"app", "thingmux"}, {"app", "again"}};
        }
        c.will = will;
        add("ConnectWithWillAndCredentials", c);
        add("ConnectMinimal", connect{v, "", true, 0, {}, {}, {}, {}});

        properties connack_props;
        connack_props.session_expiry_interval = 0xFFFFFFFF;
        connack_props.assigned_client_identifier = "auto-1";
        connack_props.server_keep_alive = 30;
        connack_props.receive_maximum = 100;
        connack_props.topic_alias_maximum = 0;
        connack_props.maximum_qos = 1;
        connack_props.retain_available = 0;
        connack_props.maximum_packet_size = 149504;
        connack_props.wildcard_subscription_available = 1;
        connack_props.subscription_identifier_available = 0;
        connack_props.shared_subscription_available = 1;
        connack_props.reason_string = "welcome";
        connack_props.response_information = "resp/";
        connack_props.server_reference = "other.example.com";
        connack_props.authentication_method = "SCRAM-SHA-1";
        connack_props.authentication_data = "x";
        connack_props.user_properties = {{"region", "eu-west-1"}};
        add("ConnackAccepted", connack{true, reason::success, props(connack_props)});
        add("ConnackRefused", connack{false, is5 ? reason::not_authorized : std::uint8_t{5}, {}});

        publish qos0;
        qos0.topic = "sensors/temp";
        qos0.payload = "21.5";
        add("PublishQos0", qos0);

        publish qos1;
        qos1.topic = "things/thing-01/shadow/update";
        qos1.payload = std::string("\x00\x01\x02\xFF", 4);
        qos1.qos = qos::at_least_once;
        qos1.packet_id = 65535;
        qos1.retain = true;
        qos1.dup = true;
        auto publish_props = message_properties();
        publish_props.topic_alias = 3;
        publish_props.subscription_identifiers = {1, 268'435'455};
        qos1.props = props(publish_props);
        add("PublishQos1WithProperties", qos1);

        publish qos2;
        qos2.topic = "$aws/things/thing-01/jobs/notify";
        qos2.qos = qos::exactly_once;
        qos2.packet_id = 1;
        add("PublishQos2EmptyPayload", qos2);

        add("PublishLargePayload", publish_with_payload(70'000));

        if (is5) {
            publish aliased;
            aliased.props.topic_alias = 65535;
            aliased.payload = "via alias";
            add("PublishEmptyTopicWithAlias", aliased);
        }

        properties ack_props;
        ack_props.reason_string = "no one listening";
        ack_props.user_properties = {{"k", "v"}};
        add("PubackWithReasonAndProperties", puback{7, code(reason::no_matching_subscribers), props(ack_props)});
        add("PubackSuccess", puback{8, reason::success, {}});
        add("PubackReasonOnly", puback{9, code(reason::quota_exceeded), {}});
        add("Pubrec", pubrec{10, code(reason::implementation_specific_error), props(ack_props)});
        add("Pubrel", pubrel{11, code(reason::packet_identifier_not_found), props(ack_props)});
        add("Pubcomp", pubcomp{12, reason::success, props(ack_props)});

        properties sub_props;
        sub_props.subscription_identifiers = {42};
        sub_props.user_properties = {{"k", "v"}};
        subscribe sub{13, {}, props(sub_props)};
        sub.subscriptions.push_back({"cmd/#", qos::at_least_once, is5, is5, is5 ? std::uint8_t{2} : std::uint8_t{0}});
        sub.subscriptions.push_back(
            {"+/status", qos::at_most_once, false, false, is5 ? std::uint8_t{1} : std::uint8_t{0}});
        sub.subscriptions.push_back({"$share/workers/jobs/+", qos::exactly_once, false, false, 0});
        add("SubscribeSeveralFilters", sub);

        properties reason_props;
        reason_props.reason_string = "partly refused";
        reason_props.user_properties = {{"k", "v"}};
        add("Suback", suback{13,
                             is5 ? std::vector<std::uint8_t>{0x00, 0x01, 0x02, 0x80, 0x87, 0xA2}
                                 : std::vector<std::uint8_t>{0x00, 0x01, 0x02, 0x80},
                             props(reason_props)});

        properties unsub_props;
        unsub_props.user_properties = {{"k", "v"}};
        add("Unsubscribe", unsubscribe{14, {"cmd/#", "+/status"}, props(unsub_props)});
        add("Unsuback", unsuback{14, is5 ? std::vector<std::uint8_t>{0x00, 0x11, 0x87} : std::vector<std::uint8_t>{},
                                 props(reason_props)});

        add("Pingreq", pingreq{});
        add("Pingresp", pingresp{});

        properties disconnect_props;
        disconnect_props.session_expiry_interval = 0;
        disconnect_props.reason_string = "bye";
        disconnect_props.server_reference = "other.example.com";
        disconnect_props.user_properties = {{"k", "v"}};
        add("DisconnectWithReason", disconnect{code(reason::disconnect_with_will), props(disconnect_props)});
        add("DisconnectNormal", disconnect{});

        if (is5) {
            properties auth_props;
            auth_props.authentication_method = "SCRAM-SHA-1";
            auth_props.authentication_data = "\x00\x01"s;
            auth_props.reason_string = "continue";
            auth_props.user_properties = {{"k", "v"}};
            add("AuthContinue", auth{0x18, auth_props});
            add("AuthSuccess", auth{});
        }
    }
    return cases;
}

class MqttCodecRoundTrip : public testing::TestWithParam<round_trip_case> {};

TEST_P(MqttCodecRoundTrip, DecodesToTheEncodedValue) {
    const auto& c = GetParam();
    const auto wire = encode(c.value, c.version);
    EXPECT_EQ(encoded_size(c.value, c.version), wire.size());
    const auto r = decode(wire, c.version);
    ASSERT_TRUE(std::holds_alternative<decoded>(r)) << describe(r);
    EXPECT_EQ(std::get<decoded>(r).consumed, wire.size());
    EXPECT_EQ(std::get<decoded>(r).packet, c.value);
}

TEST_P(MqttCodecRoundTrip, EveryPrefixNeedsMoreWithAnHonestLowerBound) {
    const auto& c = GetParam();
    const auto wire = encode(c.value, c.version);
    // Large payloads: the header prefixes and a stride through the body are enough.
    const std::size_t step = wire.size() > 4096 ? 997 : 1;
    for (std::size_t k = 0; k < wire.size(); k += (k < 8 ? 1 : step)) {
        const auto r = decode(std::span(wire).first(k), c.version);
        ASSERT_TRUE(std::holds_alternative<need_more>(r)) << k << ": " << describe(r);
        EXPECT_GT(std::get<need_more>(r).at_least, k);
        EXPECT_LE(std::get<need_more>(r).at_least, wire.size());
    }
}

TEST_P(MqttCodecRoundTrip, EncodeAppendsToWhatIsAlreadyThere) {
    const auto& c = GetParam();
    bytes out{0xAA, 0xBB};
    encode(c.value, c.version, out);
    ASSERT_EQ(out.size(), 2 + encoded_size(c.value, c.version));
    EXPECT_EQ(out[0], 0xAA);
    EXPECT_EQ(out[1], 0xBB);
    EXPECT_EQ(bytes(out.begin() + 2, out.end()), encode(c.value, c.version));
}

INSTANTIATE_TEST_SUITE_P(EveryPacketType, MqttCodecRoundTrip, testing::ValuesIn(round_trip_cases()),
                         [](const testing::TestParamInfo<round_trip_case>& param) { return param.param.name; });

TEST(MqttCodecRoundTripStream, DecodesAllPacketsOfAConnectionInOrder) {
    for (const auto v : {v311, v5}) {
        bytes stream;
        std::vector<packet> sent;
        for (const auto& c : round_trip_cases()) {
            if (c.version == v) {
                encode(c.value, v, stream);
                sent.push_back(c.value);
            }
        }
        std::span<const std::uint8_t> rest(stream);
        for (const auto& expected : sent) {
            const auto r = decode(rest, v);
            ASSERT_TRUE(std::holds_alternative<decoded>(r)) << describe(r);
            EXPECT_EQ(std::get<decoded>(r).packet, expected);
            rest = rest.subspan(std::get<decoded>(r).consumed);
        }
        EXPECT_TRUE(rest.empty());
    }
}

// =============================================================================================
// packet.hpp helpers

TEST(MqttPacket, TypeOfFollowsTheVariantAlternative) {
    EXPECT_EQ(type_of(connect{}), packet_type::connect);
    EXPECT_EQ(type_of(pubrel{}), packet_type::pubrel);
    EXPECT_EQ(type_of(unsuback{}), packet_type::unsuback);
    EXPECT_EQ(type_of(auth{}), packet_type::auth);
}

TEST(MqttPacket, NamesPacketTypes) {
    EXPECT_STREQ(to_string(packet_type::connect), "CONNECT");
    EXPECT_STREQ(to_string(packet_type::unsubscribe), "UNSUBSCRIBE");
    EXPECT_STREQ(to_string(packet_type::auth), "AUTH");
}

TEST(MqttPacket, NamesReasonCodesAsTheSpecDoes) {
    EXPECT_STREQ(reason_string(0x00), "Success");
    EXPECT_STREQ(reason_string(0x10), "No matching subscribers");
    EXPECT_STREQ(reason_string(0x18), "Continue authentication");
    EXPECT_STREQ(reason_string(0x87), "Not authorized");
    EXPECT_STREQ(reason_string(0x8E), "Session taken over");
    EXPECT_STREQ(reason_string(0x97), "Quota exceeded");
    EXPECT_STREQ(reason_string(0xA2), "Wildcard Subscriptions not supported");
    EXPECT_STREQ(reason_string(0x03), "Unknown reason code");
}

TEST(MqttPacket, KnowsWhichReasonCodesEachPacketAllows) {
    EXPECT_TRUE(reason_code_allowed(packet_type::puback, reason::no_matching_subscribers));
    EXPECT_FALSE(reason_code_allowed(packet_type::puback, reason::no_subscription_existed));
    EXPECT_TRUE(reason_code_allowed(packet_type::suback, reason::granted_qos_2));
    EXPECT_TRUE(reason_code_allowed(packet_type::disconnect, reason::session_taken_over));
    EXPECT_FALSE(reason_code_allowed(packet_type::connack, reason::session_taken_over));
    EXPECT_FALSE(reason_code_allowed(packet_type::publish, reason::success));
}

TEST(MqttPacket, MapsMqtt311ConnackReturnCodes) {
    EXPECT_EQ(connack_reason_v5(v311, 0), reason::success);
    EXPECT_EQ(connack_reason_v5(v311, 1), reason::unsupported_protocol_version);
    EXPECT_EQ(connack_reason_v5(v311, 2), reason::client_identifier_not_valid);
    EXPECT_EQ(connack_reason_v5(v311, 3), reason::server_unavailable);
    EXPECT_EQ(connack_reason_v5(v311, 4), reason::bad_user_name_or_password);
    EXPECT_EQ(connack_reason_v5(v311, 5), reason::not_authorized);
    EXPECT_EQ(connack_reason_v5(v5, reason::banned), reason::banned);
}

// The other way, for a server: every 3.1.1 return code maps back to itself.
TEST(MqttPacket, MapsReasonCodesToMqtt311ConnackReturnCodes) {
    for (std::uint8_t code = 0; code <= 5; ++code) {
        EXPECT_EQ(connack_return_code_v311(connack_reason_v5(v311, code)), code);
    }
    EXPECT_EQ(connack_return_code_v311(reason::server_busy), 3);
    EXPECT_EQ(connack_return_code_v311(reason::banned), 3);
    EXPECT_EQ(connack_return_code_v311(reason::quota_exceeded), 3);
}

// A decode error is an std::error_code of its own category, never 0 (success), with words.
TEST(MqttDecodeError, EveryValueIsAnErrorCodeOfTheDecodeCategoryWithAMessageInWords) {
    using enum decode_error;
    std::set<std::string> messages;
    for (const auto e : {bad_fixed_header, bad_remaining_length, packet_too_large, truncated, trailing_bytes, bad_utf8,
                         bad_topic, bad_property, protocol_violation}) {
        const std::error_code ec = e;  // std::is_error_code_enum
        EXPECT_TRUE(ec) << ec.value();
        EXPECT_EQ(ec, e);
        EXPECT_EQ(&ec.category(), &decode_category());
        EXPECT_STREQ(ec.category().name(), "mqtt.decode");
        EXPECT_NE(ec.message(), "unknown MQTT decoding error") << ec.value();
        EXPECT_TRUE(messages.insert(ec.message()).second) << "said twice: " << ec.message();
    }
    EXPECT_EQ(make_error_code(truncated).message(), "a field runs past the end of the packet");
    EXPECT_NE(std::error_code{decode_error::truncated}, std::error_code(static_cast<int>(decode_error::truncated),
                                                                        std::generic_category()));
    // What decode() reports converts the same way.
    const auto bad = decode(bytes{0x00, 0x00}, protocol_version::v311);
    ASSERT_TRUE(std::holds_alternative<malformed>(bad));
    EXPECT_EQ(std::error_code{std::get<malformed>(bad).code}, bad_fixed_header);
}

// The encoder skips a property list when no property is set, testing each field for that: a
// property added to the table but not to that test would be left out of every packet.
TEST(MqttCodec, EveryPropertyIsEncoded) {
    const auto base = encoded_size(packet{connack{}}, v5);
    for (const auto& def : detail::property_table) {
        properties props;
        std::visit(
            [&](auto member) {
                auto& field = props.*member;
                using F = std::remove_cvref_t<decltype(field)>;
                if constexpr (std::is_same_v<F, std::vector<std::uint32_t>>)
                    field.push_back(1);
                else if constexpr (std::is_same_v<F, std::vector<user_property>>)
                    field.push_back({"k", "v"});
                else
                    field.emplace();
            },
            def.member);
        EXPECT_GT(encoded_size(packet{connack{.session_present = false, .reason_code = 0, .props = props}}, v5), base)
            << def.name;
    }
}

}  // namespace
}  // namespace thingmux::mqtt
