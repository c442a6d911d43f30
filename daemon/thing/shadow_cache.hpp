// The last state document seen per shadow of a Thing (docs/services.md, services.shadow_cache),
// so that a shadow get while the Thing is offline can be answered with the last known state.
//
// Fed from what AWS sends anyway: `…/get/accepted` (the document as get answers it, clientToken
// removed) and `…/update/documents` (its "current" document and timestamp); `…/delete/accepted`
// removes the shadow's entry. Bounded: max_shadows entries (the least lately written goes), each
// at most max_document bytes (a larger document removes the entry: it would be stale). Pure: no
// I/O, no logging.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace thingmux::thing {

class shadow_cache {
public:
    static constexpr std::size_t max_shadows = 64;
    static constexpr std::size_t max_document = 32 * 1024;

    // The shadow's name: "" for the classic shadow (named shadows have 1..64 characters).
    // `payload` of a get/accepted message (its clientToken already restored or removed).
    void from_get_accepted(const std::string& shadow, std::string_view payload);
    // `payload` of an update/documents message.
    void from_documents(const std::string& shadow, std::string_view payload);
    void erase(const std::string& shadow);

    // The answer to a get of `shadow` from the cache: its document with "cached":true and, when
    // the request had one, the app's clientToken (`client_token`: its JSON text).
    [[nodiscard]] std::optional<std::string> answer(const std::string& shadow,
                                                    const std::optional<std::string>& client_token) const;
    [[nodiscard]] std::size_t size() const noexcept { return documents_.size(); }
    [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

private:
    void put(const std::string& shadow, std::string document);

    struct entry {
        std::string document;  // a JSON object without clientToken
        std::uint64_t written = 0;
    };
    std::map<std::string, entry, std::less<>> documents_;
    std::uint64_t writes_ = 0;
    std::size_t bytes_ = 0;
};

}  // namespace thingmux::thing
