#include "daemon/mqtt/topic.hpp"

namespace thingmux::mqtt {

namespace {

const char* text_of(std::error_code problem) noexcept {
    return problem ? topic::describe(static_cast<topic::errc>(problem.value())) : nullptr;
}

}  // namespace

const char* topic_name_problem(std::string_view topic) noexcept { return text_of(topic::name_problem(topic)); }

const char* topic_filter_problem(std::string_view filter) noexcept {
    return text_of(topic::subscription_problem(filter));
}

}  // namespace thingmux::mqtt
