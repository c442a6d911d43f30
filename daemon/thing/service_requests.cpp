#include "daemon/thing/service_requests.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <random>

namespace thingmux::thing::services {

namespace {

constexpr auto npos = std::string_view::npos;

// The levels of `topic` after "$aws/things/THING/", when it is one of the Thing's topics.
std::optional<std::string_view> thing_rest(std::string_view thing, std::string_view topic) noexcept {
    constexpr std::string_view prefix = "$aws/things/";
    if (thing.empty() || !topic.starts_with(prefix)) return std::nullopt;
    topic.remove_prefix(prefix.size());
    if (!topic.starts_with(thing) || topic.size() <= thing.size() || topic[thing.size()] != '/') return std::nullopt;
    return topic.substr(thing.size() + 1);
}

// Splits off the first level of `rest`.
std::string_view level(std::string_view& rest) noexcept {
    const auto slash = rest.find('/');
    const auto first = rest.substr(0, slash);
    rest = slash == npos ? std::string_view{} : rest.substr(slash + 1);
    return first;
}

// AWS's names: shadows [a-zA-Z0-9:_-]{1,64}, job ids [a-zA-Z0-9_-]{1,64}.
bool aws_name(std::string_view s, bool colon) noexcept {
    if (s.empty() || s.size() > 64) return false;
    return std::all_of(s.begin(), s.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
               (colon && c == ':');
    });
}

std::optional<request_kind> shadow_operation(std::string_view op) noexcept {
    if (op == "get") return request_kind::shadow_get;
    if (op == "update") return request_kind::shadow_update;
    if (op == "delete") return request_kind::shadow_delete;
    return std::nullopt;
}

// "shadow/…" or "shadow/name/N/…" after the Thing: the shadow and what follows it.
std::optional<request_topic> shadow_of(std::string_view& rest) noexcept {
    if (level(rest) != "shadow" || rest.empty()) return std::nullopt;
    request_topic t;
    if (rest.starts_with("name/")) {
        (void)level(rest);
        t.shadow = level(rest);
        t.named = true;
        if (!aws_name(t.shadow, true) || rest.empty()) return std::nullopt;
    }
    return t;
}

bool is_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t skip_ws(std::string_view t, std::size_t i) noexcept {
    while (i < t.size() && is_ws(t[i])) ++i;
    return i;
}

// `i` at an opening quote: the index after the closing one, npos when there is none.
std::size_t skip_string(std::string_view t, std::size_t i) noexcept {
    for (++i; i < t.size(); ++i) {
        if (t[i] == '\\') {
            ++i;
        } else if (t[i] == '"') {
            return i + 1;
        }
    }
    return npos;
}

// `i` at a value's first byte: the index after its last, npos when it does not end. Brackets are
// counted, not matched: the request path checks the JSON with a real parser first; the inbound
// path only needs to stay within the text.
std::size_t skip_value(std::string_view t, std::size_t i) noexcept {
    if (i >= t.size()) return npos;
    if (t[i] == '"') return skip_string(t, i);
    if (t[i] == '{' || t[i] == '[') {
        std::size_t depth = 0;
        while (i < t.size()) {
            const char c = t[i];
            if (c == '"') {
                i = skip_string(t, i);
                if (i == npos) return npos;
                continue;
            }
            if (c == '{' || c == '[') {
                ++depth;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return i + 1;
            }
            ++i;
        }
        return npos;
    }
    auto j = i;
    while (j < t.size() && !is_ws(t[j]) && t[j] != ',' && t[j] != '}' && t[j] != ']' && t[j] != ':') ++j;
    return j == i ? npos : j;
}

// Calls `f(raw_key, member)` for each top-level member of the object `t` until it returns false;
// false when `t` is not an object the scanner can read.
template <class F>
bool for_each_member(std::string_view t, F&& f) {
    auto i = skip_ws(t, 0);
    if (i >= t.size() || t[i] != '{') return false;
    i = skip_ws(t, i + 1);
    if (i < t.size() && t[i] == '}') return skip_ws(t, i + 1) == t.size();
    for (;;) {
        if (i >= t.size() || t[i] != '"') return false;
        const auto key_begin = i;
        const auto key_end = skip_string(t, i);
        if (key_end == npos) return false;
        i = skip_ws(t, key_end);
        if (i >= t.size() || t[i] != ':') return false;
        i = skip_ws(t, i + 1);
        const auto value_end = skip_value(t, i);
        if (value_end == npos) return false;
        if (!f(t.substr(key_begin + 1, key_end - key_begin - 2), member{key_begin, i, value_end})) return true;
        i = skip_ws(t, value_end);
        if (i >= t.size()) return false;
        if (t[i] == '}') return skip_ws(t, i + 1) == t.size();
        if (t[i] != ',') return false;
        i = skip_ws(t, i + 1);
    }
}

bool daemon_token(std::string_view s) noexcept {
    if (s.size() != token_size || !s.starts_with(token_prefix)) return false;
    return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(token_prefix.size()), s.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

constexpr std::uint64_t rotl(std::uint64_t x, int b) noexcept { return (x << b) | (x >> (64 - b)); }

// SipHash-2-4 of one 64-bit word.
std::uint64_t siphash(const token_source::key_type& k, std::uint64_t m) noexcept {
    std::uint64_t v0 = 0x736f6d6570736575ULL ^ k[0];
    std::uint64_t v1 = 0x646f72616e646f6dULL ^ k[1];
    std::uint64_t v2 = 0x6c7967656e657261ULL ^ k[0];
    std::uint64_t v3 = 0x7465646279746573ULL ^ k[1];
    const auto round = [&] {
        v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
        v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
        v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
        v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
    };
    const auto block = [&](std::uint64_t b) {
        v3 ^= b;
        round();
        round();
        v0 ^= b;
    };
    block(m);
    block(std::uint64_t{8} << 56);  // the length byte of an 8-byte message, no tail
    v2 ^= 0xff;
    for (int i = 0; i < 4; ++i) round();
    return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace

const char* to_string(request_kind k) noexcept {
    switch (k) {
        case request_kind::shadow_get: return "shadow get";
        case request_kind::shadow_update: return "shadow update";
        case request_kind::shadow_delete: return "shadow delete";
        case request_kind::jobs_get: return "jobs get";
        case request_kind::jobs_start_next: return "jobs start-next";
        case request_kind::job_get: return "job get";
        case request_kind::job_update: return "job update";
    }
    return "unknown";
}

std::optional<request_topic> classify_request(std::string_view thing, std::string_view topic) noexcept {
    auto rest = thing_rest(thing, topic);
    if (!rest) return std::nullopt;
    if (rest->starts_with("shadow/")) {
        auto t = shadow_of(*rest);
        if (!t) return std::nullopt;
        const auto op = shadow_operation(*rest);
        if (!op) return std::nullopt;
        t->kind = *op;
        return t;
    }
    if (level(*rest) != "jobs") return std::nullopt;
    const auto first = level(*rest);
    if (rest->empty()) {
        if (first == "get") return request_topic{.kind = request_kind::jobs_get, .shadow = {}, .named = false};
        if (first == "start-next") return request_topic{.kind = request_kind::jobs_start_next, .shadow = {}, .named = false};
        return std::nullopt;
    }
    if (!aws_name(first, false)) return std::nullopt;
    if (*rest == "get") return request_topic{.kind = request_kind::job_get, .shadow = {}, .named = false};
    if (*rest == "update") return request_topic{.kind = request_kind::job_update, .shadow = {}, .named = false};
    return std::nullopt;
}

std::optional<response_topic> classify_response(std::string_view thing, std::string_view topic) noexcept {
    bool accepted = false;
    if (topic.ends_with("/accepted")) {
        accepted = true;
        topic.remove_suffix(9);
    } else if (topic.ends_with("/rejected")) {
        topic.remove_suffix(9);
    } else {
        return std::nullopt;
    }
    const auto what = classify_request(thing, topic);
    if (!what) return std::nullopt;
    return response_topic{.request = topic, .what = *what, .accepted = accepted};
}

std::optional<request_topic> classify_documents(std::string_view thing, std::string_view topic) noexcept {
    auto rest = thing_rest(thing, topic);
    if (!rest || !rest->starts_with("shadow/")) return std::nullopt;
    auto t = shadow_of(*rest);
    if (!t || *rest != "update/documents") return std::nullopt;
    t->kind = request_kind::shadow_update;
    return t;
}

std::optional<member> find_member(std::string_view text, std::string_view key) noexcept {
    // The whole object is read: a member is only trusted in text that ends where an object ends,
    // and a key written twice has no one value.
    std::optional<member> found;
    bool twice = false;
    const bool readable = for_each_member(text, [&](std::string_view raw, const member& m) {
        if (raw == key) {
            twice = found.has_value();
            found = m;
        }
        return !twice;
    });
    return readable && !twice ? found : std::nullopt;
}

std::string without_member(std::string_view text, const member& m) {
    std::string out(text);
    // The comma after it goes with it; for the last member, the comma before it.
    const auto after = skip_ws(text, m.value_end);
    if (after < text.size() && text[after] == ',') {
        out.erase(m.begin, skip_ws(text, after + 1) - m.begin);
        return out;
    }
    auto before = m.begin;
    while (before > 0 && is_ws(text[before - 1])) --before;
    if (before > 0 && text[before - 1] == ',') {
        out.erase(before - 1, m.value_end - (before - 1));
    } else {
        out.erase(m.begin, m.value_end - m.begin);
    }
    return out;
}

std::string with_first_member(std::string_view text, std::string_view key, std::string_view raw_value) {
    std::string entry;
    entry.reserve(key.size() + raw_value.size() + 4);
    entry.append("\"").append(key).append("\":").append(raw_value);
    const auto open = skip_ws(text, 0);
    if (open >= text.size()) return "{" + entry + "}";  // an empty payload stands for {}
    std::string out(text);
    const auto next = skip_ws(text, open + 1);
    if (next < text.size() && text[next] != '}') entry += ',';
    out.insert(open + 1, entry);
    return out;
}

request_check check_request(std::string_view payload) {
    request_check r;
    if (payload.size() > max_request_payload) {
        r.problem = "the payload is " + std::to_string(payload.size()) + " bytes, a service request takes at most " +
                    std::to_string(max_request_payload);
        return r;
    }
    if (skip_ws(payload, 0) == payload.size()) return r;  // empty: {}
    boost::json::parse_options options;
    options.max_depth = max_json_depth;
    boost::system::error_code ec;
    const auto value = boost::json::parse(payload, ec, {}, options);
    if (ec) {
        r.problem = "the payload is not JSON within " + std::to_string(max_json_depth) + " levels (" + ec.message() + ")";
        return r;
    }
    const auto* object = value.if_object();
    if (object == nullptr) {
        r.problem = "the payload is not a JSON object";
        return r;
    }
    // Boost.JSON keeps one of duplicate keys; AWS may keep another: the token must be unambiguous,
    // and found where the text edit will look for it.
    std::size_t written = 0;
    bool escaped_key = false;
    for_each_member(payload, [&](std::string_view raw, const member& m) {
        if (raw == "clientToken") {
            ++written;
            r.token = m;
        } else if (raw.find('\\') != npos) {
            const auto key = boost::json::parse("\"" + std::string(raw) + "\"", ec);
            if (!ec && key.is_string() && key.get_string() == "clientToken") escaped_key = true;
        }
        return true;
    });
    if (escaped_key || written > 1) {
        r.problem = escaped_key ? "the payload writes the key clientToken with escapes" : "the payload has clientToken twice";
        r.token.reset();
        return r;
    }
    if (const auto* token = object->if_contains("clientToken")) {
        if (!token->is_string()) {
            r.problem = "clientToken is not a string";
        } else if (token->get_string().size() > max_client_token) {
            r.problem = "clientToken is " + std::to_string(token->get_string().size()) + " bytes, at most " +
                        std::to_string(max_client_token);
        } else if (!r.token) {
            r.problem = "the payload's clientToken could not be located";  // not expected after a parse
        }
        if (!r.problem.empty()) r.token.reset();
    }
    return r;
}

std::string with_token(std::string_view payload, const request_check& checked, std::string_view token) {
    const std::string raw = "\"" + std::string(token) + "\"";
    if (!checked.token) return with_first_member(payload, "clientToken", raw);
    std::string out(payload);
    out.replace(checked.token->value_begin, checked.token->value_end - checked.token->value_begin, raw);
    return out;
}

std::optional<token_in_payload> find_daemon_token(std::string_view payload) noexcept {
    if (payload.find(token_prefix) == npos) return std::nullopt;
    const auto m = find_member(payload, "clientToken");
    if (!m || m->value_end - m->value_begin != token_size + 2) return std::nullopt;
    const auto token = payload.substr(m->value_begin + 1, token_size);
    if (payload[m->value_begin] != '"' || !daemon_token(token)) return std::nullopt;
    return token_in_payload{.token = token, .where = *m};
}

std::string restore_token(std::string_view payload, const member& where, const std::optional<std::string>& original) {
    if (!original) return without_member(payload, where);
    std::string out(payload);
    out.replace(where.value_begin, where.value_end - where.value_begin, *original);
    return out;
}

std::string token_source::next() {
    static constexpr char hex[] = "0123456789abcdef";
    auto v = siphash(key_, counter_++);
    std::string out(token_prefix);
    out.resize(token_size);
    for (std::size_t i = token_size; i > token_prefix.size(); --i) {
        out[i - 1] = hex[v & 0xfU];
        v >>= 4U;
    }
    return out;
}

token_source::key_type token_source::random_key() {
    std::random_device os;
    key_type k{};
    for (auto& w : k) w = (std::uint64_t{os()} << 32U) | os();
    return k;
}

std::string request_table::add(pending_request r) {
    std::string token;
    do {
        token = tokens_.next();
    } while (pending_.contains(token) || ended_.contains(token));
    ++per_session_[r.session];
    deadlines_.emplace(r.deadline, token);
    pending_.emplace(token, std::move(r));
    return token;
}

std::optional<pending_request> request_table::take(std::string_view token) {
    const auto it = pending_.find(token);
    if (it == pending_.end()) return std::nullopt;
    auto r = std::move(it->second);
    const std::string key = it->first;
    pending_.erase(it);
    for (auto [d, end] = deadlines_.equal_range(r.deadline); d != end; ++d) {
        if (d->second == key) {
            deadlines_.erase(d);
            break;
        }
    }
    if (auto s = per_session_.find(r.session); s != per_session_.end() && --s->second == 0) per_session_.erase(s);
    remember(key, r.original);
    return r;
}

std::vector<request_table::expired> request_table::expire(time_point now) {
    std::vector<expired> out;
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        const auto token = deadlines_.begin()->second;
        if (auto r = take(token)) out.push_back({token, std::move(*r)});
    }
    return out;
}

std::size_t request_table::forget(session_id s) {
    std::vector<std::string> tokens;
    for (const auto& [token, r] : pending_)
        if (r.session == s) tokens.push_back(token);
    for (const auto& t : tokens) (void)take(t);
    return tokens.size();
}

const pending_request* request_table::find(std::string_view token) const {
    const auto it = pending_.find(token);
    return it == pending_.end() ? nullptr : &it->second;
}

const std::optional<std::string>* request_table::ended(std::string_view token) const {
    const auto it = ended_.find(std::string(token));
    return it == ended_.end() ? nullptr : &it->second;
}

std::size_t request_table::pending(session_id s) const {
    const auto it = per_session_.find(s);
    return it == per_session_.end() ? 0 : it->second;
}

std::optional<time_point> request_table::next_deadline() const {
    if (deadlines_.empty()) return std::nullopt;
    return deadlines_.begin()->first;
}

void request_table::remember(const std::string& token, std::optional<std::string> original) {
    if (ended_order_.size() >= remembered_ended) {
        ended_.erase(ended_order_.front());
        ended_order_.pop_front();
    }
    ended_.insert_or_assign(token, std::move(original));
    ended_order_.push_back(token);
}

std::string timeout_payload(std::chrono::milliseconds waited, std::int64_t unix_seconds, const std::optional<std::string>& original) {
    const auto ms = waited.count();
    const std::string within = ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
    std::string out = R"({"code":504,"message":"thingmuxd: AWS IoT did not answer within )" + within +
                      R"(","timestamp":)" + std::to_string(unix_seconds);
    if (original) out += R"(,"clientToken":)" + *original;
    out += '}';
    return out;
}

}  // namespace thingmux::thing::services
