// libFuzzer target for the PKCS#11 URI parser (common/pkcs11_uri.hpp).
//
// Input: the text of a URI as a configuration could write it.
// Besides the sanitizers' findings, the target aborts when a property of the parser breaks:
//   - a refusal has a reason; an accepted URI is at most max_uri_bytes, every value at most
//     max_value_bytes, and no attribute name appears twice;
//   - path_uri() of an accepted URI parses to the same path attributes, and holds no query;
//   - every "pin-value=" left in redact()'s text or in describe() is followed by the hidden mark
//     (values are percent-encoded there, so no other part can spell "pin-value=").
// Seeds: tests/fuzz/corpus/pkcs11_uri/.
#include "common/pkcs11_uri.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace thingmux;

void require(bool condition) {
    if (!condition) std::abort();
}

// Whether every "pin-value=" in `text` is followed by the hidden mark.
bool pins_hidden(std::string_view text) {
    static constexpr std::string_view name = "pin-value=";
    for (auto at = text.find(name); at != std::string_view::npos; at = text.find(name, at + 1)) {
        if (text.substr(at + name.size(), pkcs11::hidden.size()) != pkcs11::hidden) return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text{reinterpret_cast<const char*>(data), size};
    require(pins_hidden(pkcs11::redact(text)));
    const auto parsed = pkcs11::parse_uri(text);
    if (!parsed.value) {
        require(!parsed.problem.empty());
        return 0;
    }
    const auto& u = *parsed.value;
    require(text.size() <= pkcs11::max_uri_bytes);
    for (std::size_t i = 0; i < u.path.size(); ++i) {
        require(u.path[i].value.size() <= pkcs11::max_value_bytes);
        for (std::size_t j = i + 1; j < u.path.size(); ++j) require(u.path[i].name != u.path[j].name);
    }
    const auto path = u.path_uri();
    require(path.find('?') == std::string::npos);
    const auto again = pkcs11::parse_uri(path);
    // A re-encoded value may be longer than the original text when it was written unencoded.
    if (path.size() <= pkcs11::max_uri_bytes) {
        require(again.value.has_value());
        require(again.value->path == u.path);
    }
    require(pins_hidden(u.describe()));
    return 0;
}
