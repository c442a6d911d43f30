// AWS IoT fleet provisioning's MQTT API (common/fleet_provisioning.hpp): the topics, the requests
// as AWS documents them, and hostile answers (not JSON, too deep, too large, fields missing, of
// the wrong type, too long, or with characters they cannot hold).
#include "common/fleet_provisioning.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace thingmux::aws::fleet_provisioning {
namespace {

namespace json = boost::json;

const std::string csr = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";
const std::string cert = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";

std::string created(const std::string& id, const std::string& pem, const std::string& token) {
    return json::serialize(
        json::object{{"certificateId", id}, {"certificatePem", pem}, {"certificateOwnershipToken", token}});
}

template <class T>
void expect_error(const result<T>& r, errc code, const std::string& words) {
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, code) << r.error().detail;
    EXPECT_NE(r.error().detail.find(words), std::string::npos) << r.error().detail;
    for (const char c : r.error().detail) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << r.error().detail;
}

TEST(FleetProvisioningTopics, AreAwsDocumentedNames) {
    const auto c = create_certificate_topics();
    EXPECT_EQ(c.request, "$aws/certificates/create-from-csr/json");
    EXPECT_EQ(c.accepted, "$aws/certificates/create-from-csr/json/accepted");
    EXPECT_EQ(c.rejected, "$aws/certificates/create-from-csr/json/rejected");
    const auto r = register_thing_topics("Fleet_tmpl-1");
    EXPECT_EQ(r.request, "$aws/provisioning-templates/Fleet_tmpl-1/provision/json");
    EXPECT_EQ(r.accepted, "$aws/provisioning-templates/Fleet_tmpl-1/provision/json/accepted");
    EXPECT_EQ(r.rejected, "$aws/provisioning-templates/Fleet_tmpl-1/provision/json/rejected");
}

TEST(FleetProvisioningTopics, TemplateNamesFollowAwsRules) {
    EXPECT_TRUE(valid_template_name("a"));
    EXPECT_TRUE(valid_template_name(std::string(36, 'Z')));
    for (const std::string& bad : std::vector<std::string>{"", std::string(37, 'a'), "a/b", "a+", "#", "a b", "tmpl.1",
                                                           "t\xc3\xa9", std::string("a\0b", 3)})
        EXPECT_FALSE(valid_template_name(bad)) << bad;
}

TEST(FleetProvisioningCreate, RequestCarriesTheCsr) {
    const auto r = encode_create_certificate_request(csr);
    ASSERT_TRUE(r.has_value()) << r.error().detail;
    EXPECT_EQ(json::parse(*r), (json::object{{"certificateSigningRequest", csr}}));
}

TEST(FleetProvisioningCreate, RequestRefusesWhatIsNotACsr) {
    expect_error(encode_create_certificate_request(""), errc::bad_request, "CERTIFICATE REQUEST");
    expect_error(encode_create_certificate_request(cert), errc::bad_request, "CERTIFICATE REQUEST");
    expect_error(encode_create_certificate_request(csr + std::string(max_csr_pem_bytes, 'A')), errc::bad_request,
                 "bytes");
    expect_error(encode_create_certificate_request(csr + "\x01"), errc::bad_request, "CERTIFICATE REQUEST");
}

TEST(FleetProvisioningCreate, AcceptedAnswerIsRead) {
    const auto r = decode_create_certificate_accepted(created(std::string(64, 'a'), cert, "tok.en+/="));
    ASSERT_TRUE(r.has_value()) << r.error().detail;
    EXPECT_EQ(r->certificate_id, std::string(64, 'a'));
    EXPECT_EQ(r->certificate_pem, cert);
    EXPECT_EQ(r->ownership_token, "tok.en+/=");
}

