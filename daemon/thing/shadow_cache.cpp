#include "daemon/thing/shadow_cache.hpp"

#include "daemon/thing/service_requests.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>

namespace thingmux::thing {

namespace {

// The members the answer sets itself.
constexpr std::array<std::string_view, 2> answer_keys{"clientToken", "cached"};

// Whether `text` is a JSON object within the depth the request path allows, and which of
// answer_keys it has (in any spelling of the key).
struct json_check {
    bool object = false;
    std::optional<std::string_view> has;  // the first of answer_keys it has
};
json_check check(std::string_view text) {
    boost::json::parse_options options;
    options.max_depth = services::max_json_depth;
    boost::system::error_code ec;
    const auto v = boost::json::parse(text, ec, {}, options);
    if (ec || !v.is_object()) return {};
    json_check c{.object = true, .has = std::nullopt};
    for (const auto key : answer_keys)
        if (!c.has && v.as_object().contains(key)) c.has = key;
    return c;
}

// `document` without the members the answer sets (clientToken, cached), when it is a JSON object
// whose members the text edit can remove (written once, without escapes in their keys).
std::optional<std::string> storable(std::string_view document) {
    std::string out(document);
    for (std::size_t round = 0; round <= answer_keys.size(); ++round) {
        const auto c = check(out);
        if (!c.object) return std::nullopt;
        if (!c.has) return out;
        const auto m = services::find_member(out, *c.has);
        if (!m) return std::nullopt;  // an escaped key, or twice
        out = services::without_member(out, *m);
    }
    return std::nullopt;
}

}  // namespace

void shadow_cache::from_get_accepted(const std::string& shadow, std::string_view payload) {
    auto document = payload.size() > max_document ? std::nullopt : storable(payload);
    if (!document) return erase(shadow);
    put(shadow, std::move(*document));
}

void shadow_cache::from_documents(const std::string& shadow, std::string_view payload) {
    if (payload.size() > 2 * max_document || !check(payload).object) return erase(shadow);
    const auto current = services::find_member(payload, "current");
    if (!current || payload[current->value_begin] != '{') return erase(shadow);
    auto document = std::string(payload.substr(current->value_begin, current->value_end - current->value_begin));
    // get/accepted carries the time of the answer; documents the time of the update.
    if (const auto ts = services::find_member(payload, "timestamp"); ts && !services::find_member(document, "timestamp"))
        document = services::with_first_member(document, "timestamp", payload.substr(ts->value_begin, ts->value_end - ts->value_begin));
    auto kept = document.size() > max_document ? std::nullopt : storable(document);
    if (!kept) return erase(shadow);
    put(shadow, std::move(*kept));
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
