// The metrics endpoint's request head parser (daemon/metrics/http_request.hpp): GET /metrics
// only, its limits, and garbage refused as soon as it shows.
#include "daemon/metrics/http_request.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace thingmux::metrics;
using state = http_request::state;

TEST(MetricsHttp, ScrapeOfCurl) {
    const std::string head = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n";
    const auto r = parse_request(head);
    ASSERT_EQ(r.result, state::complete) << r.reason;
    EXPECT_FALSE(r.openmetrics);
    EXPECT_TRUE(r.thing.empty());
    EXPECT_EQ(r.head_bytes, head.size());
}

TEST(MetricsHttp, PrometheusAcceptHeaderAsksForOpenMetrics) {
    const auto r = parse_request(
        "GET /metrics HTTP/1.1\r\naccept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n\r\n");
    ASSERT_EQ(r.result, state::complete) << r.reason;
    EXPECT_TRUE(r.openmetrics);
}

TEST(MetricsHttp, ThingQuery) {
    auto r = parse_request("GET /metrics?thing=gw%2D01&x=1 HTTP/1.0\n\n");  // bare LF, HTTP/1.0
    ASSERT_EQ(r.result, state::complete) << r.reason;
    EXPECT_EQ(r.thing, "gw-01");
    r = parse_request("GET /metrics?thing=%zz HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.result, state::refused);
    EXPECT_EQ(r.status, 400);
    r = parse_request("GET /metrics?thing=ab% HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.status, 400);
}

TEST(MetricsHttp, IncompleteUntilTheHeadEnds) {
    EXPECT_EQ(parse_request("").result, state::incomplete);
    EXPECT_EQ(parse_request("GE").result, state::incomplete);
    EXPECT_EQ(parse_request("GET /metrics HTTP/1.1\r\nHost: x\r\n").result, state::incomplete);
}

// A read may end between the request line's CR and its LF (found by fuzz_metrics_http): the CR
// is not judged as part of the method or the line until the LF comes.
TEST(MetricsHttp, ARequestLineSplitBetweenCrAndLfIsNotRefused) {
    EXPECT_EQ(parse_request("GET\r").result, state::incomplete);
    EXPECT_EQ(parse_request("GET /metrics HTTP/1.1\r").result, state::incomplete);
    EXPECT_EQ(parse_request("GET /metrics HTTP/1.1\r\n\r\n").result, state::complete);
    EXPECT_EQ(parse_request("GE\rT /metrics HTTP/1.1\r\n\r\n").status, 400);
}

TEST(MetricsHttp, RefusesOtherPathsAndMethods) {
    auto r = parse_request("GET / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.status, 404);
    r = parse_request("GET /metricsx HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.status, 404);
    r = parse_request("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    EXPECT_EQ(r.status, 405);
    r = parse_request("HEAD /metrics HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.status, 405);
    r = parse_request("GET /metrics HTTP/2.0\r\n\r\n");
    EXPECT_EQ(r.status, 505);
    r = parse_request("GET /metrics HTTX/1.1\r\n\r\n");
    EXPECT_EQ(r.status, 400);
}

TEST(MetricsHttp, GarbageIsRefusedAtOnce) {
    // Not a method: refused before any line end arrives.
    auto r = parse_request(std::string("\x16\x03\x01\x02\x00", 5));  // a TLS ClientHello
    EXPECT_EQ(r.result, state::refused);
    EXPECT_EQ(r.status, 400);
    r = parse_request(std::string(40, 'A'));
    EXPECT_EQ(r.status, 400);
    r = parse_request("GET /metrics HTTP/1.1 extra\r\n\r\n");
    EXPECT_EQ(r.status, 400);
    r = parse_request("GET  /metrics HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r.status, 400);
}

TEST(MetricsHttp, RefusesBadHeaderFields) {
    EXPECT_EQ(parse_request("GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n").status, 400);
    EXPECT_EQ(parse_request("GET /metrics HTTP/1.1\r\n: empty\r\n\r\n").status, 400);
    EXPECT_EQ(parse_request("GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n").status, 400);
    EXPECT_EQ(parse_request("GET /metrics HTTP/1.1\r\nA: b\r\n folded\r\n\r\n").status, 400);
    EXPECT_EQ(parse_request(std::string("GET /metrics HTTP/1.1\r\nA: b\0c\r\n\r\n", 33)).status, 400);
    EXPECT_EQ(parse_request("GET /metrics HTTP/1.1\r\nA: b\rc\r\n\r\n").status, 400);
}

TEST(MetricsHttp, Limits) {
    // A head past 8 KiB: 431, whether or not it ends.
    std::string big = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(100 * 1024, 'a');
    auto r = parse_request(big);
    EXPECT_EQ(r.status, 431);
    r = parse_request(big + "\r\n\r\n");
    EXPECT_EQ(r.status, 431);
    // Too many fields.
    std::string many = "GET /metrics HTTP/1.1\r\n";
    for (std::size_t i = 0; i <= max_fields; ++i) many += "A: b\r\n";
    EXPECT_EQ(parse_request(many + "\r\n").status, 431);
    // A long target: 414 before its line ends.
    r = parse_request("GET /metrics?" + std::string(max_request_line, 'x'));
    EXPECT_EQ(r.status, 414);
    // Just within the limits: served.
    std::string fits = "GET /metrics HTTP/1.1\r\nX: " + std::string(max_head - 40, 'a') + "\r\n\r\n";
    ASSERT_LE(fits.size(), max_head);
    EXPECT_EQ(parse_request(fits).result, state::complete);
}

TEST(MetricsHttp, StatusTexts) {
    EXPECT_EQ(status_text(404), "Not Found");
    EXPECT_EQ(status_text(431), "Request Header Fields Too Large");
    EXPECT_EQ(status_text(503), "Service Unavailable");
}

}  // namespace
