#include "ipc/admin_clients.hpp"

#include "common/printable.hpp"
#include "common/utf8.hpp"

#include <boost/json.hpp>

#include <limits>

namespace thingmux::ipc {

namespace json = boost::json;

namespace {

// The array nests objects holding an array of strings.
constexpr std::size_t max_depth = 4;

json::string_view utf8(std::string_view s, std::string& scratch) {
    if (text::valid_utf8(s)) return {s.data(), s.size()};
    scratch = text::printable(s, std::numeric_limits<std::size_t>::max());
    return {scratch.data(), scratch.size()};
}

json::object to_json(const client_entry& c) {
    std::string scratch;
    json::object o;
    o["id"] = c.id;
    o["pid"] = c.pid;
    o["uid"] = c.uid;
    o["user"] = utf8(c.user, scratch);
    o["unit"] = utf8(c.unit, scratch);
    o["app_name"] = utf8(c.app_name, scratch);
    o["thing"] = utf8(c.thing, scratch);
    json::array subs;
    for (const auto& s : c.subscriptions) subs.emplace_back(utf8(s, scratch));
    o["subscriptions"] = std::move(subs);
    o["queued_bytes"] = c.queued_bytes;
    o["messages_in"] = c.messages_in;
    o["messages_out"] = c.messages_out;
    return o;
}

template <class T>
bool read_number(const json::object& o, std::string_view key, T& out, std::string& why) {
    const auto* v = o.if_contains(key);
    if (v != nullptr) {
        // Boost.JSON keeps non-negative integers that fit as int64, larger ones as uint64.
        if (v->is_uint64() && v->as_uint64() <= std::numeric_limits<T>::max()) {
            out = static_cast<T>(v->as_uint64());
            return true;
        }
        if (v->is_int64() && v->as_int64() >= 0 &&
            static_cast<std::uint64_t>(v->as_int64()) <= std::numeric_limits<T>::max()) {
            out = static_cast<T>(v->as_int64());
            return true;
        }
    }
    why = "member \"" + std::string(key) + "\" is missing or not a number that fits";
    return false;
}

bool read_string(const json::object& o, std::string_view key, std::string& out, std::string& why) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_string()) {
        why = "member \"" + std::string(key) + "\" is missing or not a string";
        return false;
    }
    out = std::string(v->as_string());
    return true;
}

}  // namespace

clients_json write_clients_json(std::span<const client_entry> clients, std::size_t max_bytes) {
    clients_json out{.text = "[", .listed = 0};
    for (const auto& c : clients) {
        const auto entry = json::serialize(to_json(c));
        // The separator before it and the closing bracket after it must fit too.
        if (out.text.size() + (out.listed > 0 ? 1 : 0) + entry.size() + 1 > max_bytes) break;
        if (out.listed > 0) out.text += ',';
        out.text += entry;
        ++out.listed;
    }
    out.text += ']';
    return out;
}

std::optional<std::vector<client_entry>> read_clients_json(std::string_view body, std::string& why) {
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = max_depth;
    const auto doc = json::parse(json::string_view(body.data(), body.size()), ec, {}, options);
    if (ec) {
        why = "not JSON: " + ec.message();
        return std::nullopt;
    }
    const auto* items = doc.if_array();
    if (items == nullptr) {
        why = "not a JSON array";
        return std::nullopt;
    }
    std::vector<client_entry> out;
    out.reserve(items->size());
    for (std::size_t i = 0; i < items->size(); ++i) {
        const auto* o = (*items)[i].if_object();
        client_entry c;
        std::string problem;
        const auto* subs = o != nullptr ? o->if_contains("subscriptions") : nullptr;
        bool ok = o != nullptr;
        if (!ok) problem = "not an object";
        ok = ok && read_number(*o, "id", c.id, problem) && read_number(*o, "pid", c.pid, problem) &&
             read_number(*o, "uid", c.uid, problem) && read_string(*o, "user", c.user, problem) &&
             read_string(*o, "unit", c.unit, problem) && read_string(*o, "app_name", c.app_name, problem) &&
             read_string(*o, "thing", c.thing, problem) && read_number(*o, "queued_bytes", c.queued_bytes, problem) &&
             read_number(*o, "messages_in", c.messages_in, problem) &&
             read_number(*o, "messages_out", c.messages_out, problem);
        if (ok && (subs == nullptr || !subs->is_array())) {
            ok = false;
            problem = "member \"subscriptions\" is missing or not an array";
        }
        if (ok) {
            for (const auto& s : subs->as_array()) {
                if (!s.is_string()) {
                    ok = false;
                    problem = "a subscription is not a string";
                    break;
                }
                c.subscriptions.emplace_back(s.as_string());
            }
        }
        if (!ok) {
            why = "entry " + std::to_string(i) + ": " + problem;
            return std::nullopt;
        }
        out.push_back(std::move(c));
    }
    return out;
}

}  // namespace thingmux::ipc
