// RFC 7512 PKCS#11 URIs of keys and certificates in a token (common/pkcs11_uri.hpp,
// docs/config.md "key").
#include "common/pkcs11_uri.hpp"

#include <gtest/gtest.h>

namespace thingmux::pkcs11 {
namespace {

uri parsed(std::string_view text) {
    auto r = parse_uri(text);
    EXPECT_TRUE(r.value.has_value()) << text << ": " << r.problem;
    return r.value.value_or(uri{});
}

std::string problem(std::string_view text) {
    auto r = parse_uri(text);
    EXPECT_FALSE(r.value.has_value()) << text;
    return r.problem;
}

TEST(Pkcs11Uri, PathAndQueryAttributes) {
    const auto u = parsed("pkcs11:token=thing;object=device%20key;type=private;id=%01%ff"
                          "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%3B34");
    ASSERT_EQ(u.path.size(), 4U);
    EXPECT_EQ(*u.find("token"), "thing");
    EXPECT_EQ(*u.find("object"), "device key");
    EXPECT_EQ(*u.find("type"), "private");
    EXPECT_EQ(*u.find("id"), std::string("\x01\xff", 2));
    EXPECT_EQ(u.find("serial"), nullptr);
    EXPECT_EQ(u.module_path, "/usr/lib/softhsm/libsofthsm2.so");
    EXPECT_EQ(u.pin_value, "12;34");
    EXPECT_TRUE(u.pin_source.empty());
}

TEST(Pkcs11Uri, PathUriCarriesNoQueryAndRoundTrips) {
    const auto u = parsed("pkcs11:token=a%3Bb;object=k%25;id=%00%01?module-path=/m.so&pin-value=secret");
    EXPECT_EQ(u.path_uri(), "pkcs11:token=a%3Bb;object=k%25;id=%00%01");
    const auto again = parsed(u.path_uri());
    EXPECT_EQ(again.path, u.path);
}

TEST(Pkcs11Uri, DescribeHidesThePin) {
    const auto u = parsed("pkcs11:object=k?module-path=/m.so&pin-value=4321");
    EXPECT_EQ(u.describe(), "pkcs11:object=k?module-path=/m.so&pin-value=***");
    EXPECT_EQ(u.describe().find("4321"), std::string::npos);
}

TEST(Pkcs11Uri, PinSourceIsAnAbsoluteFile) {
    EXPECT_EQ(parsed("pkcs11:object=k?pin-source=file:/etc/pin").pin_file(), "/etc/pin");
    EXPECT_EQ(parsed("pkcs11:object=k?pin-source=file:///etc/pin").pin_file(), "/etc/pin");
    EXPECT_EQ(parsed("pkcs11:object=k?pin-source=/etc/pin").pin_file(), "/etc/pin");
    EXPECT_NE(problem("pkcs11:object=k?pin-source=pin.txt").find("absolute path"), std::string::npos);
    EXPECT_NE(problem("pkcs11:object=k?pin-source=|/bin/pin").find("absolute path"), std::string::npos);
    EXPECT_NE(problem("pkcs11:object=k?pin-source=/p&pin-value=1").find("both"), std::string::npos);
}

TEST(Pkcs11Uri, SchemeIsCaseInsensitive) {
    EXPECT_TRUE(is_uri("PKCS11:object=k"));
    EXPECT_FALSE(is_uri("/etc/thingmux/key.pem"));
    EXPECT_FALSE(is_uri("pkcs11"));
    EXPECT_EQ(*parsed("Pkcs11:object=k").find("object"), "k");
}

TEST(Pkcs11Uri, RefusesWhatIsWrongWithAClearReason) {
    EXPECT_EQ(problem("/etc/key.pem"), "does not start with 'pkcs11:'");
    EXPECT_NE(problem("pkcs11:").find("names no object"), std::string::npos);
    EXPECT_NE(problem("pkcs11:?module-path=/m.so").find("names no object"), std::string::npos);
    EXPECT_EQ(problem("pkcs11:object=a;object=b"), "attribute 'object' is written twice");
    EXPECT_EQ(problem("pkcs11:object=a?module-path=/a&module-path=/b"), "query attribute 'module-path' is written twice");
    EXPECT_EQ(problem("pkcs11:colour=red"), "has an unknown attribute 'colour'");
    EXPECT_EQ(problem("pkcs11:object=a?module-name=softhsm2"), "has an unknown query attribute 'module-name'");
    EXPECT_EQ(problem("pkcs11:object=a;pin-value=1"), "'pin-value' is a query attribute: write it after '?'");
    EXPECT_EQ(problem("pkcs11:object"), "attribute 'object' has no '=value'");
    EXPECT_NE(problem("pkcs11:object=a;;id=1").find("empty attribute"), std::string::npos);
    EXPECT_NE(problem("pkcs11:object=a;").find("empty attribute"), std::string::npos);
    EXPECT_EQ(problem("pkcs11:type=key"), "type 'key' is not private, public, cert, secret-key or data");
    EXPECT_EQ(problem("pkcs11:object=a%2"), "attribute 'object' has a '%' not followed by two hex digits");
    EXPECT_EQ(problem("pkcs11:object=a%zz"), "attribute 'object' has a '%' not followed by two hex digits");
    EXPECT_EQ(problem("pkcs11:object=a%00b"), "attribute 'object' holds a NUL byte");
    EXPECT_EQ(problem("pkcs11:object=a?pin-value="), "query attribute 'pin-value' is empty");
}

TEST(Pkcs11Uri, UnknownQueryValuesAreNotQuoted) {
    // A value there might be a secret written under a name we do not know.
    EXPECT_EQ(problem("pkcs11:object=a?pin=9876").find("9876"), std::string::npos);
}

// Hostile input: bounded length, bounded values.
TEST(Pkcs11Uri, LengthLimits) {
    const std::string long_value(max_value_bytes + 1, 'a');
    EXPECT_EQ(problem("pkcs11:object=" + long_value),
              "attribute 'object' is longer than " + std::to_string(max_value_bytes) + " bytes");
    EXPECT_TRUE(parse_uri("pkcs11:object=" + std::string(max_value_bytes, 'a')).value);
    // Three encoded bytes decode to one: the limit applies to the value, not to what was written.
    EXPECT_TRUE(parse_uri("pkcs11:id=" + [] {
                    std::string s;
                    for (int i = 0; i < 300; ++i) s += "%41";
                    return s;
                }()).value);
    const std::string huge = "pkcs11:object=a;id=" + std::string(max_uri_bytes, 'b');
    EXPECT_EQ(problem(huge), "is longer than " + std::to_string(max_uri_bytes) + " bytes");
}

TEST(Pkcs11Uri, RedactHidesEveryPinEvenInTextThatDoesNotParse) {
    EXPECT_EQ(redact("pkcs11:object=k?module-path=/m.so&pin-value=1234"), "pkcs11:object=k?module-path=/m.so&pin-value=***");
    EXPECT_EQ(redact("pkcs11:object=k?pin-value=12;34&module-path=/m.so"), "pkcs11:object=k?pin-value=***&module-path=/m.so");
    EXPECT_EQ(redact("pkcs11:pin-value=1;pin-value=2"), "pkcs11:pin-value=***");
    EXPECT_EQ(redact("/etc/thingmux/key.pem"), "/etc/thingmux/key.pem");
    EXPECT_EQ(redact("pin-value="), "pin-value=***");
}

}  // namespace
}  // namespace thingmux::pkcs11
