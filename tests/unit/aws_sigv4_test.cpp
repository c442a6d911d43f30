// The SigV4 core (daemon/aws/sigv4.hpp) against AWS's published SigV4 test suite
// ("aws-sig-v4-test-suite": each case's request, canonical request, string to sign and
// Authorization header), and the presigned MQTT-over-WebSocket target of AWS IoT Core
// (daemon/aws/mqtt_url.hpp).
#include "daemon/aws/mqtt_url.hpp"
#include "daemon/aws/sigv4.hpp"
#include "daemon/uplink/error.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using namespace thingmux;
using namespace thingmux::aws;
using namespace std::chrono_literals;

// The suite's credentials, time and scope.
constexpr const char* suite_secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr const char* suite_date = "20150830T123600Z";
const sigv4::scope suite_scope{"20150830", "us-east-1", "service"};
const std::string empty_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::chrono::system_clock::time_point suite_time() {
    return std::chrono::sys_days{std::chrono::year{2015} / 8 / 30} + 12h + 36min;
}

// A suite request: host and x-amz-date headers as in every case, plus `more`.
sigv4::request suite_request(std::string method, std::string path, sigv4::parameters query = {},
                             sigv4::parameters more = {}) {
    sigv4::request r;
    r.method = std::move(method);
    r.path = std::move(path);
    r.query = std::move(query);
    r.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", suite_date}};
    r.headers.insert(r.headers.end(), more.begin(), more.end());
    return r;
}

sigv4::signing sign(const sigv4::request& r) {
    return sigv4::sign(r, suite_secret, suite_scope, suite_date);
}

std::string sts(const std::string& canonical_hash) {
    return "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n" + canonical_hash;
}

// The suite's cases that publish every step: request, canonical request, string to sign (its
// last line: the hash of the canonical request) and signature.
struct full_case {
    const char* name;
    sigv4::request request;
    std::string canonical_request;
    const char* canonical_hash;
    const char* signature;
};

sigv4::request with_payload(sigv4::request r, std::string payload) {
    r.payload = std::move(payload);
    return r;
}