TEST(FleetProvisioningCreate, HostileAcceptedAnswersAreRefused) {
    expect_error(decode_create_certificate_accepted("not json"), errc::not_json, "not a JSON document");
    expect_error(decode_create_certificate_accepted("[1]"), errc::not_json, "not a JSON object");
    expect_error(decode_create_certificate_accepted(std::string(20, '[') + std::string(20, ']')), errc::not_json,
                 "JSON");
    expect_error(decode_create_certificate_accepted(std::string(max_payload_bytes + 1, ' ')), errc::payload_too_large,
                 "KiB");
    expect_error(decode_create_certificate_accepted("{}"), errc::bad_field, "certificateId is missing");
    expect_error(decode_create_certificate_accepted(R"({"certificateId":5})"), errc::bad_field, "not a string");
    expect_error(decode_create_certificate_accepted(created(std::string(65, 'a'), cert, "t")), errc::bad_field,
                 "more than 64");
    expect_error(decode_create_certificate_accepted(created("", cert, "t")), errc::bad_field, "certificateId");
    expect_error(decode_create_certificate_accepted(created("ab/../c\n", cert, "t")), errc::bad_field, "ab/../c\\n");
    expect_error(decode_create_certificate_accepted(created("ab", "-----BEGIN PRIVATE KEY-----\n", "t")),
                 errc::bad_field, "not a PEM certificate");
    expect_error(
        decode_create_certificate_accepted(created("ab", cert + std::string(max_certificate_pem_bytes, 'A'), "t")),
        errc::bad_field, "certificatePem has");
    expect_error(decode_create_certificate_accepted(created("ab", cert + "\x1b[2J", "t")), errc::bad_field,
                 "not a PEM certificate");
    expect_error(decode_create_certificate_accepted(created("ab", cert, "")), errc::bad_field,
                 "certificateOwnershipToken");
    expect_error(decode_create_certificate_accepted(created("ab", cert, "a b")), errc::bad_field, "visible ASCII");
    expect_error(
        decode_create_certificate_accepted(created("ab", cert, std::string(max_ownership_token_bytes + 1, 't'))),
        errc::bad_field, "more than");
}

TEST(FleetProvisioningRegister, RequestCarriesTokenAndParameters) {
    const auto r = encode_register_thing_request("tok", {{"SerialNumber", "42"}, {"ThingName", "gw-\xc3\xa9"}});
    ASSERT_TRUE(r.has_value()) << r.error().detail;
    EXPECT_EQ(json::parse(*r), (json::object{{"certificateOwnershipToken", "tok"},
                                             {"parameters", {{"SerialNumber", "42"}, {"ThingName", "gw-\xc3\xa9"}}}}));
    const auto bare = encode_register_thing_request("tok", {});
    ASSERT_TRUE(bare.has_value());
    EXPECT_EQ(*bare, R"({"certificateOwnershipToken":"tok"})");
}

TEST(FleetProvisioningRegister, RequestRefusesBadTokensAndParameters) {
    expect_error(encode_register_thing_request("", {}), errc::bad_request, "ownership token");
    expect_error(encode_register_thing_request("a\"b c", {}), errc::bad_request, "ownership token");
    expect_error(encode_register_thing_request("t", {{"", "v"}}), errc::bad_request, "name");
    expect_error(encode_register_thing_request("t", {{"k", "\xff"}}), errc::bad_request, "not UTF-8");
    expect_error(encode_register_thing_request("t", {{"k", std::string(max_parameter_value_bytes + 1, 'v')}}),
                 errc::bad_request, "over");
    string_map many;
    for (std::size_t i = 0; i <= max_parameters; ++i) many.emplace("p" + std::to_string(i), "v");
    expect_error(encode_register_thing_request("t", many), errc::bad_request, "more than");
}

TEST(FleetProvisioningRegister, AcceptedAnswerIsRead) {
    const auto r = decode_register_thing_accepted(
        R"({"deviceConfiguration":{"Fallback":"x","Port":"8883"},"thingName":"gw-0042","extra":[1,2]})");
    ASSERT_TRUE(r.has_value()) << r.error().detail;
    EXPECT_EQ(r->thing_name, "gw-0042");
    EXPECT_EQ(r->device_configuration, (string_map{{"Fallback", "x"}, {"Port", "8883"}}));
    const auto bare = decode_register_thing_accepted(R"({"thingName":"a:b_c","deviceConfiguration":null})");
    ASSERT_TRUE(bare.has_value());
    EXPECT_TRUE(bare->device_configuration.empty());
}

