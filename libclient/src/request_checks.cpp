#include "request_checks.hpp"

#include "convert.hpp"
#include "ipc/codec.hpp"

#include <utility>

namespace thingmux::detail {

namespace {

std::optional<result> check_qos(int qos) {
    if (qos < 0 || qos > 2) {
        return make_result(error_code::qos_not_supported, "QoS " + std::to_string(qos) + " is not 0 or 1");
    }
    return std::nullopt;
}

}  // namespace

result make_result(error_code code, std::string message) {
    result r;
    r.code = code;
    r.message = std::move(message);
    return r;
}

namespace {

// Why `m` cannot be published, checked before anything is built.
std::optional<result> publish_problem(const message& m, const request_context& ctx) {
    if (auto bad = check_qos(m.qos)) {
        return bad;
    }
    if (!valid_topic_name(m.topic)) {
        return make_result(error_code::invalid_topic, "\"" + m.topic +
                                                          "\" is not a valid topic name (empty, wildcards '+'/'#', "
                                                          "not UTF-8, U+0000 or longer than 65535 bytes)");
    }
    if (ctx.limits != nullptr && m.topic.size() > ctx.limits->max_topic_length) {
        return make_result(error_code::invalid_topic, "the topic is " + std::to_string(m.topic.size()) +
                                                          " bytes long, thingmuxd allows " +
                                                          std::to_string(ctx.limits->max_topic_length));
    }
    if (ctx.limits != nullptr && m.payload.size() > ctx.limits->max_payload) {
        return make_result(error_code::payload_too_large, "the payload is " + std::to_string(m.payload.size()) +
                                                              " bytes, thingmuxd allows " +
                                                              std::to_string(ctx.limits->max_payload));
    }
    if (m.payload_format_indicator && *m.payload_format_indicator > 1) {
        return make_result(error_code::invalid_argument, "payload_format_indicator must be 0 (bytes) or 1 (UTF-8)");
    }
    return ctx.offline;
}

}  // namespace

std::variant<request, result> publish_request(message& m, const request_context& ctx) {
    // Built in place and returned by the one name: a publish is on the hot path, and a request
    // moved once more costs as much as the checks (every return below is `return out`).
    std::variant<request, result> out;
    if (auto refused = publish_problem(m, ctx)) {
        out = std::move(*refused);
        return out;
    }
    auto& r = std::get<request>(out);
    r.kind = request_kind::publish;
    auto& p = r.frame.emplace<ipc::publish>();
    p.topic = std::move(m.topic);
    p.payload = std::move(m.payload);
    p.qos = static_cast<std::uint8_t>(m.qos);
    p.retain = m.retain;
    p.props = to_ipc_properties(m);
    if (auto problem = ipc::encode_problem(r.frame)) {
        out = make_result(error_code::invalid_argument, *problem);
        return out;
    }
    r.size = ipc::encoded_size(r.frame);
    if (r.size > ctx.max_frame) {
        out = make_result(error_code::payload_too_large, "the message takes " + std::to_string(r.size) +
                                                             " bytes on the wire, more than thingmuxd's frame limit of " +
                                                             std::to_string(ctx.max_frame));
    }
    return out;
}

std::variant<request, result> subscribe_request(const std::string& filter, int qos,
                                                const request_context& ctx) {
    if (auto bad = check_qos(qos)) {
        return std::move(*bad);
    }
    if (!valid_topic_filter(filter)) {
        return make_result(error_code::invalid_filter, "\"" + filter +
                                                           "\" is not a valid topic filter ('+' and '#' must be whole "
                                                           "levels, '#' only the last one; UTF-8 without U+0000)");
    }
    if (ctx.limits != nullptr && filter.size() > ctx.limits->max_topic_length) {
        return make_result(error_code::invalid_filter, "the filter is " + std::to_string(filter.size()) +
                                                           " bytes long, thingmuxd allows " +
                                                           std::to_string(ctx.limits->max_topic_length));
    }
    if (ctx.offline) {
        return *ctx.offline;
    }
    request r;
    r.kind = request_kind::subscribe;
    r.frame = ipc::subscribe{0, {ipc::subscription{filter, static_cast<std::uint8_t>(qos)}}};
    r.size = ipc::encoded_size(r.frame);
    if (r.size > ctx.max_frame) {
        return make_result(error_code::invalid_filter, "the filter does not fit in thingmuxd's frame limit");
    }
    return r;
}

}  // namespace thingmux::detail
