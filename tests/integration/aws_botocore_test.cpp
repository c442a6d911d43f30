// thingmuxd's presigned AWS IoT WebSocket URL (daemon/aws/mqtt_url.hpp) against the one Debian's
// botocore presigns (SigV4QueryAuth, tests/support/botocore_presign.py) for the same endpoint,
// region, service iotdevicegateway, credentials, lifetime and time.
//
// Session tokens: botocore signs X-Amz-Security-Token inside the query, as most services want.
// AWS IoT Core wants it appended after the signature, unsigned (it refuses a signature that
// covers the token; the AWS IoT Device SDKs sign with "omit session token"). So with a token,
// the URL is botocore's URL for the same credentials *without* the token, plus
// "&X-Amz-Security-Token=" and the token encoded as botocore encodes it; and the general SigV4
// core, asked to sign the token in the query, gives botocore's signature exactly.
#include "common/plain_text.hpp"
#include "daemon/aws/mqtt_url.hpp"
#include "daemon/aws/sigv4.hpp"
#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace {

using namespace thingmux;
using namespace std::chrono_literals;

struct inputs {
    std::string host;
    std::string region;  // as botocore is told it; presign_mqtt_target reads it from the host
    aws::credentials credentials;
    std::chrono::system_clock::time_point at;
};

// botocore's presigned target for `in` (the token signed inside the query when there is one).
std::string botocore(const inputs& in, bool with_token) {
    std::vector<std::string> argv{"/usr/bin/python3",
                                  BOTOCORE_PRESIGN,
                                  in.host,
                                  in.region,
                                  "iotdevicegateway",
                                  std::to_string(aws::default_url_lifetime.count()),
                                  aws::sigv4::amz_date(in.at),
                                  in.credentials.access_key_id,
                                  in.credentials.secret_access_key};
    if (with_token) argv.push_back(in.credentials.session_token);
    std::string out;
    const int rc = test::run_command(argv, &out, 30'000);
    EXPECT_EQ(rc, 0) << out;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

// The query's parameters, sorted: for URLs that hold the same ones in another order.
// Views into `target`: keep it alive while they are used.
std::vector<std::string_view> parameters(const std::string& target) {
    auto out = text::split(std::string_view(target).substr(target.find('?') + 1), '&');
    std::sort(out.begin(), out.end());
    return out;
}

std::chrono::system_clock::time_point at(int year, unsigned month, unsigned day, std::chrono::seconds time_of_day) {
    return std::chrono::sys_days{std::chrono::year{year} / std::chrono::month{month} / std::chrono::day{day}} +
           time_of_day;
}

const std::vector<inputs> cases{
    {"a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com",
     "eu-west-1",
     {"AKIDEXAMPLE00000", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      "AQoDYXdzEPT//////////"
      "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/"
      "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+"
      "xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
      std::nullopt},
     at(2015, 8, 30, 12h + 36min)},
    {"xyz.iot.cn-north-1.amazonaws.com.cn",
     "cn-north-1",
     {"ASIA_EXAMPLE_0123456789", "a+b/c=d~e.f-g_h!*'()", "AQo+/=\"quoted\"?&#%~._-", std::nullopt},
     at(2026, 12, 31, 23h + 59min + 59s)},
    {"c1x2-ats.iot.us-gov-west-1.amazonaws.com",
     "us-gov-west-1",
     {"AKIAIOSFODNN7EXAMPLE", "0123456789012345678901234567890123456789", "x", std::nullopt},
     at(2024, 2, 29, 0s)},
};

TEST(AwsBotocore, WithoutATokenTheUrlIsBotocoresExactly) {
    for (const auto& c : cases) {
        SCOPED_TRACE(c.host);
        auto in = c;
        in.credentials.session_token.clear();
        const auto ours = aws::presign_mqtt_target(in.host, "", in.credentials, in.at);
        ASSERT_FALSE(ours.error) << ours.error.message();
        EXPECT_EQ(ours.target, botocore(in, false));
    }
}

TEST(AwsBotocore, WithATokenItIsAppendedAfterBotocoresSignatureAsBotocoreEncodesIt) {
    for (const auto& c : cases) {
        SCOPED_TRACE(c.host);
        const auto ours = aws::presign_mqtt_target(c.host, "", c.credentials, c.at);
        ASSERT_FALSE(ours.error) << ours.error.message();
        // The token as botocore encodes it, from its URL with the token signed inside.
        const auto botocore_signed = botocore(c, true);
        const auto signed_token = parameters(botocore_signed);
        const auto token = std::find_if(signed_token.begin(), signed_token.end(),
                                        [](std::string_view p) { return p.starts_with("X-Amz-Security-Token="); });
        ASSERT_NE(token, signed_token.end());
        EXPECT_EQ(ours.target, botocore(c, false) + "&" + std::string(*token));
    }
}

TEST(AwsBotocore, TheCoreSigningTheTokenInsideGivesBotocoresSignature) {
    for (const auto& c : cases) {
        SCOPED_TRACE(c.host);
        aws::sigv4::request r;
        r.path = "/mqtt";
        r.headers = {{"host", c.host}};
        const auto ours = aws::sigv4::presign(r, c.credentials, c.region, aws::iot_service, c.at,
                                              aws::default_url_lifetime, aws::sigv4::token_placement::signed_query);
        // botocore puts the token before the signature, after X-Amz-SignedHeaders; the canonical
        // order puts it before X-Amz-SignedHeaders. The same parameters, the same signature.
        EXPECT_EQ(parameters(ours), parameters(botocore(c, true)));
    }
}

}  // namespace
