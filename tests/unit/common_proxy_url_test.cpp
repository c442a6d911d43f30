// Proxy URLs, the https_proxy / no_proxy environment and proxy credentials files
// (common/proxy_url.hpp, docs/connecting.md).
#include "common/proxy_url.hpp"

#include <gtest/gtest.h>

namespace thingmux::proxy {
namespace {

url parsed(std::string_view text, bool scheme_optional = false) {
    auto r = parse_url(text, scheme_optional);
    EXPECT_TRUE(r.value.has_value()) << text << ": " << r.problem;
    return r.value.value_or(url{});
}

std::string problem(std::string_view text, bool scheme_optional = false) {
    auto r = parse_url(text, scheme_optional);
    EXPECT_FALSE(r.value.has_value()) << text;
    return r.problem;
}

TEST(ProxyUrl, HostAndPortOfBothSchemes) {
    const auto h = parsed("http://proxy.example:3128");
    EXPECT_EQ(h.scheme, scheme::http);
    EXPECT_EQ(h.host, "proxy.example");
    EXPECT_EQ(h.port, 3128);
    EXPECT_FALSE(h.login);
    const auto s = parsed("HTTPS://Proxy.Example:8443/");
    EXPECT_EQ(s.scheme, scheme::https);
    EXPECT_EQ(s.host, "proxy.example");
    EXPECT_EQ(s.port, 8443);
    EXPECT_EQ(to_string(s), "https://proxy.example:8443");
}

TEST(ProxyUrl, WithoutPortTheSchemesPort) {
    EXPECT_EQ(parsed("http://proxy").port, 80);
    EXPECT_EQ(parsed("https://proxy").port, 443);
}

TEST(ProxyUrl, IpAddresses) {
    EXPECT_EQ(parsed("http://192.0.2.7:3128").host, "192.0.2.7");
    const auto v6 = parsed("http://[2001:DB8::1]:3128");
    EXPECT_EQ(v6.host, "2001:db8::1");
    EXPECT_EQ(to_string(v6), "http://[2001:db8::1]:3128");
    EXPECT_EQ(parsed("https://[::1]").port, 443);
}

TEST(ProxyUrl, CredentialsArePercentDecodedAndNeverShown) {
    const auto u = parsed("http://alice:p%40ss%3Aword@proxy:3128");
    ASSERT_TRUE(u.login);
    EXPECT_EQ(u.login->user, "alice");
    EXPECT_EQ(u.login->password, "p@ss:word");
    EXPECT_EQ(to_string(u), "http://proxy:3128");
    const auto empty_password = parsed("http://bob@proxy:3128");
    ASSERT_TRUE(empty_password.login);
    EXPECT_EQ(empty_password.login->password, "");
    // An unencoded '@' in the password: the last '@' ends the credentials.
    EXPECT_EQ(parsed("http://carol:a@b@proxy:1").login->password, "a@b");
}

TEST(ProxyUrl, SchemeOptionalOnlyWhereAllowed) {
    EXPECT_EQ(parsed("proxy.example:3128", true).scheme, scheme::http);
    EXPECT_NE(problem("proxy.example:3128").find("no scheme"), std::string::npos);
}

TEST(ProxyUrl, Refusals) {
    EXPECT_NE(problem("socks5://proxy:1080").find("scheme 'socks5'"), std::string::npos);
    EXPECT_NE(problem("http://proxy:3128/path").find("path"), std::string::npos);
    for (const auto* port : {"99999", "0", "", "31a", "-1", "123456"})
        EXPECT_NE(problem(std::string("http://proxy:") + port).find("port that is not a number in 1..65535"),
                  std::string::npos)
            << port;
    EXPECT_NE(problem("http://:3128").find("no host"), std::string::npos);
    EXPECT_NE(problem("http://").find("no host"), std::string::npos);
    EXPECT_NE(problem("").find("empty"), std::string::npos);
    EXPECT_NE(problem("http://pro xy:1").find("space"), std::string::npos);
    EXPECT_NE(problem("http://proxy:1\r\nX: y").find("control"), std::string::npos);
    EXPECT_NE(problem("http://pr\xc3\xb6xy:1").find("non-ASCII"), std::string::npos);
    EXPECT_NE(problem("http://pro%78y:1").find("'%'"), std::string::npos);
    EXPECT_NE(problem("http://2001:db8::1:3128").find("brackets"), std::string::npos);
    EXPECT_NE(problem("http://[2001:db8::1:3128").find("']'"), std::string::npos);
    EXPECT_NE(problem("http://[proxy]:3128").find("IPv6"), std::string::npos);
    EXPECT_NE(problem("http://u:%4@proxy:1").find("'%'"), std::string::npos);
    EXPECT_NE(problem("http://:pw@proxy:1").find("empty user"), std::string::npos);
    EXPECT_NE(problem("http://a%3Ab:pw@proxy:1").find("':'"), std::string::npos);
    EXPECT_NE(problem("http://a:p%0Aw@proxy:1").find("control"), std::string::npos);
    EXPECT_NE(problem("http://" + std::string(254, 'a') + ":1").find("253"), std::string::npos);
}

TEST(ProxyUrl, ProblemsNeverQuoteThePassword) {
    EXPECT_EQ(problem("http://alice:s3cret%0A@proxy:1").find("s3cret"), std::string::npos);
    EXPECT_EQ(problem("http://alice:s3cret").find("s3cret"), std::string::npos) << "credentials without a host";
}

TEST(NoProxy, StarExemptsEveryHost) {
    EXPECT_TRUE(bypasses("*", "anything.example", 8883));
    EXPECT_TRUE(bypasses("localhost, *", "anything.example", 8883));
    EXPECT_FALSE(bypasses("", "anything.example", 8883));
}

TEST(NoProxy, SuffixAndExactNames) {
    for (const auto* list : {"example.com", ".example.com", "*.example.com", "EXAMPLE.COM."}) {
        EXPECT_TRUE(bypasses(list, "example.com", 8883)) << list;
        EXPECT_TRUE(bypasses(list, "iot.eu-west-1.Example.com", 8883)) << list;
        EXPECT_FALSE(bypasses(list, "notexample.com", 8883)) << list;
        EXPECT_FALSE(bypasses(list, "example.com.evil", 8883)) << list;
    }
    EXPECT_TRUE(bypasses("a.test b.test,,c.test", "b.test", 1));
    EXPECT_TRUE(bypasses("a.test\tc.test", "x.c.test", 1));
}

TEST(NoProxy, AddressesOnlyExactly) {
    EXPECT_TRUE(bypasses("127.0.0.1", "127.0.0.1", 1));
    EXPECT_FALSE(bypasses("0.0.1", "10.0.0.1", 1)) << "an address is no name with suffixes";
    EXPECT_TRUE(bypasses("::1", "::1", 1));
    EXPECT_TRUE(bypasses("[::1]", "::1", 1));
    EXPECT_TRUE(bypasses("[::1]:8883", "[::1]", 8883));
    EXPECT_FALSE(bypasses("[::1]:443", "::1", 8883));
}

TEST(NoProxy, PortRestrictsTheEntry) {
    EXPECT_TRUE(bypasses("broker.test:8883", "broker.test", 8883));
    EXPECT_FALSE(bypasses("broker.test:443", "broker.test", 8883));
    EXPECT_FALSE(bypasses("broker.test:x", "broker.test", 8883)) << "a malformed entry exempts nothing";
}

TEST(ProxyEnvironment, LowerCaseWinsAndNoProxyDecides) {
    environment env{.https_proxy = "http://lower:1",
                    .https_proxy_upper = "http://upper:2",
                    .no_proxy = "",
                    .no_proxy_upper = "other.test"};
    auto c = choose(env, "broker.test", 8883);
    ASSERT_TRUE(c.proxy);
    EXPECT_EQ(c.proxy->host, "lower");
    EXPECT_EQ(c.variable, "https_proxy");

    env.https_proxy.clear();
    c = choose(env, "broker.test", 8883);
    ASSERT_TRUE(c.proxy);
    EXPECT_EQ(c.proxy->host, "upper");
    EXPECT_EQ(c.variable, "HTTPS_PROXY");

    c = choose(env, "x.other.test", 8883);
    EXPECT_FALSE(c.proxy);
    EXPECT_EQ(c.variable, "NO_PROXY");

    env.no_proxy = "broker.test";  // the lower-case list replaces the upper-case one
    EXPECT_TRUE(choose(env, "x.other.test", 8883).proxy);
    EXPECT_EQ(choose(env, "broker.test", 8883).variable, "no_proxy");
}

TEST(ProxyEnvironment, UnsetMeansDirectAndSchemeIsOptional) {
    EXPECT_FALSE(choose({}, "broker.test", 8883).proxy);
    EXPECT_EQ(choose({}, "broker.test", 8883).variable, "");
    const auto c = choose({.https_proxy = "proxy.corp:3128"}, "broker.test", 8883);
    ASSERT_TRUE(c.proxy);
    EXPECT_EQ(to_string(*c.proxy), "http://proxy.corp:3128");
}

TEST(ProxyEnvironment, AMalformedValueIsAProblemNamingTheVariable) {
    const auto c = choose({.https_proxy_upper = "ftp://proxy:21"}, "broker.test", 8883);
    EXPECT_FALSE(c.proxy);
    EXPECT_EQ(c.variable, "HTTPS_PROXY");
    EXPECT_NE(c.problem.find("ftp"), std::string::npos);
}

TEST(ProxyCredentials, OneLineUserColonPassword) {
    for (const auto* text : {"alice:pw", "alice:pw\n", "alice:pw\r\n"}) {
        const auto c = parse_credentials(text);
        ASSERT_TRUE(c.value) << c.problem;
        EXPECT_EQ(c.value->user, "alice");
        EXPECT_EQ(c.value->password, "pw");
    }
    EXPECT_EQ(parse_credentials("alice:p:w@x").value->password, "p:w@x");
    EXPECT_EQ(parse_credentials("alice:").value->password, "");
}

TEST(ProxyCredentials, Refusals) {
    EXPECT_NE(parse_credentials("").problem.find("empty"), std::string::npos);
    EXPECT_NE(parse_credentials("\n").problem.find("empty"), std::string::npos);
    EXPECT_NE(parse_credentials("alice").problem.find("no ':'"), std::string::npos);
    EXPECT_NE(parse_credentials(":pw").problem.find("empty user"), std::string::npos);
    EXPECT_NE(parse_credentials("alice:pw\nbob:pw2").problem.find("more than one line"), std::string::npos);
    const auto control = parse_credentials(std::string("alice:s3cret\x01", 13));
    EXPECT_NE(control.problem.find("control"), std::string::npos);
    EXPECT_EQ(control.problem.find("s3cret"), std::string::npos);
}

}  // namespace
}  // namespace thingmux::proxy
