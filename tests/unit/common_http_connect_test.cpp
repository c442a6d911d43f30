// The CONNECT request and the parser of a proxy's answer (common/http_connect.hpp): well-formed
// answers of real proxies, answers in pieces, and hostile ones (no HTTP, oversized, malformed).
#include "common/http_connect.hpp"

#include <gtest/gtest.h>

namespace thingmux::http_connect {
namespace {

std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

TEST(HttpConnectRequest, WithoutAndWithBasicAuthentication) {
    EXPECT_EQ(request("broker.test", 8883, nullptr), "CONNECT broker.test:8883 HTTP/1.1\r\nHost: broker.test:8883\r\n\r\n");
    const proxy::credentials login{"Aladdin", "open sesame"};  // RFC 7617's example
    EXPECT_EQ(request("::1", 443, &login),
              "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n"
              "Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n");
}

TEST(HttpConnectRequest, Base64Padding) {
    EXPECT_EQ(base64(""), "");
    EXPECT_EQ(base64("f"), "Zg==");
    EXPECT_EQ(base64("fo"), "Zm8=");
    EXPECT_EQ(base64("foo"), "Zm9v");
    EXPECT_EQ(base64("foob"), "Zm9vYg==");
    EXPECT_EQ(base64("\xff\xfe\xfd"), "//79");
}

TEST(HttpConnectVerdict, StatusClasses) {
    EXPECT_EQ(classify(200), verdict::tunnel);
    EXPECT_EQ(classify(299), verdict::tunnel);
    EXPECT_EQ(classify(407), verdict::auth_required);
    EXPECT_EQ(classify(401), verdict::auth_required) << "tinyproxy's answer to wrong credentials";
    EXPECT_EQ(classify(403), verdict::forbidden);
    EXPECT_EQ(classify(502), verdict::refused);
    EXPECT_EQ(classify(503), verdict::refused);
    EXPECT_EQ(classify(408), verdict::refused);
    EXPECT_EQ(classify(429), verdict::refused);
    EXPECT_EQ(classify(400), verdict::refused_permanently);
    EXPECT_EQ(classify(301), verdict::refused_permanently);
    EXPECT_EQ(classify(101), verdict::refused_permanently);
}

TEST(HttpConnectResponse, TinyproxyEstablishedLeavesTheTunnelBytes) {
    response_parser p;
    const std::string answer = "HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n";
    const std::string tunnel = "\x16\x03\x03";
    EXPECT_EQ(p.feed(bytes(answer + tunnel)), answer.size());
    ASSERT_EQ(p.current(), response_parser::state::done);
    EXPECT_EQ(p.status(), 200);
    EXPECT_EQ(p.status_line(), "HTTP/1.0 200 Connection established");
    EXPECT_EQ(p.feed(bytes(tunnel)), 0U) << "nothing more once done";
}

TEST(HttpConnectResponse, ByteByByteEqualsAllAtOnce) {
    const std::string answer =
        "HTTP/1.1 407 Proxy Authentication Required\r\nServer: squid\r\n"
        "Proxy-Authenticate: Basic realm=\"corp\"\r\nproxy-authenticate:   Negotiate  \r\n"
        "Content-Length: 5\r\n\r\nhello";
    response_parser p;
    std::size_t taken = 0;
    for (const char c : answer) taken += p.feed(bytes(std::string_view(&c, 1)));
    EXPECT_EQ(taken, answer.size() - 5) << "the body is not the head's";
    ASSERT_EQ(p.current(), response_parser::state::done);
    EXPECT_EQ(p.status(), 407);
    ASSERT_EQ(p.challenges().size(), 2U);
    EXPECT_EQ(p.challenges()[0], "Basic realm=\"corp\"");
    EXPECT_EQ(p.challenges()[1], "Negotiate");
}

TEST(HttpConnectResponse, BareLineFeedsAndNoReason) {
    response_parser p;
    EXPECT_EQ(p.feed(bytes("HTTP/1.1 200\n\n")), 14U);
    ASSERT_EQ(p.current(), response_parser::state::done);
    EXPECT_EQ(p.status(), 200);
    response_parser q;
    q.feed(bytes("HTTP/1.1 502 \r\n\r\n"));
    ASSERT_EQ(q.current(), response_parser::state::done);
    EXPECT_EQ(q.status(), 502);
}

TEST(HttpConnectResponse, NeedsMoreUntilTheEmptyLine) {
    response_parser p;
    p.feed(bytes("HTTP/1.1 200 OK\r\nA: b\r\n"));
    EXPECT_EQ(p.current(), response_parser::state::need_more);
    p.feed(bytes("\r"));
    EXPECT_EQ(p.current(), response_parser::state::need_more);
    p.feed(bytes("\n"));
    EXPECT_EQ(p.current(), response_parser::state::done);
}

TEST(HttpConnectResponse, NotHttpFailsAtTheFirstWrongByte) {
    response_parser p;
    // A TLS alert: what an https:// proxy answers to plain HTTP.
    EXPECT_EQ(p.feed(bytes("\x15\x03\x01\x00\x02\x02\x46")), 1U);
    EXPECT_EQ(p.current(), response_parser::state::failed);
    EXPECT_EQ(p.error(), errc::not_http);
    response_parser q;
    q.feed(bytes("HTTP"));
    EXPECT_EQ(q.current(), response_parser::state::need_more);
    q.feed(bytes("S"));
    EXPECT_EQ(q.error(), errc::not_http);
    EXPECT_EQ(q.received_start(), "HTTPS");
}

TEST(HttpConnectResponse, MalformedStatusLines) {
    for (const auto* line : {"HTTP/2 200 OK", "HTTP/1.1 20 OK", "HTTP/1.1 099 x", "HTTP/1.1 2000 x", "HTTP/1.1  200 x",
                             "HTTP/1.x 200 OK", "HTTP/1.1 200 O\x01K", "HTTP/1.1 200\x7f", "HTTP/1.1 200 a\rb"}) {
        response_parser p;
        p.feed(bytes(std::string(line) + "\r\n\r\n"));
        EXPECT_EQ(p.current(), response_parser::state::failed) << line;
        EXPECT_EQ(p.error(), errc::bad_status_line) << line;
    }
}

TEST(HttpConnectResponse, MalformedHeaderLines) {
    for (const auto* header : {"NoColon", ": empty name", "Bad Name: x", " folded: x", "\tfolded", "X: a\x01" "b",
                               "X: a\rb"}) {
        response_parser p;
        p.feed(bytes("HTTP/1.1 200 OK\r\n" + std::string(header) + "\r\n\r\n"));
        EXPECT_EQ(p.current(), response_parser::state::failed) << header;
        EXPECT_EQ(p.error(), errc::bad_header_line) << header;
    }
}

TEST(HttpConnectResponse, ObsTextInValuesIsKept) {
    response_parser p;
    p.feed(bytes("HTTP/1.1 403 Verboten \xe2\x80\xae\r\nProxy-Authenticate: Basic realm=\"\xc3\xa9\"\r\n\r\n"));
    ASSERT_EQ(p.current(), response_parser::state::done);
    EXPECT_EQ(p.status_line(), "HTTP/1.1 403 Verboten \xe2\x80\xae") << "kept raw; escaped where shown";
}

TEST(HttpConnectResponse, HeadLargerThanTheLimitIsRefused) {
    response_parser p;
    const std::string start = "HTTP/1.1 200 OK\r\n";
    const std::string filler(max_head_bytes, 'a');
    const auto taken = p.feed(bytes(start + "X-Long: " + filler));
    EXPECT_EQ(p.current(), response_parser::state::failed);
    EXPECT_EQ(p.error(), errc::head_too_large);
    EXPECT_EQ(taken, max_head_bytes) << "nothing buffered beyond the limit";
    EXPECT_EQ(p.received_bytes(), max_head_bytes);
}

TEST(HttpConnectResponse, HeadOfExactlyTheLimitIsAccepted) {
    const std::string start = "HTTP/1.1 200 OK\r\nX: ";
    const std::string end = "\r\n\r\n";
    const std::string head = start + std::string(max_head_bytes - start.size() - end.size(), 'v') + end;
    ASSERT_EQ(head.size(), max_head_bytes);
    response_parser p;
    EXPECT_EQ(p.feed(bytes(head)), max_head_bytes);
    EXPECT_EQ(p.current(), response_parser::state::done);
}

TEST(HttpConnectResponse, TooManyHeaderLines) {
    std::string head = "HTTP/1.1 200 OK\r\n";
    for (std::size_t i = 0; i <= max_header_lines; ++i) head += "X: y\r\n";
    response_parser p;
    p.feed(bytes(head + "\r\n"));
    EXPECT_EQ(p.error(), errc::too_many_header_lines);
}

TEST(HttpConnectResponse, ChallengesAreBounded) {
    std::string head = "HTTP/1.1 407 x\r\n";
    for (int i = 0; i < 6; ++i) head += "Proxy-Authenticate: Basic realm=\"" + std::string(1000, 'r') + "\"\r\n";
    response_parser p;
    p.feed(bytes(head + "\r\n"));
    ASSERT_EQ(p.current(), response_parser::state::done);
    EXPECT_EQ(p.challenges().size(), max_challenges);
    for (const auto& c : p.challenges()) EXPECT_EQ(c.size(), max_challenge_bytes);
}

TEST(HttpConnectResponse, ErrorsHaveTheirCategory) {
    const std::error_code ec = errc::head_too_large;
    EXPECT_STREQ(ec.category().name(), "thingmux.http_connect");
    EXPECT_NE(ec.message().find("8192"), std::string::npos);
}

}  // namespace
}  // namespace thingmux::http_connect
