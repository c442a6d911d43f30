// The scrape's text writer (daemon/metrics/openmetrics.hpp): both formats' spelling of families,
// counters and histograms, and label values from outside that cannot break out of their
// quotes or their line.
#include "daemon/metrics/openmetrics.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace thingmux::metrics;

TEST(OpenMetrics, EscapesHostileLabelValues) {
    EXPECT_EQ(escape_label_value("plain.service"), "plain.service");
    EXPECT_EQ(escape_label_value("a\\b"), "a\\\\b");
    EXPECT_EQ(escape_label_value("say \"hi\""), "say \\\"hi\\\"");
    EXPECT_EQ(escape_label_value("two\nlines"), "two\\nlines");
    // A value trying to close its quote and forge a sample stays one value on one line.
    const auto forged = escape_label_value("x\"} 1\nthingmux_build_info{version=\"evil");
    EXPECT_EQ(forged.find('\n'), std::string::npos);
    EXPECT_EQ(forged, "x\\\"} 1\\nthingmux_build_info{version=\\\"evil");
    // Bytes that are not UTF-8 become U+FFFD; valid multi-byte text stays.
    EXPECT_EQ(escape_label_value(std::string("a\xff") + "b"), "a\xEF\xBF\xBD" "b");
    EXPECT_EQ(escape_label_value("caf\xC3\xA9"), "caf\xC3\xA9");
    EXPECT_EQ(escape_label_value(std::string("\xC3")), "\xEF\xBF\xBD");  // cut short
}

TEST(OpenMetrics, CounterGaugeAndEof) {
    writer w(format::openmetrics);
    w.family("thingmux_uplink_bytes", metric_type::counter, "Bytes \"out\"\\in", "bytes");
    w.sample({{"thing", "gw"}, {"direction", "out"}}, std::uint64_t{42});
    w.family("thingmux_link_up", metric_type::gauge, "Up");
    w.sample({{"thing", "g\"w"}}, std::uint64_t{1});
    EXPECT_EQ(w.finish(),
              "# TYPE thingmux_uplink_bytes counter\n"
              "# UNIT thingmux_uplink_bytes bytes\n"
              "# HELP thingmux_uplink_bytes Bytes \\\"out\\\"\\\\in\n"
              "thingmux_uplink_bytes_total{thing=\"gw\",direction=\"out\"} 42\n"
              "# TYPE thingmux_link_up gauge\n"
              "# HELP thingmux_link_up Up\n"
              "thingmux_link_up{thing=\"g\\\"w\"} 1\n"
              "# EOF\n");
}

TEST(OpenMetrics, PrometheusFormatNamesFamiliesLikeSamples) {
    writer w(format::prometheus);
    w.family("thingmux_uplink_bytes", metric_type::counter, "Bytes \"out\"", "bytes");
    w.sample({}, std::uint64_t{7});
    EXPECT_EQ(w.finish(),
              "# TYPE thingmux_uplink_bytes_total counter\n"
              "# HELP thingmux_uplink_bytes_total Bytes \"out\"\n"
              "thingmux_uplink_bytes_total 7\n");
}

TEST(OpenMetrics, Histogram) {
    const double bounds[] = {0.1, 1.0};
    const std::uint64_t cumulative[] = {2, 3};
    const label l[] = {{"thing", "gw"}};
    for (const auto f : {format::openmetrics, format::prometheus}) {
        writer w(f);
        w.family("thingmux_rtt_seconds", metric_type::histogram, "RTT", "seconds");
        w.histogram(l, bounds, cumulative, 4, 2.5);
        const auto text = w.finish();
        const std::string one = f == format::openmetrics ? "1.0" : "1";
        EXPECT_NE(text.find("thingmux_rtt_seconds_bucket{thing=\"gw\",le=\"0.1\"} 2\n"), std::string::npos) << text;
        EXPECT_NE(text.find("thingmux_rtt_seconds_bucket{thing=\"gw\",le=\"" + one + "\"} 3\n"), std::string::npos) << text;
        EXPECT_NE(text.find("thingmux_rtt_seconds_bucket{thing=\"gw\",le=\"+Inf\"} 4\n"), std::string::npos) << text;
        EXPECT_NE(text.find("thingmux_rtt_seconds_sum{thing=\"gw\"} 2.5\n"), std::string::npos) << text;
        EXPECT_NE(text.find("thingmux_rtt_seconds_count{thing=\"gw\"} 4\n"), std::string::npos) << text;
    }
}

TEST(OpenMetrics, Values) {
    EXPECT_EQ(format_value(0), "0");
    EXPECT_EQ(format_value(1700000000), "1700000000");
    EXPECT_EQ(format_value(0.25), "0.25");
    EXPECT_EQ(format_value(1.0 / 0.0), "+Inf");
    EXPECT_EQ(format_value(-1.0 / 0.0), "-Inf");
    EXPECT_EQ(format_value(0.0 / 0.0), "NaN");
}

TEST(OpenMetrics, ContentTypes) {
    EXPECT_EQ(content_type(format::openmetrics), "application/openmetrics-text; version=1.0.0; charset=utf-8");
    EXPECT_EQ(content_type(format::prometheus), "text/plain; version=0.0.4; charset=utf-8");
}

}  // namespace
