// Protocol version 3's subscribe flags (docs/ipc-protocol-libapi.md, IPC-60, IPC-61): the layout
// per version, and hostile frames (reserved bits, flags in an older version) refused.
#include "ipc/codec.hpp"

#include <gtest/gtest.h>

#include <variant>

namespace {

using namespace thingmux::ipc;

const subscribe flagged{7, {subscription{"cmd/#", 1}}, subscribe_answer_at_registration};

TEST(IpcSubscribeFlags, IPC60_Version3CarriesTheFlagsAfterTheRequestId) {
    const auto bytes = encode(client_message{flagged}, wire_version::v3);
    const std::vector<std::uint8_t> expected{0x00, 0x00, 0x00, 0x10, 0x03, 0x00, 0x00, 0x00, 0x07, 0x01,
                                             0x00, 0x01, 0x00, 0x05, 'c',  'm',  'd',  '/',  '#',  0x01};
    EXPECT_EQ(bytes, expected);
    const auto d = decode_client_message(bytes, default_max_frame, wire_version::v3);
    const auto* ok = std::get_if<decoded<client_message>>(&d);
    ASSERT_NE(ok, nullptr);
    EXPECT_EQ(std::get<subscribe>(ok->message), flagged);
    EXPECT_EQ(encoded_size(client_message{flagged}, wire_version::v3), bytes.size());
}

TEST(IpcSubscribeFlags, IPC60_Versions1And2KeepTheirLayoutAndCannotCarryFlags) {
    subscribe plain = flagged;
    plain.flags = 0;
    for (const auto v : {wire_version::v1, wire_version::v2}) {
        EXPECT_EQ(encode(client_message{plain}, v), encode(client_message{plain}, wire_version::v1));
        EXPECT_TRUE(encode_problem(client_message{flagged}, v)) << "flags need version 3";
    }
    // Without flags, version 3 has one byte more: the flags, 0.
    EXPECT_EQ(encode(client_message{plain}, wire_version::v3).size(), encode(client_message{plain}).size() + 1);
}

TEST(IpcSubscribeFlags, IPC60_ReservedBitsMakeTheFrameMalformed) {
    for (const std::uint8_t bits : {std::uint8_t{0x02}, std::uint8_t{0x80}, std::uint8_t{0xff}}) {
        auto bytes = encode(client_message{flagged}, wire_version::v3);
        bytes[9] = bits;
        const auto d = decode_client_message(bytes, default_max_frame, wire_version::v3);
        const auto* bad = std::get_if<malformed>(&d);
        ASSERT_NE(bad, nullptr) << static_cast<int>(bits);
        EXPECT_NE(bad->reason.find("reserved bits"), std::string::npos) << bad->reason;
    }
}

TEST(IpcSubscribeFlags, IPC60_AVersion3HelloIsLaidOutAsVersion2) {
    const hello h{3, "app", "gw", "", 0};
    const auto d = decode_client_message(encode(client_message{h}), default_max_frame, wire_version::v1);
    const auto* ok = std::get_if<decoded<client_message>>(&d);
    ASSERT_NE(ok, nullptr);
    EXPECT_EQ(std::get<hello>(ok->message), h);
    EXPECT_EQ(known_version(3), wire_version::v3);
    EXPECT_FALSE(known_version(4));
}

}  // namespace
