#include "daemon/metrics/http_request.hpp"

#include <algorithm>
#include <cctype>
#include <optional>

namespace thingmux::metrics {

namespace {

constexpr std::size_t max_method = 32;  // longer than any method: garbage

// RFC 9110 5.6.2 token characters.
bool tchar(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A field value's byte: visible ASCII, space, tab, or obs-text.
bool value_char(char c) noexcept {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7F);
}

http_request refuse(int status, std::string reason, std::size_t head = 0) {
    http_request r;
    r.result = http_request::state::refused;
    r.status = status;
    r.reason = std::move(reason);
    r.head_bytes = head;
    return r;
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

int hex(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decodes a query value ('+' is a space); false on a broken escape.
bool decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '%') {
            if (i + 2 >= in.size()) return false;
            const int hi = hex(in[i + 1]);
            const int lo = hex(in[i + 2]);
            if (hi < 0 || lo < 0) return false;
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else {
            out += in[i] == '+' ? ' ' : in[i];
        }
    }
    return true;
}

// The first line of `text` (without its CR LF or LF) and where the next one starts; npos when it
// has not ended yet.
std::size_t line_end(std::string_view text, std::size_t from, std::string_view& line) {
    const auto nl = text.find('\n', from);
    if (nl == std::string_view::npos) return nl;
    auto end = nl;
    if (end > from && text[end - 1] == '\r') --end;
    line = text.substr(from, end - from);
    return nl + 1;
}

// Checks what has arrived of the request line before it ends, so that garbage is refused at
// once instead of waiting for a line end that may never come.
std::optional<http_request> early_check(std::string_view partial) {
    const auto sp = partial.find(' ');
    const auto method = partial.substr(0, sp);
    if (!std::all_of(method.begin(), method.end(), tchar) || method.size() > max_method)
        return refuse(400, "the request line does not start with a method");
    if (partial.size() > max_request_line) return refuse(414, "the request line is longer than " + std::to_string(max_request_line) + " bytes");
    return std::nullopt;
}

}  // namespace

std::string_view status_text(int status) noexcept {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

http_request parse_request(std::string_view received) {
    std::string_view request_line;
    const auto first_end = line_end(received, 0, request_line);
    if (first_end == std::string_view::npos) {
        auto partial = received.substr(0, std::min(received.size(), max_request_line + 1));
        // A CR at the end may be the first half of the line's CR LF: judged when the LF comes.
        if (partial.ends_with('\r')) partial.remove_suffix(1);
        if (auto early = early_check(partial)) return *early;
        return {};
    }
    // The same checks as before the line ended, in the same order: a verdict never changes as bytes arrive.
    if (auto early = early_check(request_line)) return *early;

    // The head's end: the first empty line, within max_head bytes.
    std::size_t pos = first_end;
    std::size_t fields = 0;
    bool openmetrics = false;
    std::size_t head = 0;
    for (;;) {
        std::string_view line;
        const auto next = line_end(received, pos, line);
        if (next == std::string_view::npos) {
            if (received.size() > max_head) return refuse(431, "the request head is longer than " + std::to_string(max_head) + " bytes");
            return {};
        }
        if (next > max_head) return refuse(431, "the request head is longer than " + std::to_string(max_head) + " bytes");
        pos = next;
        if (line.empty()) {
            head = next;
            break;
        }
        if (++fields > max_fields) return refuse(431, "the request has more than " + std::to_string(max_fields) + " header fields");
        if (line.front() == ' ' || line.front() == '\t') return refuse(400, "a header field is folded over lines (obsolete line folding)");
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) return refuse(400, "a header line is not NAME: VALUE");
        const auto name = line.substr(0, colon);
        if (!std::all_of(name.begin(), name.end(), tchar)) return refuse(400, "a header field's name has a byte a name cannot have");
        auto value = line.substr(colon + 1);
        if (!std::all_of(value.begin(), value.end(), value_char)) return refuse(400, "a header field's value has a control byte");
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
        if (lower(name) == "accept" && lower(value).find("application/openmetrics-text") != std::string::npos) openmetrics = true;
    }

    // METHOD SP request-target SP HTTP-version
    const auto sp1 = request_line.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? sp1 : request_line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || request_line.find(' ', sp2 + 1) != std::string_view::npos)
        return refuse(400, "the request line is not METHOD TARGET HTTP/1.1", head);
    const auto method = request_line.substr(0, sp1);
    const auto target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    const auto version = request_line.substr(sp2 + 1);
    if (method.empty() || target.empty()) return refuse(400, "the request line is not METHOD TARGET HTTP/1.1", head);
    if (!std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7F; }))
        return refuse(400, "the request target has a byte a URL cannot have", head);
    if (version.size() != 8 || !version.starts_with("HTTP/") || std::isdigit(static_cast<unsigned char>(version[5])) == 0 ||
        version[6] != '.' || std::isdigit(static_cast<unsigned char>(version[7])) == 0)
        return refuse(400, "the request line does not end in an HTTP version", head);
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return refuse(505, "only HTTP/1.0 and HTTP/1.1 are served", head);
    if (method != "GET") return refuse(405, "only GET is served", head);
    const auto q = target.find('?');
    if (target.substr(0, q) != "/metrics") return refuse(404, "only /metrics is served", head);

    http_request r;
    r.result = http_request::state::complete;
    r.openmetrics = openmetrics;
    r.head_bytes = head;
    if (q != std::string_view::npos) {
        auto query = target.substr(q + 1);
        while (!query.empty()) {
            const auto amp = query.find('&');
            const auto pair = query.substr(0, amp);
            query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
            const auto eq = pair.find('=');
            if (pair.substr(0, eq) != "thing") continue;  // other parameters (a scraper's) are ignored
            if (eq == std::string_view::npos || !decode(pair.substr(eq + 1), r.thing))
                return refuse(400, "the query's thing= is not a percent-encoded name", head);
        }
    }
    return r;
}

}  // namespace thingmux::metrics
