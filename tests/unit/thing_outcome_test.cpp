// The reason codes local MQTT clients are answered with (daemon/thing/outcome.hpp): every
// result the pipeline gives maps to a code the MQTT 5 specification allows in that packet.
#include "daemon/thing/outcome.hpp"

#include <gtest/gtest.h>

namespace thingmux::thing {
namespace {

using mqtt::packet_type;
namespace reason = mqtt::reason;

ipc::result with(ipc::errc code, std::uint8_t broker_code = 0) { return {.code = code, .mqtt_reason_code = broker_code, .message = {}}; }

TEST(ThingOutcome, PubackCarriesTheBrokersCodeOrTheLocalRefusal) {
    EXPECT_EQ(mqtt_reason_for(ok(), packet_type::puback), reason::success);
    EXPECT_EQ(mqtt_reason_for(ok(reason::no_matching_subscribers), packet_type::puback), reason::no_matching_subscribers);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::spooled), packet_type::puback), reason::success);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::broker_refused, reason::not_authorized), packet_type::puback), reason::not_authorized);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::not_authorized), packet_type::puback), reason::not_authorized);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::invalid_topic), packet_type::puback), reason::topic_name_invalid);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::quota_exceeded), packet_type::puback), reason::quota_exceeded);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::rate_limited), packet_type::puback), reason::quota_exceeded);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::spool_full), packet_type::puback), reason::quota_exceeded);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::payload_too_large), packet_type::puback), reason::quota_exceeded);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::invalid_payload), packet_type::puback), reason::payload_format_invalid);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::not_connected), packet_type::puback), reason::unspecified_error);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::daemon_shutting_down), packet_type::puback), reason::unspecified_error);
}

TEST(ThingOutcome, SubackGrantsTheQosOrRefusesWithAFilterCode) {
    EXPECT_EQ(mqtt_reason_for(ok(1), packet_type::suback), reason::granted_qos_1);
    EXPECT_EQ(mqtt_reason_for(ok(0), packet_type::suback), reason::success);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::invalid_topic), packet_type::suback), reason::topic_filter_invalid);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::invalid_filter), packet_type::suback), reason::topic_filter_invalid);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::not_authorized), packet_type::suback), reason::not_authorized);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::quota_exceeded), packet_type::suback), reason::quota_exceeded);
}

TEST(ThingOutcome, UnsubackHasNoQuotaCodeSoItFallsBackToUnspecified) {
    EXPECT_EQ(mqtt_reason_for(ok(reason::no_subscription_existed), packet_type::unsuback), reason::no_subscription_existed);
    EXPECT_EQ(mqtt_reason_for(with(ipc::errc::quota_exceeded), packet_type::unsuback), reason::unspecified_error);
}

TEST(ThingOutcome, EveryResultMapsToACodeAllowedInEachAnswer) {
    for (std::uint16_t e = 0; e <= 21; ++e) {
        for (const auto answer : {packet_type::puback, packet_type::pubrec, packet_type::suback, packet_type::unsuback}) {
            const auto errc = static_cast<ipc::errc>(e);
            // The broker's own code, where there is one, is a success exactly when the result is.
            const auto code = mqtt_reason_for(with(errc, ipc::accepted(errc) ? 0 : reason::unspecified_error), answer);
            EXPECT_TRUE(mqtt::reason_code_allowed(answer, code))
                << "errc " << e << " in " << mqtt::to_string(answer) << " gave 0x" << std::hex << int(code);
            EXPECT_EQ(code < 0x80, ipc::accepted(errc)) << "errc " << e;
        }
    }
}

TEST(ThingOutcome, AMqttPublishKeepsWhatTheIpcSchemaCarries) {
    mqtt::publish p;
    p.topic = "dt/a";
    p.payload = std::string("\0x", 2);
    p.qos = mqtt::qos::at_least_once;
    p.retain = true;
    p.packet_id = 7;
    p.props.content_type = "text/plain";
    p.props.topic_alias = 3;
    p.props.user_properties = {{"k", "v"}};
    const auto m = to_ipc(std::move(p));
    EXPECT_EQ(m.topic, "dt/a");
    EXPECT_EQ(m.payload, std::string("\0x", 2));
    EXPECT_EQ(m.qos, 1);
    EXPECT_TRUE(m.retain);
    EXPECT_EQ(m.props.content_type, "text/plain");
    ASSERT_EQ(m.props.user_properties.size(), 1U);
    EXPECT_EQ(m.props.user_properties[0].key, "k");
}

}  // namespace
}  // namespace thingmux::thing
