// AWS credentials from their static sources (common/aws_credentials.hpp): the shared credentials
// file's INI format, the environment, expiration times; the region of an endpoint
// (common/aws_region.hpp). Hostile inputs are refused with the line and the setting at fault,
// and no message ever holds a secret.
#include "common/aws_credentials.hpp"
#include "common/aws_region.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace {

using namespace thingmux::aws;
using namespace std::chrono_literals;

constexpr const char* key_id = "AKIAIOSFODNN7EXAMPLE";
constexpr const char* secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

// Expects no credentials and a reason containing `why`, which never shows the secret.
void expect_refused(const lookup& l, std::string_view why) {
    EXPECT_FALSE(l.found);
    EXPECT_NE(l.why_not.find(why), std::string::npos) << l.why_not;
    EXPECT_EQ(l.why_not.find("wJalr"), std::string::npos) << l.why_not;
    EXPECT_EQ(l.why_not.find("IOSFODNN"), std::string::npos) << l.why_not;
}

TEST(CredentialsFile, ReadsTheNamedProfileWithCommentsAndWhiteSpace) {
    const std::string text = std::string("# written by provisioning\r\n") +
                             "[default]\n"
                             "aws_access_key_id=AKIADEFAULT000000000\n"
                             "aws_secret_access_key=defaultsecret\n"
                             "\n"
                             "  [dev]   ; the lab\n"
                             "; a comment\n"
                             "AWS_Access_Key_Id   =  " +
                             key_id +
                             "\n"
                             "aws_secret_access_key: " +
                             secret +
                             "   # rotated 2026-01\n"
                             "aws_session_token = AQoDYXdzEPT//////////wEXAMPLE==\n"
                             "region = eu-west-1\n"
                             "s3 =\n"
                             "  max_concurrent_requests = 20\n";
    const auto dev = parse_credentials_file(text, "dev");
    ASSERT_TRUE(dev.found) << dev.why_not;
    EXPECT_EQ(dev.found->access_key_id, key_id);
    EXPECT_EQ(dev.found->secret_access_key, secret);
    EXPECT_EQ(dev.found->session_token, "AQoDYXdzEPT//////////wEXAMPLE==");
    EXPECT_FALSE(dev.found->expiration);
    const auto d = parse_credentials_file(text, "default");
    ASSERT_TRUE(d.found) << d.why_not;
    EXPECT_EQ(d.found->access_key_id, "AKIADEFAULT000000000");
    EXPECT_TRUE(d.found->session_token.empty());
}

TEST(CredentialsFile, NamesWhatIsMissing) {
    expect_refused(parse_credentials_file("[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n", "dev"),
                   "has no profile [dev] (profiles: default)");
    expect_refused(parse_credentials_file("", "default"), "has no profile [default] (no section at all)");
    expect_refused(parse_credentials_file("[default]\nregion = x\n", "default"),
                   "line 1: profile [default] has no aws_access_key_id");
    expect_refused(parse_credentials_file("[default]\n\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n", "default"),
                   "line 3: profile [default] has aws_access_key_id but no aws_secret_access_key");
    expect_refused(parse_credentials_file(std::string("[default]\naws_secret_access_key = ") + secret, "default"),
                   "line 2: profile [default] has aws_secret_access_key but no aws_access_key_id");
}

TEST(CredentialsFile, SyntaxErrorsFailTheWholeFileWithTheirLine) {
    const std::string good =
        std::string("[default]\naws_access_key_id = ") + key_id + "\naws_secret_access_key = " + secret + "\n";
    expect_refused(parse_credentials_file(good + "[other\n", "default"), "line 4: a section header is '[NAME]'");
    expect_refused(parse_credentials_file(good + "[]\n", "default"), "line 4: the section has no name");
    expect_refused(parse_credentials_file(good + "[default]\n", "default"),
                   "line 4: section [default] is written twice (first at line 1)");
    expect_refused(parse_credentials_file(good + "just words\n", "default"),
                   "line 4: expected 'key = value', a [section] or a comment");
    expect_refused(parse_credentials_file("aws_access_key_id = x\n" + good, "default"),
                   "line 1: 'key = value' before the first [section]");
    expect_refused(parse_credentials_file(good + "AWS_SECRET_ACCESS_KEY = again\n", "default"),
                   "line 4: aws_secret_access_key is written twice in [default] (first at line 3)");
    expect_refused(parse_credentials_file(good + "  more-of-the-secret\n", "default"),
                   "line 4: the value of aws_secret_access_key continues on an indented line");
}