TEST(SigV4Suite, CasesWithEveryStep) {
    const std::string get_headers = "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n";
    const std::vector<full_case> cases{
        {"get-vanilla", suite_request("GET", "/"), "GET\n/\n\n" + get_headers + empty_sha256,
         "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
         "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
        {"get-vanilla-query-order-key", suite_request("GET", "/", {{"Param1", "value2"}, {"Param1", "Value1"}}),
         "GET\n/\nParam1=Value1&Param1=value2\n" + get_headers + empty_sha256,
         "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
         "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
        {"get-vanilla-query-order-value", suite_request("GET", "/", {{"Param1", "value2"}, {"Param1", "value1"}}),
         "GET\n/\nParam1=value1&Param1=value2\n" + get_headers + empty_sha256,
         "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
         "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
        {"post-x-www-form-urlencoded",
         with_payload(suite_request("POST", "/", {}, {{"Content-Type", "application/x-www-form-urlencoded"}}),
                      "Param1=value1"),
         "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
         "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
         "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
         "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
         "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto s = sign(c.request);
        EXPECT_EQ(s.canonical_request, c.canonical_request);
        EXPECT_EQ(s.string_to_sign, sts(c.canonical_hash));
        EXPECT_EQ(s.signature, c.signature);
    }
}

TEST(SigV4Suite, GetVanillaQueryOrderKeyCase) {
    const auto s = sign(suite_request("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}));
    EXPECT_NE(s.canonical_request.find("\n/\nParam1=value1&Param2=value2\n"), std::string::npos);
    EXPECT_EQ(s.signature, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

TEST(SigV4Suite, GetVanillaQueryUnreserved) {
    const std::string unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const auto s = sign(suite_request("GET", "/", {{unreserved, unreserved}}));
    EXPECT_NE(s.canonical_request.find("\n" + unreserved + "=" + unreserved + "\n"), std::string::npos);
    EXPECT_EQ(s.signature, "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197");
}

TEST(SigV4Suite, GetUnreservedPath) {
    const auto s = sign(suite_request("GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"));
    EXPECT_EQ(s.signature, "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f");
}

TEST(SigV4Suite, GetUtf8Path) {
    const auto s = sign(suite_request("GET", "/\xE1\x88\xB4"));
    EXPECT_TRUE(s.canonical_request.starts_with("GET\n/%E1%88%B4\n\n")) << s.canonical_request;
    EXPECT_EQ(s.signature, "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

TEST(SigV4Suite, GetVanillaUtf8Query) {
    const auto s = sign(suite_request("GET", "/", {{"\xE1\x88\xB4", "bar"}}));
    EXPECT_NE(s.canonical_request.find("\n%E1%88%B4=bar\n"), std::string::npos);
    EXPECT_EQ(s.signature, "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04");
}

TEST(SigV4Suite, PostVanillaQueryNonunreserved) {
    const auto s = sign(suite_request("POST", "/", {{"@#$%^", ""}, {"+", "/,?><`\";:\\|][{}"}}));
    EXPECT_NE(s.canonical_request.find("\n%2B=%2F%2C%3F%3E%3C%60%22%3B%3A%5C%7C%5D%5B%7B%7D&%40%23%24%25%5E=\n"),
              std::string::npos)
        << s.canonical_request;
    EXPECT_EQ(s.signature, "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e");
}

TEST(SigV4Suite, PostXWwwFormUrlencodedParameters) {
    const auto r = with_payload(
        suite_request("POST", "/", {}, {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}}),
        "Param1=value1");
    EXPECT_EQ(sign(r).signature, "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe");
}

TEST(SigV4Suite, GetHeaderKeyDuplicateJoinsValuesInOrder) {
    const auto s = sign(
        suite_request("GET", "/", {}, {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}}));
    EXPECT_NE(s.canonical_request.find("\nmy-header1:value2,value2,value1\n"), std::string::npos);
    EXPECT_EQ(s.signature, "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");
}

TEST(SigV4Suite, GetHeaderValueTrim) {
    const auto s = sign(suite_request("GET", "/", {}, {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}}));
    EXPECT_NE(s.canonical_request.find("\nmy-header1:value1\nmy-header2:\"a b c\"\n"), std::string::npos);
    EXPECT_EQ(s.signature, "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

TEST(SigV4Suite, PostHeaderValueCaseIsKept) {
    const auto s = sign(suite_request("POST", "/", {}, {{"My-Header1", "VALUE1"}}));
    EXPECT_EQ(s.signature, "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d");
}

TEST(SigV4, UriEncodeKeepsOnlyUnreservedAndSlashInPaths) {
    EXPECT_EQ(sigv4::uri_encode("a b+c/d=e%"), "a%20b%2Bc%2Fd%3De%25");
    EXPECT_EQ(sigv4::uri_encode("a b/c", true), "a%20b/c");
    EXPECT_EQ(sigv4::uri_encode(std::string("\0\xff", 2)), "%00%FF");
}

TEST(SigV4, AmzDateIsUtcWholeSeconds) {
    EXPECT_EQ(sigv4::amz_date(suite_time() + 999ms), suite_date);
}

// ---- AWS IoT Core's MQTT over WebSocket ----

const credentials iot_credentials{"AKIDEXAMPLE00000", suite_secret, {}, std::nullopt};
constexpr const char* iot_host = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com";

TEST(MqttUrl, PresignsGetMqttForTheEndpointWithServiceIotDeviceGateway) {
    const auto p = presign_mqtt_target(iot_host, "", iot_credentials, suite_time());
    ASSERT_FALSE(p.error) << p.error.message();
    const std::string prefix =
        "/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIDEXAMPLE00000%2F20150830%2Feu-west-1%2Fiotdevicegateway%2Faws4_request"
        "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=";
    ASSERT_TRUE(p.target.starts_with(prefix)) << p.target;
    // The signature is the one of the canonical request with exactly these parameters.
    sigv4::request r;
    r.path = "/mqtt";
    r.headers = {{"host", iot_host}};
    r.query = {{"X-Amz-Algorithm", "AWS4-HMAC-SHA256"},
               {"X-Amz-Credential", "AKIDEXAMPLE00000/20150830/eu-west-1/iotdevicegateway/aws4_request"},
               {"X-Amz-Date", "20150830T123600Z"},
               {"X-Amz-Expires", "300"},
               {"X-Amz-SignedHeaders", "host"}};
    const sigv4::scope scope{"20150830", "eu-west-1", "iotdevicegateway"};
    const auto s = sigv4::sign(r, suite_secret, scope, suite_date);
    EXPECT_EQ(p.target, prefix + s.signature);
    EXPECT_EQ(s.canonical_request.substr(s.canonical_request.size() - empty_sha256.size()), empty_sha256);
}

TEST(MqttUrl, SessionTokenIsAppendedAfterTheSignatureUriEncoded) {
    auto c = iot_credentials;
    const auto without = presign_mqtt_target(iot_host, "", c, suite_time());
    c.session_token = "AQoDYXdzEPT//////////wEXAMPLE+token==";
    const auto with = presign_mqtt_target(iot_host, "", c, suite_time());
    ASSERT_FALSE(with.error);
    // Unsigned: the signature is the same as without a token.
    EXPECT_EQ(with.target,
              without.target + "&X-Amz-Security-Token=AQoDYXdzEPT%2F%2F%2F%2F%2F%2F%2F%2F%2F%2FwEXAMPLE%2Btoken%3D%3D");
}

TEST(MqttUrl, RegionFromConfigurationWinsOverTheEndpoint) {
    const auto p = presign_mqtt_target("broker.example.com", "ap-south-1", iot_credentials, suite_time());
    ASSERT_FALSE(p.error);
    EXPECT_NE(p.target.find("%2Fap-south-1%2Fiotdevicegateway%2F"), std::string::npos);
    const auto china = presign_mqtt_target("a-ats.iot.cn-north-1.amazonaws.com.cn", "", iot_credentials, suite_time());
    EXPECT_NE(china.target.find("%2Fcn-north-1%2Fiotdevicegateway%2F"), std::string::npos) << china.target;
}

TEST(MqttUrl, RefusesWhatItCannotSign) {
    EXPECT_EQ(presign_mqtt_target("broker.example.com", "", iot_credentials, suite_time()).error,
              uplink::errc::aws_region_unknown);
    EXPECT_EQ(presign_mqtt_target(iot_host, "EU WEST", iot_credentials, suite_time()).error,
              uplink::errc::aws_region_unknown);
    EXPECT_TRUE(uplink::is_fatal(uplink::errc::aws_region_unknown));
    auto bad = iot_credentials;
    bad.secret_access_key = "with space";
    EXPECT_EQ(presign_mqtt_target(iot_host, "", bad, suite_time()).error, uplink::errc::aws_credentials_malformed);
    auto expired = iot_credentials;
    expired.expiration = suite_time();
    EXPECT_EQ(presign_mqtt_target(iot_host, "", expired, suite_time()).error, uplink::errc::aws_credentials_expired);
    EXPECT_FALSE(uplink::is_fatal(uplink::errc::aws_credentials_expired));
    expired.expiration = suite_time() + 1s;
    EXPECT_FALSE(presign_mqtt_target(iot_host, "", expired, suite_time()).error);
}

TEST(MqttUrl, ReSigningLaterGivesAnotherDateAndSignature) {
    const auto a = presign_mqtt_target(iot_host, "", iot_credentials, suite_time());
    const auto b = presign_mqtt_target(iot_host, "", iot_credentials, suite_time() + 1s);
    EXPECT_NE(a.target, b.target);
    EXPECT_NE(b.target.find("X-Amz-Date=20150830T123601Z"), std::string::npos);
}

}  // namespace