TEST(FleetProvisioningRegister, HostileAcceptedAnswersAreRefused) {
    expect_error(decode_register_thing_accepted("{"), errc::not_json, "JSON");
    expect_error(decode_register_thing_accepted(R"({"deviceConfiguration":{}})"), errc::bad_field,
                 "thingName is missing");
    expect_error(decode_register_thing_accepted(R"({"thingName":""})"), errc::bad_field, "not a Thing name");
    expect_error(decode_register_thing_accepted(R"({"thingName":"a/b"})"), errc::bad_field, "a/b");
    expect_error(decode_register_thing_accepted(R"({"thingName":"a\u0007"})"), errc::bad_field, "a\\x07");
    expect_error(decode_register_thing_accepted("{\"thingName\":\"" + std::string(129, 'a') + "\"}"), errc::bad_field,
                 "more than 128");
    expect_error(decode_register_thing_accepted(R"({"thingName":"t","deviceConfiguration":[]})"), errc::bad_field,
                 "not an object");
    expect_error(decode_register_thing_accepted(R"({"thingName":"t","deviceConfiguration":{"k":1}})"), errc::bad_field,
                 "\"k\" is not a string");
    std::string many = R"({"thingName":"t","deviceConfiguration":{)";
    for (std::size_t i = 0; i <= max_device_configuration_entries; ++i) many += "\"k" + std::to_string(i) + "\":\"v\",";
    many.back() = '}';
    expect_error(decode_register_thing_accepted(many + "}"), errc::bad_field, "more than");
    expect_error(decode_register_thing_accepted(R"({"thingName":"t","deviceConfiguration":{"k":")" +
                                                std::string(max_parameter_value_bytes + 1, 'v') + "\"}}"),
                 errc::bad_field, "over");
}

TEST(FleetProvisioningRejected, DocumentedAnswerIsRead) {
    const auto r = decode_rejected(R"({"statusCode":400,"errorCode":"InvalidCSR","errorMessage":"bad CSR"})");
    ASSERT_TRUE(r.has_value()) << r.error().detail;
    EXPECT_EQ(r->status_code, 400);
    EXPECT_EQ(r->error_code, "InvalidCSR");
    EXPECT_EQ(r->error_message, "bad CSR");
    const auto sparse = decode_rejected("{}");
    ASSERT_TRUE(sparse.has_value());
    EXPECT_EQ(sparse->status_code, 0);
    EXPECT_TRUE(sparse->error_code.empty());
}

TEST(FleetProvisioningRejected, HostileAnswersAreRefused) {
    expect_error(decode_rejected("\"x\""), errc::not_json, "not a JSON object");
    expect_error(decode_rejected(R"({"statusCode":"400"})"), errc::bad_field, "statusCode");
    expect_error(decode_rejected(R"({"statusCode":4.5e2})"), errc::bad_field, "statusCode");
    expect_error(decode_rejected(R"({"statusCode":99999999999999999999})"), errc::bad_field, "statusCode");
    expect_error(decode_rejected(R"({"statusCode":-1})"), errc::bad_field, "statusCode");
    expect_error(decode_rejected(R"({"errorCode":{}})"), errc::bad_field, "errorCode");
    expect_error(decode_rejected("{\"errorMessage\":\"" + std::string(max_error_text_bytes + 1, 'm') + "\"}"),
                 errc::bad_field, "errorMessage has");
}

TEST(FleetProvisioningRejected, OnlyThrottlingAndServerErrorsAreWorthRetrying) {
    EXPECT_TRUE(retry_can_help(429));
    EXPECT_TRUE(retry_can_help(500));
    EXPECT_TRUE(retry_can_help(503));
    EXPECT_FALSE(retry_can_help(400));
    EXPECT_FALSE(retry_can_help(403));
    EXPECT_FALSE(retry_can_help(0));
    EXPECT_FALSE(retry_can_help(200));
}

TEST(FleetProvisioningResult, ValueOfAnErrorThrowsItsDetail) {
    const auto r = decode_rejected("x");
    EXPECT_THROW((void)r.value(), std::runtime_error);
}

}  // namespace
}  // namespace thingmux::aws::fleet_provisioning
