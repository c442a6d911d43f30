#include "daemon/thing/shadow_cache.hpp"

#include "daemon/thing/service_requests.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

namespace thingmux::thing {

namespace {

// Whether `text` is a JSON object within the depth the request path allows.
bool json_object(std::string_view text) {
    boost::json::parse_options options;
    options.max_depth = services::max_json_depth;
    boost::system::error_code ec;
    const auto v = boost::json::parse(text, ec, {}, options);
    return !ec && v.is_object();
}

std::string without_token(std::string_view payload) {
    if (const auto m = services::find_member(payload, "clientToken")) return services::without_member(payload, *m);
    return std::string(payload);
}

}  // namespace

void shadow_cache::from_get_accepted(const std::string& shadow, std::string_view payload) {
    if (payload.size() > max_document || !json_object(payload)) return erase(shadow);
    put(shadow, without_token(payload));
}

void shadow_cache::from_documents(const std::string& shadow, std::string_view payload) {
    if (payload.size() > 2 * max_document || !json_object(payload)) return erase(shadow);
    const auto current = services::find_member(payload, "current");
    if (!current || payload[current->value_begin] != '{') return erase(shadow);
    auto document = std::string(payload.substr(current->value_begin, current->value_end - current->value_begin));
    // get/accepted carries the time of the answer; documents the time of the update.
    if (const auto ts = services::find_member(payload, "timestamp"); ts && !services::find_member(document, "timestamp"))
        document = services::with_first_member(document, "timestamp", payload.substr(ts->value_begin, ts->value_end - ts->value_begin));
    if (document.size() > max_document) return erase(shadow);
    put(shadow, without_token(document));
}

void shadow_cache::erase(const std::string& shadow) {
    const auto it = documents_.find(shadow);
    if (it == documents_.end()) return;
    bytes_ -= it->second.document.size();
    documents_.erase(it);
}

void shadow_cache::put(const std::string& shadow, std::string document) {
    erase(shadow);
    if (documents_.size() >= max_shadows) {
        const auto oldest = std::min_element(documents_.begin(), documents_.end(),
                                             [](const auto& a, const auto& b) { return a.second.written < b.second.written; });
        erase(oldest->first);
    }
    bytes_ += document.size();
    documents_.emplace(shadow, entry{.document = std::move(document), .written = ++writes_});
}

std::optional<std::string> shadow_cache::answer(const std::string& shadow, const std::optional<std::string>& client_token) const {
    const auto it = documents_.find(shadow);
    if (it == documents_.end()) return std::nullopt;
    auto out = services::with_first_member(it->second.document, "cached", "true");
    if (client_token) out = services::with_first_member(out, "clientToken", *client_token);
    return out;
}

}  // namespace thingmux::thing
