// The reader of the AWS IoT credentials provider's answer (common/iot_credentials_response.hpp):
// the answer AWS documents, its error answers, and hostile ones (not JSON, too deep, too large,
// fields missing, of the wrong type, too long or with characters that could break a header).
#include "common/iot_credentials_response.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace thingmux::aws::iot_credentials {
namespace {

using namespace std::chrono;

const std::string key_id = "ASIAEXAMPLEKEYID0001";
const std::string secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const std::string token = "IQoJb3JpZ2luX2VjEXAMPLE+TOKEN/PART==";

std::string body_with(const std::string& fields) {
    return R"({"credentials":{)" + fields + "}}";
}

std::string good_fields(const std::string& expiration = "2026-12-05T12:34:56Z") {
    return R"("accessKeyId":")" + key_id + R"(","secretAccessKey":")" + secret + R"(","sessionToken":")" + token +
           R"(","expiration":")" + expiration + "\"";
}

// No message may show a secret or a token, whatever went wrong.
void expect_no_secrets(const answer& a) {
    EXPECT_EQ(a.detail.find(secret), std::string::npos) << a.detail;
    EXPECT_EQ(a.detail.find(token), std::string::npos) << a.detail;
    EXPECT_EQ(a.detail.find(key_id), std::string::npos) << a.detail;
}

TEST(IotCredentialsAnswer, TheDocumentedAnswerGivesExpiringCredentials) {
    const auto a = parse_answer(200, body_with(good_fields()));
    ASSERT_TRUE(a.value) << a.detail;
    EXPECT_FALSE(a.error);
    EXPECT_EQ(a.value->access_key_id, key_id);
    EXPECT_EQ(a.value->secret_access_key, secret);
    EXPECT_EQ(a.value->session_token, token);
    ASSERT_TRUE(a.value->expiration);
    const auto expected = sys_days{year{2026} / December / 5} + hours{12} + minutes{34} + seconds{56};
    EXPECT_EQ(*a.value->expiration, expected);
}

TEST(IotCredentialsAnswer, UnknownFieldsAndOtherTimeFormsAreAccepted) {
    const auto a = parse_answer(200, R"({"requestId":"x","credentials":{"future":[1,{"a":null}],)" +
                                         good_fields("2026-12-05T14:34:56.500+02:00") + "}}");
    ASSERT_TRUE(a.value) << a.detail;
    EXPECT_EQ(*a.value->expiration, sys_days{year{2026} / December / 5} + hours{12} + minutes{34} + seconds{56});
}

TEST(IotCredentialsAnswer, ErrorAnswersCarryTheProvidersMessage) {
    struct case_t {
        int status;
        const char* body;
        errc expected;
        const char* detail;
    };
    const case_t cases[] = {
        {403, R"({"message":"Access Denied"})", errc::refused, "HTTP 403: Access Denied"},
        {403, R"({"message":"Invalid thing name passed"})", errc::refused, "HTTP 403: Invalid thing name passed"},
        {404, R"({"message":"Role alias does not exist"})", errc::refused, "HTTP 404: Role alias does not exist"},
        {400, R"({"message":"Unable to assume the role, or the role to assume does not exist"})", errc::refused,
         "HTTP 400: Unable to assume the role, or the role to assume does not exist"},
        {401, "", errc::refused, "HTTP 401: (no message)"},
        {429, R"({"message":"Rate exceeded"})", errc::unavailable, "HTTP 429: Rate exceeded"},
        {503, "Service Unavailable", errc::unavailable, "HTTP 503: Service Unavailable"},
        {408, "", errc::unavailable, "HTTP 408: (no message)"},
        {301, "<html>moved</html>", errc::unexpected_status, "HTTP 301: <html>moved</html>"},
        {204, "", errc::unexpected_status, "HTTP 204: (no message)"},
    };
    for (const auto& c : cases) {
        const auto a = parse_answer(c.status, c.body);
        EXPECT_FALSE(a.value) << c.status;
        EXPECT_EQ(a.error, make_error_code(c.expected)) << c.status;
        EXPECT_EQ(a.detail, c.detail);
    }
    EXPECT_FALSE(retry_can_help(errc::refused));
    EXPECT_TRUE(retry_can_help(errc::unavailable));
    EXPECT_TRUE(retry_can_help(errc::not_json));
}

TEST(IotCredentialsAnswer, TheProvidersMessageIsEscapedAndCut) {
    const auto a =
        parse_answer(403, "{\"message\":\"denied\\nFORGED LOG LINE \\u001b[31m" + std::string(2000, 'x') + "\"}");
    EXPECT_EQ(a.error, make_error_code(errc::refused));
    EXPECT_EQ(a.detail.find('\n'), std::string::npos);
    EXPECT_EQ(a.detail.find('\x1b'), std::string::npos);
    EXPECT_NE(a.detail.find("denied\\nFORGED LOG LINE \\x1b[31m"), std::string::npos) << a.detail;
    EXPECT_LT(a.detail.size(), max_message_bytes + 64);
    const auto raw = parse_answer(500, "\x01\xff garbage\r\n");
    EXPECT_EQ(raw.detail, "HTTP 500: \\x01\\xff garbage\\r\\n");
}

