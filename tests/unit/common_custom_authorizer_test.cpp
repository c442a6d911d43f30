// The MQTT user name and WebSocket parameters of an AWS IoT custom authorizer
// (common/custom_authorizer.hpp, docs/connecting.md "Custom authorizer").
#include "common/custom_authorizer.hpp"

#include <gtest/gtest.h>

#include <string>

namespace thingmux::custom_authorizer {
namespace {

std::string built(const login& l) {
    auto r = mqtt_user_name(l);
    EXPECT_TRUE(r.value.has_value()) << r.problem;
    return r.value.value_or("");
}

std::string refused(const login& l) {
    auto r = mqtt_user_name(l);
    EXPECT_FALSE(r.value.has_value()) << *r.value;
    return r.problem;
}

// AWS's documented form: USER?x-amz-customauthorizer-name=NAME&KEY=TOKEN&x-amz-customauthorizer-signature=SIG.
TEST(CustomAuthorizerUserName, EveryPartInAwsOrder) {
    EXPECT_EQ(built({.username = "gateway-01",
                     .name = "fleet-authorizer",
                     .token_key_name = "token",
                     .token = "abc123",
                     .signature = "c2lnbmF0dXJl"}),
              "gateway-01?x-amz-customauthorizer-name=fleet-authorizer&token=abc123&x-amz-customauthorizer-signature="
              "c2lnbmF0dXJl");
}

TEST(CustomAuthorizerUserName, SignatureOfBase64IsPercentEncoded) {
    // '+', '/' and '=' would otherwise be read as a space, a path and a separator.
    EXPECT_EQ(built({.name = "a", .token_key_name = "k", .token = "t", .signature = "ab+c/d=="}),
              "?x-amz-customauthorizer-name=a&k=t&x-amz-customauthorizer-signature=ab%2Bc%2Fd%3D%3D");
}

TEST(CustomAuthorizerUserName, TokenWithSeparatorsAndUtf8IsEncoded) {
    EXPECT_EQ(built({.name = "a", .token_key_name = "k", .token = "x&y=z %é"}),
              "?x-amz-customauthorizer-name=a&k=x%26y%3Dz%20%25%C3%A9");
}

TEST(CustomAuthorizerUserName, NameOnlyForAnAuthorizerWithoutToken) {
    EXPECT_EQ(built({.name = "open-authorizer"}), "?x-amz-customauthorizer-name=open-authorizer");
    EXPECT_EQ(built({.username = "dev", .name = "a@b=c,d"}), "dev?x-amz-customauthorizer-name=a%40b%3Dc%2Cd");
}

TEST(CustomAuthorizerUserName, UnsignedTokenForAnAuthorizerWithSigningDisabled) {
    EXPECT_EQ(built({.name = "n", .token_key_name = "tok", .token = "v"}), "?x-amz-customauthorizer-name=n&tok=v");
}

TEST(CustomAuthorizerUserName, UserNameIsKeptAsWritten) {
    EXPECT_EQ(built({.username = "user name/é", .name = "n"}), "user name/é?x-amz-customauthorizer-name=n");
}

TEST(CustomAuthorizerUserName, RefusesIncompleteOrContradictorySettings) {
    EXPECT_NE(refused({}).find("authorizer's name is empty"), std::string::npos);
    EXPECT_NE(refused({.name = "n", .token = "t"}).find("token key name"), std::string::npos);
    EXPECT_NE(refused({.name = "n", .token_key_name = "k"}).find("token is empty"), std::string::npos);
    EXPECT_NE(refused({.name = "n", .signature = "s"}).find("signature needs the token"), std::string::npos);
}

TEST(CustomAuthorizerUserName, HostileValuesAreRefusedWithoutQuotingSecrets) {
    const std::string secret = "SECRET-TOKEN";
    const auto multi_line = refused({.name = "n", .token_key_name = "k", .token = secret + "\nmore"});
    EXPECT_NE(multi_line.find("control character (byte 10 at offset 12)"), std::string::npos) << multi_line;
    EXPECT_EQ(multi_line.find(secret), std::string::npos);
    const auto signature =
        refused({.name = "n", .token_key_name = "k", .token = "t", .signature = std::string("s\0g", 3)});
    EXPECT_NE(signature.find("signature holds a control character"), std::string::npos) << signature;
    EXPECT_NE(refused({.username = "a?b", .name = "n"}).find("holds '?'"), std::string::npos);
    EXPECT_NE(refused({.username = "\xff", .name = "n"}).find("not UTF-8"), std::string::npos);
    EXPECT_NE(refused({.name = "n/m"}).find("only A-Z a-z 0-9 _ = , @ -"), std::string::npos);
    EXPECT_NE(refused({.name = std::string(129, 'n')}).find("129 bytes long"), std::string::npos);
    EXPECT_NE(refused({.name = "n", .token_key_name = "a b", .token = "t"}).find("HTTP header name"),
              std::string::npos);
    EXPECT_NE(refused({.name = "n", .token_key_name = "X-Amz-CustomAuthorizer-Name", .token = "t"}).find("reserves"),
              std::string::npos);
}

TEST(CustomAuthorizerUserName, LimitOfMqttIsExactly65535Bytes) {
    const std::string prefix = "?x-amz-customauthorizer-name=n&k=";
    const std::string fits(max_mqtt_user_name_bytes - prefix.size(), 't');
    EXPECT_EQ(built({.name = "n", .token_key_name = "k", .token = fits}).size(), max_mqtt_user_name_bytes);
    const auto over = refused({.name = "n", .token_key_name = "k", .token = fits + "t"});
    EXPECT_NE(over.find("would be 65536 bytes long"), std::string::npos) << over;
    EXPECT_NE(over.find("at most 65535"), std::string::npos) << over;
    // Encoding triples a byte: the limit applies to what is sent.
    const auto encoded = refused({.name = "n", .token_key_name = "k", .token = std::string(30'000, '+')});
    EXPECT_NE(encoded.find("would be 90033 bytes long"), std::string::npos) << encoded;
}

TEST(CustomAuthorizerPassword, LimitOfMqtt) {
    EXPECT_EQ(password_problem(std::string(65535, 'p')), "");
    EXPECT_NE(password_problem(std::string(65536, 'p')).find("65536 bytes long"), std::string::npos);
    EXPECT_EQ(password_problem(""), "");  // MQTT allows an empty password
}

TEST(CustomAuthorizerFiles, OneTrailingLineEndIsNotPartOfTheValue) {
    EXPECT_EQ(without_line_end("tok\n"), "tok");
    EXPECT_EQ(without_line_end("tok\r\n"), "tok");
    EXPECT_EQ(without_line_end("tok"), "tok");
    EXPECT_EQ(without_line_end("tok\n\n"), "tok\n");  // then refused as two lines
    EXPECT_EQ(without_line_end("tok\r"), "tok\r");
}

TEST(CustomAuthorizerUrlEncode, OnlyUnreservedCharactersStay) {
    EXPECT_EQ(url_encode("AZaz09-._~"), "AZaz09-._~");
    EXPECT_EQ(url_encode(" !\"#$%&'()*+,/:;=?@[]"), "%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D");
    EXPECT_EQ(url_encode(std::string("\x00\xff", 2)), "%00%FF");
}

// The same values for a WebSocket upgrade: as headers (not encoded) or a query string (encoded).
TEST(CustomAuthorizerWebSocket, ParametersMatchTheUserName) {
    const login l{.name = "fleet", .token_key_name = "token", .token = "a b", .signature = "s/g="};
    const auto params = websocket_parameters(l);
    ASSERT_EQ(params.size(), 3U);
    EXPECT_EQ(params[0].name, "x-amz-customauthorizer-name");
    EXPECT_EQ(params[0].value, "fleet");
    EXPECT_EQ(params[1].name, "token");
    EXPECT_EQ(params[1].value, "a b");
    EXPECT_EQ(params[2].name, "x-amz-customauthorizer-signature");
    EXPECT_EQ(params[2].value, "s/g=");
    EXPECT_EQ("?" + query_string(params), built(l));
    EXPECT_EQ(websocket_parameters({.name = "fleet"}).size(), 1U);
}

}  // namespace
}  // namespace thingmux::custom_authorizer
