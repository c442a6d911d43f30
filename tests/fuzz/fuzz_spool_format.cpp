// libFuzzer target for the spool's own encodings inside its file (daemon/spool/format.hpp): the
// user properties and the local sessions' subscriptions, read back from BLOB columns that a
// damaged or hand-edited file may hold anything in.
//
// Input: one selector byte (bit 0: 0 = user properties, 1 = subscriptions), then the blob.
// Besides the sanitizers' findings, the target aborts when a property breaks: a blob that
// decodes re-encodes to the very same bytes (the encoding is canonical), and a blob that does
// not decode says why.
// Seeds: tests/fuzz/corpus/spool_format/.
#include "daemon/spool/format.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

namespace {

void require(bool condition) {
    if (!condition) std::abort();
}

template <class T, class Decode, class Encode>
void check(std::span<const std::uint8_t> blob, Decode decode, Encode encode) {
    std::vector<T> decoded;
    std::string why;
    if (!decode(blob, decoded, why)) {
        require(!why.empty());
        return;
    }
    const auto again = encode(decoded);
    require(std::vector<std::uint8_t>(blob.begin(), blob.end()) == again);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    namespace format = thingmux::spool::format;
    const std::span<const std::uint8_t> blob{data + 1, size - 1};
    if ((data[0] & 1U) == 0) {
        check<thingmux::spool::user_property>(blob, format::decode_user_properties, format::encode_user_properties);
    } else {
        check<format::subscription>(blob, format::decode_subscriptions, format::encode_subscriptions);
    }
    return 0;
}
