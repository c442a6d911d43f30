#include "config/topic_filter.hpp"

namespace thingmux::config {
namespace {

// The words configuration errors have always used; the rules are common/topic.hpp's.
std::string text_of(std::error_code problem) {
    if (!problem) return {};
    switch (static_cast<topic::errc>(problem.value())) {
    case topic::errc::too_long: return "is longer than 65535 bytes";
    case topic::errc::contains_nul: return "contains a NUL character";
    case topic::errc::not_utf8: return "is not valid UTF-8";
    case topic::errc::plus_in_name:
    case topic::errc::hash_in_name: return "contains a wildcard ('+' or '#')";
    case topic::errc::hash_not_last_level: return "'#' must be the last level";
    case topic::errc::plus_not_whole_level:
    case topic::errc::hash_not_whole_level: return "'+' and '#' must stand alone in their level (\"a/+/b\", \"a/#\")";
    default: return topic::describe(static_cast<topic::errc>(problem.value()));
    }
}

}  // namespace

std::string topic_name_problem(std::string_view topic) { return text_of(topic::name_problem(topic)); }

std::string topic_filter_problem(std::string_view filter) { return text_of(topic::filter_problem(filter)); }

}  // namespace thingmux::config