TEST(IotCredentialsAnswer, GarbageIsNotJson) {
    for (const std::string body : {"", "not json", "{\"credentials\":", "<html></html>", "{} trailing", "\x00\x01"}) {
        const auto a = parse_answer(200, body);
        EXPECT_EQ(a.error, make_error_code(errc::not_json)) << body;
        EXPECT_FALSE(a.value);
    }
    // Nesting past max_json_depth is refused before it costs anything.
    const auto deep = parse_answer(200, std::string(10'000, '[') + std::string(10'000, ']'));
    EXPECT_EQ(deep.error, make_error_code(errc::not_json));
}

TEST(IotCredentialsAnswer, TooLargeIsRefusedWhateverItHolds) {
    std::string big = body_with(good_fields());
    big.append(max_body_bytes, ' ');
    const auto a = parse_answer(200, big);
    EXPECT_EQ(a.error, make_error_code(errc::body_too_large));
    EXPECT_EQ(a.detail, "HTTP 200 with a body over 64 KiB");
    EXPECT_EQ(parse_answer(403, std::string(max_body_bytes + 1, 'x')).error, make_error_code(errc::body_too_large));
}

TEST(IotCredentialsAnswer, ShapesWithoutCredentials) {
    for (const std::string body :
         {"[]", "{}", "3", R"({"credentials":"x"})", R"({"credentials":[1]})", R"({"message":"ok"})"}) {
        EXPECT_EQ(parse_answer(200, body).error, make_error_code(errc::no_credentials)) << body;
    }
}

TEST(IotCredentialsAnswer, FieldsMissingWrongOrUnusable) {
    const auto without = [](const std::string& name) {
        std::string f = good_fields();
        const auto at = f.find("\"" + name + "\"");
        const auto end = f.find("\",", at);
        f.erase(at, end == std::string::npos ? std::string::npos : end + 2 - at);
        if (!f.empty() && f.back() == ',') f.pop_back();
        return body_with(f);
    };
    for (const char* name : {"accessKeyId", "secretAccessKey", "sessionToken"}) {
        const auto a = parse_answer(200, without(name));
        EXPECT_EQ(a.error, make_error_code(errc::bad_field)) << name;
        EXPECT_EQ(a.detail, std::string(name) + " is missing or not a string");
        expect_no_secrets(a);
    }
    EXPECT_EQ(parse_answer(200, without("expiration")).error, make_error_code(errc::bad_expiration));

    struct case_t {
        std::string fields;
        errc expected;
    };
    const std::string rest = R"(,"secretAccessKey":")" + secret + R"(","sessionToken":")" + token +
                             R"(","expiration":"2026-12-05T12:34:56Z")";
    const case_t cases[] = {
        {R"("accessKeyId":42)" + rest, errc::bad_field},
        {R"("accessKeyId":"SHORT")" + rest, errc::bad_field},
        {R"("accessKeyId":")" + std::string(129, 'A') + "\"" + rest, errc::bad_field},
        {R"("accessKeyId":"ASIA EXAMPLE KEY ID 1")" + rest, errc::bad_field},
        {R"("accessKeyId":")" + key_id + R"(","secretAccessKey":"a\r\nb","sessionToken":")" + token +
             R"(","expiration":"2026-12-05T12:34:56Z")",
         errc::bad_field},
        {R"("accessKeyId":")" + key_id + R"(","secretAccessKey":")" + secret + R"(","sessionToken":")" +
             std::string(max_session_token_bytes + 1, 'T') + R"(","expiration":"2026-12-05T12:34:56Z")",
         errc::bad_field},
        {R"("accessKeyId":")" + key_id + R"(","secretAccessKey":")" + secret +
             R"(","sessionToken":"","expiration":"2026-12-05T12:34:56Z")",
         errc::bad_field},
        {good_fields("tomorrow"), errc::bad_expiration},
        {good_fields("2026-13-05T12:34:56Z"), errc::bad_expiration},
        {good_fields("1733402096"), errc::bad_expiration},
    };
    for (const auto& c : cases) {
        const auto a = parse_answer(200, body_with(c.fields));
        EXPECT_EQ(a.error, make_error_code(c.expected)) << c.fields.substr(0, 120) << ": " << a.detail;
        EXPECT_FALSE(a.value);
        expect_no_secrets(a);
    }
}

TEST(IotCredentialsRequest, NamesAsAwsIotAcceptsThem) {
    EXPECT_TRUE(valid_role_alias("thingmux-sigv4_role=a,b@c"));
    EXPECT_TRUE(valid_role_alias(std::string(128, 'r')));
    for (const std::string& bad :
         std::vector<std::string>{"", "a/b", "a b", "a?x=1", "..", "a%2F", std::string(129, 'r'), "r\r\nX: y"})
        EXPECT_FALSE(valid_role_alias(bad)) << bad;
    EXPECT_TRUE(valid_thing_name("gateway-01:a_b"));
    for (const std::string& bad : std::vector<std::string>{"", "gate way", "g\r\nx", "g/x", std::string(129, 't')})
        EXPECT_FALSE(valid_thing_name(bad)) << bad;
    EXPECT_EQ(request_target("my-alias"), "/role-aliases/my-alias/credentials");
}

}  // namespace
}  // namespace thingmux::aws::iot_credentials
