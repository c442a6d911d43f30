#include "daemon/metrics/openmetrics.hpp"

#include "common/utf8.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace thingmux::metrics {

std::string_view content_type(format f) noexcept {
    return f == format::openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                    : "text/plain; version=0.0.4; charset=utf-8";
}

std::string escape_label_value(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    while (!value.empty()) {
        std::uint32_t cp = 0;
        const auto n = text::decode_utf8(value, cp);
        if (n == 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not UTF-8
            value.remove_prefix(1);
            continue;
        }
        switch (cp) {
        case '\\': out += "\\\\"; break;
        case '"': out += "\\\""; break;
        case '\n': out += "\\n"; break;
        default: out.append(value.substr(0, n));
        }
        value.remove_prefix(n);
    }
    return out;
}

namespace {

// HELP text: backslash and newline escaped (both formats), double quote too in OpenMetrics.
std::string escape_help(std::string_view help, format f) {
    std::string out;
    for (const char c : help) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (c == '"' && f == format::openmetrics)
            out += "\\\"";
        else
            out += c;
    }
    return out;
}

std::string_view type_name(metric_type t) {
    switch (t) {
    case metric_type::counter: return "counter";
    case metric_type::gauge: return "gauge";
    case metric_type::histogram: return "histogram";
    }
    return "unknown";
}

}  // namespace

std::string format_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        char buf[32];
        const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v));
        return ec == std::errc{} ? std::string(buf, end) : std::string("NaN");
    }
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc{} ? std::string(buf, end) : std::string("NaN");
}

void writer::family(std::string_view name, metric_type type, std::string_view help, std::string_view unit) {
    name_ = name;
    type_ = type;
    // Prometheus 0.0.4 names the family as its samples are named.
    std::string shown(name);
    if (format_ == format::prometheus && type == metric_type::counter) shown += "_total";
    out_ += "# TYPE " + shown + ' ' + std::string(type_name(type)) + '\n';
    if (!unit.empty() && format_ == format::openmetrics) out_ += "# UNIT " + shown + ' ' + std::string(unit) + '\n';
    out_ += "# HELP " + shown + ' ' + escape_help(help, format_) + '\n';
}

void writer::line(std::string_view suffix, std::span<const label> labels, std::string_view extra_name,
                  std::string_view extra_value, std::string_view value) {
    out_ += name_;
    out_ += suffix;
    if (!labels.empty() || !extra_name.empty()) {
        out_ += '{';
        bool first = true;
        for (const auto& l : labels) {
            if (!first) out_ += ',';
            first = false;
            out_ += l.name;
            out_ += "=\"";
            out_ += escape_label_value(l.value);
            out_ += '"';
        }
        if (!extra_name.empty()) {
            if (!first) out_ += ',';
            out_ += extra_name;
            out_ += "=\"";
            out_ += extra_value;
            out_ += '"';
        }
        out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
}

namespace {
std::string_view suffix_of(metric_type t) { return t == metric_type::counter ? "_total" : ""; }
}  // namespace

void writer::sample(std::span<const label> labels, double value) {
    line(suffix_of(type_), labels, {}, {}, format_value(value));
}

void writer::sample(std::span<const label> labels, std::uint64_t value) {
    line(suffix_of(type_), labels, {}, {}, std::to_string(value));
}

void writer::histogram(std::span<const label> labels, std::span<const double> bounds,
                       std::span<const std::uint64_t> cumulative, std::uint64_t count, double sum) {
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        // OpenMetrics spells a bound canonically as a float ("1.0"), Prometheus 0.0.4 as Go does ("1").
        auto le = format_value(bounds[i]);
        if (format_ == format::openmetrics && le.find_first_of(".eInN") == std::string::npos) le += ".0";
        line("_bucket", labels, "le", le, std::to_string(i < cumulative.size() ? cumulative[i] : count));
    }
    line("_bucket", labels, "le", "+Inf", std::to_string(count));
    line("_sum", labels, {}, {}, format_value(sum));
    line("_count", labels, {}, {}, std::to_string(count));
}

std::string writer::finish() {
    if (format_ == format::openmetrics) out_ += "# EOF\n";
    std::string out;
    out.swap(out_);
    return out;
}

}  // namespace thingmux::metrics
