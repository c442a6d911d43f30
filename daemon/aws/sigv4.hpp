// AWS Signature Version 4 (AWS4-HMAC-SHA256): the canonical request, the string to sign, the
// signing key and the signature, for a request signed in its Authorization header or presigned
// in its query string. No I/O and no state: inputs in, strings out, with OpenSSL's SHA-256 and
// HMAC. Checked against AWS's published SigV4 test suite and against botocore
// (tests/unit/aws_sigv4_test.cpp, tests/integration/aws_botocore_test.cpp).
//
// Paths are taken as given (no "." or ".." removal, no merging of slashes): the services this
// signs for need none, and it keeps the signed path the one sent.
#pragma once

#include "common/aws_credentials.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace thingmux::aws::sigv4 {

inline constexpr std::string_view algorithm = "AWS4-HMAC-SHA256";

using parameters = std::vector<std::pair<std::string, std::string>>;

struct request {
    std::string method = "GET";
    std::string path = "/";  // as the resource is named, not percent-encoded: "/mqtt", "/ሴ"
    parameters query;        // names and values not percent-encoded, in any order
    parameters headers;      // names in any case; a name given twice has its values joined with ','
    std::string payload;     // the body
};

// What a signature is valid for: "20150830/us-east-1/service/aws4_request".
struct scope {
    std::string date;  // YYYYMMDD
    std::string region;
    std::string service;
    [[nodiscard]] std::string to_string() const;
};

// Percent-encoding as SigV4 wants it: every byte but A-Z a-z 0-9 - . _ ~ as %XX (upper-case
// hex); '/' kept with `keep_slash` (paths).
[[nodiscard]] std::string uri_encode(std::string_view s, bool keep_slash = false);

// "20150830T123600Z" (X-Amz-Date) of a time, in UTC, whole seconds.
[[nodiscard]] std::string amz_date(std::chrono::system_clock::time_point t);

// Lower-case hex of SHA-256 of `data`.
[[nodiscard]] std::string hex_sha256(std::string_view data);

// Encoded names and values, sorted by name then value, joined with '&'.
[[nodiscard]] std::string canonical_query(const parameters& query);

// "host;x-amz-date": the request's header names, lower-case, sorted, without repeats.
[[nodiscard]] std::string signed_headers(const request& r);

// METHOD \n PATH \n QUERY \n HEADERS \n SIGNED-HEADERS \n HEX(SHA256(payload)).
[[nodiscard]] std::string canonical_request(const request& r);

// AWS4-HMAC-SHA256 \n DATE-TIME \n SCOPE \n HEX(SHA256(canonical request)).
[[nodiscard]] std::string string_to_sign(std::string_view amz_date, const scope& s, std::string_view canonical_request);

// HMAC chain "AWS4" + secret -> date -> region -> service -> "aws4_request".
[[nodiscard]] std::array<unsigned char, 32> signing_key(std::string_view secret, const scope& s);

// Lower-case hex of HMAC-SHA256(signing key, string to sign).
[[nodiscard]] std::string signature(std::string_view secret, const scope& s, std::string_view string_to_sign);

// Each step's text, for the tests and for a reader chasing a SignatureDoesNotMatch.
struct signing {
    std::string canonical_request;
    std::string string_to_sign;
    std::string signature;
};

// Signs `r` as it is (the caller has put host and x-amz-date among its headers): what goes into
// "Authorization: AWS4-HMAC-SHA256 Credential=KEYID/SCOPE, SignedHeaders=..., Signature=...".
[[nodiscard]] signing sign(const request& r, std::string_view secret, const scope& s, std::string_view amz_date);

// Where a presigned request carries a session token: among the signed query parameters (what
// most services and botocore do), or appended after the signature, unsigned (what AWS IoT
// Core's WebSocket endpoint wants: it refuses a signature that covers the token).
enum class token_placement : std::uint8_t { signed_query, after_signature };

// The request target "PATH?QUERY" of `r` presigned in its query string: r.query plus
// X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders (the
// headers of `r`, which must hold host) in canonical order, then X-Amz-Signature, and the
// session token where `placement` says. `c` must be usable (aws::problem() empty).
[[nodiscard]] std::string presign(const request& r, const credentials& c, std::string_view region,
                                  std::string_view service, std::chrono::system_clock::time_point at,
                                  std::chrono::seconds expires, token_placement placement);

}  // namespace thingmux::aws::sigv4
