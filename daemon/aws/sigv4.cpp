#include "daemon/aws/sigv4.hpp"

#include "common/plain_text.hpp"
#include "common/utc_time.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <map>
#include <stdexcept>

namespace thingmux::aws::sigv4 {
namespace {

using key = std::array<unsigned char, 32>;

std::string hex(const unsigned char* data, std::size_t size) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(size * 2);
    for (std::size_t i = 0; i < size; ++i) {
        out.push_back(digits[data[i] >> 4U]);
        out.push_back(digits[data[i] & 0x0FU]);
    }
    return out;
}

key hmac(const void* k, std::size_t k_size, std::string_view data) {
    key out{};
    unsigned int size = 0;
    if (HMAC(EVP_sha256(), k, static_cast<int>(k_size), reinterpret_cast<const unsigned char*>(data.data()),
             data.size(), out.data(), &size) == nullptr ||
        size != out.size())
        throw std::runtime_error("OpenSSL cannot compute HMAC-SHA256");  // only when OpenSSL is broken
    return out;
}

key hmac(const key& k, std::string_view data) {
    return hmac(k.data(), k.size(), data);
}

// A header value as SigV4 canonicalizes it: outer white space trimmed, inner runs of spaces as one.
std::string trimmed_value(std::string_view v) {
    std::string out;
    bool space = false;
    for (const char c : v) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = !out.empty();
            continue;
        }
        if (space) out.push_back(' ');
        space = false;
        out.push_back(c);
    }
    return out;
}

// Lower-case name -> values joined with ',' in the order given; sorted by name.
std::map<std::string, std::string> canonical_headers(const request& r) {
    std::map<std::string, std::string> out;
    for (const auto& [name, value] : r.headers) {
        auto& joined = out[text::ascii_lower(name)];
        joined += (joined.empty() ? "" : ",") + trimmed_value(value);
    }
    return out;
}

}  // namespace

std::string scope::to_string() const {
    return date + "/" + region + "/" + service + "/aws4_request";
}

std::string uri_encode(std::string_view s, bool keep_slash) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        const auto b = static_cast<unsigned char>(c);
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~' || (keep_slash && c == '/')) {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(digits[b >> 4U]);
            out.push_back(digits[b & 0x0FU]);
        }
    }
    return out;
}

std::string amz_date(std::chrono::system_clock::time_point t) { return utc_text(t, utc_format::compact); }

std::string hex_sha256(std::string_view data) {
    std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
    unsigned int size = 0;
    if (EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 || size != digest.size())
        throw std::runtime_error("OpenSSL cannot compute SHA-256");  // only when OpenSSL is broken
    return hex(digest.data(), digest.size());
}

std::string canonical_query(const parameters& query) {
    std::vector<std::pair<std::string, std::string>> encoded;
    encoded.reserve(query.size());
    for (const auto& [name, value] : query) encoded.emplace_back(uri_encode(name), uri_encode(value));
    std::sort(encoded.begin(), encoded.end());
    std::string out;
    for (const auto& [name, value] : encoded) out += (out.empty() ? "" : "&") + name + "=" + value;
    return out;
}

std::string signed_headers(const request& r) {
    std::string out;
    for (const auto& [name, value] : canonical_headers(r)) out += (out.empty() ? "" : ";") + name;
    return out;
}

std::string canonical_request(const request& r) {
    std::string headers;
    for (const auto& [name, value] : canonical_headers(r)) headers += name + ":" + value + "\n";
    return r.method + "\n" + uri_encode(r.path, true) + "\n" + canonical_query(r.query) + "\n" + headers + "\n" +
           signed_headers(r) + "\n" + hex_sha256(r.payload);
}

std::string string_to_sign(std::string_view amz_date, const scope& s, std::string_view canonical_request) {
    return std::string(algorithm) + "\n" + std::string(amz_date) + "\n" + s.to_string() + "\n" +
           hex_sha256(canonical_request);
}

std::array<unsigned char, 32> signing_key(std::string_view secret, const scope& s) {
    const std::string first = "AWS4" + std::string(secret);
    const auto date = hmac(first.data(), first.size(), s.date);
    return hmac(hmac(hmac(date, s.region), s.service), "aws4_request");
}

std::string signature(std::string_view secret, const scope& s, std::string_view string_to_sign) {
    const auto k = hmac(signing_key(secret, s), string_to_sign);
    return hex(k.data(), k.size());
}

signing sign(const request& r, std::string_view secret, const scope& s, std::string_view amz_date) {
    signing out;
    out.canonical_request = canonical_request(r);
    out.string_to_sign = string_to_sign(amz_date, s, out.canonical_request);
    out.signature = signature(secret, s, out.string_to_sign);
    return out;
}

std::string presign(const request& r, const credentials& c, std::string_view region, std::string_view service,
                    std::chrono::system_clock::time_point at, std::chrono::seconds expires, token_placement placement) {
    const auto date_time = amz_date(at);
    const scope s{date_time.substr(0, 8), std::string(region), std::string(service)};
    request signed_request = r;
    auto& q = signed_request.query;
    q.emplace_back("X-Amz-Algorithm", std::string(algorithm));
    q.emplace_back("X-Amz-Credential", c.access_key_id + "/" + s.to_string());
    q.emplace_back("X-Amz-Date", date_time);
    q.emplace_back("X-Amz-Expires", std::to_string(expires.count()));
    q.emplace_back("X-Amz-SignedHeaders", signed_headers(r));
    const bool token = !c.session_token.empty();
    if (token && placement == token_placement::signed_query) q.emplace_back("X-Amz-Security-Token", c.session_token);
    const auto signed_parts = sign(signed_request, c.secret_access_key, s, date_time);
    auto target = uri_encode(r.path, true) + "?" + canonical_query(q) + "&X-Amz-Signature=" + signed_parts.signature;
    if (token && placement == token_placement::after_signature)
        target += "&X-Amz-Security-Token=" + uri_encode(c.session_token);
    return target;
}

}  // namespace thingmux::aws::sigv4