TEST(CredentialsFile, RefusesValuesThatCannotBeCredentials) {
    const auto with = [](std::string id, std::string s, std::string token = {}) {
        return parse_credentials_file("[p]\naws_access_key_id=" + id + "\naws_secret_access_key=" + s +
                                          (token.empty() ? "" : "\naws_session_token=" + token) + "\n",
                                      "p");
    };
    expect_refused(with("AKIA", secret), "the access key id has 4 characters; AWS key ids have 16 to 128");
    expect_refused(with(std::string(129, 'A'), secret), "the access key id has 129 characters");
    expect_refused(with("AKIAIOSFODNN7EXAM/E", secret), "the access key id holds a character other than");
    expect_refused(with(key_id, ""), "profile [p]: the secret access key of AKIA… is empty");
    expect_refused(with(key_id, "wJalr\x01secret"), "the secret access key of AKIA… holds white space");
    expect_refused(with(key_id, std::string(129, 'k')), "is longer than 128 characters");
    expect_refused(with(key_id, secret, std::string(max_session_token_bytes + 1, 't')),
                   "the session token of AKIA… is longer than 16384 characters");
    expect_refused(with(key_id, secret, "tok\x7f"), "the session token of AKIA… holds white space");
}

TEST(CredentialsFile, HostileInputIsBounded) {
    expect_refused(parse_credentials_file(std::string(max_credentials_file_bytes + 1, '#'), "default"),
                   "is larger than 1 MiB");
    // Many sections: the message lists a bounded part of their names.
    std::string many;
    for (int i = 0; i < 10'000; ++i) many += "[profile-" + std::to_string(i) + "]\n";
    const auto r = parse_credentials_file(many, "absent");
    EXPECT_FALSE(r.found);
    EXPECT_LT(r.why_not.size(), 400U);
    EXPECT_NE(r.why_not.find(", ..."), std::string::npos);
    // NUL bytes and binary junk are a syntax error, not a crash.
    expect_refused(parse_credentials_file(std::string("[default]\n\0\xff\xfe=\n", 15), "default"),
                   "has no aws_access_key_id");
    expect_refused(parse_credentials_file("[default]\n\xff\xfe\n", "default"), "line 2: expected 'key = value'");
}

TEST(CredentialsFile, ProfileNames) {
    EXPECT_TRUE(valid_profile_name("default"));
    EXPECT_TRUE(valid_profile_name("team:prod/eu"));
    EXPECT_FALSE(valid_profile_name(""));
    EXPECT_FALSE(valid_profile_name("a b"));
    EXPECT_FALSE(valid_profile_name("[x]"));
    EXPECT_FALSE(valid_profile_name(std::string(129, 'p')));
}

struct fake_env {
    std::map<std::string, std::string> vars;
    environment get() const {
        return [this](const char* name) -> const char* {
            const auto it = vars.find(name);
            return it == vars.end() ? nullptr : it->second.c_str();
        };
    }
};

TEST(CredentialsEnvironment, ReadsTheStandardVariables) {
    fake_env env{{{"AWS_ACCESS_KEY_ID", key_id},
                  {"AWS_SECRET_ACCESS_KEY", secret},
                  {"AWS_SESSION_TOKEN", "token"},
                  {"AWS_CREDENTIAL_EXPIRATION", "2026-12-05T10:51:40Z"}}};
    const auto r = credentials_from_environment(env.get());
    ASSERT_TRUE(r.found) << r.why_not;
    EXPECT_EQ(r.found->access_key_id, key_id);
    EXPECT_EQ(r.found->secret_access_key, secret);
    EXPECT_EQ(r.found->session_token, "token");
    EXPECT_EQ(r.found->expiration, parse_timestamp("2026-12-05T10:51:40Z"));
}

TEST(CredentialsEnvironment, NamesTheVariableAtFault) {
    expect_refused(credentials_from_environment(fake_env{}.get()),
                   "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
    expect_refused(credentials_from_environment(fake_env{{{"AWS_ACCESS_KEY_ID", key_id}}}.get()),
                   "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    expect_refused(
        credentials_from_environment(fake_env{{{"AWS_ACCESS_KEY_ID", ""}, {"AWS_SECRET_ACCESS_KEY", secret}}}.get()),
        "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
    expect_refused(credentials_from_environment(fake_env{{{"AWS_ACCESS_KEY_ID", key_id},
                                                          {"AWS_SECRET_ACCESS_KEY", secret},
                                                          {"AWS_CREDENTIAL_EXPIRATION", "tomorrow"}}}
                                                    .get()),
                   "AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 time");
    expect_refused(credentials_from_environment(
                       fake_env{{{"AWS_ACCESS_KEY_ID", key_id}, {"AWS_SECRET_ACCESS_KEY", "two words"}}}.get()),
                   "the secret access key of AKIA… holds white space");
}

TEST(CredentialsEnvironment, SharedCredentialsFile) {
    EXPECT_EQ(shared_credentials_file(fake_env{{{"HOME", "/var/lib/thingmux"}}}.get()),
              "/var/lib/thingmux/.aws/credentials");
    EXPECT_EQ(
        shared_credentials_file(fake_env{{{"HOME", "/home/u"}, {"AWS_SHARED_CREDENTIALS_FILE", "~/creds"}}}.get()),
        "/home/u/creds");
    EXPECT_EQ(shared_credentials_file(fake_env{{{"AWS_SHARED_CREDENTIALS_FILE", "/etc/aws"}}}.get()), "/etc/aws");
    EXPECT_EQ(shared_credentials_file(fake_env{}.get()), "");
}

TEST(Credentials, KeyIdHintShowsFourCharactersAtMost) {
    EXPECT_EQ(key_id_hint("AKIAIOSFODNN7EXAMPLE"), "AKIA…");
    EXPECT_EQ(key_id_hint("AK"), "AK…");
}

TEST(Timestamp, IsoForms) {
    const auto base = parse_timestamp("2018-01-18T09:18:06Z");
    ASSERT_TRUE(base);
    EXPECT_EQ(base->time_since_epoch(), std::chrono::seconds{1516267086});
    EXPECT_EQ(parse_timestamp("2018-01-18T09:18:06.250Z"), base);
    EXPECT_EQ(parse_timestamp("2018-01-18T11:18:06+02:00"), base);
    EXPECT_EQ(parse_timestamp("2018-01-18T08:48:06-00:30"), base);
    for (const char* bad :
         {"", "2018-01-18", "2018-01-18T09:18:06", "2018-02-30T00:00:00Z", "2018-01-18T24:00:00Z",
          "2018-01-18T09:18:06.Z", "2018-01-18T09:18:06+0200", "+018-01-18T09:18:06Z", "2018-01-18T09:18:06Zjunk"})
        EXPECT_FALSE(parse_timestamp(bad)) << bad;
}

TEST(Region, FromAwsIotEndpoints) {
    const std::pair<const char*, const char*> named[]{
        {"a1b2c3-ats.iot.eu-west-1.amazonaws.com", "eu-west-1"},
        {"A1B2C3-ATS.IOT.US-EAST-2.AMAZONAWS.COM.", "us-east-2"},
        {"a1b2c3.iot.cn-north-1.amazonaws.com.cn", "cn-north-1"},
        {"c1x2.credentials.iot.ap-south-1.amazonaws.com", "ap-south-1"},
        {"data.iot-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"}};
    for (const auto& [endpoint, region] : named) EXPECT_EQ(region_from_endpoint(endpoint), region) << endpoint;
    for (const char* none : {"broker.example.com", "iot.amazonaws.com", "a.s3.eu-west-1.amazonaws.com",
                             "a.iot.eu-west-1.amazonaws.com.evil.example", "127.0.0.1", ""})
        EXPECT_EQ(region_from_endpoint(none), "") << none;
    EXPECT_TRUE(valid_region("eu-west-1"));
    EXPECT_FALSE(valid_region("1eu"));
    EXPECT_FALSE(valid_region("EU-WEST-1"));
    EXPECT_FALSE(valid_region(std::string(33, 'a')));
}

}  // namespace
