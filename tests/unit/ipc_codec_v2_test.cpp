// IPC codec tests, version 2 (docs/ipc-protocol.md section 8, Appendix B): the session fields of
// hello and welcome, the delivery id of message, ack, and the frames version 2 did not change.
// Version 1's vectors (Appendix A) are checked, unchanged, by ipc_codec_test.cpp. Test names cite
// the requirement they check.
//
// The byte vectors are copied from the spec's tables and Appendix B, never produced by the encoder
// under test.
#include "ipc_codec_test_support.hpp"

#include "ipc/codec.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace thingmux::ipc {
namespace {

using namespace test;

constexpr auto v1 = wire_version::v1;
constexpr auto v2 = wire_version::v2;

limits a5_limits() {
    return {.max_frame = 266240,
            .max_payload = 262144,
            .max_topic_length = 256,
            .max_subscriptions = 50,
            .max_queue_bytes = 8388608,
            .max_inflight = 100};
}

// =============================================================================================
// Appendix B vectors

TEST(IpcCodecV2, IPC_43_HelloWithSessionVector) {
    check_vector(x("00 00 00 12  01  00 02  00 03 61 70 70  00 00  00 02 73 31  00 00 0e 10"),
                 hello{.version = 2, .app_name = "app", .thing = "", .session_name = "s1", .session_expiry = 3600}, v2);
}

TEST(IpcCodecV2, IPC_43_HelloWithoutSessionVector) {
    check_vector(x("00 00 00 10  01  00 02  00 03 61 70 70  00 00  00 00  00 00 00 00"),
                 hello{.version = 2, .app_name = "app", .thing = "", .session_name = "", .session_expiry = 0}, v2);
}

TEST(IpcCodecV2, IPC_43_WelcomeVector) {
    check_vector(x("00 00 00 30  81  00 02  00 05 30 2e 31 2e 30  00 02 67 77  00 02 63 31"
                   "00 04 10 00  00 04 00 00  00 00 01 00  00 32  00 00 00 00 00 80 00 00  00 64  01  01  00 00 0e 10"),
                 welcome{.version = 2,
                         .daemon_version = "0.1.0",
                         .thing = "gw",
                         .connection_id = "c1",
                         .limits = a5_limits(),
                         .link = link_state::connected,
                         .session_present = true,
                         .session_expiry = 3600},
                 v2);
}

TEST(IpcCodecV2, IPC_44_MessageWithDeliveryIdVector) {
    check_vector(x("00 00 00 13  85  00 00 00 07  00 01 74  00 00 00 02 68 69  01  00  00 00 00"),
                 message{.topic = "t", .payload = "hi", .qos = 1, .retain = false, .props = {}, .delivery_id = 7}, v2);
}

TEST(IpcCodecV2, IPC_44_AckVector) {
    check_vector(x("00 00 00 05  06  00 00 00 07"), ack{7}, v2);
}

// =============================================================================================
// Version 1 stays as it was

// The message `wire` decodes to with the codec of `version`, or nullopt.
template <class Variant>
std::optional<Variant> decoded_with(const bytes& wire, wire_version version) {
    auto r = decode_any<Variant>(wire, default_max_frame, version);
    if (auto* d = std::get_if<decoded<Variant>>(&r)) {
        return std::move(d->message);
    }
    ADD_FAILURE() << describe(r);
    return std::nullopt;
}

// The frames whose layout version 2 did not touch, written once with each version's codec.
std::vector<client_message> unchanged_client_samples() {
    return {
        publish{
            .request_id = 7, .topic = "a/b", .payload = "hi", .qos = 1, .retain = false, .props = full_properties()},
        subscribe{.request_id = 9, .subscriptions = {{"cmd/#", 1}, {"x", 0}}},
        unsubscribe{.request_id = 5, .filters = {"a", "b/+"}}, ping{0x01020304}};
}

std::vector<daemon_message> unchanged_daemon_samples() {
    return {publish_result{.request_id = 7, .outcome = {errc::ok, 0, ""}},
            subscribe_result{.request_id = 9, .results = {{errc::ok, 1, ""}, {errc::not_authorized, 0, "no"}}},
            unsubscribe_result{.request_id = 9, .results = {{errc::ok, 0x11, ""}}},
            state{.link = link_state::backing_off, .reason = "dns", .fatal = false, .retry_in_ms = 1500},
            pong{0xFFFFFFFF},
            error{errc::protocol_violation, "bad"}};
}

TEST(IpcCodecV2, IPC_39_FramesVersion2DidNotChangeHaveTheSameBytesInBothVersions) {
    for (const auto& m : unchanged_client_samples()) {
        SCOPED_TRACE(to_string(type_of(m)));
        const auto wire = encode(m, v1);
        EXPECT_EQ(encode(m, v2), wire);
        EXPECT_EQ(decoded_with<client_message>(wire, v2), m);
        EXPECT_EQ(decoded_with<client_message>(wire, v1), m);
    }
    for (const auto& m : unchanged_daemon_samples()) {
        SCOPED_TRACE(to_string(type_of(m)));
        const auto wire = encode(m, v1);
        EXPECT_EQ(encode(m, v2), wire);
        EXPECT_EQ(decoded_with<daemon_message>(wire, v2), m);
        EXPECT_EQ(decoded_with<daemon_message>(wire, v1), m);
    }
    // The error frame is frozen for every version (IPC-9): Appendix A.10 in a version 2 decoder.
    EXPECT_EQ(decode_as<error>(x("00 00 00 08  88  00 10  00 03 62 61 64"), v2),
              (error{errc::protocol_violation, "bad"}));
}

TEST(IpcCodecV2, IPC_44_AVersion2MessageIsNotAVersion1One) {
    // B.4 read as version 1: the delivery id's bytes become an empty topic and a payload length
    // that runs past the frame.
    EXPECT_EQ(daemon_failure(x("00 00 00 13  85  00 00 00 07  00 01 74  00 00 00 02 68 69  01  00  00 00 00")).reason,
              "message: payload runs past the end of the frame");
}

// =============================================================================================
// The hello chooses its own layout (IPC-9)

TEST(IpcCodecV2, IPC_9_AHelloDecodesByItsOwnVersionWhateverTheConnectionsVersion) {
    const auto b1 = x("00 00 00 12  01  00 02  00 03 61 70 70  00 00  00 02 73 31  00 00 0e 10");
    const hello expected{.version = 2, .app_name = "app", .thing = "", .session_name = "s1", .session_expiry = 3600};
    EXPECT_EQ(decode_as<hello>(b1, v1), expected);  // the daemon before it knows the version
    EXPECT_EQ(decode_as<hello>(x("00 00 00 0a  01  00 01  00 03 61 70 70  00 00"), v2), (hello{1, "app", ""}));
    EXPECT_EQ(encode(client_message{expected}, v1), b1);
}

TEST(IpcCodecV2, IPC_9_AVersion2HelloIsDecodedStrictly) {
    // A version 1 body under version 2: the session fields are missing.
    EXPECT_EQ(client_failure(x("00 00 00 0a  01  00 02  00 03 61 70 70  00 00")).reason,
              "hello: session name runs past the end of the frame");
    EXPECT_EQ(client_failure(x("00 00 00 0e  01  00 02  00 03 61 70 70  00 00  00 00  00 00")).reason,
              "hello: session expiry runs past the end of the frame");
    EXPECT_EQ(client_failure(x("00 00 00 11  01  00 02  00 03 61 70 70  00 00  00 00  00 00 00 00  00")).reason,
              "hello: 1 byte left after the last field");
    EXPECT_EQ(client_failure(frame(0x01, cat({x("00 02"), s("app"), s(""), s("s\xff"), x("00 00 00 00")}))).reason,
              "hello: session name is not valid UTF-8 or contains U+0000");
}

// =============================================================================================
// Field rules of version 2

TEST(IpcCodecV2, IPC_43_SessionNameIsAtMost256Bytes) {
    const std::string longest(max_session_name, 'n');
    EXPECT_EQ(max_session_name, 256U);
    const auto ok = frame(0x01, cat({x("00 02"), s("app"), s(""), s(longest), x("00 00 00 3c")}));
    EXPECT_EQ(decode_as<hello>(ok).session_name, longest);

    const auto too_long = frame(0x01, cat({x("00 02"), s("app"), s(""), s(longest + "n"), x("00 00 00 3c")}));
    const auto m = client_failure(too_long);
    EXPECT_EQ(m.code, errc::malformed_frame);
    EXPECT_EQ(m.reason, "hello: session name is 257 bytes, longer than 256");
    EXPECT_EQ(encode_problem(client_message{hello{
                  .version = 2, .app_name = "", .thing = "", .session_name = longest + "n", .session_expiry = 60}}),
              "hello: session name is 257 bytes, longer than 256");
}

TEST(IpcCodecV2, IPC_43_SessionExpiryWithoutASessionNameIsMalformed) {
    EXPECT_EQ(client_failure(x("00 00 00 10  01  00 02  00 03 61 70 70  00 00  00 00  00 00 00 01")).reason,
              "hello: session expiry without a session name");
    // A name with expiry 0 is a session that ends with its connection: well-formed.
    EXPECT_EQ(
        decode_as<hello>(x("00 00 00 12  01  00 02  00 03 61 70 70  00 00  00 02 73 31  00 00 00 00")).session_name,
        "s1");
}

TEST(IpcCodecV2, IPC_44_AnAckOfDeliveryId0IsMalformed) {
    const auto m = failure<client_message>(x("00 00 00 05  06  00 00 00 00"), default_max_frame, v2);
    EXPECT_EQ(m.code, errc::malformed_frame);
    EXPECT_EQ(m.reason, "ack: delivery id 0 acknowledges nothing");
    EXPECT_EQ(failure<client_message>(x("00 00 00 04  06  00 00 07"), default_max_frame, v2).reason,
              "ack: delivery id runs past the end of the frame");
    EXPECT_EQ(failure<client_message>(x("00 00 00 06  06  00 00 00 07  00"), default_max_frame, v2).reason,
              "ack: 1 byte left after the last field");
}

TEST(IpcCodecV2, IPC_44_DeliveryId0IsNothingToAcknowledge) {
    check_vector(frame(0x85, cat({x("00 00 00 00"), s("t"), x("00 00 00 00  00  00  00  00 00")})),
                 message{.topic = "t", .payload = "", .qos = 0, .retain = false, .props = {}, .delivery_id = 0}, v2);
}

TEST(IpcCodecV2, IPC_43_WelcomeSessionPresentIsABool) {
    auto wire =
        x("00 00 00 30  81  00 02  00 05 30 2e 31 2e 30  00 02 67 77  00 02 63 31"
          "00 04 10 00  00 04 00 00  00 00 01 00  00 32  00 00 00 00 00 80 00 00  00 64  01  02  00 00 0e 10");
    EXPECT_EQ(failure<daemon_message>(wire, default_max_frame, v2).reason, "welcome: session present is 2, not 0 or 1");
}

TEST(IpcCodecV2, IPC_4_AckExistsOnlyInVersion2) {
    const bytes header{0x00, 0x00, 0x00, 0x05, 0x06};
    // Version 1: an unknown type, in either direction, refused from the header.
    EXPECT_EQ(failure<client_message>(header, default_max_frame, v1).code, errc::malformed_frame);
    EXPECT_EQ(failure<client_message>(header, default_max_frame, v1).reason, "unknown message type 0x06");
    EXPECT_EQ(failure<daemon_message>(header, default_max_frame, v1).code, errc::malformed_frame);
    // Version 2: a client type; the daemon never sends it.
    EXPECT_TRUE(std::holds_alternative<need_more>(decode_any<client_message>(header, default_max_frame, v2)));
    const auto wrong_way = failure<daemon_message>(header, default_max_frame, v2);
    EXPECT_EQ(wrong_way.code, errc::protocol_violation);
    EXPECT_EQ(wrong_way.reason, "message type 0x06 (ack) is sent by a client, not by the daemon");
    // 0x08 is nothing in either version (0x07 is admin, section 9).
    EXPECT_EQ(failure<client_message>(bytes{0x00, 0x00, 0x00, 0x05, 0x08}, default_max_frame, v2).code,
              errc::malformed_frame);
}

TEST(IpcCodecV2, IPC_38_EncodeProblemNamesWhatAVersionLacks) {
    EXPECT_EQ(encode_problem(client_message{ack{7}}, v1), "ack: no such message in protocol version 1");
    EXPECT_EQ(encode_problem(client_message{ack{0}}, v2), "ack: delivery id 0 acknowledges nothing");
    EXPECT_EQ(
        encode_problem(daemon_message{message{
                           .topic = "t", .payload = "", .qos = 1, .retain = false, .props = {}, .delivery_id = 3}},
                       v1),
        "message: delivery id needs protocol version 2");
    EXPECT_EQ(encode_problem(daemon_message{welcome{.version = 1, .session_present = true}}, v1),
              "welcome: session present and session expiry need protocol version 2");
    EXPECT_EQ(encode_problem(client_message{hello{.version = 1, .app_name = "", .thing = "", .session_name = "s"}}),
              "hello: session name and session expiry need protocol version 2");
    EXPECT_EQ(encode_problem(client_message{
                  hello{.version = 2, .app_name = "", .thing = "", .session_name = "", .session_expiry = 5}}),
              "hello: session expiry without a session name");
    // What the version lacks is left out, so the stream stays framed.
    EXPECT_EQ(encode(daemon_message{message{
                         .topic = "t", .payload = "", .qos = 1, .retain = false, .props = {}, .delivery_id = 3}},
                     v1),
              encode(daemon_message{message{.topic = "t", .payload = "", .qos = 1, .retain = false, .props = {}}}, v1));
}

TEST(IpcCodecV2, IPC_31_EncodeMessageFrameCarriesTheDeliveryId) {
    const message m{.topic = "cmd/ü",
                    .payload = std::string("\x00\x01", 2),
                    .qos = 1,
                    .retain = false,
                    .props = full_properties(),
                    .delivery_id = 0xFFFFFFFE};
    bytes out;
    encode_message_frame(m.topic, m.payload, m.qos, m.retain, m.props, out, v2, m.delivery_id);
    EXPECT_EQ(out, encode(daemon_message{m}, v2));
    EXPECT_EQ(message_frame_size(m.topic, m.payload, m.props, v2), out.size());
    EXPECT_EQ(message_frame_size(m.topic, m.payload, m.props, v1) + 4, out.size());
}

// =============================================================================================
// Round trips and incremental decoding

std::vector<client_message> v2_client_samples() {
    return {hello{.version = 2,
                  .app_name = "sensor-app",
                  .thing = "gateway-01",
                  .session_name = "ünï",
                  .session_expiry = 0xFFFFFFFF},
            hello{.version = 2, .app_name = "", .thing = "", .session_name = "x", .session_expiry = 0},
            hello{.version = 2, .app_name = "a", .thing = "", .session_name = "", .session_expiry = 0}, ack{1},
            ack{0xFFFFFFFF}};
}

std::vector<daemon_message> v2_daemon_samples() {
    return {welcome{.version = 2,
                    .daemon_version = "0.2.0",
                    .thing = "gateway-01",
                    .connection_id = "42",
                    .limits = a5_limits(),
                    .link = link_state::backing_off,
                    .session_present = false,
                    .session_expiry = 86400},
            message{.topic = "cmd/x",
                    .payload = std::string(300, '\0'),
                    .qos = 1,
                    .retain = true,
                    .props = full_properties(),
                    .delivery_id = 0x01020304},
            message{.topic = "x", .payload = "", .qos = 0, .retain = false, .props = {}, .delivery_id = 0}};
}

TEST(IpcCodecV2, IPC_3_EveryVersion2MessageRoundTripsAndItsPrefixesNeedMore) {
    for (const auto& m : v2_client_samples()) {
        check_round_trip(m, v2);
        check_every_prefix_needs_more(m, v2);
    }
    for (const auto& m : v2_daemon_samples()) {
        check_round_trip(m, v2);
        check_every_prefix_needs_more(m, v2);
    }
}

}  // namespace
}  // namespace thingmux::ipc
