// IPC codec tests, version 1 (docs/ipc-protocol.md sections 1-7; version 2:
// ipc_codec_v2_test.cpp). Test names cite the requirement they check.
//
// The byte vectors are copied from the spec's tables and Appendix A, never produced by the encoder
// under test: x("00 00 00 05 ...") reads the spec's hex notation.
#include "ipc_codec_test_support.hpp"

#include "ipc/codec.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace thingmux::ipc {
namespace {

using namespace std::string_literals;
using namespace test;

// =============================================================================================
// Appendix A vectors

TEST(IpcCodec, IPC_17_PingVector) {
    check_vector(x("00 00 00 05  05  01 02 03 04"), ping{0x01020304});
}

TEST(IpcCodec, IPC_13_HelloVector) {
    check_vector(x("00 00 00 0a  01  00 01  00 03 61 70 70  00 00"), hello{.version = 1, .app_name = "app", .thing = ""});
}

TEST(IpcCodec, IPC_14_PublishVector) {
    check_vector(x("00 00 00 15  02  00 00 00 07  00 03 61 2f 62  00 00 00 02 68 69  01  00  00 00 00"),
                 publish{.request_id = 7, .topic = "a/b", .payload = "hi", .qos = 1, .retain = false, .props = {}});
}

TEST(IpcCodec, IPC_15_SubscribeVector) {
    check_vector(x("00 00 00 13  03  00 00 00 09  00 02  00 05 63 6d 64 2f 23 01  00 01 78 00"),
                 subscribe{.request_id = 9, .subscriptions = {{"cmd/#", 1}, {"x", 0}}});
}

TEST(IpcCodec, IPC_16_UnsubscribeVector) {
    // Body: request id 5, 2 filters: 4 + 2 + 3 + 5 = 14 bytes, length 15.
    check_vector(x("00 00 00 0f  04  00 00 00 05  00 02  00 01 61  00 03 62 2f 2b"),
                 unsubscribe{.request_id = 5, .filters = {"a", "b/+"}});
}

TEST(IpcCodec, IPC_18_WelcomeVector) {
    check_vector(x("00 00 00 2b  81  00 01  00 05 30 2e 31 2e 30  00 02 67 77  00 02 63 31"
                   "00 04 10 00  00 04 00 00  00 00 01 00  00 32  00 00 00 00 00 80 00 00  00 64  01"),
                 welcome{.version = 1,
                         .daemon_version = "0.1.0",
                         .thing = "gw",
                         .connection_id = "c1",
                         .limits = {.max_frame = 266240,
                                    .max_payload = 262144,
                                    .max_topic_length = 256,
                                    .max_subscriptions = 50,
                                    .max_queue_bytes = 8388608,
                                    .max_inflight = 100},
                         .link = link_state::connected});
}

TEST(IpcCodec, IPC_19_PublishResultVector) {
    check_vector(x("00 00 00 0a  82  00 00 00 07  00 00  00  00 00"),
                 publish_result{.request_id = 7, .outcome = {errc::ok, 0, ""}});
}

TEST(IpcCodec, IPC_20_SubscribeResultVector) {
    check_vector(x("00 00 00 13  83  00 00 00 09  00 02  00 00 01 00 00  00 07 00 00 02 6e 6f"),
                 subscribe_result{.request_id = 9, .results = {{errc::ok, 1, ""}, {errc::not_authorized, 0, "no"}}});
}

TEST(IpcCodec, IPC_20_UnsubscribeResultSharesTheLayoutWithItsOwnType) {
    check_vector(x("00 00 00 0c  84  00 00 00 09  00 01  00 00 11 00 00"),
                 unsubscribe_result{.request_id = 9, .results = {{errc::ok, 0x11, ""}}});
}

TEST(IpcCodec, IPC_21_MessageWithAllPropertiesVector) {
    check_vector(x("00 00 00 26  85  00 01 74  00 00 00 02 00 ff  00  01"
                   "1f  01  00 00 00 3c  00 01 63  00 01 72  00 00 00 02 01 02  00 01 00 01 6b 00 01 76"),
                 message{.topic = "t", .payload = "\x00\xff"s, .qos = 0, .retain = true, .props = full_properties()});
}

TEST(IpcCodec, IPC_11_PresentFieldsKeepTheirOrderWhenSomeAreAbsent) {
    // Mask 0x0a: message expiry (bit 1) and response topic (bit 3) only.
    const auto wire = frame(0x85, cat({s("t"), x("00 00 00 00  00  00  0a  00 00 0e 10"), s("re/ply"), x("00 00")}));
    check_vector(wire, message{.topic = "t",
                               .payload = "",
                               .qos = 0,
                               .retain = false,
                               .props = {.message_expiry_interval = 3600, .response_topic = "re/ply"}});
}

TEST(IpcCodec, IPC_22_StateVector) {
    check_vector(x("00 00 00 0c  86  02  00 03 64 6e 73  00  00 00 05 dc"),
                 state{.link = link_state::backing_off, .reason = "dns", .fatal = false, .retry_in_ms = 1500});
}

TEST(IpcCodec, IPC_23_PongVector) {
    check_vector(x("00 00 00 05  87  ff ff ff ff"), pong{0xFFFFFFFF});
}

TEST(IpcCodec, IPC_24_ErrorVector) {
    check_vector(x("00 00 00 08  88  00 10  00 03 62 61 64"), error{errc::protocol_violation, "bad"});
}

// =============================================================================================
// Round trips

std::vector<client_message> client_samples() {
    return {
        hello{.version = protocol_version, .app_name = "sensor-app", .thing = "gateway-01"},
        hello{.version = protocol_version, .app_name = "", .thing = ""},
        publish{.request_id = 0xFFFFFFFF,
                .topic = "dt/ünïcödé/€/𝄞",
                .payload = std::string("\x00\x01\xff\x00 binary \xc0", 13),
                .qos = 1,
                .retain = true,
                .props = {.payload_format_indicator = 0,
                          .message_expiry_interval = 0xFFFFFFFF,
                          .content_type = "application/json",
                          .response_topic = "reply/x",
                          .correlation_data = std::string("\x00\xff", 2),
                          .user_properties = {{"a", "1"}, {"a", "2"}, {"", ""}, {"ключ", "значение"}}}},
        publish{.request_id = 0, .topic = "t", .payload = std::string(70000, 'p'), .qos = 2, .retain = false, .props = {}},
        subscribe{.request_id = 1, .subscriptions = {{"cmd/#", 1}, {"+/x", 0}, {"$aws/things/t/shadow/#", 2}}},
        unsubscribe{.request_id = 2, .filters = {"cmd/#", "", "a"}},
        ping{0},
        ping{0xDEADBEEF},
    };
}

std::vector<daemon_message> daemon_samples() {
    return {
        welcome{.version = protocol_version,
                .daemon_version = "0.1.0~rc1",
                .thing = "gateway-01",
                .connection_id = "42",
                .limits = {.max_frame = 1, .max_payload = 2, .max_topic_length = 3, .max_subscriptions = 4,
                           .max_queue_bytes = 0x0102030405060708, .max_inflight = 0xFFFF},
                .link = link_state::stopped},
        publish_result{.request_id = 3, .outcome = {errc::broker_refused, 0x87, "Not authorized"}},
        publish_result{.request_id = 4, .outcome = {errc::spooled, 0, ""}},
        subscribe_result{.request_id = 5, .results = {{errc::ok, 1, ""}, {errc::invalid_filter, 0x8F, "bad #"}}},
        unsubscribe_result{.request_id = 6, .results = {{errc::ok, 0, ""}}},
        message{.topic = "cmd/ä", .payload = std::string("\x00\x00", 2), .qos = 1, .retain = false, .props = full_properties()},
        message{.topic = "x", .payload = "", .qos = 0, .retain = true, .props = {}},
        state{.link = link_state::failed, .reason = "certificate expired", .fatal = true, .retry_in_ms = 0},
        state{.link = link_state::connected, .reason = "", .fatal = false, .retry_in_ms = 0},
        pong{7},
        error{errc::queue_full, "client is not reading: 8388608 bytes queued"},
        error{static_cast<errc>(0xBEEF), "a code from a newer daemon"},
    };
}

TEST(IpcCodec, IPC_3_EveryClientMessageRoundTrips) {
    for (const auto& m : client_samples()) {
        check_round_trip(m);
    }
}

TEST(IpcCodec, IPC_3_EveryDaemonMessageRoundTrips) {
    for (const auto& m : daemon_samples()) {
        check_round_trip(m);
    }
}

TEST(IpcCodec, IPC_3_EncodeAppendsToWhatIsThere) {
    bytes out{0xAA};
    encode(client_message{ping{1}}, out);
    EXPECT_EQ(out, x("aa  00 00 00 05  05  00 00 00 01"));
}

// =============================================================================================
// Incremental decoding

TEST(IpcCodec, IPC_3_EveryPrefixOfAFrameNeedsMore) {
    for (const auto& m : client_samples()) {
        check_every_prefix_needs_more(m);
    }
    for (const auto& m : daemon_samples()) {
        check_every_prefix_needs_more(m);
    }
}

TEST(IpcCodec, IPC_3_NeedMoreAsksForTheWholeFrameOnceTheLengthIsKnown) {
    const auto r = decode_client_message(x("00 00 00 15  02  00"));
    ASSERT_TRUE(std::holds_alternative<need_more>(r)) << describe(r);
    EXPECT_EQ(std::get<need_more>(r).at_least, 25U);
}

TEST(IpcCodec, IPC_3_TwoFramesBackToBack) {
    const auto first = x("00 00 00 05  05  01 02 03 04");
    const auto second = x("00 00 00 0a  01  00 01  00 03 61 70 70  00 00");
    auto both = cat({first, second, {0x00}});  // and the first byte of a third frame
    const auto r1 = decode_client_message(both);
    const auto* d1 = std::get_if<decoded<client_message>>(&r1);
    ASSERT_NE(d1, nullptr) << describe(r1);
    EXPECT_EQ(d1->consumed, first.size());
    EXPECT_EQ(d1->message, client_message{ping{0x01020304}});

    const auto rest = std::span<const std::uint8_t>(both).subspan(d1->consumed);
    const auto r2 = decode_client_message(rest);
    const auto* d2 = std::get_if<decoded<client_message>>(&r2);
    ASSERT_NE(d2, nullptr) << describe(r2);
    EXPECT_EQ(d2->consumed, second.size());
    EXPECT_EQ(d2->message, (client_message{hello{1, "app", ""}}));

    const auto r3 = decode_client_message(rest.subspan(d2->consumed));
    EXPECT_TRUE(std::holds_alternative<need_more>(r3)) << describe(r3);
}

// =============================================================================================
// Framing errors

TEST(IpcCodec, IPC_3_ZeroLengthIsMalformed) {
    const auto m = client_failure(x("00 00 00 00"));
    EXPECT_EQ(m.code, errc::malformed_frame);
    EXPECT_NE(m.reason.find("length is 0"), std::string::npos) << m.reason;
    EXPECT_EQ(daemon_failure(x("00 00 00 00")).code, errc::malformed_frame);
}

TEST(IpcCodec, IPC_5_FrameTooLargeDetectedFromHeader) {
    // Only the 4 length bytes: 4 + 0x00041000 = 266244 > 266240.
    const auto m = client_failure(x("00 04 10 00"));
    EXPECT_EQ(m.code, errc::frame_too_large);
    EXPECT_NE(m.reason.find("266244"), std::string::npos) << m.reason;
    EXPECT_EQ(daemon_failure(x("ff ff ff ff")).code, errc::frame_too_large);
}

TEST(IpcCodec, IPC_5_LimitCountsTheLengthPrefix) {
    // 4 + 0x00040ffc = 266240: exactly the default limit, so the decoder waits for the rest.
    const auto r = decode_client_message(x("00 04 0f fc  02"));
    ASSERT_TRUE(std::holds_alternative<need_more>(r)) << describe(r);
    EXPECT_EQ(std::get<need_more>(r).at_least, default_max_frame);
    EXPECT_EQ(default_max_frame, 266240U);

    const auto ping_frame = x("00 00 00 05  05  01 02 03 04");
    EXPECT_TRUE(std::holds_alternative<decoded<client_message>>(decode_client_message(ping_frame, 9)));
    EXPECT_EQ(client_failure(ping_frame, 8).code, errc::frame_too_large);
}

TEST(IpcCodec, IPC_4_UnknownTypeIsMalformedFromTheHeader) {
    for (const std::uint8_t type : std::initializer_list<std::uint8_t>{0x00, 0x06, 0x08, 0x0f, 0x10, 0x7f, 0x80, 0x8a, 0xff}) {
        // Header only: the type is refused before the body arrives. Version 1 has no 0x06 (ack).
        const auto header = bytes{0x00, 0x00, 0x00, 0x05, type};
        EXPECT_EQ(client_failure(header).code, type >= 0x81 && type <= 0x89 ? errc::protocol_violation
                                                                             : errc::malformed_frame)
            << int{type};
        EXPECT_EQ(daemon_failure(header).code, (type >= 0x01 && type <= 0x05) || type == 0x07 ? errc::protocol_violation
                                                                                                : errc::malformed_frame)
            << int{type};
    }
}

TEST(IpcCodec, IPC_4_WrongDirectionIsAProtocolViolation) {
    const auto from_daemon = x("00 00 00 05  87  00 00 00 01");  // pong
    const auto m = client_failure(from_daemon);
    EXPECT_EQ(m.code, errc::protocol_violation);
    EXPECT_NE(m.reason.find("pong"), std::string::npos) << m.reason;

    const auto from_client = x("00 00 00 05  05  00 00 00 01");  // ping
    EXPECT_EQ(daemon_failure(from_client).code, errc::protocol_violation);
}

// =============================================================================================
// Field errors

TEST(IpcCodec, IPC_7_TruncatedField) {
    // ping whose body has 3 of the token's 4 bytes.
    const auto m = client_failure(x("00 00 00 04  05  00 00 01"));
    EXPECT_EQ(m.code, errc::malformed_frame);
    EXPECT_EQ(m.reason, "ping: token runs past the end of the frame");
}

TEST(IpcCodec, IPC_7_StringLengthPastTheEndOfTheFrame) {
    // hello: app name says 0x00ff bytes, the frame has 3.
    const auto m = client_failure(frame(0x01, x("00 01  00 ff 61 70 70  00 00")));
    EXPECT_EQ(m.code, errc::malformed_frame);
    EXPECT_EQ(m.reason, "hello: app name runs past the end of the frame");
}

TEST(IpcCodec, IPC_7_BlobLengthPastTheEndOfTheFrame) {
    const auto m = client_failure(frame(0x02, cat({x("00 00 00 01"), s("t"), x("7f ff ff ff  68 69  00 00  00 00 00")})));
    EXPECT_EQ(m.reason, "publish: payload runs past the end of the frame");
}

TEST(IpcCodec, IPC_7_TrailingBytesAreMalformed) {
    const auto m = client_failure(x("00 00 00 06  05  00 00 00 01  00"));
    EXPECT_EQ(m.code, errc::malformed_frame);
    EXPECT_EQ(m.reason, "ping: 1 byte left after the last field");
    EXPECT_EQ(daemon_failure(x("00 00 00 0b  88  00 10  00 03 62 61 64  00 00 00")).reason,
              "error: 3 bytes left after the last field");
}

TEST(IpcCodec, IPC_7_CountIsBoundedByTheFrameBeforeAllocating) {
    // 65535 subscriptions announced, 5 bytes follow: refused without building 65535 entries.
    const auto m = client_failure(frame(0x03, x("00 00 00 01  ff ff  00 01 61 01 00")));
    EXPECT_EQ(m.code, errc::malformed_frame);
    EXPECT_EQ(m.reason, "subscribe: subscriptions: 65535 entries cannot fit in the 5 bytes left");
    // User properties: 4 bytes at least each.
    EXPECT_EQ(daemon_failure(frame(0x85, cat({s("t"), x("00 00 00 00  00  00  00  00 02  00 00 00 00")}))).reason,
              "message: user properties: 2 entries cannot fit in the 4 bytes left");
}

TEST(IpcCodec, IPC_6_StringsMustBeValidUtf8) {
    const std::vector<std::string> bad = {
        "\xc0\x80"s,          // overlong U+0000
        "\xe0\x80\xaf"s,      // overlong '/'
        "\xed\xa0\x80"s,      // surrogate U+D800
        "\xf4\x90\x80\x80"s,  // U+110000
        "\x80"s,              // continuation without lead
        "\xe2\x82"s,          // truncated sequence
        "a\xff"s,             // never valid
        "a\x00"s + "b",       // U+0000
    };
    for (const auto& topic : bad) {
        const auto m = client_failure(frame(0x02, cat({x("00 00 00 01"), s(topic), x("00 00 00 00  00  00  00 00 00")})));
        EXPECT_EQ(m.code, errc::malformed_frame);
        EXPECT_EQ(m.reason, "publish: topic is not valid UTF-8 or contains U+0000");
        EXPECT_FALSE(valid_utf8(topic));
    }
    for (const auto* good : {"", "a", "\xc2\x80", "\xe2\x82\xac", "\xef\xbf\xbf", "\xf0\x9d\x84\x9e", "\xf4\x8f\xbf\xbf"}) {
        EXPECT_TRUE(valid_utf8(good)) << good;
    }
    // Every string field is checked, not only topics: a user property value and an error text.
    EXPECT_EQ(daemon_failure(frame(0x85, cat({s("t"), x("00 00 00 00  00  00  00  00 01"), s("k"), s("\xff")}))).reason,
              "message: user property value is not valid UTF-8 or contains U+0000");
    EXPECT_EQ(daemon_failure(frame(0x88, cat({x("00 13"), s("\xc3")}))).reason,
              "error: error message is not valid UTF-8 or contains U+0000");
}

TEST(IpcCodec, IPC_6_BinaryFieldsMayHoldAnyByte) {
    const std::string any("\x00\xc0\xff\xed\xa0\x80", 6);
    check_round_trip(client_message{publish{.request_id = 1,
                                            .topic = "t",
                                            .payload = any,
                                            .qos = 0,
                                            .retain = false,
                                            .props = {.correlation_data = any}}});
}

TEST(IpcCodec, IPC_6_BoolMustBe0Or1) {
    // publish with retain = 2.
    const auto m = client_failure(frame(0x02, cat({x("00 00 00 01"), s("t"), x("00 00 00 00  01  02  00 00 00")})));
    EXPECT_EQ(m.code, errc::malformed_frame);
    EXPECT_EQ(m.reason, "publish: retain is 2, not 0 or 1");
    EXPECT_EQ(daemon_failure(x("00 00 00 09  86  01  00 00  ff  00 00 00 00")).reason, "state: fatal is 255, not 0 or 1");
}

TEST(IpcCodec, IPC_6_QosAbove2IsMalformed) {
    EXPECT_EQ(client_failure(frame(0x02, cat({x("00 00 00 01"), s("t"), x("00 00 00 00  03  00  00 00 00")}))).reason,
              "publish: qos is 3, not 0, 1 or 2");
    EXPECT_EQ(client_failure(frame(0x03, cat({x("00 00 00 01  00 01"), s("a/#"), x("03")}))).reason,
              "subscribe: max qos is 3, not 0, 1 or 2");
}

TEST(IpcCodec, IPC_15_EmptySubscribeIsMalformed) {
    const auto m = client_failure(x("00 00 00 07  03  00 00 00 01  00 00"));
    EXPECT_EQ(m.code, errc::malformed_frame);
    EXPECT_EQ(m.reason, "subscribe: subscriptions has no entries");
}

TEST(IpcCodec, IPC_16_EmptyUnsubscribeIsMalformed) {
    EXPECT_EQ(client_failure(x("00 00 00 07  04  00 00 00 01  00 00")).reason, "unsubscribe: filters has no entries");
}

TEST(IpcCodec, IPC_20_EmptyResultListIsMalformed) {
    EXPECT_EQ(daemon_failure(x("00 00 00 07  83  00 00 00 01  00 00")).reason, "subscribe_result: results has no entries");
    EXPECT_EQ(daemon_failure(x("00 00 00 07  84  00 00 00 01  00 00")).reason,
              "unsubscribe_result: results has no entries");
}

TEST(IpcCodec, IPC_11_ReservedMaskBitsAreMalformed) {
    const auto m = daemon_failure(frame(0x85, cat({s("t"), x("00 00 00 00  00  00  20  00 00")})));
    EXPECT_EQ(m.reason, "message: property presence mask 32 has reserved bits set");
}

TEST(IpcCodec, IPC_11_PayloadFormatIndicatorIs0Or1) {
    const auto m = client_failure(frame(0x02, cat({x("00 00 00 01"), s("t"), x("00 00 00 00  00  00  01  02  00 00")})));
    EXPECT_EQ(m.reason, "publish: payload format indicator is 2, not 0 or 1");
}

TEST(IpcCodec, IPC_22_UnknownLinkStateIsMalformed) {
    EXPECT_EQ(daemon_failure(x("00 00 00 09  86  05  00 00  00  00 00 00 00")).reason, "state: link state 5 is not defined");
}

TEST(IpcCodec, IPC_12_UnknownErrcIsAcceptedAsAFailure) {
    const auto e = decode_as<error>(x("00 00 00 05  88  12 34  00 00"));
    EXPECT_EQ(static_cast<std::uint16_t>(e.code), 0x1234);
    EXPECT_STREQ(to_string(e.code), "unknown");
    EXPECT_FALSE(accepted(e.code));
    EXPECT_TRUE(accepted(errc::ok));
    EXPECT_TRUE(accepted(errc::spooled));
    EXPECT_FALSE(accepted(errc::broker_refused));
}

TEST(IpcCodec, IPC_12_ErrcNamesAreStable) {
    const std::vector<std::string_view> names = {
        "ok", "broker_refused", "not_connected", "invalid_topic", "invalid_filter", "payload_too_large",
        "qos_not_supported", "not_authorized", "quota_exceeded", "queue_full", "rate_limited", "spool_full",
        "session_closed", "unsupported_version", "unknown_thing", "malformed_frame", "protocol_violation",
        "frame_too_large", "daemon_shutting_down", "internal_error", "spooled", "session_taken_over",
        "invalid_payload", "invalid_configuration"};
    for (std::size_t i = 0; i < names.size(); ++i) {
        const auto code = static_cast<errc>(i);
        EXPECT_EQ(to_string(code), names[i]);
        EXPECT_STRNE(describe(code), "unknown error code") << names[i];
    }
    EXPECT_STREQ(to_string(static_cast<errc>(names.size())), "unknown");
    EXPECT_STREQ(to_string(link_state::backing_off), "backing_off");
    EXPECT_STREQ(to_string(static_cast<link_state>(9)), "unknown");
    EXPECT_STREQ(to_string(message_type::unsubscribe_result), "unsubscribe_result");
}

TEST(IpcCodec, IPC_9_HelloOfAnotherVersionKeepsOnlyItsVersion) {
    // A hello of a version whose layout the codec does not know (4) may carry anything after its
    // version; the daemon must still read the version to answer unsupported_version.
    EXPECT_EQ(decode_as<hello>(x("00 00 00 08  01  00 04  ff ff ff 00 01")), (hello{4, "", ""}));
    EXPECT_EQ(decode_as<hello>(x("00 00 00 03  01  00 00")), (hello{0, "", ""}));
    // Version 1 is strict.
    EXPECT_EQ(client_failure(x("00 00 00 08  01  00 01  00 00  00 00  00")).reason,
              "hello: 1 byte left after the last field");
}

// =============================================================================================
// Encoder

TEST(IpcCodec, IPC_31_EncodeMessageFrameEqualsEncodeOfMessage) {
    const message m{.topic = "dt/x/ü",
                    .payload = std::string("\x00payload\xff", 9),
                    .qos = 1,
                    .retain = true,
                    .props = full_properties()};
    bytes shared{0x01, 0x02};  // appends, like encode()
    encode_message_frame(m.topic, m.payload, m.qos, m.retain, m.props, shared);
    const auto expected = cat({{0x01, 0x02}, encode(daemon_message{m})});
    EXPECT_EQ(shared, expected);
    EXPECT_EQ(message_frame_size(m.topic, m.payload, m.props), encoded_size(daemon_message{m}));

    bytes plain;
    encode_message_frame("t", "", 0, false, {}, plain);
    EXPECT_EQ(plain, encode(daemon_message{message{.topic = "t", .payload = "", .qos = 0, .retain = false, .props = {}}}));
}

TEST(IpcCodec, IPC_38_EncodeProblemNamesWhatTheDecoderWouldRefuse) {
    EXPECT_EQ(encode_problem(client_message{publish{.request_id = 1, .topic = "a\xff", .payload = "", .qos = 0,
                                                    .retain = false, .props = {}}}),
              "publish: topic is not valid UTF-8 or contains U+0000");
    EXPECT_EQ(encode_problem(client_message{publish{.request_id = 1, .topic = std::string(65536, 'a'), .payload = "",
                                                    .qos = 0, .retain = false, .props = {}}}),
              "publish: topic is longer than 65535 bytes");
    EXPECT_EQ(encode_problem(client_message{publish{.request_id = 1, .topic = "t", .payload = "", .qos = 3,
                                                    .retain = false, .props = {}}}),
              "publish: qos is 3, not 0, 1 or 2");
    EXPECT_EQ(encode_problem(client_message{subscribe{.request_id = 1, .subscriptions = {}}}),
              "subscribe: subscriptions has no entries");
    EXPECT_EQ(encode_problem(client_message{unsubscribe{.request_id = 1, .filters = std::vector<std::string>(65536)}}),
              "unsubscribe: filters has more than 65535 entries");
    EXPECT_EQ(encode_problem(daemon_message{state{.link = static_cast<link_state>(7), .reason = "", .fatal = false,
                                                  .retry_in_ms = 0}}),
              "state: link state 7 is not defined");
    EXPECT_EQ(encode_problem(daemon_message{message{.topic = "t", .payload = "", .qos = 0, .retain = false,
                                                    .props = {.payload_format_indicator = 5}}}),
              "message: payload format indicator is 5, not 0 or 1");
    EXPECT_EQ(encode_problem(client_message{ping{}}), std::nullopt);
}

TEST(IpcCodec, IPC_38_OverlongTextIsCutAtACodePointWithoutBreakingTheStream) {
    // 40000 two-byte characters = 80000 bytes: the encoder keeps 32767 of them (65534 bytes)
    // rather than split one, and the frame stays decodable.
    std::string text;
    for (int i = 0; i < 40000; ++i) {
        text += "é";
    }
    const daemon_message e{error{errc::internal_error, text}};
    ASSERT_TRUE(encode_problem(e).has_value());
    const auto wire = encode(e);
    EXPECT_EQ(wire.size(), encoded_size(e));
    const auto r = decode_daemon_message(wire);
    const auto* d = std::get_if<decoded<daemon_message>>(&r);
    ASSERT_NE(d, nullptr) << describe(r);
    EXPECT_EQ(std::get<error>(d->message).message, text.substr(0, 65534));
}

}  // namespace
}  // namespace thingmux::ipc
