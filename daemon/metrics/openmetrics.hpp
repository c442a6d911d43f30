// The text of a scrape: OpenMetrics 1.0 (application/openmetrics-text; version=1.0.0) or the
// Prometheus text format 0.0.4 (text/plain; version=0.0.4) that node_exporter's textfile
// collector and older scrapers read. The caller names families and samples; this writer spells
// them for the format: `# TYPE`/`# HELP`/`# UNIT` lines, the `_total` of counters, histogram
// buckets, escaped label values and the closing `# EOF`.
//
// Label values come from outside (systemd unit names, Thing names, app rule names): they are
// escaped as both formats require (backslash, double quote, newline), and bytes that are not
// UTF-8 become U+FFFD, so that no value can end a sample early or forge another line.
//
// Pure: standard library and common/ only; never logs.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace thingmux::metrics {

enum class format : std::uint8_t { openmetrics, prometheus };

// The Content-Type of a scrape in `f`.
[[nodiscard]] std::string_view content_type(format f) noexcept;

enum class metric_type : std::uint8_t { counter, gauge, histogram };

struct label {
    std::string_view name;  // [a-zA-Z_][a-zA-Z0-9_]*, never from outside
    std::string_view value;
};

// A label value as it is written between the double quotes.
[[nodiscard]] std::string escape_label_value(std::string_view value);

class writer {
public:
    explicit writer(format f) : format_(f) {}

    // Starts a family. `name` is the family's name without a counter's `_total`; with a `unit`
    // it must end in "_<unit>" (OpenMetrics), e.g. thingmux_publish_bytes / "bytes".
    void family(std::string_view name, metric_type type, std::string_view help, std::string_view unit = {});

    // A sample of the current family: a counter's `_total`, a gauge's value.
    void sample(std::span<const label> labels, double value);
    void sample(std::span<const label> labels, std::uint64_t value);
    void sample(std::initializer_list<label> labels, std::uint64_t value) {
        sample(std::span<const label>(labels.begin(), labels.size()), value);
    }
    void sample(std::initializer_list<label> labels, double value) {
        sample(std::span<const label>(labels.begin(), labels.size()), value);
    }

    // A histogram of the current family: cumulative `counts` for each upper bound in `bounds`
    // (ascending), then the +Inf bucket (`count`), `_sum` and `_count`.
    void histogram(std::span<const label> labels, std::span<const double> bounds,
                   std::span<const std::uint64_t> cumulative, std::uint64_t count, double sum);

    // The text, closed with "# EOF" in OpenMetrics. The writer is empty afterwards.
    [[nodiscard]] std::string finish();

private:
    void line(std::string_view suffix, std::span<const label> labels, std::string_view extra_name,
              std::string_view extra_value, std::string_view value);

    format format_;
    std::string out_;
    std::string name_;
    metric_type type_ = metric_type::gauge;
};

// A number as both formats spell it: integers without exponent, "+Inf", "-Inf", "NaN".
[[nodiscard]] std::string format_value(double v);

}  // namespace thingmux::metrics
