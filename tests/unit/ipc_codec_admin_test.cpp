// IPC codec tests of management (docs/ipc-protocol.md section 9): admin and admin_result, the
// same in both versions, the one frame allowed past max_frame, and the clients' JSON body. Test
// names cite the requirement they check; the vectors are Appendix C's.
#include "ipc_codec_test_support.hpp"

#include "ipc/admin_clients.hpp"
#include "ipc/codec.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <variant>
#include <vector>

namespace thingmux::ipc {
namespace {

using namespace test;
constexpr auto v1 = wire_version::v1;
constexpr auto v2 = wire_version::v2;

// =============================================================================================
// Appendix C vectors

TEST(IpcCodecAdmin, IPC_47_AdminVectorInBothVersions) {
    for (const auto version : {v1, v2}) {
        check_vector(x("00 00 00 06  07  00 00 00 2a  01"), admin{.request_id = 42, .command = admin_command::list_clients},
                     version);
        check_vector(x("00 00 00 06  07  00 00 00 2b  02"), admin{.request_id = 43, .command = admin_command::reload},
                     version);
    }
}

TEST(IpcCodecAdmin, IPC_48_AdminResultVectorInBothVersions) {
    for (const auto version : {v1, v2}) {
        check_vector(x("00 00 00 11  89  00 00 00 2a  00 00 00 00 00  00 00 00 02 5b 5d  00"),
                     admin_result{.request_id = 42, .outcome = {errc::ok, 0, ""}, .body = "[]", .truncated = false},
                     version);
        // A refused reload: invalid_configuration (23), the problems in the body.
        check_vector(x("00 00 00 1a  89  00 00 00 2b  00 17 00 00 00  00 00 00 0b"
                       "74 2e 79 61 6d 6c 3a 31 3a 31 0a  00"),
                     admin_result{.request_id = 43,
                                  .outcome = {errc::invalid_configuration, 0, ""},
                                  .body = "t.yaml:1:1\n",
                                  .truncated = false},
                     version);
    }
}

// =============================================================================================
// Layout

TEST(IpcCodecAdmin, IPC_48_UnknownCommandsDecodeAsTheyAre) {
    for (const std::uint8_t command : std::initializer_list<std::uint8_t>{0x00, 0x03, 0x7f, 0xff}) {
        const auto m = decode_as<admin>(frame(0x07, cat({x("00 00 00 01"), bytes{command}})));
        EXPECT_EQ(static_cast<std::uint8_t>(m.command), command);
        EXPECT_STREQ(to_string(m.command), "unknown");
        check_round_trip(client_message{m});
    }
    EXPECT_STREQ(to_string(admin_command::list_clients), "list_clients");
    EXPECT_STREQ(to_string(admin_command::reload), "reload");
}

TEST(IpcCodecAdmin, IPC_7_TruncatedOrLongAdminIsMalformed) {
    EXPECT_EQ(client_failure(x("00 00 00 05  07  00 00 00 2a")).reason, "admin: command runs past the end of the frame");
    EXPECT_EQ(client_failure(x("00 00 00 02  07  00")).reason, "admin: request id runs past the end of the frame");
    EXPECT_EQ(client_failure(x("00 00 00 07  07  00 00 00 2a  02  00")).reason, "admin: 1 byte left after the last field");
    // Sent the wrong way.
    EXPECT_EQ(daemon_failure(x("00 00 00 06  07  00 00 00 2a  02")).code, errc::protocol_violation);
    EXPECT_EQ(client_failure(x("00 00 00 11  89  00 00 00 2a  00 00 00 00 00  00 00 00 02 5b 5d  00")).code,
              errc::protocol_violation);
}

TEST(IpcCodecAdmin, IPC_51_AdminResultBodyIsUtf8AndBounded) {
    // Not UTF-8.
    EXPECT_EQ(daemon_failure(x("00 00 00 10  89  00 00 00 01  00 00 00 00 00  00 00 00 01 ff  00")).reason,
              "admin_result: body is not valid UTF-8 or contains U+0000");
    // truncated is a bool.
    EXPECT_EQ(daemon_failure(x("00 00 00 0f  89  00 00 00 01  00 00 00 00 00  00 00 00 00  02")).reason,
              "admin_result: truncated is 2, not 0 or 1");
    // Body runs past the frame.
    EXPECT_EQ(daemon_failure(x("00 00 00 0f  89  00 00 00 01  00 00 00 00 00  00 00 00 05 5b  00")).code,
              errc::malformed_frame);

    admin_result big{.request_id = 1, .outcome = {}, .body = std::string(max_admin_body + 1, 'a'), .truncated = true};
    ASSERT_TRUE(encode_problem(daemon_message{big}).has_value());
    EXPECT_NE(encode_problem(daemon_message{big})->find("longer than 4194304"), std::string::npos);
    big.body.pop_back();
    EXPECT_EQ(encode_problem(daemon_message{big}), std::nullopt);
    check_round_trip(daemon_message{big});
}

TEST(IpcCodecAdmin, IPC_51_OnlyAnAdminResultMayExceedMaxFrame) {
    const admin_result large{.request_id = 9, .outcome = {}, .body = std::string(1024 * 1024, 'x'), .truncated = false};
    const auto wire = encode(daemon_message{large});
    ASSERT_GT(wire.size(), default_max_frame);
    const auto r = decode_daemon_message(wire, default_max_frame);
    ASSERT_TRUE(std::holds_alternative<decoded<daemon_message>>(r)) << describe(r);
    EXPECT_EQ(std::get<admin_result>(std::get<decoded<daemon_message>>(r).message), large);

    // Four bytes of such a length: the type decides, so more are needed.
    const auto four = decode_daemon_message(std::span(wire).first(4), default_max_frame);
    ASSERT_TRUE(std::holds_alternative<need_more>(four)) << describe(four);
    EXPECT_EQ(std::get<need_more>(four).at_least, frame_header_size);

    // Any other type of that size is too large from its header on.
    auto as_message = bytes(wire.begin(), wire.begin() + 5);
    as_message[4] = 0x85;
    EXPECT_EQ(daemon_failure(as_message).code, errc::frame_too_large);
    // And an admin_result past max_admin_result_frame from its length alone.
    const auto over = static_cast<std::uint32_t>(max_admin_result_frame - 4 + 1);
    const bytes too_long{static_cast<std::uint8_t>(over >> 24), static_cast<std::uint8_t>(over >> 16),
                         static_cast<std::uint8_t>(over >> 8), static_cast<std::uint8_t>(over)};
    EXPECT_EQ(daemon_failure(too_long).code, errc::frame_too_large);
    // The daemon's decoder grants clients nothing of the kind.
    const auto request = frame(0x07, cat({x("00 00 00 01 02"), bytes(default_max_frame, 0)}));
    EXPECT_EQ(client_failure(bytes(request.begin(), request.begin() + 5)).code, errc::frame_too_large);
}

TEST(IpcCodecAdmin, IPC_3_EveryPrefixNeedsMore) {
    check_every_prefix_needs_more(client_message{admin{.request_id = 7, .command = admin_command::reload}});
    check_every_prefix_needs_more(daemon_message{
        admin_result{.request_id = 7, .outcome = {errc::rate_limited, 0, "at most one reload per second"}, .body = "", .truncated = false}});
}

TEST(IpcCodecAdmin, IPC_12_InvalidConfigurationHasAName) {
    EXPECT_STREQ(to_string(errc::invalid_configuration), "invalid_configuration");
    EXPECT_EQ(static_cast<int>(errc::invalid_configuration), 23);
}

// =============================================================================================
// IPC-50: the clients' JSON body

std::vector<client_entry> sample_clients() {
    return {
        client_entry{.id = 3, .pid = 1234, .uid = 1000, .user = "sensor", .unit = "sensor.service", .app_name = "sensor-app",
                     .thing = "gw", .subscriptions = {"cmd/#", "cfg/ä"}, .queued_bytes = 0, .messages_in = 5,
                     .messages_out = 18446744073709551615ULL},
        client_entry{.id = 7, .pid = 0, .uid = 4294967295U, .user = "", .unit = "", .app_name = "mqtt5:dash \"1\"\n",
                     .thing = "gw2", .subscriptions = {}, .queued_bytes = 42, .messages_in = 0, .messages_out = 0},
    };
}

TEST(IpcCodecAdmin, IPC_50_ClientsRoundTripThroughJson) {
    const auto clients = sample_clients();
    const auto j = write_clients_json(clients, max_admin_body);
    EXPECT_EQ(j.listed, 2U);
    EXPECT_TRUE(valid_utf8(j.text));
    std::string why;
    const auto back = read_clients_json(j.text, why);
    ASSERT_TRUE(back.has_value()) << why;
    EXPECT_EQ(*back, clients);
    EXPECT_EQ(write_clients_json({}, max_admin_body).text, "[]");
}

TEST(IpcCodecAdmin, IPC_50_JsonFieldsAreNamedLikeDbus) {
    const auto j = write_clients_json(std::vector<client_entry>{sample_clients()[0]}, max_admin_body);
    EXPECT_EQ(j.text,
              R"([{"id":3,"pid":1234,"uid":1000,"user":"sensor","unit":"sensor.service","app_name":"sensor-app",)"
              R"("thing":"gw","subscriptions":["cmd/#","cfg/ä"],"queued_bytes":0,"messages_in":5,)"
              R"("messages_out":18446744073709551615}])");
}

TEST(IpcCodecAdmin, IPC_51_ListIsCutAtTheBudget) {
    std::vector<client_entry> many(100, sample_clients()[0]);
    const auto one = write_clients_json(std::span(many).first(1), max_admin_body).text.size();
    const auto j = write_clients_json(many, 10 * one);
    EXPECT_LE(j.text.size(), 10 * one);
    EXPECT_GE(j.listed, 9U);
    EXPECT_LT(j.listed, 100U);
    std::string why;
    const auto back = read_clients_json(j.text, why);
    ASSERT_TRUE(back.has_value()) << why;
    EXPECT_EQ(back->size(), j.listed);
    EXPECT_EQ(write_clients_json(many, 2).text, "[]");
}

TEST(IpcCodecAdmin, IPC_50_TextThatIsNotUtf8IsEscaped) {
    auto c = sample_clients()[0];
    c.user = "bad\xff";
    const auto j = write_clients_json(std::vector<client_entry>{c}, max_admin_body);
    EXPECT_TRUE(valid_utf8(j.text));
    std::string why;
    const auto back = read_clients_json(j.text, why);
    ASSERT_TRUE(back.has_value()) << why;
    EXPECT_EQ((*back)[0].user, "bad\\xff");
}

TEST(IpcCodecAdmin, IPC_50_ReaderRefusesWhatIsNotAList) {
    std::string why;
    EXPECT_FALSE(read_clients_json("{}", why).has_value());
    EXPECT_EQ(why, "not a JSON array");
    EXPECT_FALSE(read_clients_json("[", why).has_value());
    EXPECT_NE(why.find("not JSON"), std::string::npos);
    EXPECT_FALSE(read_clients_json("[1]", why).has_value());
    EXPECT_EQ(why, "entry 0: not an object");
    EXPECT_FALSE(read_clients_json(R"([{"id":-1}])", why).has_value());
    EXPECT_EQ(why, "entry 0: member \"id\" is missing or not a number that fits");
    auto j = write_clients_json(sample_clients(), max_admin_body).text;
    const auto at = j.find("\"pid\":1234");
    j.replace(at, 10, "\"pid\":4294967296");
    EXPECT_FALSE(read_clients_json(j, why).has_value());
    EXPECT_EQ(why, "entry 0: member \"pid\" is missing or not a number that fits");
    EXPECT_FALSE(read_clients_json("[[[[[[[[[[]]]]]]]]]]", why).has_value()) << "deeper than a list of clients";
}

}  // namespace
}  // namespace thingmux::ipc
